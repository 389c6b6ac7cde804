"""vae_keras.applications: ROC AUC, anomaly scores, noise, code lengths (small synthetic data)."""

import itertools
import math

import numpy as np
import pytest

from vae_keras import applications, losses
from conftest import make_bar_images


def brute_force_auc(negative, positive):
    """P(s+ > s-) + 0.5 P(s+ = s-) by counting every pair."""
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0
               for n, p in itertools.product(negative, positive))
    return wins / (len(negative) * len(positive))


# ----------------------------------------------------------------------------- ROC


@pytest.mark.parametrize("seed", range(6))
def test_roc_auc_matches_the_pairwise_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    # Few distinct values, so there are many ties within and across the two sides.
    negative = rng.integers(0, 6, size=rng.integers(1, 40)).astype(float)
    positive = rng.integers(2, 8, size=rng.integers(1, 40)).astype(float)
    assert applications.roc_auc(negative, positive) == pytest.approx(
        brute_force_auc(negative, positive), abs=1e-12)


def test_roc_auc_extremes_and_symmetry():
    assert applications.roc_auc([0.0, 1.0, 2.0], [3.0, 4.0]) == 1.0
    assert applications.roc_auc([3.0, 4.0], [0.0, 1.0, 2.0]) == 0.0
    assert applications.roc_auc([1.0, 1.0], [1.0, 1.0, 1.0]) == 0.5
    rng = np.random.default_rng(0)
    negative, positive = rng.normal(size=30), rng.normal(0.5, size=20)
    assert applications.roc_auc(negative, positive) + applications.roc_auc(positive, negative) \
        == pytest.approx(1.0)
    # Integer and float32 scores work the same as float64.
    assert applications.roc_auc(np.array([1, 2]), np.array([2, 3], np.int32)) == pytest.approx(0.875)


@pytest.mark.parametrize("seed", range(3))
def test_roc_curve_area_is_the_auc(seed):
    rng = np.random.default_rng(seed)
    negative = np.round(rng.normal(size=50), 1)
    positive = np.round(rng.normal(0.7, size=30), 1)
    false_positive_rate, true_positive_rate = applications.roc_curve(negative, positive)
    assert (false_positive_rate[0], true_positive_rate[0]) == (0.0, 0.0)
    assert (false_positive_rate[-1], true_positive_rate[-1]) == (1.0, 1.0)
    assert np.all(np.diff(false_positive_rate) >= 0) and np.all(np.diff(true_positive_rate) >= 0)
    area = np.sum(np.diff(false_positive_rate)
                  * (true_positive_rate[1:] + true_positive_rate[:-1]) / 2)
    assert area == pytest.approx(applications.roc_auc(negative, positive), abs=1e-12)


@pytest.mark.parametrize("function", [applications.roc_auc, applications.roc_curve])
def test_bad_scores_are_rejected(function):
    with pytest.raises(ValueError, match="empty"):
        function([], [1.0])
    with pytest.raises(ValueError, match="1-D"):
        function(np.zeros((2, 2)), [1.0])
    with pytest.raises(ValueError, match="NaN"):
        function([1.0, np.nan], [1.0])
    with pytest.raises(TypeError, match="numbers"):
        function(["a", "b"], [1.0])
    with pytest.raises(TypeError, match="1-D array"):
        function("scores", [1.0])
    with pytest.raises(TypeError):
        function([1.0], None)


# ----------------------------------------------------------------------------- scores


def test_anomaly_scores_rank_noise_above_the_training_images(trained_toy_vae):
    model, images = trained_toy_vae
    rng = np.random.default_rng(0)
    noise = (rng.random((64,) + images.shape[1:]) < 0.5).astype(np.float32)
    normal = applications.anomaly_scores(model, images[:64], seed=0)
    anomalous = applications.anomaly_scores(model, noise, seed=0)
    assert normal.shape == (64,)
    assert applications.roc_auc(normal, anomalous) > 0.95
    # The ELBO score is minus vae_keras.evaluation's ELBO; the IWAE score is below it on average.
    np.testing.assert_allclose(normal, -model.elbo(images[:64], per_image=True, seed=0), rtol=1e-6)
    iwae = applications.anomaly_scores(model, images[:64], num_samples=20, seed=0)
    assert iwae.shape == (64,) and iwae.mean() < normal.mean() + 0.5


def test_anomaly_scores_reject_bad_arguments(trained_toy_vae):
    model, images = trained_toy_vae
    with pytest.raises(ValueError, match="num_samples"):
        applications.anomaly_scores(model, images, num_samples=0)
    with pytest.raises(TypeError, match="num_samples"):
        applications.anomaly_scores(model, images, num_samples=2.5)
    with pytest.raises(TypeError, match="VAE"):
        applications.anomaly_scores("model.keras", images)
    with pytest.raises(ValueError, match="seed"):
        applications.anomaly_scores(model, images, seed=-1)
    with pytest.raises(ValueError, match="shape"):
        applications.anomaly_scores(model, images[..., 0])


# ----------------------------------------------------------------------------- noise


def test_gaussian_noise_is_seeded_clipped_and_centred():
    clean = np.full((200, 8, 8, 1), 0.5, np.float32)
    noisy = applications.add_gaussian_noise(clean, 0.1, seed=3)
    assert noisy.shape == clean.shape and noisy.dtype == np.float32
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0
    assert abs(float(noisy.mean()) - 0.5) < 0.01
    assert float(np.std(noisy - clean)) == pytest.approx(0.1, rel=0.05)
    np.testing.assert_array_equal(noisy, applications.add_gaussian_noise(clean, 0.1, seed=3))
    np.testing.assert_array_equal(applications.add_gaussian_noise(clean, 0, seed=1), clean)
    clipped = applications.add_gaussian_noise(make_bar_images(16), 5.0, seed=0)
    assert clipped.min() == 0.0 and clipped.max() == 1.0


def test_salt_and_pepper_replaces_the_requested_fraction():
    clean = np.full((100, 8, 8, 1), 0.5, np.float32)
    noisy = applications.add_salt_and_pepper(clean, 0.3, seed=1)
    replaced = noisy != 0.5
    assert replaced.mean() == pytest.approx(0.3, abs=0.02)
    assert set(np.unique(noisy[replaced])) == {0.0, 1.0}
    assert (noisy[replaced] == 1.0).mean() == pytest.approx(0.5, abs=0.05)
    np.testing.assert_array_equal(noisy, applications.add_salt_and_pepper(clean, 0.3, seed=1))
    np.testing.assert_array_equal(applications.add_salt_and_pepper(clean, 0.0, seed=0), clean)
    assert set(np.unique(applications.add_salt_and_pepper(clean, 1.0, seed=0))) <= {0.0, 1.0}


@pytest.mark.parametrize("function, level", [
    (applications.add_gaussian_noise, 0.1), (applications.add_salt_and_pepper, 0.1)])
def test_noise_rejects_bad_input(function, level):
    good = np.zeros((2, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match="/ 255"):
        function(np.zeros((2, 8, 8, 1), np.uint8), level)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        function(good + 2.0, level)
    with pytest.raises(ValueError, match="NaN"):
        function(np.full((2, 8, 8, 1), np.nan, np.float32), level)
    with pytest.raises(ValueError, match="batch"):
        function(np.zeros(5, np.float32), level)
    with pytest.raises(TypeError):
        function("images.png", level)
    with pytest.raises(ValueError):
        function(good, -0.1)
    with pytest.raises(TypeError):
        function(good, "0.1")
    with pytest.raises(TypeError, match="seed"):
        function(good, level, seed=1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        applications.add_salt_and_pepper(good, 1.5)


def test_mean_squared_error_per_image():
    clean = np.zeros((3, 4, 4, 1), np.float32)
    other = clean.copy()
    other[1] = 0.5
    other[2, 0, 0, 0] = 1.0
    np.testing.assert_allclose(applications.mean_squared_error(other, clean), [0.0, 0.25, 1 / 16])
    with pytest.raises(ValueError, match="same shape"):
        applications.mean_squared_error(other, clean[:2])
    with pytest.raises(TypeError):
        applications.mean_squared_error(other, "clean")


# ----------------------------------------------------------------------------- code lengths


def test_code_length_is_the_kl_in_bits():
    rng = np.random.default_rng(0)
    z_mean, z_log_var = rng.normal(size=(5, 3)), rng.normal(scale=0.5, size=(5, 3))
    expected = 0.5 * np.sum(z_mean**2 + np.exp(z_log_var) - 1 - z_log_var, axis=1) / math.log(2)
    np.testing.assert_allclose(applications.code_length_bits(z_mean, z_log_var), expected,
                               rtol=1e-10)
    # A posterior equal to the prior costs nothing; one nat is 1/ln 2 bits.
    np.testing.assert_allclose(applications.code_length_bits(np.zeros((2, 4)), np.zeros((2, 4))), 0)
    one_nat = np.array([[math.sqrt(2.0)]])
    assert applications.code_length_bits(one_nat, np.zeros((1, 1)))[0] == pytest.approx(
        1 / math.log(2))
    assert float(np.asarray(losses.gaussian_kl(one_nat, np.zeros((1, 1))))[0]) == pytest.approx(1)


def test_code_length_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        applications.code_length_bits(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\[None\]"):
        applications.code_length_bits(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        applications.code_length_bits(np.full((1, 2), np.inf), np.zeros((1, 2)))
    with pytest.raises(TypeError):
        applications.code_length_bits("z", np.zeros((1, 2)))


def test_raw_bits():
    assert applications.raw_bits((28, 28, 1)) == 6272
    assert applications.raw_bits((28, 28, 1), bits_per_pixel=1) == 784
    with pytest.raises(TypeError):
        applications.raw_bits(784)
    with pytest.raises(TypeError):
        applications.raw_bits((28.0, 28))
    with pytest.raises(ValueError):
        applications.raw_bits((28, 0))
    with pytest.raises(ValueError):
        applications.raw_bits((28, 28), bits_per_pixel=0)


def test_compression_bits_split_the_negative_elbo(trained_toy_vae):
    model, images = trained_toy_vae
    result = applications.compression_bits(model, images[:32], seed=0)
    assert set(result) == {"rate_bits", "distortion_bits", "total_bits"}
    np.testing.assert_allclose(result["rate_bits"] + result["distortion_bits"],
                               result["total_bits"], rtol=1e-6)
    np.testing.assert_allclose(result["total_bits"] * math.log(2),
                               -model.elbo(images[:32], per_image=True, seed=0), rtol=1e-5)
    assert np.all(result["rate_bits"] >= 0)
    # The bars are simple: the lossless cost is well below one bit per pixel.
    assert result["total_bits"].mean() < applications.raw_bits(images.shape[1:], 1)
    with pytest.raises(TypeError, match="VAE"):
        applications.compression_bits(None, images)


def test_deflate_bits_rewards_regular_images():
    blank = np.zeros((2, 28, 28, 1), np.float32)
    rng = np.random.default_rng(0)
    noise = (rng.random((2, 28, 28, 1)) < 0.5).astype(np.float32)
    blank_bits, noise_bits = applications.deflate_bits(blank), applications.deflate_bits(noise)
    assert blank_bits.shape == (2,) and np.all(blank_bits % 8 == 0)
    # An empty image shrinks to a few bytes; fair coin flips cannot beat one bit per pixel.
    assert np.all(blank_bits < 100)
    assert np.all(noise_bits > 784)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        applications.deflate_bits(noise * 255)


# ----------------------------------------------------------------------------- denoising


def test_denoise_searches_the_code_space(trained_toy_vae):
    model, images = trained_toy_vae
    clean = images[:48]
    noisy = applications.add_salt_and_pepper(clean, 0.15, seed=0)
    # No steps: the encoder's guess, i.e. the plain reconstruction.
    np.testing.assert_allclose(applications.denoise(model, noisy, steps=0),
                               model.reconstruct(noisy), atol=1e-6)
    denoised = applications.denoise(model, noisy, steps=50)
    assert denoised.shape == clean.shape and denoised.min() >= 0 and denoised.max() <= 1
    # With a small noise_std the likelihood term dominates: the searched code explains the
    # pixels it was given better than the encoder's one-pass guess does.
    error = applications.mean_squared_error
    fitted = applications.denoise(model, noisy, noise_std=0.05, steps=100)
    assert error(fitted, noisy).mean() < error(model.reconstruct(noisy), noisy).mean() - 1e-3
    # Each image's code is optimized on its own: batching changes nothing.
    np.testing.assert_allclose(applications.denoise(model, noisy, steps=50, batch_size=7),
                               denoised, atol=1e-5)


def test_denoise_rejects_bad_arguments(trained_toy_vae):
    model, images = trained_toy_vae
    with pytest.raises(ValueError, match="> 0"):
        applications.denoise(model, images, noise_std=0)
    with pytest.raises(ValueError, match="steps"):
        applications.denoise(model, images, steps=-1)
    with pytest.raises(TypeError, match="steps"):
        applications.denoise(model, images, steps=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        applications.denoise(model, images, batch_size=0)
    with pytest.raises(TypeError, match="noise_std"):
        applications.denoise(model, images, noise_std="0.3")
    with pytest.raises(TypeError, match="VAE"):
        applications.denoise(object(), images)
    with pytest.raises(ValueError, match="noisy_images"):
        applications.denoise(model, images * 3)


def test_compression_and_denoising_use_the_models_prior():
    import keras

    import vae_keras as vk
    from conftest import TOY_SHAPE

    keras.utils.set_random_seed(0)
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(16,))
    images = vk.data.binarize(make_bar_images(40, seed=1), seed=0)
    model.fit_prior_mixture(images, num_components=3, seed=0)
    # No closed form for a mixture: the rate is its Monte Carlo estimate, and the total is
    # still the negative ELBO under the model's prior.
    result = applications.compression_bits(model, images[:16], seed=0)
    z_mean, z_log_var = model.encode(images[:16])
    np.testing.assert_allclose(
        result["rate_bits"] * math.log(2),
        model.prior.monte_carlo_kl(z_mean, z_log_var, num_samples=64, seed=0), rtol=1e-5)
    np.testing.assert_allclose(result["total_bits"] * math.log(2),
                               -model.elbo(images[:16], per_image=True, seed=0), rtol=1e-5)
    # Denoising maximizes log p(x|z) + log p(z): with a weak likelihood (large noise_std) the
    # prior decides, so the mixture and the standard normal give different images.
    noisy = applications.add_salt_and_pepper(images[:8], 0.1, seed=0)
    under_mixture = applications.denoise(model, noisy, noise_std=3.0, steps=30)
    model.set_prior(vk.priors.StandardNormal())
    under_normal = applications.denoise(model, noisy, noise_std=3.0, steps=30)
    assert np.abs(under_mixture - under_normal).max() > 1e-3
