"""Test-set evaluation of a trained VAE: the ELBO and the importance-weighted NLL.

Both stream: images go through in batches and, for the importance-weighted
bound, the K posterior samples of a batch are decoded in chunks of at most
``max_decoded`` codes, so memory stays flat however large K is (K = 5000 on the
10,000 MNIST test images fits in a few hundred MB).

Nothing here re-implements the model: the ELBO is the model's own forward pass
(:meth:`vae_keras.VAE.reconstruction_and_kl`) and the bound is built from
:meth:`vae_keras.VAE.log_importance_weights`, both given noise drawn here.
The bound may decode with a copy of the decoder that computes the same function
faster (bfloat16 on request; a one-channel 3x3 output layer by taps, always),
with the model's weights copied in before each evaluation.
Random draws come from stateless TensorFlow ops seeded by ``seed``, so an
evaluation is repeatable; with ``seed=None`` the seed is taken from NumPy's
global generator, which ``keras.utils.set_random_seed`` sets.
"""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import contextlib
import math
import weakref

import keras
import numpy as np
import tensorflow as tf

from vae_keras import _checks, _quiet_import, losses, priors

# Compiled evaluation functions, one set per model. The functions reach the model
# through a weak reference: a value that held the model itself would keep its
# WeakKeyDictionary key alive, and every model ever evaluated with it.
_COMPILED = weakref.WeakKeyDictionary()
PRECISIONS = ("float32", "bfloat16")
MAX_TAP_FILTERS = 1  # output channels up to which a 3x3 output layer is computed by taps


def _resolve_seed(seed):
    seed = _checks.check_seed(seed)
    return int(np.random.randint(0, 2**31 - 1)) if seed is None else seed


class _NineTapTransposedConv(keras.layers.Conv2DTranspose):
    """A 3x3, stride-1, "same" transposed convolution to few channels, as one matmul to its taps.

    The same function and weights as the ``Conv2DTranspose`` it copies. Output
    pixel ``(i, j)`` sums ``x[i + 1 - a, j + 1 - b] @ kernel[a, b]`` over the 9 taps,
    so one matmul gives every input pixel's 9 tap values and 9 shifted slices add
    them up. TensorFlow's own kernel for a one-channel output runs at about 5% of
    the CPU's matmul peak, this form at about 15% (benchmarks/conv_ceiling.py).
    Used only in the copies of a decoder that evaluation runs.
    """

    def call(self, inputs):
        outputs = nine_tap_transposed_conv(inputs, tf.cast(self.kernel, inputs.dtype))
        if self.use_bias:
            outputs = outputs + tf.cast(self.bias, outputs.dtype)
        return self.activation(outputs)


def nine_tap_transposed_conv(inputs, kernel):
    """A 3x3, stride-1, "same" transposed convolution as one matmul to its 9 taps.

    ``kernel`` is Keras's ``(3, 3, filters, channels_in)``; no bias or activation.
    benchmarks/conv_ceiling.py times this function against TensorFlow's kernel.
    """
    height, width, channels_in = inputs.shape[1], inputs.shape[2], inputs.shape[3]
    filters = kernel.shape[2]
    weights = tf.reshape(tf.transpose(kernel, [3, 0, 1, 2]), [channels_in, 9 * filters])
    taps = tf.reshape(tf.matmul(tf.reshape(inputs, [-1, channels_in]), weights),
                      [-1, height, width, 3, 3, filters])
    padded = tf.pad(taps, [[0, 0], [1, 1], [1, 1], [0, 0], [0, 0], [0, 0]])
    return tf.add_n([padded[:, 2 - a:2 - a + height, 2 - b:2 - b + width, a, b]
                     for a in range(3) for b in range(3)])


def _computes_by_taps(layer):
    """Whether ``layer`` is a transposed convolution that :class:`_NineTapTransposedConv` can copy."""
    if type(layer) is not keras.layers.Conv2DTranspose:
        return False
    config = layer.get_config()
    return (tuple(config["kernel_size"]) == (3, 3) and tuple(config["strides"]) == (1, 1)
            and tuple(config["dilation_rate"]) == (1, 1) and config["padding"] == "same"
            and config["data_format"] == "channels_last" and config.get("output_padding") is None
            and config["filters"] <= MAX_TAP_FILTERS)


def _evaluation_decoder(decoder, precision):
    """The decoder the bound runs: a copy in bfloat16 and/or with output layers by taps.

    ``None`` means the model's own decoder: float32 with no layer to replace, or a
    float32 decoder that cannot be copied (the copy is only an optimization then).
    Weights stay float32 and are copied from ``decoder``.
    """
    bfloat16 = precision == "bfloat16"
    if not bfloat16 and not any(_computes_by_taps(layer) for layer in decoder.layers):
        return None

    def clone_layer(layer):
        config = layer.get_config()
        if bfloat16:
            config["dtype"] = "mixed_bfloat16"
        kind = _NineTapTransposedConv if _computes_by_taps(layer) else layer.__class__
        return kind.from_config(config)

    try:
        copy = keras.models.clone_model(decoder, clone_function=clone_layer)
    except Exception as error:  # Keras's own message names an internal step, not the fix
        if not bfloat16:
            return None
        raise ValueError(
            f"precision='bfloat16' evaluates a bfloat16 copy of the decoder, and "
            f"keras.models.clone_model could not copy this one ({type(error).__name__}: "
            f"{error}). Use a functional or Sequential decoder of serializable layers, or "
            f"precision='float32'.") from error
    copy.set_weights(decoder.get_weights())
    return copy


def _plain_functions(model, precision):
    """The bound and the ELBO in plain ``keras.ops``, for JAX and PyTorch.

    The same arithmetic as the TensorFlow graph of :func:`_compiled_functions`, run
    eagerly: the batch encoded once, its K samples decoded chunk by chunk, their
    log-mean-exp accumulated as a running (max, sum of exp) pair. The TensorFlow-only
    fast paths (the XLA likelihood kernel, the output layer by taps, bfloat16
    decoding) are left out; the values are the same within float rounding.
    """
    if precision != "float32":
        raise ValueError(f"precision={precision!r} decodes with a TensorFlow copy of the "
                         f"decoder; on the {keras.backend.backend()} backend use "
                         f"precision='float32'.")

    def elbo(inputs, noise):
        log_likelihood, kl = model.reconstruction_and_kl(inputs, noise=noise)
        return keras.ops.convert_to_numpy(losses.elbo(log_likelihood, kl))

    def bound(inputs, noise, samples_per_chunk, prior_parameters):
        prior = {} if prior_parameters is None else {
            "prior_log_prob": lambda z: losses.gaussian_mixture_log_prob(z, *prior_parameters)}
        posterior = model.posterior(inputs)
        running_max = running_sum = None
        for first in range(0, int(noise.shape[0]), samples_per_chunk):
            log_weights = model.log_importance_weights(
                inputs, noise[first:first + samples_per_chunk], posterior=posterior, **prior)
            chunk_max = keras.ops.max(log_weights, axis=0)
            if running_max is None:
                running_max, running_sum = chunk_max, keras.ops.zeros_like(chunk_max)
            new_max = keras.ops.maximum(running_max, chunk_max)
            running_sum = (running_sum * keras.ops.exp(running_max - new_max)
                           + keras.ops.sum(keras.ops.exp(log_weights - new_max[None]), axis=0))
            running_max = new_max
        value = running_max + keras.ops.log(running_sum) - math.log(int(noise.shape[0]))
        return keras.ops.convert_to_numpy(value)

    return {"elbo": elbo, "bound": bound, "decoder": None, "plain": True}


def _compiled_functions(model, precision="float32"):
    if keras.backend.backend() != "tensorflow":
        return _plain_functions(model, precision)
    functions = _COMPILED.setdefault(model, {}).get(precision)
    if functions is not None and functions["prior"] is not model.prior:
        functions = None  # traced with the prior the model had then: trace again with its own
    if functions is not None:
        if functions["decoder"] is not None:  # the model may have trained since the copy
            functions["decoder"].set_weights(model.decoder.get_weights())
        return functions
    model_ref = weakref.ref(model)
    # A copy of the decoder (bfloat16, output layer by taps), or None for the model's own.
    decoder = _evaluation_decoder(model.decoder, precision)

    @tf.function(reduce_retracing=True)
    def elbo(inputs, seed):
        model = model_ref()
        z_shape = [tf.shape(tf.nest.flatten(inputs)[0])[0], model.latent_dim]
        noise = tf.random.stateless_normal(z_shape, seed=seed)
        log_likelihood, kl = model.reconstruction_and_kl(inputs, noise=noise)
        return losses.elbo(log_likelihood, kl)

    @tf.function(reduce_retracing=True)
    def bound(inputs, noise, samples_per_chunk, prior_parameters):
        # The whole bound of a batch in one compiled call: the K samples are decoded
        # chunk by chunk inside the graph, and their log-mean-exp is accumulated as a
        # running (max, sum of exp) pair, so no log weight leaves the graph and
        # memory holds one chunk's activations whatever K is. prior_parameters is
        # None for the model's own prior, or the arrays of a Gaussian mixture that
        # replaces it (aggregate.mixture_parameters).
        model = model_ref()
        prior = {} if prior_parameters is None else {
            "prior_log_prob": lambda z: losses.gaussian_mixture_log_prob(z, *prior_parameters)}
        num_samples = tf.shape(noise)[0]
        count = tf.shape(noise)[1]
        posterior = model.posterior(inputs)  # encoded once, for all K samples
        running_max = tf.fill([count], tf.constant(-np.inf, tf.float32))
        running_sum = tf.zeros([count], tf.float32)
        for first in tf.range(0, num_samples, samples_per_chunk):
            log_weights = model.log_importance_weights(
                inputs, noise[first:first + samples_per_chunk], decoder=decoder,
                posterior=posterior, **prior)  # (chunk, batch)
            new_max = tf.maximum(running_max, tf.reduce_max(log_weights, axis=0))
            running_sum = (running_sum * tf.exp(running_max - new_max)
                           + tf.reduce_sum(tf.exp(log_weights - new_max[None]), axis=0))
            running_max = new_max
        return running_max + tf.math.log(running_sum) - tf.math.log(
            tf.cast(num_samples, tf.float32))

    functions = {"elbo": elbo, "bound": bound, "decoder": decoder, "prior": model.prior}
    _COMPILED[model][precision] = functions
    return functions


def _prepare(model, images, batch_size):
    _checks.check_vae(model)
    model.check_images(images)
    return (np.asarray(images, dtype=np.float32),
            _checks.check_whole_number("batch_size", batch_size))


def _batch(images, labels, start, size):
    """The model's inputs for one batch: images, or ``(images, labels)`` (a conditional VAE)."""
    batch = _tensor(images[start:start + size])
    return batch if labels is None else (batch, _tensor(labels[start:start + size]))


def _tensor(array):
    """A tensor of the backend Keras runs on (a ``tf.constant`` on TensorFlow)."""
    if keras.backend.backend() == "tensorflow":
        return tf.constant(array)
    return keras.ops.convert_to_tensor(array)


def _noise(shape, seed, start):
    """Standard-normal noise for a batch, the same on every backend for the same seed.

    Drawn with TensorFlow's stateless generator (TensorFlow is installed on every
    backend: the input pipelines use it), so a bound computed on JAX or PyTorch
    uses exactly the draws TensorFlow's does.
    """
    noise = tf.random.stateless_normal(shape, seed=tf.constant([seed, start], dtype=tf.int64))
    return noise if keras.backend.backend() == "tensorflow" else _tensor(noise.numpy())


def elbo_per_image(model, images, batch_size=500, seed=None, labels=None):
    """The ELBO of each image in nats: ``log p(x|z) - KL(q(z|x) || p(z))``.

    One posterior sample ``z`` per image for the reconstruction term (an unbiased
    estimate) and the model's KL term, as in training with ``beta = 1``: closed-form
    for ``N(0, I)``, the one-sample ``log q(z|x) - log p(z)`` at the same ``z`` for
    another prior (``model.prior``).

    Args:
        model: a trained :class:`vae_keras.VAE`.
        images: array of shape ``(n,) + model.image_shape``.
        batch_size: images per forward pass.
        seed: optional int for repeatable draws.
        labels: the images' class labels, for a :class:`vae_keras.ConditionalVAE`
            (checked by it); the ELBO is then a bound on ``log p(x | y)``.

    Returns:
        NumPy array of shape ``(n,)``; higher is better.
    """
    images, batch_size = _prepare(model, images, batch_size)
    elbo = _compiled_functions(model)["elbo"]
    seed = _resolve_seed(seed)
    values = []
    for start in range(0, len(images), batch_size):
        batch = _batch(images, labels, start, batch_size)
        if keras.backend.backend() == "tensorflow":
            values.append(elbo(batch, tf.constant([seed, start], dtype=tf.int64)).numpy())
        else:
            count = len(images[start:start + batch_size])
            values.append(elbo(batch, _noise([count, model.latent_dim], seed, start)))
    return np.concatenate(values)


def importance_weighted_log_likelihood(model, images, num_samples=1000, batch_size=100,
                                       max_decoded=4096, seed=None, labels=None,
                                       precision="float32", prior=None):
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
        labels: the images' class labels, for a :class:`vae_keras.ConditionalVAE`;
            the estimate is then of ``log p(x | y)``.
        precision: ``"float32"``, or ``"bfloat16"`` to decode with a copy of the
            decoder that computes in bfloat16 (weights, likelihood and the bound
            stay float32). On a CPU with AVX512-BF16 its matmuls run about twice
            as fast; the README's benchmark says what it does to the estimate.
        prior: optional ``p(z)`` in place of the model's own prior (``model.prior``,
            which is used otherwise): a :class:`vae_keras.priors.GaussianMixture`, a
            fitted scikit-learn ``GaussianMixture`` over the codes
            (:func:`vae_keras.aggregate.fit_code_mixture`), or
            :class:`~vae_keras.priors.StandardNormal`. The estimate is then of the model
            ``g(z) p(x|z)`` that ``vae.sample(n, prior=mixture)`` samples from. With a
            mixture fitted to codes drawn from ``q(z | x)`` of the training images it
            is an ex-post learned prior, and the bound can rise. A mixture kept in the
            model (``vae.fit_prior_mixture(x_train)``) needs no ``prior=``.

    Returns:
        NumPy array of shape ``(n,)`` of log-likelihood estimates in nats (negate
        for the NLL; divide by ``num_pixels * log 2`` for bits per dimension).
    """
    images, batch_size = _prepare(model, images, batch_size)
    num_samples = _checks.check_whole_number("num_samples", num_samples)
    max_decoded = _checks.check_whole_number("max_decoded", max_decoded)
    precision = _checks.check_choice("precision", precision, PRECISIONS)
    prior_parameters = _prior_parameters(model, prior)
    functions = _compiled_functions(model, precision)
    seed = _resolve_seed(seed)
    results = []
    for start in range(0, len(images), batch_size):
        batch = _batch(images, labels, start, batch_size)
        count = len(images[start:start + batch_size])
        # The noise for all K samples is small (K x batch x latent_dim floats); drawing it
        # at once makes the result independent of the chunking, which only bounds the
        # memory of the decoder's activations.
        noise = _noise([num_samples, count, model.latent_dim], seed, start)
        if functions.get("plain"):
            results.append(functions["bound"](batch, noise, max(1, max_decoded // count),
                                              prior_parameters))
            continue
        samples_per_chunk = tf.constant(max(1, max_decoded // count), tf.int32)
        # The first call builds the graph and compiles the XLA likelihood kernel, and
        # TensorFlow logs INFO lines about XLA to stderr. When TensorFlow was imported
        # before vae_keras set TF_CPP_MIN_LOG_LEVEL, nothing else hides them.
        quiet = (contextlib.nullcontext() if functions.get("compiled")
                 else _quiet_import.filtered_stderr(_quiet_import.min_log_level()))
        with quiet:
            results.append(functions["bound"](batch, noise, samples_per_chunk,
                                              prior_parameters).numpy())
        functions["compiled"] = True
    return np.concatenate(results)


def _prior_parameters(model, prior):
    """None for the model's own prior, or the mixture arrays of the prior that replaces it.

    A replacement is passed to the compiled bound as arrays (tensors, not a traced
    object), so evaluating with another mixture does not trace the graph again.
    The standard normal is the mixture of one component, ``N(0, I)``.
    """
    prior = priors.as_prior(prior, model.latent_dim)
    if prior is None or prior is model.prior:
        return None
    if isinstance(prior, priors.StandardNormal):
        arrays = (np.zeros((1, model.latent_dim), np.float32),
                  np.eye(model.latent_dim, dtype=np.float32)[None], np.zeros(1, np.float32))
    elif isinstance(prior, priors.GaussianMixture):
        prior.bind(model)  # codes of this model's size
        arrays = prior.mixture_parameters()
    else:
        raise TypeError(f"prior= replaces the model's prior by a mixture or the standard "
                        f"normal; a {type(prior).__name__} is evaluated as the model's own "
                        f"prior (VAE(..., prior=...)).")
    return tuple(_tensor(array) for array in arrays)


def negative_log_likelihood(model, images, num_samples=1000, batch_size=100, seed=None,
                            labels=None, precision="float32", prior=None):
    """Mean test NLL in nats and in bits per dimension, from the IWAE bound.

    With ``labels`` (a :class:`vae_keras.ConditionalVAE`), of ``p(x | y)``;
    ``precision`` and ``prior`` as in :func:`importance_weighted_log_likelihood`.

    Returns:
        ``{"nll_nats": float, "bits_per_dim": float, "num_samples": K}``.
    """
    log_likelihood = importance_weighted_log_likelihood(
        model, images, num_samples=num_samples, batch_size=batch_size, seed=seed, labels=labels,
        precision=precision, prior=prior)
    nll = float(-np.mean(log_likelihood))
    return {
        "nll_nats": nll,
        "bits_per_dim": float(losses.nats_to_bits_per_dim(nll, model.num_pixels)),
        "num_samples": int(num_samples),
    }


def reconstruction_errors(model, images, seed=None, batch_size=1000):
    """``x - E[x | z]`` per pixel, with one code ``z ~ q(z | x)`` drawn per image.

    These are the errors the ELBO's reconstruction term sees (codes drawn, not the
    posterior means that :meth:`~vae_keras.VAE.reconstruct` decodes), so their root
    mean square is the maximum-likelihood sigma of a Gaussian decoder (notebook 07):
    the value a learned sigma moves towards.

    Args:
        model: a trained :class:`~vae_keras.VAE` (any likelihood: the error is taken
            from the mean image of ``p(x | z)``).
        images: float images ``(n,) + model.image_shape``.
        seed: optional int for the codes' noise (None: from NumPy's global generator).
        batch_size: images encoded and decoded at once.

    Returns:
        float32 NumPy array of the images' shape.
    """
    seed = _resolve_seed(seed)
    model.check_images(images)
    images = np.asarray(images, dtype=np.float32)
    z_mean, z_log_var = model.encode(images, batch_size=batch_size)
    noise = np.random.default_rng(seed).standard_normal(z_mean.shape).astype(np.float32)
    codes = z_mean + np.exp(0.5 * z_log_var) * noise
    return images - model.decode(codes, batch_size=batch_size)

