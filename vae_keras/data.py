"""MNIST and Fashion-MNIST loading, and tf.data input pipelines.

The loaders read the original IDX gzip files (as published by the datasets'
authors) from a data directory, so they work offline; with no directory they
fall back to Keras's own download. The directory is, in order of precedence:

1. the ``data_dir`` argument,
2. the environment variable ``VAE_KERAS_DATA``.

It holds one folder per dataset (``mnist/``, ``fashion-mnist/``) with the four
files each; see ``data/README.md``.
"""

import gzip
import hashlib
import os
import pathlib
import warnings

import numpy as np
import tensorflow as tf

from vae_keras import _checks

DATA_DIR_VARIABLE = "VAE_KERAS_DATA"

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

DATASETS = {
    # name: (folder in the data directory, keras.datasets module, where the files come from)
    "mnist": ("mnist", "mnist", "MNIST by LeCun, Cortes and Burges"),
    "fashion_mnist": ("fashion-mnist", "fashion_mnist",
                      "Fashion-MNIST by Zalando Research (github.com/zalandoresearch/fashion-mnist)"),
}

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")

IMAGE_SIZE = (28, 28)  # both datasets' images, height x width
NUM_CLASSES = 10

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32,
               0x0D: np.float32, 0x0E: np.float64}


def read_idx(path):
    """Read one IDX file (gzip-compressed or not) into a NumPy array.

    The format (LeCun's): two zero bytes, a type code, the number of dimensions,
    one big-endian 32-bit size per dimension, then the data.

    Raises:
        ValueError: if the file is not in IDX format.
    """
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number); re-download it.")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]]).newbyteorder(">")
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {data.size} values.")
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def resolve_data_dir(data_dir=None):
    """The data directory from the argument or ``VAE_KERAS_DATA``; None if neither is set."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_VARIABLE) or None
    return None if data_dir is None else pathlib.Path(data_dir).expanduser()


def _dataset_folder(data_dir, name):
    folder, _, source = DATASETS[name]
    candidates = [data_dir / folder, data_dir]  # the parent folder, or the dataset's own
    for candidate in candidates:
        if all((candidate / filename).is_file() for filename in IDX_FILES.values()):
            return candidate
    expected = data_dir / folder
    missing = [f for f in IDX_FILES.values() if not (expected / f).is_file()]
    raise ValueError(
        f"The data directory {data_dir} lacks {name}: expected the IDX files "
        f"{', '.join(missing)} in {expected}. They are the original files of {source}. "
        f"Point the data_dir argument or the {DATA_DIR_VARIABLE} environment variable at a "
        f"folder holding '{folder}/', or leave both unset to let Keras download the data."
    )


def _describe_idx(array):
    """What an IDX array looks like it holds, in words, for error messages."""
    if array.ndim == 1:
        kind = "labels"
    elif array.ndim == 3:
        kind = "images"
    else:
        kind = f"a rank-{array.ndim} array"
    return f"{kind} (shape {array.shape}, {array.dtype})"


def _check_idx_arrays(folder, arrays, source):
    """Check that the four IDX files hold what their names say, and that they pair up.

    ``read_idx`` reads any IDX file; only here, where the files are put together,
    is it known what each one must hold: images ``(n, 28, 28)`` uint8, labels
    ``(n,)`` integers 0-9, and as many labels as images in each split.

    Raises:
        ValueError: naming the offending file, what it holds, what was expected, and
            how to fix it.
    """
    fix = (f"Each split needs its images in *-images-idx3-ubyte.gz and its labels in "
           f"*-labels-idx1-ubyte.gz (train-* for training, t10k-* for test). If a file was "
           f"renamed or mixed up, re-download the four original files of {source} into {folder}.")
    for key, filename in IDX_FILES.items():
        array, path = arrays[key], folder / filename
        if key.endswith("_images"):
            if array.ndim != 3 or array.shape[1:] != IMAGE_SIZE or array.dtype != np.uint8:
                raise ValueError(
                    f"{path} holds {_describe_idx(array)}, but an images file must hold "
                    f"images of shape (n, {IMAGE_SIZE[0]}, {IMAGE_SIZE[1]}), uint8. {fix}")
        elif (array.ndim != 1 or not np.issubdtype(array.dtype, np.integer)
              or (array.size and (array.min() < 0 or array.max() >= NUM_CLASSES))):
            raise ValueError(
                f"{path} holds {_describe_idx(array)}, but a labels file must hold one "
                f"integer label 0-{NUM_CLASSES - 1} per image, shape (n,). {fix}")
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise ValueError(
                f"{folder / IDX_FILES[split + '_images']} holds {len(images)} images but "
                f"{folder / IDX_FILES[split + '_labels']} holds {len(labels)} labels; the two "
                f"files of a split must pair up one to one. {fix}")


def _to_float_images(images):
    return (images.astype(np.float32) / 255.0)[..., None]


class TrainTestOverlapWarning(UserWarning):
    """Test images that also stand in the training set: test-set numbers are optimistic."""


def _image_digest(image):
    """A short hash of an image's bytes: equal images, equal digests."""
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()


def train_test_overlap(x_train, x_test):
    """Indices of the test images that are byte-identical to some training image.

    The published MNIST and Fashion-MNIST splits share no image, so a non-empty
    result means the files are not the originals, and a "test" likelihood or
    accuracy measured on them is partly measured on training data.

    Args:
        x_train: training images, any array of shape ``(n, ...)``.
        x_test: test images of the same dtype and image shape.

    Returns:
        A sorted int64 array of indices into ``x_test``.
    """
    seen = {_image_digest(image) for image in np.asarray(x_train)}
    return np.array([i for i, image in enumerate(np.asarray(x_test)) if _image_digest(image) in seen],
                    dtype=np.int64)


def training_mask_without_test_images(x_train, x_test):
    """A boolean mask over ``x_train``: True for images that are not also test images.

    With files whose splits overlap (see :func:`train_test_overlap`), training on
    ``x_train[mask]`` makes the whole test set clean again: every test figure is
    then measured on images the model never saw. With the published files the
    mask is all True.
    """
    test_digests = {_image_digest(image) for image in np.asarray(x_test)}
    return np.array([_image_digest(image) not in test_digests for image in np.asarray(x_train)],
                    dtype=bool)


def warn_about_overlap(x_train, x_test, source="these files"):
    """Warn (:class:`TrainTestOverlapWarning`) if test images also stand in the training set.

    Called where a test-set figure is reported (:func:`vae_keras.runs.train`,
    ``vae-keras evaluate``), not by the loaders: a loader returns what the files
    hold, and its callers decide what to measure on it.

    Returns:
        The number of test images that are byte-identical to a training image.
    """
    overlap = train_test_overlap(x_train, x_test)
    if len(overlap):
        warnings.warn(
            f"{len(overlap)} of the {len(x_test)} test images of {source} are byte-identical to "
            f"training images (the published split has none): test-set numbers measured on them "
            f"are optimistic. Use the original files (or Keras's download), or evaluate on "
            f"images held out from the training set; vae_keras.data.train_test_overlap(x_train, "
            f"x_test) lists the shared ones.", TrainTestOverlapWarning, stacklevel=2)
    return int(len(overlap))


def load_dataset(name, data_dir=None):
    """Load a dataset's standard train/test split as float32 images in [0, 1].

    Args:
        name: ``"mnist"`` or ``"fashion_mnist"``.
        data_dir: folder holding ``mnist/`` and ``fashion-mnist/`` with the IDX
            files; default ``$VAE_KERAS_DATA``; if neither is set, Keras downloads.

    Returns:
        ``((x_train, y_train), (x_test, y_test))`` with images of shape
        ``(n, 28, 28, 1)`` float32 in [0, 1] and integer labels 0-9 of shape ``(n,)``.

    Raises:
        ValueError: unknown name, a data directory without the expected files, or
            files that do not hold what their names say (labels under an images
            name, image and label counts that differ).
        RuntimeError: no data directory and Keras could not download the data.

    The split is returned as the files hold it; :func:`warn_about_overlap` checks
    that no test image also stands in the training set (the shared MNIST copy of
    this project's machines fails that check: see data/README.md).
    """
    from vae_keras import _checks

    name = _checks.check_choice("dataset", name, tuple(DATASETS))
    data_dir = resolve_data_dir(data_dir)
    if data_dir is not None:
        folder = _dataset_folder(data_dir, name)
        arrays = {key: read_idx(folder / filename) for key, filename in IDX_FILES.items()}
        _check_idx_arrays(folder, arrays, DATASETS[name][2])
        x_train, y_train = arrays["train_images"], arrays["train_labels"]
        x_test, y_test = arrays["test_images"], arrays["test_labels"]
    else:
        import keras

        module = getattr(keras.datasets, DATASETS[name][1])
        try:
            (x_train, y_train), (x_test, y_test) = module.load_data()
        except Exception as error:  # no internet, proxy, ...: say what to do instead
            raise RuntimeError(
                f"Keras could not download {name} ({error}). Without internet, download the "
                f"IDX files elsewhere and set {DATA_DIR_VARIABLE} (or data_dir=) to their "
                f"folder; see data/README.md."
            ) from error
    return ((_to_float_images(x_train), y_train.astype(np.int64)),
            (_to_float_images(x_test), y_test.astype(np.int64)))


def load_mnist(data_dir=None):
    """MNIST as ``((x_train, y_train), (x_test, y_test))``; see :func:`load_dataset`."""
    return load_dataset("mnist", data_dir)


def load_fashion_mnist(data_dir=None):
    """Fashion-MNIST as ``((x_train, y_train), (x_test, y_test))``; see :func:`load_dataset`."""
    return load_dataset("fashion_mnist", data_dir)


def binarize(images, seed=None):
    """Sample binary images with each pixel ~ Bernoulli(gray value), as float32.

    A fixed binarization (one draw with a seed), as used for a test set when
    reporting likelihoods on dynamically binarized MNIST.
    """
    images = np.asarray(images, dtype=np.float32)
    rng = np.random.default_rng(seed)
    return (rng.random(images.shape, dtype=np.float32) < images).astype(np.float32)


def check_pipeline_images(images, binarize=False):
    """Images for a ``tf.data`` pipeline as float32 ``(n, h, w, c)``; ValueError otherwise."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must have shape (n, height, width, channels), got {images.shape}; "
                         f"add a channel axis with images[..., None].")
    if binarize and (images.min() < 0 or images.max() > 1):
        raise ValueError("binarize=True needs pixel values in [0, 1] (they are probabilities); "
                         "divide raw 0-255 pixels by 255 first.")
    return images


def make_dataset(images, batch_size=128, shuffle=True, binarize=False, seed=None,
                 drop_remainder=False, labels=None):
    """A ``tf.data`` pipeline of image batches (or image-label pairs) for ``fit``/``evaluate``.

    Shuffling permutes indices and gathers each batch from the images held in
    memory, which is cheaper than shuffling the images themselves. ``VAE.fit``
    plays a finite dataset over all its epochs from one iterator; every pass has
    a new order and new binarization noise. (A run that must stop and resume
    with the same batches uses :func:`vae_keras.runs.epoch_dataset`.)

    Args:
        images: float array ``(n, h, w, c)`` in [0, 1].
        batch_size: images per batch.
        shuffle: a new order on every pass (epoch).
        binarize: dynamic binarization: every pass draws fresh binary images with
            each pixel ~ Bernoulli(gray value), the protocol of the likelihood
            literature (it also acts as a regularizer).
        seed: optional int making shuffling and binarization repeatable.
        drop_remainder: drop the last, smaller batch (gives static batch shapes).
        labels: optional class labels ``(n,)``, one per image; batches are then
            ``(images, labels)`` pairs (int64 labels), as a
            :class:`~vae_keras.ConditionalVAE` trains on.

    Returns:
        A ``tf.data.Dataset`` yielding float32 batches (or ``(images, labels)``
        pairs), prefetched.
    """
    images = check_pipeline_images(images, binarize)
    batch_size = _checks.check_whole_number("batch_size", batch_size)
    count = len(images)
    pixels = tf.constant(images)  # copied once, shared by every pass
    indices = tf.data.Dataset.range(count)
    if shuffle:
        indices = indices.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    # Fresh noise seeds on every pass, so each epoch sees new binary samples.
    noise_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    batches = tf.data.Dataset.zip((indices.batch(batch_size, drop_remainder=drop_remainder),
                                   noise_seeds))

    return gather_batches(batches, pixels, binarize, labels)


def gather_batches(batches, pixels, binarize, labels=None):
    """Map ``(batch_indices, noise_seed)`` pairs to image batches, binarized if asked.

    Shared by :func:`make_dataset` and :func:`vae_keras.runs.epoch_dataset`,
    which differ only in how they order the indices and choose the seeds. With
    ``labels`` (one per image) the batches are ``(images, labels)`` pairs.
    """
    if labels is not None:
        labels = tf.constant(_checks.check_labels(labels, int(pixels.shape[0])))

    def gather(batch_indices, noise_seed):
        batch = tf.gather(pixels, batch_indices)
        if binarize:
            uniform = tf.random.stateless_uniform(tf.shape(batch), seed=noise_seed)
            batch = tf.cast(uniform < batch, tf.float32)
        return batch if labels is None else (batch, tf.gather(labels, batch_indices))

    return batches.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
