"""Test-set evaluation of a trained VAE: the ELBO and the importance-weighted NLL.

Both stream: images go through in batches and, for the importance-weighted
bound, the K posterior samples of a batch are decoded in chunks of at most
``max_decoded`` codes, so memory stays flat however large K is (K = 5000 on the
10,000 MNIST test images fits in a few hundred MB).

Nothing here re-implements the model: the ELBO is the model's own forward pass
(:meth:`vae_keras.VAE.reconstruction_and_kl`) and the bound is built from
:meth:`vae_keras.VAE.log_importance_weights`, both given noise drawn here.
Random draws come from stateless TensorFlow ops seeded by ``seed``, so an
evaluation is repeatable; with ``seed=None`` the seed is taken from NumPy's
global generator, which ``keras.utils.set_random_seed`` sets.
"""

import weakref

import numpy as np
import tensorflow as tf

from vae_keras import _checks, losses

# Compiled evaluation functions, one set per model. The functions reach the model
# through a weak reference: a value that held the model itself would keep its
# WeakKeyDictionary key alive, and every model ever evaluated with it.
_COMPILED = weakref.WeakKeyDictionary()


def _resolve_seed(seed):
    seed = _checks.check_seed(seed)
    return int(np.random.randint(0, 2**31 - 1)) if seed is None else seed


def _compiled_functions(model):
    functions = _COMPILED.get(model)
    if functions is not None:
        return functions
    model_ref = weakref.ref(model)

    @tf.function(reduce_retracing=True)
    def elbo(inputs, seed):
        model = model_ref()
        z_shape = [tf.shape(tf.nest.flatten(inputs)[0])[0], model.latent_dim]
        noise = tf.random.stateless_normal(z_shape, seed=seed)
        log_likelihood, kl = model.reconstruction_and_kl(inputs, noise=noise)
        return losses.elbo(log_likelihood, kl)

    @tf.function(reduce_retracing=True)
    def log_weights(inputs, noise):
        return model_ref().log_importance_weights(inputs, noise)

    functions = {"elbo": elbo, "log_weights": log_weights}
    _COMPILED[model] = functions
    return functions


def _prepare(model, images, batch_size):
    _checks.check_vae(model)
    model.check_images(images)
    return (np.asarray(images, dtype=np.float32),
            _checks.check_whole_number("batch_size", batch_size))


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
    num_samples = _checks.check_whole_number("num_samples", num_samples)
    max_decoded = _checks.check_whole_number("max_decoded", max_decoded)
    log_weights = _compiled_functions(model)["log_weights"]
    seed = _resolve_seed(seed)
    results = []
    for start in range(0, len(images), batch_size):
        batch = tf.constant(images[start:start + batch_size])
        # The noise for all K samples is small (K x batch x latent_dim floats); drawing it
        # at once makes the result independent of the chunking, which only bounds the
        # memory of the decoder's activations.
        noise = tf.random.stateless_normal([num_samples, int(batch.shape[0]), model.latent_dim],
                                           seed=tf.constant([seed, start], dtype=tf.int64))
        samples_per_chunk = max(1, max_decoded // int(batch.shape[0]))
        chunks = [log_weights(batch, noise[first:first + samples_per_chunk]).numpy()
                  for first in range(0, num_samples, samples_per_chunk)]
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
