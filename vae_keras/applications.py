"""What a trained VAE is for besides sampling: anomaly scores, denoising, code lengths.

Notebook 06 uses every function here:

- Anomaly detection: :func:`anomaly_scores` (the negative ELBO, or the
  importance-weighted NLL, per image) ranks images by how unlikely the model
  finds them; :func:`roc_auc` and :func:`roc_curve` measure how well such a
  score separates normal from anomalous images.
- Denoising: :func:`add_gaussian_noise` and :func:`add_salt_and_pepper` corrupt
  images (clipped to [0, 1]); :func:`denoise` searches the code space for the
  image the decoder can draw that best explains a noisy one (a MAP estimate),
  and :func:`mean_squared_error` compares noisy and denoised images with the
  clean ones.
- Compression: :func:`code_length_bits` is the rate ``KL(q(z|x) || p(z))`` in
  bits, the expected cost of sending the code with bits-back coding;
  :func:`compression_bits` splits the negative ELBO of each image into that rate
  and the distortion ``-log p(x|z)``; :func:`raw_bits` is the size of the
  uncompressed image and :func:`deflate_bits` what a general-purpose lossless
  compressor (DEFLATE, as in zip and PNG) makes of it.

Conventions: a score is higher for "more anomalous", and every function checks
its input and raises a ``ValueError`` or ``TypeError`` that says what to change.
"""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import math
import numbers
import zlib

import keras
import numpy as np
import tensorflow as tf

from vae_keras import _checks, evaluation, losses

LOG_2 = math.log(2.0)


# ----------------------------------------------------------------------------- checks


def _check_scores(name, scores):
    """Return ``scores`` as a finite, non-empty 1-D float64 array; raise otherwise."""
    if isinstance(scores, (str, bytes, dict)) or scores is None:
        raise TypeError(f"{name} must be a 1-D array of numbers (one score per image), "
                        f"got {type(scores).__name__}.")
    array = np.asarray(scores)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                     or array.dtype == bool):
        raise TypeError(f"{name} must hold numbers, got an array of dtype {array.dtype}.")
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one score per image), got shape {array.shape}; "
                         f"flatten it with np.ravel(...) if that is what you mean.")
    if array.size == 0:
        raise ValueError(f"{name} is empty; the ROC needs at least one score on each side.")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values; check how the scores were "
                         f"computed (a model that diverged gives NaN ELBOs).")
    return array


# ----------------------------------------------------------------------------- ROC


def roc_auc(scores_negative, scores_positive):
    """Area under the ROC curve of a score that should be higher for positives.

    The AUC is the probability that a random positive (anomalous) image scores
    higher than a random negative (normal) one, ties counting one half:

    ``AUC = P(s+ > s-) + 0.5 * P(s+ = s-)``.

    It is computed exactly from ranks (the Mann-Whitney U statistic), with tied
    scores sharing their average rank, in ``O(n log n)``: no thresholds, no
    interpolation. 1.0 separates perfectly, 0.5 is chance, below 0.5 the score
    points the wrong way.

    Args:
        scores_negative: 1-D array, the scores of the normal images.
        scores_positive: 1-D array, the scores of the anomalous images.

    Returns:
        The AUC as a float in [0, 1].

    Raises:
        TypeError: if the scores are not numbers.
        ValueError: if a side is empty, not 1-D, or holds NaN/inf.
    """
    negative = _check_scores("scores_negative", scores_negative)
    positive = _check_scores("scores_positive", scores_positive)
    combined = np.concatenate([negative, positive])
    # Average ranks (1-based): tied scores share the mean of the ranks they span.
    _, inverse, counts = np.unique(combined, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1
    ranks = (first_rank + (counts - 1) / 2.0)[inverse]
    num_negative, num_positive = len(negative), len(positive)
    rank_sum = float(np.sum(ranks[num_negative:]))
    u_statistic = rank_sum - num_positive * (num_positive + 1) / 2.0
    return u_statistic / (num_negative * num_positive)


def roc_curve(scores_negative, scores_positive):
    """The ROC curve: false and true positive rates over all thresholds.

    An image is flagged as anomalous when its score is ``>= threshold``; the
    thresholds run through every distinct score from the highest down, so the
    curve starts at (0, 0) and ends at (1, 1). The trapezoid area under it
    equals :func:`roc_auc` (ties give diagonal segments, worth one half).

    Args:
        scores_negative: 1-D array, the scores of the normal images.
        scores_positive: 1-D array, the scores of the anomalous images.

    Returns:
        ``(false_positive_rate, true_positive_rate)``, two 1-D arrays of equal length.

    Raises:
        TypeError: if the scores are not numbers.
        ValueError: if a side is empty, not 1-D, or holds NaN/inf.
    """
    negative = _check_scores("scores_negative", scores_negative)
    positive = _check_scores("scores_positive", scores_positive)
    thresholds = np.unique(np.concatenate([negative, positive]))[::-1]
    sorted_negative, sorted_positive = np.sort(negative), np.sort(positive)
    # How many scores are >= each threshold, via binary search in the sorted scores.
    false_positives = len(negative) - np.searchsorted(sorted_negative, thresholds, side="left")
    true_positives = len(positive) - np.searchsorted(sorted_positive, thresholds, side="left")
    false_positive_rate = np.concatenate([[0.0], false_positives / len(negative)])
    true_positive_rate = np.concatenate([[0.0], true_positives / len(positive)])
    return false_positive_rate, true_positive_rate


# ----------------------------------------------------------------------------- scores


def anomaly_scores(model, images, num_samples=1, batch_size=500, seed=None):
    """How unlikely a VAE finds each image: its negative ELBO or NLL, in nats.

    With ``num_samples=1`` the score is ``-ELBO(x)`` (one posterior sample and the
    closed-form KL, :func:`vae_keras.evaluation.elbo_per_image`); with
    ``num_samples=K > 1`` it is the importance-weighted estimate of ``-log p(x)``
    (:func:`vae_keras.evaluation.importance_weighted_log_likelihood`), which is
    tighter and less noisy but K times slower. Higher means more anomalous.

    Args:
        model: a trained :class:`vae_keras.VAE`.
        images: array of shape ``(n,) + model.image_shape``.
        num_samples: 1 for the ELBO, K > 1 for the IWAE bound.
        batch_size: images per forward pass (at most 100 for the IWAE bound, whose
            K samples per image are decoded in chunks).
        seed: optional int for repeatable draws.

    Returns:
        NumPy array of shape ``(n,)``, nats per image.

    Raises:
        TypeError: if ``num_samples`` is not a whole number or ``model`` not a VAE.
        ValueError: for ``num_samples < 1`` or images the model cannot take.
    """
    _checks.check_vae(model)
    num_samples = _checks.check_whole_number("num_samples", num_samples)
    seed = _checks.check_seed(seed)
    if num_samples == 1:
        return -evaluation.elbo_per_image(model, images, batch_size=batch_size, seed=seed)
    return -evaluation.importance_weighted_log_likelihood(
        model, images, num_samples=int(num_samples), batch_size=min(int(batch_size), 100),
        seed=seed)


# ----------------------------------------------------------------------------- noise


def add_gaussian_noise(images, std, seed=None):
    """Add independent Gaussian noise to every pixel, then clip to [0, 1].

    Args:
        images: float array with values in [0, 1], shape ``(n, ...)``.
        std: the noise's standard deviation, >= 0 (0 returns a copy).
        seed: optional int for repeatable noise.

    Returns:
        A new float32 array of the same shape, values in [0, 1].

    Raises:
        TypeError: for a non-numeric ``std`` or seed, or images that are not numbers.
        ValueError: for ``std < 0`` or images outside [0, 1].
    """
    clean = _checks.as_float_images(images)
    std = _checks.check_positive("std", std, allow_zero=True)
    rng = np.random.default_rng(_checks.check_seed(seed))
    noisy = clean + std * rng.standard_normal(clean.shape, dtype=np.float32)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


def add_salt_and_pepper(images, amount, seed=None):
    """Set a random fraction ``amount`` of the pixels to 0 or 1 (equally likely).

    Args:
        images: float array with values in [0, 1], shape ``(n, ...)``.
        amount: the expected fraction of pixels replaced, in [0, 1].
        seed: optional int for repeatable noise.

    Returns:
        A new float32 array of the same shape, values in [0, 1].

    Raises:
        TypeError: for a non-numeric ``amount`` or seed, or images that are not numbers.
        ValueError: for ``amount`` outside [0, 1] or images outside [0, 1].
    """
    clean = _checks.as_float_images(images)
    amount = _checks.check_fraction("amount", amount)
    rng = np.random.default_rng(_checks.check_seed(seed))
    replaced = rng.random(clean.shape) < amount
    salt = rng.random(clean.shape) < 0.5
    return np.where(replaced, salt.astype(np.float32), clean).astype(np.float32)


def mean_squared_error(images, references):
    """Mean squared pixel error of each image against its reference.

    Args:
        images: float array ``(n, ...)``, e.g. noisy images or reconstructions.
        references: float array of the same shape, e.g. the clean images.

    Returns:
        NumPy array of shape ``(n,)``: the mean over pixels of ``(image - reference)^2``.

    Raises:
        TypeError: if either argument is not numbers.
        ValueError: if the shapes differ, are not a batch, or hold integers or NaN/inf.
    """
    images = _checks.as_float_images(images, "images", unit_range=False)
    references = _checks.as_float_images(references, "references", unit_range=False)
    if images.shape != references.shape:
        raise ValueError(f"images {images.shape} and references {references.shape} must "
                         f"have the same shape (one reference per image).")
    return np.mean(np.square(images - references), axis=tuple(range(1, images.ndim)))


def denoise(model, noisy_images, noise_std=0.3, steps=100, learning_rate=0.05,
            batch_size=1000):
    """Denoise by searching the code space: the MAP code under a Gaussian noise model.

    ``model.reconstruct(noisy)`` trusts the encoder, which was trained on clean
    images only and guesses poorly for a noisy one. Here the encoder's guess is
    only the starting point: with the decoder's mean image ``m(z)`` and the
    model's prior ``p(z)`` (``model.prior``; ``N(0, I)`` by default), each image's
    code is moved by ``steps`` Adam steps to minimize

    ``||x_noisy - m(z)||^2 / (2 noise_std^2) - log p(z)``

    (``+ ||z||^2 / 2`` up to a constant for ``N(0, I)``),

    i.e. to maximize ``log p(x_noisy | z) + log p(z)`` when the noise is Gaussian
    with standard deviation ``noise_std``. The decoded image of that code is the
    denoised image: the digit the model can draw that best explains the noisy
    one. Larger ``noise_std`` trusts the pixels less and the prior more. Every
    image's code is optimized independently (Adam works per coordinate), so the
    result does not depend on ``batch_size``.

    Args:
        model: a trained :class:`vae_keras.VAE` (Bernoulli or Gaussian likelihood).
        noisy_images: array of shape ``(n,) + model.image_shape``.
        noise_std: the assumed noise standard deviation, > 0.
        steps: optimizer steps per batch, >= 0 (0 returns the encoder's reconstruction).
        learning_rate: Adam's learning rate on the codes, > 0.
        batch_size: images optimized together.

    Returns:
        The denoised images as NumPy, same shape as ``noisy_images``.

    Raises:
        TypeError: for a model that is not a VAE or non-numeric settings.
        ValueError: for non-positive settings or images the model cannot take.
    """
    _checks.check_vae(model)
    noise_std = _checks.check_positive("noise_std", noise_std)
    learning_rate = _checks.check_positive("learning_rate", learning_rate)
    steps = _checks.check_whole_number("steps", steps, minimum=0)
    batch_size = _checks.check_whole_number("batch_size", batch_size)
    model.check_images(noisy_images, what="noisy_images")
    noisy_images = np.asarray(noisy_images, dtype=np.float32)
    codes = model.encode_mean(noisy_images).astype(np.float32)
    weight = 1.0 / (2.0 * noise_std**2)
    denoised_codes = []
    for start in range(0, len(noisy_images), int(batch_size)):
        target = tf.constant(noisy_images[start:start + int(batch_size)])
        code = tf.Variable(codes[start:start + int(batch_size)])
        optimizer = keras.optimizers.Adam(learning_rate)

        @tf.function
        def step(code=code, target=target, optimizer=optimizer):
            with tf.GradientTape() as tape:
                mean = model.mean_images(model.decoder_output(code))
                objective = (weight * tf.reduce_sum(tf.square(target - mean))
                             - tf.reduce_sum(model.prior.log_prob(code)))
            optimizer.apply([tape.gradient(objective, code)], [code])

        for _ in range(int(steps)):
            step()
        denoised_codes.append(code.numpy())
    return model.decode(np.concatenate(denoised_codes))


# ----------------------------------------------------------------------------- code lengths


def code_length_bits(z_mean, z_log_var):
    """The rate ``KL(q(z|x) || p(z))`` in bits: what sending the code costs.

    With bits-back coding (Hinton & van Camp, 1993; Townsend et al., 2019) or
    relative-entropy coding, a sender who draws ``z ~ q(z|x)`` can transmit it
    in about ``KL(q(z|x) || p(z))`` bits on average, using the prior ``p(z)``
    that sender and receiver share. It is a code length in expectation, not the
    size of the floats in ``z_mean`` (16 float32 values would be 512 bits), and
    the receiver gets only ``z``: decoding it gives a lossy reconstruction.

    Args:
        z_mean: posterior means, shape ``(n, latent_dim)``.
        z_log_var: posterior log-variances, same shape.

    Returns:
        NumPy array ``(n,)`` of bits per image (>= 0).

    Raises:
        TypeError: if the arguments are not numbers.
        ValueError: if the shapes differ, are not ``(n, latent_dim)``, or hold NaN/inf.
    """
    z_mean, z_log_var = _checks.as_posteriors(z_mean, z_log_var)
    kl_nats = np.asarray(losses.gaussian_kl(z_mean, z_log_var))
    return kl_nats / LOG_2


def raw_bits(image_shape, bits_per_pixel=8):
    """Bits of one uncompressed image: ``prod(image_shape) * bits_per_pixel``.

    ``bits_per_pixel=8`` for 256 gray levels (784 * 8 = 6272 bits for MNIST),
    ``1`` for a binarized image (784 bits).

    Raises:
        TypeError: if ``image_shape`` is not a tuple of whole numbers.
        ValueError: for non-positive sizes or ``bits_per_pixel``.
    """
    if isinstance(image_shape, (str, bytes)) or not hasattr(image_shape, "__iter__"):
        raise TypeError(f"image_shape must be a tuple such as (28, 28, 1), got {image_shape!r}.")
    sizes = tuple(image_shape)
    if not sizes or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) for d in sizes):
        raise TypeError(f"image_shape must be a tuple of whole numbers, got {image_shape!r}.")
    if any(d < 1 for d in sizes):
        raise ValueError(f"image_shape sizes must be >= 1, got {image_shape!r}.")
    bits_per_pixel = _checks.check_positive("bits_per_pixel", bits_per_pixel)
    return float(np.prod(sizes) * bits_per_pixel)


def deflate_bits(images):
    """Bits per image after DEFLATE (zlib's raw format, level 9): a generic baseline.

    Each image is quantized to 8-bit gray levels (``round(255 * x)``), so a
    binarized image holds the bytes 0 and 255, and compressed on its own, without
    a zlib header or checksum. A compressor that knows nothing about digits
    still exploits the runs of background pixels; the VAE's code length can be
    compared with this.

    Args:
        images: float array with values in [0, 1], shape ``(n, ...)``.

    Returns:
        NumPy array ``(n,)`` of compressed sizes in bits (whole bytes, times 8).

    Raises:
        TypeError: if the images are not numbers.
        ValueError: for images outside [0, 1], NaNs, or integer dtypes.
    """
    images = _checks.as_float_images(images)
    quantized = np.round(images * 255.0).astype(np.uint8)
    sizes = []
    for image in quantized:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)  # -15: raw DEFLATE, no header
        sizes.append(8 * len(compressor.compress(image.tobytes()) + compressor.flush()))
    return np.asarray(sizes, dtype=np.float64)


def compression_bits(model, images, seed=None, batch_size=500):
    """Split each image's negative ELBO, in bits, into rate and distortion.

    ``-ELBO(x) = KL(q(z|x) || p(z)) + E_q[-log p(x|z)]``:

    - ``rate_bits``: the KL in bits, the cost of the code (:func:`code_length_bits`
      for ``N(0, I)``; for another prior, ``model.prior``, its Monte Carlo estimate with
      64 codes per image, :meth:`vae_keras.priors.Prior.monte_carlo_kl`);
    - ``distortion_bits``: ``-log2 p(x|z)`` for one sampled ``z``, the extra bits
      that would make the reconstruction lossless (the residual, coded with the
      decoder's pixel probabilities);
    - ``total_bits``: their sum, the lossless code length of ``x`` with bits-back
      coding. The ideal code length ``-log2 p(x)`` is lower; the importance-weighted
      estimate (:func:`anomaly_scores` with ``num_samples > 1``) comes closer to it.

    For a Bernoulli VAE, ``images`` should be binary for these to be code lengths.

    Args:
        model: a trained :class:`vae_keras.VAE`.
        images: array of shape ``(n,) + model.image_shape``.
        seed: optional int for the posterior sample.
        batch_size: images per forward pass.

    Returns:
        ``{"rate_bits", "distortion_bits", "total_bits"}``, NumPy arrays of shape ``(n,)``.

    Raises:
        TypeError: if ``model`` is not a VAE or ``seed`` not a whole number.
        ValueError: for images the model cannot take.
    """
    _checks.check_vae(model)
    total_nats = -evaluation.elbo_per_image(model, images, batch_size=batch_size,
                                            seed=_checks.check_seed(seed))
    z_mean, z_log_var = model.encode(images, batch_size=batch_size)
    prior = getattr(model, "prior", None)
    if prior is None or prior.has_closed_form_kl:
        rate = code_length_bits(z_mean, z_log_var)
    else:
        rate = prior.monte_carlo_kl(z_mean, z_log_var, num_samples=64, seed=seed) / LOG_2
    total = total_nats / LOG_2
    return {"rate_bits": rate, "distortion_bits": total - rate, "total_bits": total}
