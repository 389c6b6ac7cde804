"""Argument checks shared by the library.

Every check raises a ``ValueError`` or ``TypeError`` whose message says what was
wrong and how to fix it, so that a learner never has to read a TensorFlow
traceback to find out that the images were uint8.
"""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import numbers

import numpy as np
import tensorflow as tf

# Their home is the light settings module, which the command line reads before TensorFlow.
from vae_keras.settings import ARCHITECTURES, LIKELIHOODS, LOGIT_LIKELIHOODS  # noqa: F401


def check_choice(name, value, choices):
    """Return ``value`` lower-cased if it is one of ``choices``; raise otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {list(choices)}; got {value!r}.")
    normalized = value.lower().replace("-", "_")
    if normalized not in choices:
        raise ValueError(f"Unknown {name} {value!r}: choose one of {list(choices)}.")
    return normalized


def check_latent_dim(latent_dim):
    """Return ``latent_dim`` as an int >= 1; raise a clear error otherwise."""
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, numbers.Integral):
        raise TypeError(f"latent_dim must be a whole number >= 1, got {latent_dim!r}.")
    if latent_dim < 1:
        raise ValueError(
            f"latent_dim must be >= 1 (the number of latent variables), got {latent_dim}. "
            f"Use latent_dim=2 to plot the code space, 8-64 for good likelihoods."
        )
    return int(latent_dim)


def check_positive(name, value, allow_zero=False):
    """Return ``value`` as a float that is > 0 (or >= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}.")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")
    return float(value)


def _shape_hint(shape, image_shape):
    """Suggest the reshaping that turns ``shape`` into (batch,) + image_shape."""
    shape = tuple(shape)
    if shape == tuple(image_shape):
        return "This is a single image: add a batch axis with images[None]."
    if len(shape) == len(image_shape) and tuple(shape[1:]) == tuple(image_shape[:-1]):
        return "Add the channel axis with images[..., None] (or np.expand_dims(images, -1))."
    if len(shape) == 2 and shape[1] == int(np.prod(image_shape)):
        return f"Flat vectors: reshape with images.reshape((-1,) + {tuple(image_shape)})."
    return f"Reshape them to (batch,) + {tuple(image_shape)}."


def check_image_shape(shape, image_shape, what="images"):
    """Raise a ValueError unless ``shape`` is ``(batch,) + image_shape``.

    ``shape`` may contain None for unknown dimensions (tf.data element specs).
    """
    shape = tuple(shape)
    expected = (None,) + tuple(image_shape)
    matches = len(shape) == len(expected) and all(
        got is None or got == want for got, want in zip(shape[1:], expected[1:])
    )
    if not matches:
        raise ValueError(
            f"{what} have shape {shape}, but this model takes batches of shape "
            f"(batch, {', '.join(str(d) for d in image_shape)}). "
            + _shape_hint(shape, image_shape)
        )


def check_pixel_values(array, likelihood, what="images"):
    """Raise a ValueError for integer pixels, NaNs, or values outside [0, 1] (Bernoulli)."""
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        raise ValueError(
            f"{what} have integer dtype {array.dtype}; the model expects float pixels in "
            f"[0, 1]. Convert them with images.astype('float32') / 255."
        )
    if array.size == 0:
        raise ValueError(f"{what} are empty (shape {array.shape}); pass at least one image.")
    low, high = float(np.min(array)), float(np.max(array))
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{what} contain NaN or infinite values; clean the data first.")
    if likelihood in LOGIT_LIKELIHOODS and (low < 0.0 or high > 1.0):
        hint = (
            " They look like raw 0-255 pixels: divide by 255."
            if high > 1.0 and high <= 255.0 and low >= 0.0
            else ""
        )
        raise ValueError(
            f"{what} have values in [{low:g}, {high:g}], but the {likelihood.replace('_', ' ')} likelihood "
            f"needs pixel values in [0, 1].{hint} For real-valued data use "
            f"likelihood='gaussian'."
        )


def _as_numpy(data):
    if isinstance(data, np.ndarray):
        return data
    if tf.is_tensor(data):
        return data.numpy() if hasattr(data, "numpy") else None
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], numbers.Number):
        return np.asarray(data)
    return None


def check_images(data, image_shape, likelihood, what="images"):
    """Check a batch of images (NumPy array, tensor or tf.data.Dataset) before use.

    Arrays are checked completely; a ``tf.data.Dataset`` is checked through its
    element spec (shape) and its first batch (values). Other inputs, such as
    generators or ``keras.utils.PyDataset``, are passed through unchecked.

    Args:
        data: the images, or what ``fit``/``evaluate``/``predict`` receive as ``x``.
        image_shape: the shape of one image the model expects, e.g. ``(28, 28, 1)``.
        likelihood: ``"bernoulli"`` or ``"continuous_bernoulli"`` (pixels must lie
            in [0, 1]), or ``"gaussian"``.
        what: how to name the data in an error message.

    Raises:
        TypeError: if ``data`` is not images at all (a string, a dict, ...).
        ValueError: wrong shape or rank, integer pixels, NaNs, or values outside
            [0, 1] with the Bernoulli likelihood.
    """
    if data is None:
        raise ValueError(f"{what} are None; pass an array of shape (batch,) + {image_shape}.")
    if isinstance(data, (str, bytes, dict)):
        raise TypeError(
            f"{what} must be a NumPy array, a tensor or a tf.data.Dataset of images, "
            f"got {type(data).__name__}."
        )
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if isinstance(spec, (tuple, list)):
            spec = spec[0]
        if not isinstance(spec, tf.TensorSpec):
            return
        check_image_shape(spec.shape.as_list(), image_shape, what=f"{what} (dataset batches)")
        for first in data.take(1):
            first = first[0] if isinstance(first, (tuple, list)) else first
            check_pixel_values(first.numpy(), likelihood, what=f"{what} (first dataset batch)")
        return
    array = _as_numpy(data)
    if array is None:
        return
    check_image_shape(array.shape, image_shape, what=what)
    check_pixel_values(array, likelihood, what=what)


def check_whole_number(name, value, minimum=1):
    """Return ``value`` as an int >= ``minimum``; TypeError for non-integers, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def check_vae(model, what="model"):
    """Raise a TypeError unless ``model`` is a VAE: something with the VAE's forward pass.

    The one test of "is this a VAE" for functions that take a trained model
    (evaluation, the applications). It looks for the methods they call, so a
    :class:`vae_keras.VAE` subclass or a conditional VAE passes and a plain
    :class:`vae_keras.Autoencoder` (a point code, no posterior) does not.
    """
    needed = ("check_images", "posterior", "reconstruction_and_kl", "log_importance_weights",
              "decode", "encode_mean")
    if not all(callable(getattr(model, name, None)) for name in needed):
        raise TypeError(f"{what} must be a trained vae_keras.VAE, got {type(model).__name__}.")
    return model


def check_seed(seed):
    """Return ``seed`` as None or an int >= 0 (TypeError for other types, ValueError below 0)."""
    return None if seed is None else check_whole_number("seed", seed, minimum=0)


def as_codes(name, codes, width=None):
    """Return ``codes`` as a finite float64 array ``(n >= 1, width)``; raise otherwise.

    Shared by every function that takes codes or posterior parameters as NumPy
    arrays (:mod:`vae_keras.aggregate`, :func:`vae_keras.applications.code_length_bits`).
    """
    if isinstance(codes, (str, bytes, dict)) or codes is None:
        raise TypeError(f"{name} must be an array of codes (n, latent_dim), got "
                        f"{type(codes).__name__}.")
    array = np.asarray(codes)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must hold numbers, got an array of dtype {array.dtype}.")
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        hint = " A single code z needs a batch axis: z[None]." if array.ndim == 1 else ""
        raise ValueError(f"{name} must be a non-empty array of shape (n, latent_dim), got "
                         f"shape {array.shape}.{hint}")
    if width is not None and array.shape[1] != width:
        raise ValueError(f"{name} have {array.shape[1]} dimensions but {width} are expected "
                         f"(the codes of one model share its latent_dim).")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contain NaN or infinite values.")
    return array.astype(np.float64)


def as_posteriors(z_mean, z_log_var):
    """Check a set of diagonal Gaussian posteriors; return them as float64."""
    z_mean = as_codes("z_mean", z_mean)
    z_log_var = as_codes("z_log_var", z_log_var)
    if z_log_var.shape != z_mean.shape:
        raise ValueError(f"z_mean {z_mean.shape} and z_log_var {z_log_var.shape} must have the "
                         f"same shape, one row per image: pass both outputs of vae.encode(x).")
    return z_mean, z_log_var


def check_fraction(name, value, include_one=True):
    """Return ``value`` as a float in [0, 1] (or [0, 1) without ``include_one``)."""
    interval = "[0, 1]" if include_one else "[0, 1)"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in {interval}, got {value!r}.")
    if not (0.0 <= float(value) <= 1.0) or (not include_one and float(value) == 1.0):
        raise ValueError(f"{name} must lie in {interval}, got {value!r}.")
    return float(value)


def as_float_images(images, what="images", unit_range=True):
    """Return a non-empty batch of images as float32, checked; for functions outside a model.

    Raises:
        TypeError: not an array of numbers.
        ValueError: integer pixels, fewer than two axes, no images, NaN or infinite
            values, or (with ``unit_range``) values outside [0, 1].
    """
    if isinstance(images, (str, bytes, dict)) or images is None:
        raise TypeError(f"{what} must be a NumPy array of float pixels in [0, 1], "
                        f"got {type(images).__name__}.")
    array = np.asarray(images)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(f"{what} must hold numbers, got an array of dtype {array.dtype}.")
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        raise ValueError(f"{what} have integer dtype {array.dtype}; pass float pixels in "
                         f"[0, 1], e.g. images.astype('float32') / 255.")
    if array.ndim < 2 or array.size == 0:
        raise ValueError(f"{what} must be a non-empty batch (n, height, width[, channels]), "
                         f"got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contain NaN or infinite values.")
    low, high = float(array.min()), float(array.max())
    if unit_range and (low < 0.0 or high > 1.0):
        hint = " They look like raw 0-255 pixels: divide by 255." if high > 1.0 else ""
        raise ValueError(f"{what} have values in [{low:g}, {high:g}]; pixels must lie in "
                         f"[0, 1].{hint}")
    return array.astype(np.float32)


def check_labels(labels, count=None, num_classes=None, what="labels"):
    """Return class labels as an int64 array ``(n,)``, checked; for conditional models.

    Args:
        labels: one class index per image (ints, or floats that are whole numbers).
        count: the number of images the labels go with; None skips the length check.
        num_classes: labels must lie in ``0..num_classes - 1``; None only requires >= 0.
        what: how to name the labels in an error message.

    Raises:
        TypeError: no numbers at all (a string, a dict, booleans...).
        ValueError: missing labels, one-hot rows or other shapes than ``(n,)``, a
            length other than ``count``, floats that are not whole numbers, NaNs, or
            labels outside ``0..num_classes - 1``.
    """
    fix = "pass one integer class label per image, e.g. model.fit(images, labels)"
    if labels is None:
        raise ValueError(f"{what} are missing: a conditional model needs them; {fix}.")
    if isinstance(labels, (str, bytes, dict)):
        raise TypeError(f"{what} must be an array of integer class labels, got "
                        f"{type(labels).__name__}; {fix}.")
    array = labels.numpy() if tf.is_tensor(labels) and hasattr(labels, "numpy") else labels
    array = np.asarray(array)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{what} must hold integer class labels, got dtype {array.dtype}; {fix}.")
    if array.ndim == 2 and array.shape[1] > 1:
        width = "" if num_classes is None or array.shape[1] == num_classes else (
            f" Their {array.shape[1]} columns also disagree with the model's {num_classes} "
            f"classes.")
        raise ValueError(f"{what} have shape {array.shape}: one-hot rows? Pass class indices of "
                         f"shape (n,) instead: labels.argmax(axis=1).{width}")
    if array.ndim == 2:
        array = array[:, 0]  # a column (n, 1) is the same labels
    if array.ndim != 1:
        raise ValueError(f"{what} must have shape (n,), one class index per image; got "
                         f"{array.shape}. A single label for all images: np.full(n, label).")
    if count is not None and len(array) != count:
        raise ValueError(f"There are {len(array)} {what} for {count} images; {fix}.")
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{what} contain NaN or infinite values; {fix}.")
        if np.any(array != np.round(array)):
            bad = array[array != np.round(array)][0]
            # A 1-D array: no argmax hint, which only fits rows of class probabilities (2-D).
            raise ValueError(f"{what} must be whole numbers (class indices), got {float(bad):g}; "
                             f"pass integer labels, e.g. np.array([0, 3, 7]).")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or (num_classes is not None and array.max() >= num_classes)):
        allowed = "0 or more" if num_classes is None else f"in 0..{num_classes - 1}"
        hint = "" if num_classes is None else (
            f" This model was built with num_classes={num_classes}; build one with "
            f"num_classes={max(int(array.max()) + 1, num_classes)} for these labels.")
        raise ValueError(f"{what} must be {allowed}, got {array.min()}..{array.max()}.{hint}")
    return array
