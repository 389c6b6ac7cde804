"""Data loading from IDX files and the tf.data pipeline."""

import gzip

import numpy as np
import pytest

import vae_keras as vk
from conftest import write_idx


def test_read_idx_round_trips(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(vk.data.read_idx(tmp_path / "a.gz"), array)
    with gzip.open(tmp_path / "junk.gz", "wb") as handle:
        handle.write(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="not an IDX file"):
        vk.data.read_idx(tmp_path / "junk.gz")


def test_loader_returns_float_images_in_0_1_with_labels(fake_data_dir):
    (x_train, y_train), (x_test, y_test) = vk.load_mnist(fake_data_dir)
    assert x_train.shape == (700, 28, 28, 1) and x_test.shape == (100, 28, 28, 1)
    assert x_train.dtype == np.float32 and 0.0 <= x_train.min() and x_train.max() <= 1.0
    assert y_train.shape == (700,) and set(np.unique(y_test)) <= set(range(10))


def test_labels_saved_under_the_images_name_are_named_not_loaded(fake_data_dir):
    folder = fake_data_dir / "mnist"
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(labels.read_bytes())
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz holds labels \(shape \(100,\)"
                                         r".*re-download"):
        vk.load_mnist(fake_data_dir)


def test_images_saved_under_the_labels_name_are_named(fake_data_dir):
    folder = fake_data_dir / "mnist"
    images = folder / "train-images-idx3-ubyte.gz"
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(images.read_bytes())
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz holds images .* labels file"):
        vk.load_mnist(fake_data_dir)


def test_image_and_label_counts_must_agree(fake_data_dir):
    write_idx(fake_data_dir / "mnist" / "train-labels-idx1-ubyte.gz", np.zeros(699))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz holds 700 images but "
                                         r".*train-labels-idx1-ubyte\.gz holds 699 labels"):
        vk.load_mnist(fake_data_dir)


@pytest.mark.parametrize("array, holds", [
    (np.zeros((100, 28 * 28)), r"a rank-2 array \(shape \(100, 784\)"),  # flattened images
    (np.zeros((100, 32, 32)), r"images \(shape \(100, 32, 32\)"),  # another dataset's size
])
def test_images_of_the_wrong_rank_or_size_are_named(fake_data_dir, array, holds):
    write_idx(fake_data_dir / "mnist" / "t10k-images-idx3-ubyte.gz", array)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz holds " + holds):
        vk.load_mnist(fake_data_dir)


def test_labels_outside_0_9_are_named(fake_data_dir):
    write_idx(fake_data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz", np.full(100, 200))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz holds labels.*0-9"):
        vk.load_mnist(fake_data_dir)


def test_data_dir_comes_from_the_environment_variable(fake_data_dir, monkeypatch):
    monkeypatch.setenv("VAE_KERAS_DATA", str(fake_data_dir))
    (x_train, _), _ = vk.load_mnist()
    assert len(x_train) == 700
    # the dataset's own folder works too
    (x_train, _), _ = vk.load_mnist(fake_data_dir / "mnist")
    assert len(x_train) == 700


def test_no_data_dir_falls_back_to_keras_download(monkeypatch):
    import keras

    monkeypatch.delenv("VAE_KERAS_DATA", raising=False)
    calls = []

    def fake_load_data():
        calls.append(True)
        return ((np.zeros((3, 28, 28), np.uint8), np.zeros(3, np.uint8)),
                (np.full((2, 28, 28), 255, np.uint8), np.ones(2, np.uint8)))

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", fake_load_data)
    _, (x_test, y_test) = vk.load_fashion_mnist()
    assert calls and x_test.max() == 1.0 and x_test.shape == (2, 28, 28, 1)

    def offline():
        raise OSError("no network")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(RuntimeError, match="VAE_KERAS_DATA"):
        vk.load_fashion_mnist()


def test_dynamic_binarization_draws_new_binary_images_every_epoch():
    images = np.full((64, 4, 4, 1), 0.5, np.float32)
    dataset = vk.make_dataset(images, batch_size=64, shuffle=False, binarize=True, seed=0)
    first, second = next(iter(dataset)).numpy(), next(iter(dataset)).numpy()
    assert set(np.unique(first)) == {0.0, 1.0}
    assert not np.array_equal(first, second)
    assert abs(first.mean() - 0.5) < 0.05  # Bernoulli(0.5) pixels


def test_pipeline_shuffles_batches_and_keeps_every_image():
    images = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1) / 10
    batches = list(vk.make_dataset(images, batch_size=4, seed=1))
    assert [len(b) for b in batches] == [4, 4, 2]
    values = np.concatenate([b.numpy().ravel() for b in batches])
    assert sorted(values) == sorted(images.ravel()) and not np.array_equal(values, images.ravel())


def test_labels_travel_with_their_images_and_binarization_is_unchanged():
    images = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1) / 10
    labels = np.arange(10) * 7
    pairs = list(vk.make_dataset(images, batch_size=4, seed=1, labels=labels))
    values = np.concatenate([x.numpy().ravel() for x, _ in pairs])
    np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in pairs]),
                                  np.round(values * 10).astype(int) * 7)  # shuffled together
    gray = np.random.default_rng(0).random((64, 4, 4, 1)).astype(np.float32)
    alone = vk.make_dataset(gray, 16, binarize=True, seed=3)
    paired = vk.make_dataset(gray, 16, binarize=True, seed=3, labels=np.zeros(64, int))
    for x, (x_paired, _) in zip(alone, paired):  # the same order and the same binary draws
        np.testing.assert_array_equal(x.numpy(), x_paired.numpy())


def test_fixed_binarization_is_repeatable():
    images = np.random.default_rng(0).random((5, 4, 4, 1)).astype(np.float32)
    np.testing.assert_array_equal(vk.data.binarize(images, seed=3), vk.data.binarize(images, seed=3))


def test_pipeline_argument_errors():
    with pytest.raises(ValueError, match="channel axis"):
        vk.make_dataset(np.zeros((4, 28, 28)))
    with pytest.raises(ValueError, match="255"):
        vk.make_dataset(np.full((4, 2, 2, 1), 9.0), binarize=True)
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        vk.make_dataset(np.zeros((4, 2, 2, 1)), labels=[0, 1, 2])
    with pytest.raises(ValueError, match="whole numbers"):
        vk.make_dataset(np.zeros((2, 2, 2, 1)), labels=[0.5, 1])


def test_test_images_that_stand_in_the_training_file_are_found(fake_data_dir):
    from conftest import write_idx

    (x_train, _), (x_test, _) = vk.load_mnist(fake_data_dir)
    assert len(vk.data.train_test_overlap(x_train, x_test)) == 0  # disjoint
    folder = fake_data_dir / "mnist"
    train = vk.data.read_idx(folder / "train-images-idx3-ubyte.gz")
    test = vk.data.read_idx(folder / "t10k-images-idx3-ubyte.gz")
    train[[5, 50]] = test[[3, 7]]  # two test images leak into the training file
    write_idx(folder / "train-images-idx3-ubyte.gz", train)
    with pytest.warns(vk.data.DatasetChecksumWarning):  # no longer the "original"
        (x_train, _), (x_test, _) = vk.load_mnist(fake_data_dir)
    np.testing.assert_array_equal(vk.data.train_test_overlap(x_train, x_test), [3, 7])


def test_original_files_load_silently(fake_data_dir):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vk.load_mnist(fake_data_dir)


def test_one_changed_byte_warns_once_naming_the_file_and_both_sums(fake_data_dir):
    import gzip

    from conftest import file_md5

    path = fake_data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz"
    expected = file_md5(path)
    with gzip.open(path, "rb") as handle:
        raw = bytearray(handle.read())
    raw[-1] = (raw[-1] + 1) % 10  # still a valid label, so only the sum can tell
    with gzip.open(path, "wb") as handle:
        handle.write(bytes(raw))
    with pytest.warns(vk.data.DatasetChecksumWarning) as caught:
        vk.load_mnist(fake_data_dir)
    message = str(caught[0].message)
    assert str(path) in message and expected in message and file_md5(path) in message
    assert "Download the original file again" in message
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per file: the second load is silent
        vk.load_mnist(fake_data_dir)


def test_checksums_are_cached_by_path_size_and_mtime(fake_data_dir, monkeypatch, tmp_path):
    import hashlib
    import os

    monkeypatch.setenv(vk.data.CACHE_VARIABLE, str(tmp_path / "own-cache"))
    calls = []
    real_md5 = hashlib.md5

    def counting_md5(*args, **kwargs):
        calls.append(1)
        return real_md5(*args, **kwargs)

    monkeypatch.setattr(vk.data.hashlib, "md5", counting_md5)
    vk.load_mnist(fake_data_dir)
    assert len(calls) == 4  # each file hashed once
    vk.load_mnist(fake_data_dir)
    assert len(calls) == 4  # then read from the cache
    assert (tmp_path / "own-cache" / "checksums.json").is_file()
    path = fake_data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz"
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))  # touched: hash again
    vk.load_mnist(fake_data_dir)
    assert len(calls) == 5


def test_the_published_sums_are_the_ones_in_the_shared_readme():
    from conftest import REPO_ROOT

    readme = REPO_ROOT.parent / "shared" / "datasets" / "README.md"
    if not readme.is_file():
        pytest.skip("no shared datasets README beside the checkout")
    text = readme.read_text()
    for name, folder in [("mnist", "mnist"), ("fashion_mnist", "fashion-mnist")]:
        for filename, digest in vk.data.ORIGINAL_MD5[name].items():
            assert f"{digest}  {folder}/{filename.removesuffix('.gz')}" in text


@pytest.mark.parametrize("content, says", [
    (b"<!DOCTYPE html><html><body>Not found</body></html>", "a web page"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02", "an uncompressed IDX file"),
])
def test_a_gz_that_is_not_gzip_is_named_with_what_it_holds(fake_data_dir, content, says):
    path = fake_data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a gzip file") as caught:
        vk.load_mnist(fake_data_dir)
    assert str(path) in str(caught.value) and says in str(caught.value)


def test_a_gzip_stream_cut_short_is_named(fake_data_dir):
    path = fake_data_dir / "mnist" / "train-images-idx3-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut short") as caught:
        vk.load_mnist(fake_data_dir)
    assert str(path) in str(caught.value)


def test_dequantization_spreads_each_level_over_its_own_bin():
    levels = np.arange(256, dtype=np.float32).reshape(1, 16, 16, 1)
    images = levels / 255
    dequantized = vk.data.dequantize(np.repeat(images, 50, axis=0), seed=0)
    assert dequantized.dtype == np.float32 and 0 <= dequantized.min() and dequantized.max() < 1
    np.testing.assert_array_equal(np.floor(dequantized * 256), np.repeat(levels, 50, axis=0))
    # Uniform within the bin: the offset averages 1/2 (50 draws per level, 12,800 in all).
    assert abs(float(np.mean(dequantized * 256 - np.floor(dequantized * 256))) - 0.5) < 0.01
    np.testing.assert_array_equal(vk.data.dequantize(images, seed=3), vk.data.dequantize(images, seed=3))
    assert not np.array_equal(vk.data.dequantize(images, seed=3), vk.data.dequantize(images, seed=4))


@pytest.mark.parametrize("images", [np.full((2, 4, 4, 1), 0.3, np.float32),   # not k / 255
                                    np.full((2, 4, 4, 1), 2.0, np.float32)])  # not in [0, 1]
def test_dequantization_refuses_images_off_the_8_bit_grid(images):
    with pytest.raises(ValueError, match="8-bit images scaled to"):
        vk.data.dequantize(images)
    with pytest.raises(ValueError, match="8-bit images scaled to"):
        vk.make_dataset(images, dequantize=True)


def test_the_pipeline_dequantizes_with_fresh_noise_every_epoch():
    images = np.round(np.random.default_rng(0).random((64, 4, 4, 1)) * 255).astype(np.float32) / 255
    dataset = vk.make_dataset(images, batch_size=64, shuffle=False, dequantize=True, seed=0)
    first, second = next(iter(dataset)).numpy(), next(iter(dataset)).numpy()
    np.testing.assert_array_equal(np.floor(first * 256), np.round(images * 255))
    np.testing.assert_array_equal(np.floor(second * 256), np.round(images * 255))
    assert not np.array_equal(first, second)
    with pytest.raises(ValueError, match="not both"):
        vk.make_dataset(images, binarize=True, dequantize=True)
