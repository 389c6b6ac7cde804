"""Measuring images instead of eyeballing them: a digit classifier's verdict, stroke thickness.

A grid of samples can look convincing and still hide problems: digits that are
ambiguous, or a model that draws mostly 1s. This module turns such impressions
into numbers:

- :func:`build_digit_classifier` makes a small convolutional classifier and
  :func:`fit_digit_classifier` trains it on real digits plus scrambled ones
  (:func:`scramble_digits`) labelled "none of the above", so that it is unsure
  of anything that is not a digit. A notebook trains it and reports its test
  accuracy.
- :func:`recognition_report` asks that classifier about generated images: which
  digit each one is, how confidently, and how evenly the digits are spread
  (:func:`summarize_predictions` does the counting, :func:`normalized_entropy`
  the evenness).
- :func:`judge_score` folds the verdicts into one number (the Inception Score
  with a digit classifier), and :func:`laplacian_variance` measures sharpness.
- :func:`stroke_thickness` measures how bold the strokes of each image are, in
  pixels, so an attribute such as "bold" can be found and checked by measurement.
- :func:`nearest` finds each image's (or code's) nearest neighbour in a
  reference set, and :func:`label_entropy` says in nats how varied a set of
  labels is: with the labels of the nearest real images, the two make a
  training-free measure of how far generated images are from the data and how
  many kinds of digit they show.

Notebooks 01 and 02 use :func:`nearest` and :func:`label_entropy` to compare
the code spaces of an autoencoder and a VAE. Notebook 04 measures the quality of a VAE's samples with the classifier and its
report; notebook 05 adds :func:`stroke_thickness` to check latent arithmetic
("thin digit + bold vector = bold digit of the same class").
"""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import math
import numbers
import os
import pathlib

import keras
import numpy as np
from keras import layers

from vae_keras import _checks

DEFAULT_IMAGE_SHAPE = (28, 28, 1)
DEFAULT_CONFIDENCE_THRESHOLD = 0.9


def _check_float_images(images, what="images"):
    """Return ``images`` as float32 ``(n, h, w, c)`` in [0, 1]; raise ValueError on anything else."""
    if np.ndim(images) == 2:
        raise ValueError(f"{what} have shape {np.shape(images)}: a single image needs a batch "
                         f"axis: images[None].")
    images = _checks.as_float_images(images, what=what)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"{what} must have shape (n, height, width) or (n, height, width, "
                         f"channels), got {images.shape}.")
    return images


def build_digit_classifier(image_shape=DEFAULT_IMAGE_SHAPE, num_classes=10, filters=(16, 32),
                           hidden_units=128, input_noise=0.3, learning_rate=1e-3,
                           name="digit_classifier"):
    """A small convolutional classifier for judging images, compiled and untrained.

    Two 3x3 stride-2 ReLU convolutions, a ReLU dense layer with dropout, and a
    softmax over the classes: cheap enough to train on MNIST in a notebook on a
    CPU (two or three epochs give about 98-99% test accuracy) and good enough to
    tell a clean digit from a doubtful one. During training a ``GaussianNoise``
    layer adds noise of standard deviation ``input_noise`` to the pixels, so the
    judge learns to look for strokes rather than exact gray levels (at
    prediction time the layer does nothing).

    It outputs probabilities, as :func:`recognition_report` expects, and is
    compiled with Adam and the categorical cross-entropy on probability targets
    (one-hot rows for digits, uniform rows for non-digits): train it with
    :func:`fit_digit_classifier`. Notebooks 04 and 05 train one each.

    Args:
        image_shape: shape of one image, ``(height, width, channels)``.
        num_classes: number of classes, >= 2.
        filters: channels of the stride-2 convolutions, one entry per convolution.
        hidden_units: width of the dense layer.
        input_noise: standard deviation of the Gaussian noise added to the
            pixels while training; 0 turns it off.
        learning_rate: Adam's learning rate.
        name: the model's name.

    Returns:
        A compiled ``keras.Model`` from images to class probabilities ``(n, num_classes)``.

    Raises:
        ValueError: an image shape that is not ``(height, width, channels)``, a
            count below its minimum, or a negative ``input_noise``.
        TypeError: a non-integer count or a non-numeric ``input_noise``.
    """
    image_shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else image_shape
    if (not isinstance(image_shape, tuple) or len(image_shape) != 3
            or not all(isinstance(d, numbers.Integral) and d >= 1 for d in image_shape)):
        raise ValueError(f"image_shape must be (height, width, channels), e.g. (28, 28, 1); "
                         f"got {image_shape!r}.")
    num_classes = _checks.check_whole_number("num_classes", num_classes, 2)
    hidden_units = _checks.check_whole_number("hidden_units", hidden_units, 1)
    filters = tuple(_checks.check_whole_number("filters", f, 1) for f in filters)
    if not filters:
        raise ValueError("filters needs at least one convolution, e.g. (16, 32).")
    if isinstance(input_noise, bool) or not isinstance(input_noise, numbers.Real):
        raise TypeError(f"input_noise must be a number >= 0, got {input_noise!r}.")
    if not 0 <= input_noise < math.inf:
        raise ValueError(f"input_noise must be a finite number >= 0, got {input_noise!r}.")
    images = keras.Input(shape=image_shape, name="images")
    x = images
    if input_noise > 0:
        x = layers.GaussianNoise(float(input_noise), name="training_noise")(x)
    for channels in filters:
        x = layers.Conv2D(channels, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(hidden_units, activation="relu")(x)
    x = layers.Dropout(0.25)(x)
    probabilities = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(images, probabilities, name=name)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="categorical_crossentropy")
    return model


def scramble_digits(images, block_size=4, seed=None):
    """Non-digits made of digit parts: cut each image into tiles and shuffle them.

    Every image is cut into ``block_size x block_size`` tiles whose positions are
    permuted at random (a jigsaw puzzle). The result keeps the ink, the stroke
    width and the local texture of real digits but has no digit's shape: the
    "none of the above" examples with which :func:`fit_digit_classifier` teaches
    a judge to be unsure.

    Args:
        images: float array ``(n, height, width[, 1])`` in [0, 1]; height and
            width divisible by ``block_size``.
        block_size: side of the tiles in pixels, >= 1.
        seed: optional int for a repeatable scramble.

    Returns:
        Scrambled images with the shape of ``images`` (a channel axis added to 3-D input).

    Raises:
        ValueError: bad images, or a size that ``block_size`` does not divide.
    """
    images = _check_float_images(images)
    block_size = _checks.check_whole_number("block_size", block_size, 1)
    count, height, width, channels = images.shape
    if height % block_size or width % block_size:
        raise ValueError(f"block_size={block_size} must divide the image size {height}x{width}, "
                         f"e.g. 4 or 7 for 28x28 digits.")
    rows, cols = height // block_size, width // block_size
    tiles = images.reshape(count, rows, block_size, cols, block_size, channels)
    tiles = tiles.transpose(0, 1, 3, 2, 4, 5).reshape(count, rows * cols, block_size, block_size,
                                                      channels)
    order = np.argsort(np.random.default_rng(seed).random((count, rows * cols)), axis=1)
    tiles = np.take_along_axis(tiles, order[:, :, None, None, None], axis=1)
    tiles = tiles.reshape(count, rows, cols, block_size, block_size, channels)
    return tiles.transpose(0, 1, 3, 2, 4, 5).reshape(count, height, width, channels)


def fit_digit_classifier(classifier, images, labels, epochs=3, batch_size=128,
                         outlier_fraction=0.25, seed=None, verbose=0):
    """Train a judge on labelled digits and on scrambled non-digits (outlier exposure).

    A classifier trained on digits alone must put every input into one of its
    classes, and it often labels pure noise as some digit with over 90%
    confidence, which would make "recognised with high confidence" meaningless.
    Outlier exposure (Hendrycks et al., 2019) adds examples of "none of the
    above" with a **uniform** target: here ``outlier_fraction * n`` digits
    scrambled by :func:`scramble_digits`. The judge then learns that digit parts
    without a digit's shape deserve no confidence, and, unlike a digits-only
    classifier, is reliably unsure of images it never saw such as noise (about
    0.1, the uniform probability, for ten classes).

    Args:
        classifier: a compiled model from :func:`build_digit_classifier`.
        images: float array ``(n, height, width[, 1])`` in [0, 1].
        labels: integer class labels ``(n,)``.
        epochs: passes over digits and outliers together.
        batch_size: images per step.
        outlier_fraction: scrambled images per real one, >= 0 (0: digits only).
        seed: optional int choosing and scrambling the outliers.
        verbose: passed to ``fit``.

    Returns:
        The ``History`` that ``fit`` returns.

    Raises:
        TypeError: ``classifier`` is not a Keras model.
        ValueError: bad images, labels of the wrong length or outside the
            classifier's classes, a negative ``outlier_fraction``.
    """
    if not isinstance(classifier, keras.Model):
        raise TypeError(f"classifier must be a keras.Model from build_digit_classifier, got "
                        f"{type(classifier).__name__}.")
    images = _check_float_images(images)
    num_classes = int(classifier.output_shape[-1])
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape ({len(images)},), one per image; got "
                         f"{labels.dtype} of shape {labels.shape}.")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1} for this classifier; got "
                         f"{labels.min()}..{labels.max()}.")
    if isinstance(outlier_fraction, bool) or not isinstance(outlier_fraction, numbers.Real):
        raise TypeError(f"outlier_fraction must be a number >= 0, got {outlier_fraction!r}.")
    if not 0 <= outlier_fraction < math.inf:
        raise ValueError(f"outlier_fraction must be a finite number >= 0, got "
                         f"{outlier_fraction!r}.")
    rng = np.random.default_rng(seed)
    targets = np.eye(num_classes, dtype=np.float32)[labels]
    outlier_count = int(round(outlier_fraction * len(images)))
    if outlier_count:
        chosen = rng.choice(len(images), outlier_count, replace=outlier_count > len(images))
        outliers = scramble_digits(images[chosen], seed=int(rng.integers(2**31)))
        images = np.concatenate([images, outliers])
        targets = np.concatenate(
            [targets, np.full((outlier_count, num_classes), 1.0 / num_classes, np.float32)])
    return classifier.fit(images, targets, epochs=epochs, batch_size=batch_size, shuffle=True,
                          verbose=verbose)


def normalized_entropy(counts):
    """How evenly ``counts`` spread over their classes: entropy divided by its maximum.

    ``H(p) / log K`` with ``p = counts / sum(counts)`` over ``K = len(counts)``
    classes (``0 log 0 = 0``): 1 when every class is equally frequent, 0 when all
    counts fall in one class. Used on the predicted labels of generated digits,
    it says whether a model draws every digit or favours a few.

    Args:
        counts: non-negative counts (or frequencies) per class, shape ``(K,)``, ``K >= 2``.

    Returns:
        A float in [0, 1].

    Raises:
        ValueError: not 1-D, fewer than two classes, negative or non-finite
            values, or all zero.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size < 2:
        raise ValueError(f"counts must be a 1-D array over at least 2 classes, got shape "
                         f"{counts.shape}.")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError("counts must be finite and non-negative.")
    total = counts.sum()
    if total <= 0:
        raise ValueError("counts are all zero: there is nothing to measure.")
    p = counts[counts > 0] / total
    return max(0.0, float(-(p * np.log(p)).sum() / math.log(counts.size)))  # no -0.0


def summarize_predictions(probabilities, confidence_threshold=DEFAULT_CONFIDENCE_THRESHOLD):
    """Turn a classifier's probabilities for ``n`` images into a recognition report.

    Args:
        probabilities: array ``(n, num_classes)``, each row a probability
            distribution (softmax outputs, not logits).
        confidence_threshold: an image counts as "recognised" when its top
            probability exceeds this.

    Returns:
        A dict with:

        - ``labels``: the predicted class of each image, ``(n,)`` int.
        - ``confidences``: each image's top-1 probability, ``(n,)``.
        - ``counts``: images predicted per class, ``(num_classes,)`` int, summing to ``n``.
        - ``mean_confidence``: the mean top-1 probability.
        - ``confident_fraction``: the fraction with top-1 probability > the threshold.
        - ``label_entropy``: :func:`normalized_entropy` of ``counts`` (1 = even).
        - ``classes_present``: how many classes were predicted at least once.

    Raises:
        ValueError: not a 2-D array of probability rows, or a bad threshold.
    """
    threshold = _checks.check_fraction("confidence_threshold", confidence_threshold, include_one=False)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] == 0 or probabilities.shape[1] < 2:
        raise ValueError(f"probabilities must have shape (n >= 1, num_classes >= 2), got "
                         f"{probabilities.shape}.")
    if (not np.all(np.isfinite(probabilities)) or np.any(probabilities < 0)
            or not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)):
        raise ValueError("Each row of probabilities must be a distribution (non-negative, "
                         "summing to 1). Logits? Apply a softmax first, or end the classifier "
                         "with activation='softmax' as build_digit_classifier does.")
    labels = probabilities.argmax(axis=1)
    confidences = probabilities.max(axis=1)
    counts = np.bincount(labels, minlength=probabilities.shape[1])
    return {
        "labels": labels,
        "confidences": confidences,
        "counts": counts,
        "mean_confidence": float(confidences.mean()),
        "confident_fraction": float(np.mean(confidences > threshold)),
        "label_entropy": normalized_entropy(counts),
        "classes_present": int(np.count_nonzero(counts)),
    }


def recognition_report(classifier, images, confidence_threshold=DEFAULT_CONFIDENCE_THRESHOLD,
                       batch_size=256):
    """What a trained digit classifier makes of ``images`` (e.g. a VAE's samples).

    Good samples are recognised with high confidence (like real test digits, not
    like noise) and, from a model of all ten digits, spread evenly over the
    classes. Compare the report of samples with those of real images and of
    noise: the numbers only mean something next to such references.

    Args:
        classifier: a trained ``keras.Model`` from images to class probabilities,
            e.g. from :func:`build_digit_classifier` and :func:`fit_digit_classifier`.
        images: float array ``(n, height, width[, 1])`` with values in [0, 1].
        confidence_threshold: top-1 probability above which an image counts as
            recognised.
        batch_size: images per prediction batch.

    Returns:
        The dict of :func:`summarize_predictions` (``counts``, ``mean_confidence``,
        ``confident_fraction``, ``label_entropy``, ``labels``, ...).

    Raises:
        TypeError: ``classifier`` has no ``predict`` method.
        ValueError: images of the wrong shape for the classifier, integer or
            out-of-range pixels, or a classifier that does not output probabilities.
    """
    if not callable(getattr(classifier, "predict", None)):
        raise TypeError(f"classifier must be a keras.Model (with predict), got "
                        f"{type(classifier).__name__}.")
    images = _check_float_images(images)
    inputs = getattr(classifier, "inputs", None)
    if inputs:
        expected = tuple(inputs[0].shape[1:])
        if tuple(images.shape[1:]) != expected:
            raise ValueError(f"images have shape {images.shape}, but the classifier takes "
                             f"(n,) + {expected}.")
    probabilities = classifier.predict(images, batch_size=batch_size, verbose=0)
    return summarize_predictions(probabilities, confidence_threshold)


def stroke_thickness(images):
    """The mean stroke width of each image, in pixels: twice the ink over the perimeter.

    A stroke of width ``w`` and length ``L`` has ink ``w * L`` and perimeter
    ``2 * (L + w)``, so ``2 * ink / perimeter = w * L / (L + w)``, which tends to
    ``w`` for long strokes: for a digit it is a stroke width averaged along the
    strokes. The ink is the sum of the pixel values and the perimeter the total
    variation ``sum sqrt(dx**2 + dy**2)`` of the zero-padded image (forward
    differences). By the coarea formula that is the perimeter of the thresholded
    image averaged over all thresholds, so no threshold is chosen and gray or
    blurred images (a VAE's mean images) are measured like sharp ones: blurring
    a stroke keeps its ink and, while strokes stay apart, its perimeter.

    The pixel grid makes hard-edged diagonal strokes look a little thinner (their
    staircase edges are longer than a straight line), so compare thicknesses of
    similar images, e.g. one digit before and after an edit. Real MNIST digits,
    which are anti-aliased, measure about 2-3 pixels. Notebook 05 uses the measure to
    pick bold and thin digits and to check that adding a "bold" vector in code
    space makes decoded digits bolder.

    Args:
        images: float array ``(n, height, width)`` or ``(n, height, width, 1)``
            with values in [0, 1], ink = 1.

    Returns:
        Array ``(n,)`` of thicknesses in pixels; 0 for an image without ink.

    Raises:
        ValueError: wrong shape (or several channels), integer pixels, values
            outside [0, 1], NaNs.
    """
    images = _check_float_images(images)
    if images.shape[-1] != 1:
        raise ValueError(f"stroke_thickness measures grayscale images (one channel); got "
                         f"{images.shape[-1]} channels.")
    padded = np.pad(images[..., 0].astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    dx = padded[:, :-1, 1:] - padded[:, :-1, :-1]
    dy = padded[:, 1:, :-1] - padded[:, :-1, :-1]
    perimeter = np.sqrt(dx ** 2 + dy ** 2).sum(axis=(1, 2))
    ink = padded.sum(axis=(1, 2))
    thickness = np.zeros(len(images))
    has_ink = perimeter > 0
    thickness[has_ink] = 2.0 * ink[has_ink] / perimeter[has_ink]
    return thickness


def laplacian_variance(images):
    """Sharpness: the variance of each image's discrete Laplacian, averaged over the images.

    The Laplacian here is the sum of a pixel's four neighbours minus four times the
    pixel (interior pixels only), a standard focus measure: blurring removes high
    spatial frequencies and lowers it, and a constant image scores 0. Real MNIST test
    digits score about 0.18; notebook 07 measures how the blur of a Gaussian VAE's
    reconstructions grows with its noise level sigma.

    Args:
        images: float array ``(n, height, width)`` or ``(n, height, width, 1)``,
            at least 3 x 3 pixels, values in [0, 1].

    Returns:
        The mean over images of the Laplacian's variance, a float.

    Raises:
        ValueError: wrong shape, several channels, integer pixels, values outside
            [0, 1], NaNs, or images smaller than 3 x 3.
    """
    images = _check_float_images(images)
    if images.shape[-1] != 1:
        raise ValueError(f"laplacian_variance measures grayscale images (one channel); got "
                         f"{images.shape[-1]} channels.")
    x = images[..., 0].astype(np.float64)
    if min(x.shape[1:]) < 3:
        raise ValueError(f"laplacian_variance needs images of at least 3 x 3 pixels; got "
                         f"{x.shape[1]} x {x.shape[2]}.")
    laplacian = (x[:, :-2, 1:-1] + x[:, 2:, 1:-1] + x[:, 1:-1, :-2] + x[:, 1:-1, 2:]
                 - 4.0 * x[:, 1:-1, 1:-1])
    return float(np.mean(np.var(laplacian, axis=(1, 2))))


def judge_score(probabilities):
    """``exp(E_x KL(p(y | x) || p(y)))``: the Inception Score with a digit classifier.

    ``p(y | x)`` is the classifier's verdict on each image and ``p(y)`` its average
    over the images. The score is 1 when every verdict is the same (all unsure,
    or all one digit) and reaches the number of classes, 10, only for confident
    verdicts spread evenly over the classes (Salimans et al., 2016). It mixes the
    two things a learner wants to know, "is each sample clearly a digit?" and "are
    all digits drawn?", so notebooks print it beside both.

    Args:
        probabilities: ``(n, classes)`` class probabilities, rows summing to 1 (a
            judge's extra "none of the above" class, if any, already left out or kept:
            the score is computed over the columns given).

    Returns:
        The score, a float between 1 and the number of columns.

    Raises:
        ValueError: not a 2-D array of probabilities (negative values, rows not
            summing to 1, NaNs).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or not len(p) or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"judge_score takes (n, classes) probabilities: finite, non-negative, "
                         f"at least one row; got shape {p.shape}.")
    if np.max(np.abs(p.sum(axis=1) - 1.0)) > 1e-3:
        raise ValueError("judge_score takes probabilities whose rows sum to 1 (a softmax "
                         "output); these do not. Pass classifier.predict(images), not logits.")
    marginal = p.mean(axis=0)
    kl = np.sum(p * (np.log(p + 1e-12) - np.log(marginal + 1e-12)), axis=1)
    return float(np.exp(np.mean(kl)))


def _as_rows(array, name):
    """``array`` as float64 rows ``(n, features)``; raise on anything that is not numbers."""
    if isinstance(array, (str, bytes, dict)) or array is None:
        raise TypeError(f"{name} must be a NumPy array of numbers, got {type(array).__name__}.")
    array = np.asarray(array)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                     or array.dtype == bool):
        raise TypeError(f"{name} must hold numbers, got an array of dtype {array.dtype}.")
    if array.ndim < 2 or array.shape[0] == 0 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty batch with one row per item, (n, ...), got "
                         f"shape {array.shape}. A single item needs a batch axis: item[None].")
    array = array.reshape(len(array), -1).astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contain NaN or infinite values.")
    return array


def nearest(queries, references, chunk_size=1000):
    """For each query, the index of its nearest reference and the Euclidean distance to it.

    Each row (image or code) is flattened, so images ``(n, h, w, c)`` are
    compared pixel by pixel and codes ``(n, d)`` coordinate by coordinate. The
    squared distances come from ``|q|^2 - 2 q.r + |r|^2``, one block of
    ``chunk_size`` queries at a time so that memory stays at
    ``chunk_size x len(references)`` numbers. Notebooks 01 and 02 use it to find
    gaps in a code space (random codes far from every training code) and, with
    the labels of the nearest real images, as a training-free digit classifier
    (1-nearest neighbour, about 94% accurate on MNIST with 10,000 references).

    Args:
        queries: array ``(n, ...)``: what to look up, one row per item.
        references: array ``(m, ...)`` with the same number of values per row.
        chunk_size: queries handled per block, >= 1.

    Returns:
        ``(indices, distances)``: int64 ``(n,)`` indices into ``references`` and
        float64 ``(n,)`` Euclidean distances.

    Raises:
        TypeError: non-numeric arrays or a non-integer ``chunk_size``.
        ValueError: empty inputs, NaNs, rows of different sizes, ``chunk_size < 1``.
    """
    queries = _as_rows(queries, "queries")
    references = _as_rows(references, "references")
    chunk_size = _checks.check_whole_number("chunk_size", chunk_size, 1)
    if queries.shape[1] != references.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} values per row and references "
                         f"{references.shape[1]}: compare images with images of the same size, "
                         f"or codes with codes of the same dimension.")
    reference_norms = np.sum(references ** 2, axis=1)
    indices, distances = [], []
    for start in range(0, len(queries), chunk_size):
        block = queries[start:start + chunk_size]
        squared = np.sum(block ** 2, axis=1)[:, None] - 2.0 * block @ references.T + reference_norms
        index = np.argmin(squared, axis=1)
        indices.append(index)
        # Rounding can make a zero distance slightly negative: clip before the root.
        distances.append(np.sqrt(np.maximum(squared[np.arange(len(block)), index], 0.0)))
    return np.concatenate(indices).astype(np.int64), np.concatenate(distances)


def label_entropy(labels_or_probabilities, num_classes=10):
    """Entropy in nats of the histogram of labels: how varied a set of images is.

    ``H = -sum_k p_k log p_k`` with ``p_k`` the fraction of items labelled ``k``
    (``0 log 0 = 0``). It is ``log(num_classes)`` (2.30 nats for ten digits)
    when every class is equally common and 0 when all items share one label.
    Unlike :func:`normalized_entropy` (and the ``label_entropy`` entry of
    :func:`summarize_predictions`, which is normalized to [0, 1]), the value
    is in nats, so it can be compared with the entropy of the real labels.

    Args:
        labels_or_probabilities: integer labels ``(n,)`` in ``0..num_classes - 1``,
            or a classifier's probabilities ``(n, num_classes)``, in which case
            each item counts for its most probable class (as in
            :func:`summarize_predictions`).
        num_classes: number of classes, >= 2.

    Returns:
        A float in ``[0, log(num_classes)]``.

    Raises:
        TypeError: a non-integer ``num_classes``, or labels that are not integers.
        ValueError: no items, labels outside ``0..num_classes - 1``, or
            probabilities whose second axis is not ``num_classes`` long.
    """
    num_classes = _checks.check_whole_number("num_classes", num_classes, 2)
    values = np.asarray(labels_or_probabilities)
    if values.ndim == 2:
        if values.shape[1] != num_classes or not np.issubdtype(values.dtype, np.number):
            raise ValueError(f"probabilities must have shape (n, num_classes={num_classes}), got "
                             f"{values.shape} of dtype {values.dtype}.")
        values = values.argmax(axis=1)
    elif values.ndim != 1:
        raise ValueError(f"pass labels of shape (n,) or probabilities of shape (n, {num_classes}); "
                         f"got shape {values.shape}.")
    elif not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"labels must be integers, got dtype {values.dtype}; for a classifier's "
                        f"probabilities pass the (n, num_classes) array itself.")
    if values.size == 0:
        raise ValueError("there are no labels to measure: pass at least one.")
    if values.min() < 0 or values.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {values.min()}.."
                         f"{values.max()}; set num_classes to the number of classes.")
    frequencies = np.bincount(values, minlength=num_classes) / values.size
    frequencies = frequencies[frequencies > 0]
    return max(0.0, float(-np.sum(frequencies * np.log(frequencies))))  # no -0.0


# ---------------------------------------------------------------------------------------------
# One judge for the whole course.

# The recipe every notebook's judge is trained with. Changing it changes the cache key, so
# every notebook then trains (once) and shares the new judge.
JUDGE_RECIPE = {
    "train_images": 60_000,   # all of MNIST's training digits
    "epochs": 3,
    "batch_size": 128,
    "outlier_fraction": 0.25,  # scrambled digits per real one, labelled "none of the above"
    "input_noise": 0.3,        # GaussianNoise on the pixels while training
    "filters": [16, 32],
    "hidden_units": 128,
    "learning_rate": 1e-3,
    "seed": 0,
}
# Fast mode (CI): the same code and recipe on fewer digits and epochs.
FAST_JUDGE_RECIPE = dict(JUDGE_RECIPE, epochs=2)


class Judge:
    """The course's digit judge: a trained classifier with its recipe and its reference scores.

    Made by :func:`judge`, never by hand. Every number a notebook reports about
    "what the judge reads" comes from :meth:`report`, and every such number means
    something only next to :attr:`reference`, the same report on real test digits.

    Attributes:
        model: the trained ``keras.Model`` (images to class probabilities).
        recipe: the training recipe (a copy of :data:`JUDGE_RECIPE` or the one asked for).
        test_accuracy: its accuracy on all of MNIST's test digits.
        reference: :func:`recognition_report` summary of the real test digits
            (``mean_confidence``, ``confident_fraction``, ``label_entropy``).
        training_seconds: how long its training took, when it was trained.
        from_cache: whether this call loaded it from the cache.
    """

    def __init__(self, model, metadata, from_cache):
        self.model = model
        self.recipe = metadata["recipe"]
        self.test_accuracy = metadata["test_accuracy"]
        self.reference = metadata["reference"]
        self.training_seconds = metadata["training_seconds"]
        self.from_cache = from_cache

    def report(self, images, confidence_threshold=DEFAULT_CONFIDENCE_THRESHOLD):
        """:func:`recognition_report` of this judge on ``images``."""
        return recognition_report(self.model, images, confidence_threshold)

    def score(self, images, batch_size=256):
        """:func:`judge_score` of this judge's verdicts on ``images`` (1 to the class count)."""
        images = _check_float_images(images)
        return judge_score(self.model.predict(images, batch_size=batch_size, verbose=0))

    def accuracy(self, images, labels):
        """The fraction of ``images`` the judge reads as their ``labels``."""
        labels = np.asarray(labels)
        return float(np.mean(self.report(images)["labels"] == labels))

    def describe(self):
        """Two lines for a notebook: the recipe, and the scores a learner compares against."""
        recipe = self.recipe
        outliers = int(round(recipe["outlier_fraction"] * recipe["train_images"]))
        origin = "loaded from the cache" if self.from_cache else "trained now"
        return (f"judge ({origin}): {recipe['train_images']:,} MNIST training digits and "
                f"{outliers:,} scrambled ones as 'none of the above', {recipe['epochs']} epochs, "
                f"pixel noise of sd {recipe['input_noise']} while training, "
                f"{self.training_seconds:.0f} s to train\n"
                f"reference, all 10,000 real test digits: accuracy {self.test_accuracy:.4f} · mean "
                f"confidence {self.reference['mean_confidence']:.3f} · "
                f"{self.reference['confident_fraction']:.1%} above "
                f"{DEFAULT_CONFIDENCE_THRESHOLD}")


def _judge_key(recipe, data_dir):
    """The cache key: the data files' sums, the recipe, and the Keras version and backend."""
    import hashlib
    import json

    from vae_keras import data

    data_dir = data.resolve_data_dir(data_dir)
    if data_dir is None:
        sources = "keras.datasets.mnist"
    else:
        folder = data._dataset_folder(data_dir, "mnist")
        sources = {name: data.decompressed_md5(folder / name) for name in data.IDX_FILES.values()}
    key = {"recipe": recipe, "data": sources, "keras": keras.__version__,
           "backend": keras.backend.backend()}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def _train_judge(recipe, data_dir, model_path):
    """Train a judge by ``recipe`` and save it with its metadata (run in a child process)."""
    import json
    import time

    from vae_keras import data

    keras.utils.set_random_seed(recipe["seed"])
    (x_train, y_train), (x_test, y_test) = data.load_mnist(data_dir)
    count = recipe["train_images"]
    start = time.perf_counter()
    model = build_digit_classifier(filters=tuple(recipe["filters"]),
                                   hidden_units=recipe["hidden_units"],
                                   input_noise=recipe["input_noise"],
                                   learning_rate=recipe["learning_rate"], name="judge")
    fit_digit_classifier(model, x_train[:count], y_train[:count], epochs=recipe["epochs"],
                         batch_size=recipe["batch_size"],
                         outlier_fraction=recipe["outlier_fraction"], seed=recipe["seed"])
    seconds = time.perf_counter() - start
    report = recognition_report(model, x_test)
    metadata = {
        "recipe": recipe,
        "training_seconds": seconds,
        "test_accuracy": float(np.mean(report["labels"] == y_test)),
        "reference": {key: report[key] for key in
                      ("mean_confidence", "confident_fraction", "label_entropy")},
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }
    model_path = pathlib.Path(model_path)
    temporary = model_path.with_name(f"{model_path.stem}.{os.getpid()}.tmp.keras")
    model.save(temporary)
    os.replace(temporary, model_path)
    meta_path = model_path.with_suffix(".json")
    meta_temporary = meta_path.with_name(f"{meta_path.name}.{os.getpid()}.tmp")
    meta_temporary.write_text(json.dumps(metadata, indent=1))
    os.replace(meta_temporary, meta_path)


def _train_judge_main():
    """Entry point of the child process that :func:`judge` starts on a cache miss."""
    import json
    import sys

    arguments = json.loads(sys.argv[1])
    _train_judge(arguments["recipe"], arguments["data_dir"], arguments["model_path"])


def judge(data_dir=None, fast=False, recipe=None, cache_dir=None):
    """The course's one digit judge: trained once by one recipe, cached on disk, shared.

    Every notebook that reports what "the judge" reads calls this, so its scores
    compare from notebook to notebook. The first call trains the judge by
    :data:`JUDGE_RECIPE` (about a minute on a laptop CPU) on MNIST and saves it,
    with its test accuracy and reference scores, under a key made of the data
    files' MD5 sums, the recipe, and the Keras version and backend; later calls,
    from any notebook, load it in a second.

    Training runs in a child process, so that whether the judge was cached or not
    changes nothing in the caller's random state: a notebook tells the same story
    on its first run and its second.

    The judge learns with Gaussian noise (sd ``input_noise``) added to its inputs,
    and with scrambled digits as "none of the above" (outlier exposure): it reads
    noisy digits better than a judge trained on clean ones would, and is unsure
    of non-digits such as noise or blobs.

    Args:
        data_dir: the MNIST data directory (default ``$VAE_KERAS_DATA``, else Keras downloads).
        fast: use :data:`FAST_JUDGE_RECIPE` (CI's fast mode: same code, less training).
        recipe: a full recipe dict instead (tests); overrides ``fast``.
        cache_dir: where judges are kept; default ``judges/`` in
            :func:`vae_keras.data.cache_dir` (``$VAE_KERAS_CACHE`` or ``~/.cache/vae_keras``).

    Returns:
        A :class:`Judge`.

    Raises:
        RuntimeError: the training process failed; its last lines are in the message.
        ValueError: a recipe that lacks a key of :data:`JUDGE_RECIPE`.
    """
    import json
    import subprocess
    import sys

    from vae_keras import data

    recipe = dict(recipe if recipe is not None else (FAST_JUDGE_RECIPE if fast else JUDGE_RECIPE))
    missing = sorted(set(JUDGE_RECIPE) - set(recipe))
    if missing:
        raise ValueError(f"recipe lacks {missing}; start from a copy of "
                         f"vae_keras.quality.JUDGE_RECIPE.")
    folder = pathlib.Path(cache_dir) if cache_dir is not None else data.cache_dir() / "judges"
    folder.mkdir(parents=True, exist_ok=True)
    resolved = data.resolve_data_dir(data_dir)
    model_path = folder / f"judge-{_judge_key(recipe, resolved)}.keras"
    meta_path = model_path.with_suffix(".json")
    from_cache = model_path.is_file() and meta_path.is_file()
    if not from_cache:
        arguments = json.dumps({"recipe": recipe, "model_path": str(model_path),
                                "data_dir": None if resolved is None else str(resolved)})
        result = subprocess.run(
            [sys.executable, "-c", "from vae_keras import quality; quality._train_judge_main()",
             arguments], capture_output=True, text=True)
        if result.returncode != 0 or not model_path.is_file():
            tail = "\n".join(result.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"Training the judge failed (exit code {result.returncode}):\n{tail}")
    model = keras.saving.load_model(model_path)
    return Judge(model, json.loads(meta_path.read_text()), from_cache)
