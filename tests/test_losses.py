"""The ELBO's terms against NumPy and TensorFlow Probability references."""

import math

import keras
import numpy as np
import pytest
import tensorflow_probability as tfp
from keras import ops

from vae_keras import losses

tfd = tfp.distributions
RNG = np.random.default_rng(0)


def numpy_kl(mean, log_var):
    return 0.5 * np.sum(mean**2 + np.exp(log_var) - 1.0 - log_var, axis=-1)


def test_kl_is_exactly_zero_at_the_prior():
    zeros = np.zeros((4, 3), np.float32)
    np.testing.assert_array_equal(ops.convert_to_numpy(losses.gaussian_kl(zeros, zeros)), 0.0)


def test_kl_is_positive_away_from_the_prior_and_never_negative():
    mean = RNG.normal(size=(1000, 5)).astype(np.float32)
    log_var = RNG.normal(scale=2.0, size=(1000, 5)).astype(np.float32)
    kl = ops.convert_to_numpy(losses.gaussian_kl(mean, log_var))
    assert np.all(kl > 0)
    # Tiny log-variances, where the naive formula can round below zero.
    tiny = np.linspace(-1e-3, 1e-3, 2001, dtype=np.float32).reshape(-1, 1)
    assert np.all(ops.convert_to_numpy(losses.gaussian_kl(np.zeros_like(tiny), tiny)) >= 0)


def test_kl_matches_numpy_and_tfp():
    mean = RNG.normal(size=(64, 4)).astype(np.float32)
    log_var = RNG.normal(size=(64, 4)).astype(np.float32)
    ours = ops.convert_to_numpy(losses.gaussian_kl(mean, log_var))
    np.testing.assert_allclose(ours, numpy_kl(mean, log_var), rtol=1e-5, atol=1e-5)
    posterior = tfd.MultivariateNormalDiag(mean, np.exp(0.5 * log_var))
    prior = tfd.MultivariateNormalDiag(np.zeros_like(mean))
    np.testing.assert_allclose(ours, tfd.kl_divergence(posterior, prior).numpy(), rtol=1e-4)


def test_monte_carlo_kl_agrees_with_the_closed_form():
    mean = np.array([[0.5, -1.0], [2.0, 0.0]], np.float32)
    log_var = np.array([[0.0, -1.0], [0.5, 1.0]], np.float32)
    estimate = losses.monte_carlo_kl(mean, log_var, num_samples=20000, seed=1)
    np.testing.assert_allclose(estimate, numpy_kl(mean, log_var), atol=0.05)


def test_bernoulli_log_likelihood_matches_tfp_and_is_stable():
    images = (RNG.random((16, 4, 4, 1)) < 0.5).astype(np.float32)
    logits = RNG.normal(scale=3.0, size=images.shape).astype(np.float32)
    ours = ops.convert_to_numpy(losses.bernoulli_log_likelihood(images, logits))
    reference = tfd.Bernoulli(logits=logits).log_prob(images).numpy().sum(axis=(1, 2, 3))
    np.testing.assert_allclose(ours, reference, rtol=1e-5)
    extreme = np.array([[[[-200.0], [200.0]]]], np.float32)  # a naive log(sigmoid) gives -inf
    value = ops.convert_to_numpy(losses.bernoulli_log_likelihood(np.array([[[[1.0], [0.0]]]]), extreme))
    np.testing.assert_allclose(value, [-400.0], rtol=1e-6)


def test_bernoulli_on_gray_pixels_is_negative_binary_cross_entropy():
    images = RNG.random((3, 5, 5, 1)).astype(np.float32)
    logits = RNG.normal(size=images.shape).astype(np.float32)
    p = 1 / (1 + np.exp(-logits))
    bce = -(images * np.log(p) + (1 - images) * np.log(1 - p)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(ops.convert_to_numpy(losses.bernoulli_log_likelihood(images, logits)),
                               -bce, rtol=1e-4)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_outputs_with_a_sample_axis_broadcast_the_images(likelihood):
    images = (RNG.random((5, 3, 3, 2)) < 0.5).astype(np.float32)
    outputs = RNG.normal(scale=3.0, size=(4,) + images.shape).astype(np.float32)  # K = 4
    together = ops.convert_to_numpy(
        losses.reconstruction_log_likelihood(images, outputs, likelihood, log_scale=-0.5))
    one_by_one = [ops.convert_to_numpy(
        losses.reconstruction_log_likelihood(images, output, likelihood, log_scale=-0.5))
        for output in outputs]
    assert together.shape == (4, 5)
    np.testing.assert_allclose(together, one_by_one, rtol=1e-6)


@pytest.mark.parametrize("image_shape", [(28, 28, 1), (5, 7, 3), (3,)])
def test_bernoulli_by_products_equals_the_softplus_form(image_shape):
    # 784 pixels make 13 groups of 61 (9 padded), 105 make 2 groups of 53 (1 padded), 3 one group.
    images = (RNG.random((6,) + image_shape) < 0.5).astype(np.float32)
    images[0] = RNG.random(image_shape)  # grey levels too
    logits = RNG.normal(scale=6.0, size=(3, 6) + image_shape).astype(np.float32)
    logits[0, 0].flat[:3] = [200.0, -200.0, 0.0]  # where exp or a naive log overflows
    expected = ops.convert_to_numpy(losses.bernoulli_log_likelihood(images, logits))
    by_products = ops.convert_to_numpy(losses.bernoulli_log_likelihood_by_products(images, logits))
    np.testing.assert_allclose(by_products, expected, rtol=2e-6, atol=1e-4)
    per_image = losses.bernoulli_log_likelihood_by_products(images, logits[1])
    np.testing.assert_allclose(ops.convert_to_numpy(per_image), expected[1], rtol=2e-6, atol=1e-4)


def test_bernoulli_by_products_never_overflows():
    # Every factor 1 + exp(-|0|) = 2 is the largest possible: 2^64 per product, still finite.
    logits = np.zeros((2, 64, 64, 3), np.float32)
    value = ops.convert_to_numpy(losses.bernoulli_log_likelihood_by_products(logits + 1, logits))
    np.testing.assert_allclose(value, [-64 * 64 * 3 * math.log(2)] * 2, rtol=1e-6)


@pytest.mark.parametrize("log_scale", [math.log(0.1), 0.0, 1.0])
def test_gaussian_log_likelihood_matches_tfp(log_scale):
    images = RNG.random((8, 3, 3, 1)).astype(np.float32)
    mean = RNG.random(images.shape).astype(np.float32)
    ours = ops.convert_to_numpy(losses.gaussian_log_likelihood(images, mean, log_scale))
    reference = tfd.Normal(mean, math.exp(log_scale)).log_prob(images).numpy().sum(axis=(1, 2, 3))
    np.testing.assert_allclose(ours, reference, rtol=1e-5)


def test_reconstruction_log_likelihood_dispatches_and_rejects_unknown_names():
    images = np.full((2, 2, 2, 1), 0.5, np.float32)
    np.testing.assert_allclose(
        ops.convert_to_numpy(losses.reconstruction_log_likelihood(images, images * 0, "bernoulli")),
        [-4 * math.log(2)] * 2, rtol=1e-6)
    with pytest.raises(ValueError, match="bernoulli"):
        losses.reconstruction_log_likelihood(images, images, "poisson")


def test_log_probs_match_tfp():
    z = RNG.normal(size=(10, 3)).astype(np.float32)
    mean = RNG.normal(size=(10, 3)).astype(np.float32)
    log_var = RNG.normal(size=(10, 3)).astype(np.float32)
    np.testing.assert_allclose(
        ops.convert_to_numpy(losses.standard_normal_log_prob(z)),
        tfd.MultivariateNormalDiag(np.zeros(3, np.float32)).log_prob(z).numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        ops.convert_to_numpy(losses.diagonal_gaussian_log_prob(z, mean, log_var)),
        tfd.MultivariateNormalDiag(mean, np.exp(0.5 * log_var)).log_prob(z).numpy(), rtol=1e-5)


def test_importance_weighted_bound_is_log_mean_exp():
    log_weights = RNG.normal(scale=50.0, size=(7, 5)).astype(np.float64)
    expected = np.log(np.mean(np.exp(log_weights - log_weights.max(0)), axis=0)) + log_weights.max(0)
    # float64 in, float64 out on TensorFlow; JAX computes in float32 unless x64 is enabled.
    rtol = 1e-10 if keras.backend.backend() == "tensorflow" else 1e-6
    np.testing.assert_allclose(ops.convert_to_numpy(losses.importance_weighted_bound(log_weights)),
                               expected, rtol=rtol)
    # Jensen: the bound is at least the mean of the log-weights (the K=1 ELBO estimate).
    assert np.all(ops.convert_to_numpy(losses.importance_weighted_bound(log_weights))
                  >= log_weights.mean(axis=0))


def test_elbo_and_bits_per_dim():
    np.testing.assert_allclose(ops.convert_to_numpy(losses.elbo(np.array([-90.0]), np.array([10.0]))),
                               [-100.0])
    assert losses.nats_to_bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)


CONTINUOUS_BERNOULLI_LOGITS = [-60.0, -8.0, -1.0, -0.31, -0.02, -1e-3, 0.0, 1e-6, 0.0999, 0.1001,
                               0.2999, 2.0, 15.0]


def _continuous_bernoulli_by_integration(logit):
    """1 / C and the mean of lambda^x (1 - lambda)^(1 - x) on [0, 1], by quadrature."""
    from scipy import integrate

    log_lambda, log_one_minus = -np.logaddexp(0.0, -logit), -np.logaddexp(0.0, logit)
    unnormalized = lambda x: np.exp(x * log_lambda + (1 - x) * log_one_minus)  # noqa: E731
    mass = integrate.quad(unnormalized, 0.0, 1.0, epsabs=0, epsrel=1e-12)[0]
    first_moment = integrate.quad(lambda x: x * unnormalized(x), 0.0, 1.0, epsabs=0,
                                  epsrel=1e-12)[0]
    return mass, first_moment / mass


@pytest.mark.parametrize("logit", CONTINUOUS_BERNOULLI_LOGITS)
def test_continuous_bernoulli_normalizer_and_mean_match_numerical_integration(logit):
    mass, mean = _continuous_bernoulli_by_integration(logit)
    log_normalizer = ops.convert_to_numpy(
        losses.continuous_bernoulli_log_normalizer(np.array([logit], np.float32)))
    np.testing.assert_allclose(log_normalizer, [-np.log(mass)], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        ops.convert_to_numpy(losses.continuous_bernoulli_mean(np.array([logit], np.float32))),
        [mean], atol=1e-6)


def test_continuous_bernoulli_density_integrates_to_one_and_adds_the_normalizer_to_bce():
    logits = np.array([-3.0, -0.004, 0.0, 0.7], np.float32)
    grid = np.linspace(0.0, 1.0, 2001, dtype=np.float32)
    # Each grid value as a one-pixel image, under each logit: a density on [0, 1].
    images = np.repeat(grid[:, None], len(logits), axis=1)
    log_density = ops.convert_to_numpy(losses.continuous_bernoulli_log_likelihood(
        images.reshape(-1, 1), np.tile(logits, len(grid)).reshape(-1, 1))).reshape(images.shape)
    from scipy import integrate

    np.testing.assert_allclose(integrate.simpson(np.exp(log_density), x=grid, axis=0), 1.0,
                               rtol=1e-5)
    pixels = RNG.random((4, 3, 3, 1)).astype(np.float32)
    pixel_logits = RNG.normal(scale=2.0, size=pixels.shape).astype(np.float32)
    difference = ops.convert_to_numpy(
        losses.continuous_bernoulli_log_likelihood(pixels, pixel_logits)
        - losses.bernoulli_log_likelihood(pixels, pixel_logits))
    expected = ops.convert_to_numpy(
        losses.continuous_bernoulli_log_normalizer(pixel_logits)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(difference, expected, rtol=1e-5)
    assert np.all(expected > 9 * np.log(2.0) - 1e-4), "C >= 2, so log C >= log 2 per pixel"


def test_continuous_bernoulli_terms_are_smooth_with_finite_gradients_across_zero():
    from vae_keras.autodiff import gradients

    logits = np.concatenate([np.linspace(-0.4, 0.4, 801), [-90.0, 90.0]]).astype(np.float32)
    results = {}
    for name, term in [("log_normalizer", losses.continuous_bernoulli_log_normalizer),
                       ("mean", losses.continuous_bernoulli_mean)]:
        _, (gradient,) = gradients(lambda l: ops.sum(term(l)), logits)
        value = ops.convert_to_numpy(term(logits))
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient)), name
        results[name] = value
    log_normalizer, mean = results["log_normalizer"], results["mean"]
    # No jump where a series hands over to the exact formula (|l| = 0.1 and 0.3): the
    # values follow a float64 reference of the exact formula across the grid.
    grid = np.linspace(-0.4, 0.4, 801)
    grid = np.where(np.abs(grid) < 1e-6, 1e-6, grid)  # the float64 formula is 0/0 at 0
    np.testing.assert_allclose(log_normalizer[:801], np.log(grid / np.tanh(grid / 2)), atol=1e-6)
    np.testing.assert_allclose(mean[:801], 0.5 + 0.5 / np.tanh(grid / 2) - 1 / grid, atol=1e-6)
    np.testing.assert_allclose(log_normalizer[-2:], np.log(90.0), rtol=1e-6)


def test_the_continuous_bernoulli_is_a_likelihood_choice():
    rng = np.random.default_rng(0)
    images = rng.random((3, 4, 4, 1)).astype(np.float32)
    logits = rng.normal(size=images.shape).astype(np.float32)
    np.testing.assert_allclose(
        losses.reconstruction_log_likelihood(images, logits, "continuous_bernoulli"),
        losses.continuous_bernoulli_log_likelihood(images, logits), rtol=1e-6)
    with pytest.raises(ValueError, match="continuous_bernoulli"):
        losses.reconstruction_log_likelihood(images, logits, "poisson")


def test_dequantized_bits_per_dim_reads_a_density_on_the_unit_cube_as_bits_of_8_bit_levels():
    # The uniform density on [0, 1]^D (log-density 0) knows nothing: log2(256) = 8 bits per pixel.
    assert losses.dequantized_bits_per_dim(0.0, 784) == pytest.approx(8.0)
    # A density of 256^D on one bin per pixel pins every level: 0 bits.
    assert losses.dequantized_bits_per_dim(784 * math.log(256), 784) == pytest.approx(0.0, abs=1e-12)
    # One nat more per image is 1 / (D log 2) bit per pixel less, elementwise on arrays.
    np.testing.assert_allclose(losses.dequantized_bits_per_dim(np.array([0.0, 784.0]), 784),
                               [8.0, 8.0 - 1 / math.log(2)])
    with pytest.raises(ValueError):
        losses.dequantized_bits_per_dim(0.0, 0)
