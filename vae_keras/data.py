"""MNIST and Fashion-MNIST loading, and tf.data input pipelines.

The loaders read the original IDX gzip files (as published by the datasets'
authors) from a data directory, so they work offline; with no directory they
fall back to Keras's own download. The directory is, in order of precedence:

1. the ``data_dir`` argument,
2. the environment variable ``VAE_KERAS_DATA``.

It holds one folder per dataset (``mnist/``, ``fashion-mnist/``) with the four
files each; see ``data/README.md``.
"""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import gzip
import hashlib
import json
import os
import pathlib
import warnings

import numpy as np
import tensorflow as tf

from vae_keras import _checks

from vae_keras.settings import DATA_DIR_VARIABLE  # noqa: E402  (its home: no TensorFlow there)

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

# MD5 sums of the decompressed original files, the ones torchvision and other loaders
# list for the published originals. The .gz files may be compressed differently (the
# shared copies on this project's machines are), so the decompressed bytes are checked.
ORIGINAL_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

CACHE_VARIABLE = "VAE_KERAS_CACHE"


class DatasetChecksumWarning(UserWarning):
    """A dataset file whose contents differ from the published original."""


_warned_files = set()  # warn once per file and process, not on every load


def cache_dir():
    """The folder for the library's caches: ``$VAE_KERAS_CACHE``, else ``~/.cache/vae_keras``."""
    return pathlib.Path(os.environ.get(CACHE_VARIABLE) or "~/.cache/vae_keras").expanduser()


def _checksum_cache_path():
    return cache_dir() / "checksums.json"


def _read_checksum_cache():
    try:
        return json.loads(_checksum_cache_path().read_text())
    except (OSError, ValueError):
        return {}  # no cache yet, or a damaged one: hash again


def _write_checksum_cache(cache):
    path = _checksum_cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(cache, indent=1, sort_keys=True))
        os.replace(temporary, path)  # atomic: two notebooks loading at once cannot tear it
    except OSError:
        pass  # a read-only home: the check still runs, only uncached


def decompressed_md5(path, raw=None):
    """The MD5 sum of a file's decompressed contents, cached by (path, size, mtime).

    The cache (``checksums.json`` in :func:`cache_dir`) lets a notebook load MNIST
    without hashing 47 MB each time; a file that is replaced or touched gets a new
    size or modification time and is hashed again.

    Args:
        path: an IDX file, gzip-compressed (``.gz``) or not.
        raw: its decompressed bytes, if the caller has read them already.
    """
    path = pathlib.Path(path).resolve()
    status = path.stat()
    key = f"{path}|{status.st_size}|{status.st_mtime_ns}"
    cache = _read_checksum_cache()
    if key in cache:
        return cache[key]
    if raw is None:
        raw = _read_decompressed(path)
    digest = hashlib.md5(raw, usedforsecurity=False).hexdigest()
    cache = {k: v for k, v in cache.items() if not k.startswith(f"{path}|")}  # drop stale ones
    cache[key] = digest
    _write_checksum_cache(cache)
    return digest


def verify_original(path, expected_md5, source="the original dataset", raw=None):
    """Warn once (:class:`DatasetChecksumWarning`) if a file is not the published original.

    A copy that differs is not always broken, but its results are not comparable with
    published ones, and a copy on this project's machines once held 8,573 test images
    in place of training images (see ``data/README.md``).

    Returns:
        True if the decompressed contents have ``expected_md5``, else False.
    """
    actual = decompressed_md5(path, raw)
    if actual == expected_md5:
        return True
    resolved = pathlib.Path(path).resolve()
    if resolved not in _warned_files:
        _warned_files.add(resolved)
        warnings.warn(
            f"{path} is not the original file of {source}: its decompressed contents have MD5 "
            f"{actual}, the original's is {expected_md5}. Results measured on it are not "
            f"comparable with published ones. Download the original file again into "
            f"{pathlib.Path(path).parent}, or leave the data directory unset so that Keras "
            f"downloads the data.", DatasetChecksumWarning, stacklevel=3)
    return False


def _read_decompressed(path):
    """A file's bytes, decompressed if it ends in ``.gz``; ValueError naming the file otherwise."""
    path = pathlib.Path(path)
    if path.suffix != ".gz":
        return path.read_bytes()
    redownload = ("Download it again (the original files of MNIST and Fashion-MNIST are "
                  "listed in data/README.md), or leave the data directory unset so that Keras "
                  "downloads the data.")
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except gzip.BadGzipFile:
        with open(path, "rb") as handle:
            start = handle.read(64)
        if start[:2] == b"\x00\x00":
            holds = "an uncompressed IDX file under a .gz name (remove the .gz from its name)"
        elif start.lstrip().lower().startswith((b"<!doctype", b"<html", b"<?xml")):
            holds = "a web page, as a failed download saves it"
        else:
            holds = f"no gzip data (it starts with {start[:16]!r})"
        raise ValueError(f"{path} is not a gzip file: it holds {holds}. {redownload}") from None
    except EOFError:
        raise ValueError(f"{path} is cut short: its gzip stream ends before the data does, as "
                         f"an interrupted download leaves it. {redownload}") from None


def read_idx(path, raw=None):
    """Read one IDX file (gzip-compressed or not) into a NumPy array.

    The format (LeCun's): two zero bytes, a type code, the number of dimensions,
    one big-endian 32-bit size per dimension, then the data.

    Args:
        path: the file.
        raw: its decompressed bytes, if already read (they are not read again).

    Raises:
        ValueError: if the file is not gzip where its name says so, is cut short,
            or is not in IDX format; the message names the file and the fix.
    """
    path = pathlib.Path(path)
    if raw is None:
        raw = _read_decompressed(path)
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


def _image_digest(image):
    """A short hash of an image's bytes: equal images, equal digests."""
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()


def train_test_overlap(x_train, x_test):
    """Indices of the test images that are byte-identical to some training image.

    The published MNIST and Fashion-MNIST splits share no image, so a non-empty
    result means the files are not the originals, and a "test" likelihood or
    accuracy measured on them is partly measured on training data. (This check
    found such a copy on this project's machines: see ``data/README.md``.)

    Args:
        x_train: training images, any array of shape ``(n, ...)``.
        x_test: test images of the same dtype and image shape.

    Returns:
        A sorted int64 array of indices into ``x_test``.
    """
    seen = {_image_digest(image) for image in np.asarray(x_train)}
    return np.array([i for i, image in enumerate(np.asarray(x_test)) if _image_digest(image) in seen],
                    dtype=np.int64)


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

    Files read from a data directory are checked against the MD5 sums of the
    published originals (:func:`verify_original`, cached per file); one that
    differs gets a :class:`DatasetChecksumWarning`, once.
    """
    from vae_keras import _checks

    name = _checks.check_choice("dataset", name, tuple(DATASETS))
    data_dir = resolve_data_dir(data_dir)
    if data_dir is not None:
        folder = _dataset_folder(data_dir, name)
        arrays = {}
        for key, filename in IDX_FILES.items():
            raw = _read_decompressed(folder / filename)
            verify_original(folder / filename, ORIGINAL_MD5[name][filename], DATASETS[name][2], raw)
            arrays[key] = read_idx(folder / filename, raw)
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


PIXEL_LEVELS = 256  # 8-bit images: the loaders divide the levels 0..255 by 255


def _pixel_levels(images):
    """The integer levels ``0 .. 255`` behind 8-bit images in [0, 1]; ValueError for others."""
    images = np.asarray(images, dtype=np.float32)
    levels = np.round(images * (PIXEL_LEVELS - 1))
    if images.size and (images.min() < 0 or images.max() > 1
                        or np.max(np.abs(levels - images * (PIXEL_LEVELS - 1))) > 1e-3):
        raise ValueError(
            "dequantize needs 8-bit images scaled to [0, 1] (the levels 0..255 divided by 255, "
            "as vk.load_mnist returns them); these are not on that grid. Dequantize the "
            "images before any other change (blurring, binarizing, noise).")
    return levels


def dequantize(images, seed=None):
    """Uniform dequantization: each 8-bit level ``k`` becomes ``(k + u) / 256``, ``u ~ U(0, 1)``.

    A density on ``[0, 1]^D`` fitted to 8-bit images can put unbounded density on
    the exact values ``k / 255`` (an all-black border, say), so its log-likelihood
    says little. Spreading each level over its own bin of width 1/256 removes
    that loophole: for any density ``p``, ``log p(x~) - D log 256`` averaged over
    the noise is a lower bound on the log-probability of the discrete image
    (Theis, van den Oord and Bethge, 2016), so likelihoods of different continuous
    models become comparable, in bits per dimension
    (:func:`vae_keras.losses.dequantized_bits_per_dim`). Notebook 08 uses it.

    Args:
        images: float array in [0, 1] holding 8-bit levels divided by 255.
        seed: optional int for the noise.

    Returns:
        float32 array of the same shape with values in ``[0, 1)``.

    Raises:
        ValueError: images that are not 8-bit levels divided by 255.
    """
    levels = _pixel_levels(images)
    noise = np.random.default_rng(seed).random(levels.shape, dtype=np.float32)
    # In float32, k + u for u just below 1 can round up to k + 1: keep each value in its own bin.
    top = np.nextafter(((levels + 1) / PIXEL_LEVELS).astype(np.float32), np.float32(0))
    return np.minimum(((levels + noise) / PIXEL_LEVELS).astype(np.float32), top)


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
                 drop_remainder=False, labels=None, dequantize=False):
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
        dequantize: uniform dequantization with fresh noise on every pass
            (:func:`dequantize`): for continuous likelihoods on 8-bit images.

    Returns:
        A ``tf.data.Dataset`` yielding float32 batches (or ``(images, labels)``
        pairs), prefetched.
    """
    images = check_pipeline_images(images, binarize)
    if binarize and dequantize:
        raise ValueError("Choose binarize=True (binary images for the Bernoulli likelihood) or "
                         "dequantize=True (grey levels for a continuous one), not both.")
    if dequantize:
        _pixel_levels(images)  # raises unless the images are 8-bit levels / 255
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

    return gather_batches(batches, pixels, binarize, labels, dequantize=dequantize)


def gather_batches(batches, pixels, binarize, labels=None, dequantize=False):
    """Map ``(batch_indices, noise_seed)`` pairs to image batches, binarized or dequantized if asked.

    Shared by :func:`make_dataset` and :func:`vae_keras.runs.epoch_dataset`,
    which differ only in how they order the indices and choose the seeds. With
    ``labels`` (one per image) the batches are ``(images, labels)`` pairs.
    """
    if labels is not None:
        labels = tf.constant(_checks.check_labels(labels, int(pixels.shape[0])))

    def gather(batch_indices, noise_seed):
        batch = tf.gather(pixels, batch_indices)
        if binarize or dequantize:
            uniform = tf.random.stateless_uniform(tf.shape(batch), seed=noise_seed)
        if binarize:
            batch = tf.cast(uniform < batch, tf.float32)
        elif dequantize:
            levels = tf.round(batch * (PIXEL_LEVELS - 1))
            top = tf.experimental.numpy.nextafter((levels + 1) / PIXEL_LEVELS, 0.0)  # own bin
            batch = tf.minimum((levels + uniform) / PIXEL_LEVELS, top)
        return batch if labels is None else (batch, tf.gather(labels, batch_indices))

    return batches.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
