"""Shared fixtures: small synthetic images and a toy VAE trained once per session.

Unit tests make their own small arrays (8x8 "bar" images train in seconds); only
tests marked ``slow`` read the real datasets, from ``$VAE_KERAS_DATA`` or
``../shared/datasets``.
"""

import gzip
import os
import pathlib
import struct

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import vae_keras as vk  # noqa: E402

TOY_SHAPE = (8, 8, 1)
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def make_bar_images(count, size=8, seed=0):
    """Binary images with one horizontal and one vertical bar: 2-D structure to learn."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, size, size, 1), dtype=np.float32)
    rows, cols = rng.integers(0, size, count), rng.integers(0, size, count)
    images[np.arange(count), rows, :, 0] = 1.0
    images[np.arange(count), :, cols, 0] = 1.0
    return images


@pytest.fixture
def bar_images():
    return make_bar_images(512)


@pytest.fixture(scope="session")
def trained_toy_vae():
    """A small dense VAE trained on bar images; shared by the evaluation tests."""
    keras.utils.set_random_seed(0)
    images = make_bar_images(2048, seed=1)
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(64,))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(images, epochs=15, batch_size=64, verbose=0)
    return model, make_bar_images(256, seed=2)


BACKEND = keras.backend.backend()
tensorflow_only = pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="a TensorFlow-only fast path (other backends use the plain keras.ops form)")


def write_idx(path, array):
    """Write ``array`` (uint8) as a gzip IDX file, the format of the MNIST files."""
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.tobytes())


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    """Every test's caches (checksums, judges) in a folder of the session, not ~/.cache."""
    folder = tmp_path_factory.mktemp("cache")
    previous = os.environ.get(vk.data.CACHE_VARIABLE)
    os.environ[vk.data.CACHE_VARIABLE] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop(vk.data.CACHE_VARIABLE, None)
    else:
        os.environ[vk.data.CACHE_VARIABLE] = previous


def file_md5(path):
    """The MD5 of a gzip file's decompressed contents, as the loader computes it."""
    import hashlib

    with gzip.open(path, "rb") as handle:
        return hashlib.md5(handle.read()).hexdigest()


@pytest.fixture
def fake_data_dir(tmp_path, monkeypatch):
    """A data directory with a tiny MNIST-shaped dataset in IDX files (random digits).

    Its four files stand in for the originals: their sums replace the published ones
    for the test, so loading them passes the checksum check silently.
    """
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    for prefix, count in [("train", 700), ("t10k", 100)]:
        images = (rng.random((count, 28, 28)) < 0.2) * rng.integers(0, 256, (count, 28, 28))
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, count))
    sums = {path.name: file_md5(path) for path in folder.glob("*.gz")}
    monkeypatch.setitem(vk.data.ORIGINAL_MD5, "mnist", sums)
    return tmp_path


def real_data_dir():
    """The real datasets' folder, or None where there is none (then slow tests skip)."""
    for candidate in [os.environ.get("VAE_KERAS_DATA"), REPO_ROOT.parent / "shared" / "datasets"]:
        if candidate and (pathlib.Path(candidate) / "mnist").is_dir():
            return pathlib.Path(candidate)
    return None


def press_ctrl_c_at_end_of_second_epoch(monkeypatch):
    """Raise KeyboardInterrupt as the second epoch ends, before it is checkpointed."""
    original = vk.callbacks.NonFiniteLossGuard.on_epoch_end

    def interrupt(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(vk.callbacks.NonFiniteLossGuard, "on_epoch_end", interrupt)
