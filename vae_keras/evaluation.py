"""Test-set evaluation of a trained VAE: the ELBO and the importance-weighted NLL.

Both stream: images go through in batches and, for the importance-weighted
bound, the K posterior samples of a batch are decoded in chunks of at most
``max_decoded`` codes, so memory stays flat however large K is (K = 5000 on the
10,000 MNIST test images fits in a few hundred MB).

Random draws come from stateless TensorFlow ops seeded by ``seed``, so an
evaluation is repeatable; with ``seed=None`` the seed is taken from NumPy's
global generator, which ``keras.utils.set_random_seed`` sets.
"""

import math
import weakref

import numpy as np
import tensorflow as tf

from vae_keras import losses

# Compiled evaluation functions, one set per model, dropped with the model.
_COMPILED = weakref.WeakKeyDictionary()


def _resolve_seed(seed):
    if seed is None:
        return int(np.random.randint(0, 2**31 - 1))
    return int(seed)


def _compiled_functions(model):
    functions = _COMPILED.get(model)
    if functions is not None:
        return functions
    log_scale = math.log(getattr(model, "observation_scale", 1.0))
    latent_dim = model.latent_dim

    def log_likelihood(images, decoder_output):
        return losses.reconstruction_log_likelihood(
            images, tf.cast(decoder_output, tf.float32), model.likelihood, log_scale)

    @tf.function(reduce_retracing=True)
    def encode(images):
        outputs = model.encoder(images, training=False)
        return tf.cast(outputs[0], tf.float32), tf.cast(outputs[1], tf.float32)

    @tf.function(reduce_retracing=True)
    def elbo(images, seed):
        z_mean, z_log_var = encode(images)
        epsilon = tf.random.stateless_normal(tf.shape(z_mean), seed=seed)
        z = z_mean + tf.exp(0.5 * z_log_var) * epsilon
        reconstruction = log_likelihood(images, model.decoder(z, training=False))
        return losses.elbo(reconstruction, losses.gaussian_kl(z_mean, z_log_var))

    @tf.function(reduce_retracing=True)
    def log_weights(images, z_mean, z_log_var, epsilon):
        num_samples, batch = tf.shape(epsilon)[0], tf.shape(images)[0]
        z = z_mean[None] + tf.exp(0.5 * z_log_var)[None] * epsilon  # (K, batch, latent)
        decoded = model.decoder(tf.reshape(z, [-1, latent_dim]), training=False)
        # tile repeats the whole batch K times, matching the K-major reshape of z.
        repeated = tf.tile(images, tf.concat([[num_samples], tf.ones_like(tf.shape(images)[1:])], 0))
        log_p_x_given_z = tf.reshape(log_likelihood(repeated, decoded), [num_samples, batch])
        log_p_z = losses.standard_normal_log_prob(z)
        log_q_z = losses.diagonal_gaussian_log_prob(z, z_mean[None], z_log_var[None])
        return log_p_x_given_z + log_p_z - log_q_z

    functions = {"encode": encode, "elbo": elbo, "log_weights": log_weights}
    _COMPILED[model] = functions
    return functions


def _prepare(model, images, batch_size):
    model.check_images(images)
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}.")
    return np.asarray(images, dtype=np.float32), int(batch_size)


def elbo_per_image(model, images, batch_size=500, seed=None):
    """The ELBO of each image in nats: ``log p(x|z) - KL(q(z|x) || p(z))``.

    One posterior sample ``z`` per image for the reconstruction term (an unbiased
    estimate) and the closed-form KL, as in training with ``beta = 1``.

    Args:
        model: a trained :class:`vae_keras.VAE`.
        images: array of shape ``(n,) + model.image_shape``.
        batch_size: images per forward pass.
        seed: optional int for repeatable draws.

    Returns:
        NumPy array of shape ``(n,)``; higher is better.
    """
    images, batch_size = _prepare(model, images, batch_size)
    elbo = _compiled_functions(model)["elbo"]
    seed = _resolve_seed(seed)
    values = [
        elbo(tf.constant(images[start:start + batch_size]),
             tf.constant([seed, start], dtype=tf.int64)).numpy()
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(values)


def importance_weighted_log_likelihood(model, images, num_samples=1000, batch_size=100,
                                       max_decoded=4096, seed=None):
    """Estimate ``log p(x)`` per image with the importance-weighted bound (IWAE).

    ``log p(x) >= log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x)`` with ``z_k ~ q(z|x)``
    (Burda et al., 2015). The bound is never above ``log p(x)`` in expectation
    and rises towards it as K grows; K >= 1000 is the literature's standard for
    reporting a test negative log-likelihood on MNIST.

    Args:
        model: a trained :class:`vae_keras.VAE`.
        images: array of shape ``(n,) + model.image_shape``.
        num_samples: K, importance samples per image (>= 1).
        batch_size: images encoded at once.
        max_decoded: at most this many codes are decoded in one call; bounds memory.
        seed: optional int for repeatable draws.

    Returns:
        NumPy array of shape ``(n,)`` of log-likelihood estimates in nats (negate
        for the NLL; divide by ``num_pixels * log 2`` for bits per dimension).
    """
    images, batch_size = _prepare(model, images, batch_size)
    if isinstance(num_samples, bool) or int(num_samples) < 1:
        raise ValueError(f"num_samples must be a whole number >= 1, got {num_samples!r}.")
    num_samples = int(num_samples)
    functions = _compiled_functions(model)
    seed = _resolve_seed(seed)
    results = []
    for start in range(0, len(images), batch_size):
        batch = tf.constant(images[start:start + batch_size])
        z_mean, z_log_var = functions["encode"](batch)
        # The noise for all K samples is small (K x batch x latent_dim floats); drawing it
        # at once makes the result independent of the chunking, which only bounds the
        # memory of the decoder's activations.
        epsilon = tf.random.stateless_normal([num_samples, int(batch.shape[0]), model.latent_dim],
                                             seed=tf.constant([seed, start], dtype=tf.int64))
        samples_per_chunk = max(1, int(max_decoded) // int(batch.shape[0]))
        chunks = [
            functions["log_weights"](batch, z_mean, z_log_var,
                                     epsilon[first:first + samples_per_chunk]).numpy()
            for first in range(0, num_samples, samples_per_chunk)
        ]
        all_log_weights = np.concatenate(chunks, axis=0)  # (K, batch)
        results.append(np.asarray(losses.importance_weighted_bound(all_log_weights)))
    return np.concatenate(results)


def negative_log_likelihood(model, images, num_samples=1000, batch_size=100, seed=None):
    """Mean test NLL in nats and in bits per dimension, from the IWAE bound.

    Returns:
        ``{"nll_nats": float, "bits_per_dim": float, "num_samples": K}``.
    """
    log_likelihood = importance_weighted_log_likelihood(
        model, images, num_samples=num_samples, batch_size=batch_size, seed=seed)
    nll = float(-np.mean(log_likelihood))
    return {
        "nll_nats": nll,
        "bits_per_dim": float(losses.nats_to_bits_per_dim(nll, model.num_pixels)),
        "num_samples": int(num_samples),
    }
