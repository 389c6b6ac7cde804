"""The terms of the ELBO and the likelihood estimates, as pure functions.

All functions work on batches and return one value per example (summed over
pixels or latent dimensions), in nats. ``VAE.train_step`` and ``test_step`` call
these same functions, so what the tests and notebooks check is what trains.

Notebook 03 derives each term; the docstrings name the formula they compute.
"""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import math

import numpy as np

from keras import ops

from vae_keras import _checks

LOG_2PI = math.log(2.0 * math.pi)


def _sum_per_image(per_pixel, images):
    """Sum ``per_pixel`` over the pixel axes of ``images`` (all of its axes but the first).

    ``per_pixel`` may carry leading sample axes that ``images`` broadcasts against,
    ``(K, batch, ...)`` for K decoder outputs per image; they are kept.
    """
    pixel_axes = len(images.shape) - 1
    return ops.sum(per_pixel, axis=tuple(range(len(per_pixel.shape) - pixel_axes,
                                               len(per_pixel.shape))))


def gaussian_kl(z_mean, z_log_var):
    """KL divergence from a diagonal Gaussian posterior to the standard normal prior.

    ``KL(N(mean, diag(exp(log_var))) || N(0, I)) = 0.5 * sum(mean^2 + exp(log_var) - 1 - log_var)``

    Written with ``expm1(log_var) - log_var``, which is never negative in
    floating point (the naive ``1 + log_var - exp(log_var)`` can round to a tiny
    negative number near the prior), so the result is >= 0 exactly.

    Args:
        z_mean: posterior means, shape ``(batch, latent_dim)``.
        z_log_var: posterior log-variances, same shape.

    Returns:
        The KL divergence per example in nats, shape ``(batch,)``.
    """
    z_mean, z_log_var = ops.convert_to_tensor(z_mean), ops.convert_to_tensor(z_log_var)
    per_dimension = ops.square(z_mean) + (ops.expm1(z_log_var) - z_log_var)
    return 0.5 * ops.sum(per_dimension, axis=-1)


def bernoulli_log_likelihood(images, logits):
    """Log-probability of images under independent Bernoulli pixels given logits.

    ``log p(x | logits) = sum x * logits - softplus(logits)``, with TensorFlow's
    softplus kernel, which never overflows (it returns ``l`` for large ``l`` and
    ``exp(l)`` for very negative ``l``). One fused kernel instead of the five
    element-wise ops of ``max(l, 0) + log1p(exp(-|l|))``: this sum over every
    pixel of every decoded sample is a large share of evaluation time. Pixel
    values in [0, 1] that are not 0 or 1 are allowed: the result is then the
    negative binary cross-entropy summed over pixels, as in most VAE tutorials.

    Args:
        images: targets in [0, 1], shape ``(batch, ...)``.
        logits: decoder outputs before the sigmoid, the same shape, or
            ``(K, batch, ...)`` for K decoder outputs per image (the images are
            broadcast, not copied).

    Returns:
        Log-likelihood per image in nats, shape ``(batch,)``, or ``(K, batch)``.
    """
    logits = ops.convert_to_tensor(logits)
    images = ops.cast(images, logits.dtype)
    per_pixel = images * logits - ops.softplus(logits)
    return _sum_per_image(per_pixel, images)


# Products of up to this many factors 1 + exp(-|l|), each in (1, 2], stay below 2^64:
# far from float32's overflow at 2^128, and one log replaces up to this many.
FACTORS_PER_LOG = 64


def bernoulli_log_likelihood_by_products(images, logits):
    """:func:`bernoulli_log_likelihood` with one transcendental function per pixel, not two.

    ``softplus(l) = max(l, 0) + log(1 + exp(-|l|))``, and a sum of logs is the
    log of a product: each factor ``1 + exp(-|l|)`` lies in ``(1, 2]``, so a
    product of up to ``FACTORS_PER_LOG`` (64) neighbouring pixels' factors stays
    below ``2^64`` and never overflows float32. What is left per pixel is an
    ``exp``; the ``log`` runs once per 64 pixels. The value equals
    :func:`bernoulli_log_likelihood` to float32 rounding (tested). Evaluation
    computes it for every importance sample (7.8 billion pixels for the MNIST
    test NLL at K = 1000), compiled with XLA so the steps fuse into one pass:
    see ``VAE.log_likelihood_of_samples``. Training keeps the softplus form,
    whose gradient is the plain ``x - sigmoid(l)``.

    Args:
        images: targets in [0, 1], shape ``(batch, ...)``.
        logits: the same shape, or ``(K, batch, ...)`` for K decoder outputs per image.

    Returns:
        Log-likelihood per image in nats, shape ``(batch,)``, or ``(K, batch)``.
    """
    logits = ops.convert_to_tensor(logits)
    images = ops.cast(images, logits.dtype)
    linear = _sum_per_image(images * logits - ops.relu(logits), images)
    num_pixels = math.prod(images.shape[1:])
    num_groups = -(-num_pixels // FACTORS_PER_LOG)  # ceil
    per_group = -(-num_pixels // num_groups)  # the last group is padded with factors of 1
    factors = ops.reshape(1.0 + ops.exp(-ops.abs(logits)), (-1, num_pixels))
    factors = ops.pad(factors, [(0, 0), (0, num_groups * per_group - num_pixels)],
                      constant_values=1.0)
    products = ops.prod(ops.reshape(factors, (-1, num_groups, per_group)), axis=-1)
    log_terms = ops.reshape(ops.sum(ops.log(products), axis=-1), ops.shape(linear))
    return linear - log_terms


def continuous_bernoulli_log_normalizer(logits):
    """``log C(lambda)`` of the continuous Bernoulli, per pixel, from logits.

    The continuous Bernoulli (Loaiza-Ganem and Cunningham, 2019) is the density
    ``p(x | lambda) = C(lambda) * lambda^x * (1 - lambda)^(1 - x)`` on ``x in [0, 1]``:
    the binary cross-entropy made into a true density on grey levels. With
    ``lambda = sigmoid(l)`` its normalizer ``2 artanh(1 - 2 lambda) / (1 - 2 lambda)``
    becomes ``C = l / tanh(l / 2)``, which is 2 at ``l = 0`` and grows like ``|l|``.
    The formula is 0/0 at ``l = 0`` and loses digits near it, so for ``|l| < 0.1``
    a Taylor series is used (``log 2 + u^2/3 - 7 u^4/90`` with ``u = l/2``, error
    below 1e-9); elsewhere
    ``log|l| - log(-expm1(-|l|)) + log1p(exp(-|l|))``, which never overflows.
    Notebook 08 plots it: the term that binary cross-entropy leaves out.

    Args:
        logits: decoder outputs before the sigmoid, any shape.

    Returns:
        ``log C`` elementwise, the shape of ``logits``.
    """
    logits = ops.convert_to_tensor(logits)
    magnitude = ops.abs(logits)
    small = magnitude < 0.1
    # Both branches of a `where` are evaluated (and differentiated): keep each one's
    # input inside the range where it is finite.
    safe = ops.where(small, ops.ones_like(magnitude), magnitude)
    exact = ops.log(safe) - ops.log(-ops.expm1(-safe)) + ops.log1p(ops.exp(-safe))
    half_squared = ops.square(0.5 * logits)
    series = math.log(2.0) + half_squared / 3.0 - 7.0 * ops.square(half_squared) / 90.0
    return ops.where(small, series, exact)


def continuous_bernoulli_log_likelihood(images, logits):
    """Log-density of grey-level images under independent continuous Bernoulli pixels.

    ``log p(x | l) = x * l - softplus(l) + log C(l)`` per pixel: the negative binary
    cross-entropy (:func:`bernoulli_log_likelihood`) plus the log-normalizer
    (:func:`continuous_bernoulli_log_normalizer`), so the value is a true
    log-density on ``[0, 1]`` per pixel, in nats.

    Args:
        images: targets in [0, 1], shape ``(batch, ...)``.
        logits: decoder outputs before the sigmoid, same shape.

    Returns:
        Log-density per image in nats, shape ``(batch,)``.
    """
    return (bernoulli_log_likelihood(images, logits)
            + _sum_per_image(continuous_bernoulli_log_normalizer(logits), images))


def continuous_bernoulli_mean(logits):
    """The mean of the continuous Bernoulli, per pixel: not ``sigmoid(logits)``.

    ``E[x] = lambda / (2 lambda - 1) + 1 / (2 artanh(1 - 2 lambda))``, which in
    logits is ``1/2 + 1 / (2 tanh(l/2)) - 1/l``; it is pulled towards 1/2
    compared with ``lambda``. For ``|l| < 0.3``, where the two large terms
    cancel, the series ``1/2 + l/12 - l^3/720 + l^5/30240`` (error below 1e-9) is
    used.

    Args:
        logits: decoder outputs before the sigmoid, any shape.

    Returns:
        The mean grey level elementwise, in (0, 1), the shape of ``logits``.
    """
    logits = ops.convert_to_tensor(logits)
    small = ops.abs(logits) < 0.3
    safe = ops.where(small, ops.ones_like(logits), logits)
    exact = 0.5 + 0.5 / ops.tanh(0.5 * safe) - 1.0 / safe
    squared = ops.square(logits)
    series = 0.5 + logits * (1.0 / 12.0 - squared / 720.0 + ops.square(squared) / 30240.0)
    return ops.where(small, series, exact)


def gaussian_log_likelihood(images, mean, log_scale):
    """Log-density of images under independent Gaussian pixels.

    ``log N(x | mean, scale^2) = -0.5 * log(2 pi) - log(scale) - 0.5 * ((x - mean) / scale)^2``
    per pixel, with the constant written out so the value is a true log-density.

    Args:
        images: targets, shape ``(batch, ...)``.
        mean: decoder means, the same shape, or ``(K, batch, ...)`` for K decoder
            outputs per image.
        log_scale: log of the standard deviation; a scalar or broadcastable array.

    Returns:
        Log-density per image in nats, shape ``(batch,)``, or ``(K, batch)``.
    """
    mean = ops.convert_to_tensor(mean)
    images = ops.cast(images, mean.dtype)
    log_scale = ops.cast(log_scale, mean.dtype)
    standardized = (images - mean) * ops.exp(-log_scale)
    per_pixel = -0.5 * LOG_2PI - log_scale - 0.5 * ops.square(standardized)
    return _sum_per_image(per_pixel, images)


def reconstruction_log_likelihood(images, decoder_output, likelihood="bernoulli", log_scale=0.0):
    """``log p(x | z)`` per image for the named likelihood.

    Args:
        images: targets, shape ``(batch, ...)``.
        decoder_output: logits for ``"bernoulli"`` and ``"continuous_bernoulli"``,
            means for ``"gaussian"``; the images' shape, or ``(K, batch, ...)`` for K
            outputs per image.
        likelihood: ``"bernoulli"``, ``"gaussian"`` or ``"continuous_bernoulli"``
            (:func:`continuous_bernoulli_log_likelihood`, a density on grey levels).
        log_scale: the Gaussian's log standard deviation (ignored for Bernoulli).

    Returns:
        Log-likelihood per image in nats, shape ``(batch,)``, or ``(K, batch)``.
    """
    if likelihood == "bernoulli":
        return bernoulli_log_likelihood(images, decoder_output)
    if likelihood == "gaussian":
        return gaussian_log_likelihood(images, decoder_output, log_scale)
    if likelihood == "continuous_bernoulli":
        return continuous_bernoulli_log_likelihood(images, decoder_output)
    raise ValueError(f"Unknown likelihood {likelihood!r}: choose 'bernoulli', 'gaussian' or "
                     f"'continuous_bernoulli'.")


def standard_normal_log_prob(z):
    """``log N(z | 0, I)`` summed over the last axis."""
    z = ops.convert_to_tensor(z)
    return -0.5 * ops.sum(ops.square(z) + LOG_2PI, axis=-1)


def diagonal_gaussian_log_prob(z, z_mean, z_log_var):
    """``log N(z | mean, diag(exp(log_var)))`` summed over the last axis."""
    # Tensors first: on PyTorch, a NumPy array on the left of `+` cannot take a tensor.
    z, z_mean, z_log_var = (ops.convert_to_tensor(x) for x in (z, z_mean, z_log_var))
    return -0.5 * ops.sum(
        LOG_2PI + z_log_var + ops.square(z - z_mean) * ops.exp(-z_log_var), axis=-1
    )


def gaussian_mixture_log_prob(z, means, precision_cholesky, log_weights):
    """``log sum_c w_c N(z | mean_c, Sigma_c)`` over the last axis of ``z``.

    The parametrization is scikit-learn's (``GaussianMixture`` with full
    covariances): component ``c`` has precision ``Sigma_c^-1 = P_c P_c^T``, so
    ``log N(z | mean_c, Sigma_c) = -(d log 2 pi + |P_c^T (z - mean_c)|^2) / 2 + log |P_c|``.
    :func:`vae_keras.aggregate.mixture_parameters` gives these arrays for a fitted
    mixture of any covariance type.

    Args:
        z: codes of shape ``(..., d)``.
        means: ``(C, d)``.
        precision_cholesky: ``(C, d, d)``, each lower triangular (as scikit-learn's).
        log_weights: ``(C,)``, the log mixing weights (their exps sum to 1).

    Returns:
        Log-densities of shape ``z.shape[:-1]``.
    """
    z, means, precision_cholesky, log_weights = (
        ops.convert_to_tensor(x) for x in (z, means, precision_cholesky, log_weights))
    dims = ops.shape(means)[1]
    codes = ops.reshape(z, (-1, dims))
    # P^T (z - mean) as z P - mean P, for all codes and components in one einsum over
    # flattened codes: Keras 3.8's einsum with an ellipsis ("...d,cde->...ce", with
    # TensorFlow 2.18, the declared floor) returns wrong values.
    projected = (ops.einsum("nd,cde->nce", codes, precision_cholesky)
                 - ops.einsum("cd,cde->ce", means, precision_cholesky)[None])
    log_determinants = ops.sum(
        ops.log(ops.diagonal(precision_cholesky, axis1=-2, axis2=-1)), axis=-1)
    log_components = (log_weights + log_determinants
                      - 0.5 * (ops.sum(ops.square(projected), axis=-1)
                               + ops.cast(dims, codes.dtype) * LOG_2PI))
    return ops.reshape(ops.logsumexp(log_components, axis=-1), ops.shape(z)[:-1])


def elbo(reconstruction_log_likelihood_value, kl):
    """The evidence lower bound per example: ``E_q[log p(x|z)] - KL(q(z|x) || p(z))``.

    Args:
        reconstruction_log_likelihood_value: ``log p(x | z)`` per example, for a
            sample ``z ~ q(z|x)`` (a one-sample Monte Carlo estimate of the expectation).
        kl: ``KL(q(z|x) || p(z))`` per example, e.g. from :func:`gaussian_kl`.

    Returns:
        The ELBO per example in nats (higher is better).
    """
    return reconstruction_log_likelihood_value - kl


def importance_weighted_bound(log_weights, axis=0):
    """The importance-weighted bound ``log (1/K) sum_k w_k`` (Burda et al., 2015).

    ``log_weights[k] = log p(x|z_k) + log p(z_k) - log q(z_k|x)`` for K samples
    ``z_k ~ q(z|x)``. Computed with log-sum-exp, so no weight is exponentiated on
    its own. With K = 1 this is a one-sample ELBO estimate; the bound rises
    towards ``log p(x)`` as K grows.

    Args:
        log_weights: shape ``(K, batch)`` (or K along ``axis``).
        axis: the axis that indexes the K samples.

    Returns:
        The bound per example in nats.
    """
    num_samples = log_weights.shape[axis]
    return ops.logsumexp(log_weights, axis=axis) - math.log(num_samples)


def dequantized_bits_per_dim(log_density, num_dims, levels=256):
    """Bits per dimension of 8-bit images, from a log-density of their dequantized copies.

    With uniform dequantization (:func:`vae_keras.data.dequantize`), each level
    has a bin of width ``1 / levels``, so ``log p(x~) - D log(levels)`` (in
    expectation over the noise) bounds the log-probability of the discrete image
    from below; this returns ``-(log p(x~) - D log levels) / (D log 2)``, the
    number the literature reports. A model that knows nothing scores
    ``log2(levels)`` = 8 bits per dimension (uniform over the levels).

    Args:
        log_density: log-density (an ELBO is a lower bound of it) per image, in
            nats, of dequantized images in ``[0, 1]^D``: a float or an array.
        num_dims: D, the pixels per image.
        levels: the number of grey levels (256 for 8-bit images).

    Returns:
        Bits per dimension, the shape of ``log_density``.
    """
    num_dims = _checks.check_whole_number("num_dims", num_dims)
    levels = _checks.check_whole_number("levels", levels)
    log_density = np.asarray(log_density, dtype=np.float64)
    return (num_dims * math.log(levels) - log_density) / (num_dims * math.log(2.0))


def nats_to_bits_per_dim(nats, num_dims):
    """Convert a negative log-likelihood in nats per example to bits per dimension."""
    return nats / (num_dims * math.log(2.0))


def monte_carlo_kl(z_mean, z_log_var, num_samples=1000, seed=None):
    """Monte Carlo estimate of ``KL(q || p)`` with TensorFlow Probability distributions.

    Draws ``num_samples`` codes from ``q = N(mean, diag(exp(log_var)))`` and
    averages ``log q(z) - log p(z)``. Notebook 03 compares it with
    :func:`gaussian_kl` to show the closed form is the expectation it claims to be.

    Args:
        z_mean: posterior means, shape ``(batch, latent_dim)``.
        z_log_var: posterior log-variances, same shape.
        num_samples: how many codes to draw per example.
        seed: an int for repeatable draws.

    Returns:
        The estimate per example, shape ``(batch,)``, as a NumPy array.
    """
    import tensorflow_probability as tfp  # imported here: it is slow to import

    tfd = tfp.distributions
    # TensorFlow Probability computes in TensorFlow whatever Keras's backend: NumPy in.
    z_mean = np.asarray(ops.convert_to_numpy(z_mean), dtype=np.float32)
    scale = np.exp(0.5 * np.asarray(ops.convert_to_numpy(z_log_var), dtype=np.float32))
    posterior = tfd.MultivariateNormalDiag(loc=z_mean, scale_diag=scale)
    prior = tfd.MultivariateNormalDiag(loc=np.zeros_like(z_mean))
    codes = posterior.sample(num_samples, seed=seed)
    return np.asarray(
        np.mean((posterior.log_prob(codes) - prior.log_prob(codes)).numpy(), axis=0)
    )
