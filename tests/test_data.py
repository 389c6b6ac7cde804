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


def test_test_images_that_stand_in_the_training_file_are_reported(fake_data_dir):
    import warnings

    from conftest import write_idx

    (x_train, _), (x_test, _) = vk.load_mnist(fake_data_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error", vk.data.TrainTestOverlapWarning)
        assert vk.data.warn_about_overlap(x_train, x_test) == 0  # disjoint: no warning
    folder = fake_data_dir / "mnist"
    train = vk.data.read_idx(folder / "train-images-idx3-ubyte.gz")
    test = vk.data.read_idx(folder / "t10k-images-idx3-ubyte.gz")
    train[[5, 50]] = test[[3, 7]]  # two test images leak into the training file
    write_idx(folder / "train-images-idx3-ubyte.gz", train)
    (x_train, _), (x_test, _) = vk.load_mnist(fake_data_dir)  # the loader returns the files as they are
    np.testing.assert_array_equal(vk.data.train_test_overlap(x_train, x_test), [3, 7])
    with pytest.warns(vk.data.TrainTestOverlapWarning, match="2 of the 100 test images"):
        assert vk.data.warn_about_overlap(x_train, x_test, source="mnist") == 2
    # A training run, which reports test figures, says so.
    settings = vk.runs.RunSettings(data_dir=str(fake_data_dir), validation_size=100)
    with pytest.warns(vk.data.TrainTestOverlapWarning):
        vk.runs.load_training_data(settings)


def test_the_training_mask_drops_exactly_the_images_shared_with_the_test_set():
    rng = np.random.default_rng(0)
    x_train = rng.random((20, 4, 4, 1)).astype(np.float32)
    x_test = rng.random((6, 4, 4, 1)).astype(np.float32)
    x_test[[1, 4]] = x_train[[3, 17]]
    mask = vk.data.training_mask_without_test_images(x_train, x_test)
    assert mask.dtype == bool and mask.shape == (20,)
    assert sorted(np.flatnonzero(~mask)) == [3, 17]
    assert len(vk.data.train_test_overlap(x_train[mask], x_test)) == 0
