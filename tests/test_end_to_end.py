"""End to end on real MNIST (a few thousand images): the VAE must beat a trivial model."""

import keras
import numpy as np
import pytest

import vae_keras as vk
from conftest import real_data_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mnist():
    data_dir = real_data_dir()
    if data_dir is None:
        pytest.skip("no MNIST data directory: set VAE_KERAS_DATA to run the end-to-end test")
    return vk.load_mnist(data_dir)


def test_loaders_read_the_standard_split(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28, 1) and x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(y_test).tolist()[:3] == [980, 1135, 1032]  # the published class counts
    assert x_train.dtype == np.float32 and x_train.max() == 1.0


def test_a_short_training_beats_the_per_pixel_mean_model(mnist):
    (x_train, _), (x_test, _) = mnist
    keras.utils.set_random_seed(0)
    train, test = x_train[:4000], vk.data.binarize(x_test[:1000], seed=0)
    model = vk.VAE(latent_dim=8)
    model.compile()
    model.fit(vk.make_dataset(train, 100, binarize=True, seed=0), epochs=5, verbose=0)
    # Baseline: every pixel an independent Bernoulli with its training-set mean.
    p = np.clip(train.mean(axis=0), 1e-3, 1 - 1e-3)
    baseline = float(np.mean(np.sum(test * np.log(p) + (1 - test) * np.log(1 - p), axis=(1, 2, 3))))
    elbo = model.elbo(test, seed=0)
    nll = model.nll(test[:200], num_samples=100, seed=0)
    assert elbo > baseline + 40, (elbo, baseline)  # ~206 nats for the baseline
    assert nll < -elbo + 1.0
