"""The aggregate posterior: code statistics, distances, density, KL, ex-post mixtures."""

import math

import keras
import numpy as np
import pytest
from scipy import stats
from sklearn.mixture import GaussianMixture

import vae_keras as vk
from vae_keras import aggregate

from conftest import TOY_SHAPE


def gaussian_codes(count, latent_dim=3, shift=0.0, seed=0):
    return shift + np.random.default_rng(seed).standard_normal((count, latent_dim))


# ----------------------------------------------------------------------------- statistics


def test_code_statistics_split_the_aggregate_variance_by_the_law_of_total_variance():
    rng = np.random.default_rng(0)
    z_mean = rng.normal([0.0, 2.0, 0.0], [1.0, 0.5, 0.001], size=(5000, 3))
    z_log_var = np.log(np.full((5000, 3), [0.25, 0.5, 1.0]))
    statistics = aggregate.code_statistics(z_mean, z_log_var)
    np.testing.assert_allclose(statistics["mean"], [0.0, 2.0, 0.0], atol=0.05)
    np.testing.assert_allclose(statistics["variance_of_means"], z_mean.var(axis=0))
    np.testing.assert_allclose(statistics["mean_posterior_variance"], [0.25, 0.5, 1.0])
    np.testing.assert_allclose(statistics["aggregate_variance"], [1.25, 0.75, 1.0], atol=0.05)
    assert statistics["active"].tolist() == [True, True, False]
    variance, mean = statistics["aggregate_variance"], statistics["mean"]
    assert statistics["moment_kl"] == pytest.approx(
        0.5 * np.sum(variance + mean ** 2 - 1 - np.log(variance)), rel=1e-5)


def test_moment_kl_is_zero_at_the_prior_and_a_lower_bound_on_the_aggregate_kl():
    prior_like = aggregate.code_statistics(np.zeros((10, 3)), np.zeros((10, 3)))
    assert prior_like["moment_kl"] == pytest.approx(0.0, abs=1e-7)
    # Two far-apart clusters: the moments see a wide Gaussian, the KL sees the gap.
    z_mean = np.repeat([[-2.0, 0.0], [2.0, 0.0]], 100, axis=0)
    z_log_var = np.full((200, 2), np.log(0.1))
    moment_kl = aggregate.code_statistics(z_mean, z_log_var)["moment_kl"]
    assert 0 < moment_kl < aggregate.aggregate_kl(z_mean, z_log_var, 4000, seed=0) - 0.3


# ----------------------------------------------------------------------------- distances


def test_nearest_distances_match_a_brute_force_search_whatever_the_chunk():
    codes, reference = gaussian_codes(37, seed=1), gaussian_codes(50, seed=2)
    brute = np.sqrt(((codes[:, None, :] - reference[None, :, :]) ** 2).sum(-1)).min(axis=1)
    for chunk_size in (None, 1, 5, 1000):
        np.testing.assert_allclose(aggregate.nearest_distances(codes, reference, chunk_size),
                                   brute, rtol=1e-9, atol=1e-9)
    assert aggregate.nearest_distances(reference[:4], reference).max() < 1e-6


def test_codes_from_a_shifted_distribution_lie_far_from_the_data_and_own_codes_do_not():
    train = gaussian_codes(2000, seed=0)
    held_out, same, shifted = (gaussian_codes(500, seed=1), gaussian_codes(500, seed=2),
                               gaussian_codes(500, shift=3.0, seed=3))
    threshold = np.quantile(aggregate.nearest_distances(held_out, train), 0.99)
    far_same = np.mean(aggregate.nearest_distances(same, train) > threshold)
    far_shifted = np.mean(aggregate.nearest_distances(shifted, train) > threshold)
    assert far_same < 0.04
    assert far_shifted > 0.5


# ----------------------------------------------------------------------------- density, KL


def test_log_aggregate_density_is_the_mean_of_the_posterior_densities():
    rng = np.random.default_rng(0)
    z_mean, z_log_var = rng.normal(size=(7, 2)), rng.normal(scale=0.5, size=(7, 2))
    codes = rng.normal(size=(11, 2))
    densities = np.stack([
        stats.multivariate_normal(z_mean[i], np.diag(np.exp(z_log_var[i]))).pdf(codes)
        for i in range(7)])
    expected = np.log(densities.mean(axis=0))
    for chunk_size in (None, 1, 4):
        np.testing.assert_allclose(
            aggregate.log_aggregate_density(codes, z_mean, z_log_var, chunk_size), expected,
            rtol=1e-10)


def test_log_aggregate_density_stays_finite_far_from_narrow_posteriors():
    z_mean, z_log_var = np.zeros((3, 4)), np.full((3, 4), -12.0)
    log_q = aggregate.log_aggregate_density(np.full((1, 4), 5.0), z_mean, z_log_var)
    assert np.isfinite(log_q).all() and log_q[0] < -1e6


def test_log_prior_density_is_the_standard_normal_log_density():
    codes = gaussian_codes(6, latent_dim=5)
    expected = stats.multivariate_normal(np.zeros(5), np.eye(5)).logpdf(codes)
    np.testing.assert_allclose(aggregate.log_prior_density(codes), expected, rtol=1e-12)


def test_aggregate_kl_is_zero_when_every_posterior_is_the_prior():
    z_mean, z_log_var = np.zeros((100, 4)), np.zeros((100, 4))
    assert aggregate.aggregate_kl(z_mean, z_log_var, num_samples=200, seed=0) == \
        pytest.approx(0.0, abs=1e-9)


def test_aggregate_kl_matches_the_closed_form_and_grows_with_the_mismatch():
    # One shared posterior N(m, s^2 I) is also the aggregate: KL has a closed form.
    latent_dim, count = 2, 50
    estimates = []
    for shift in (0.5, 1.0, 2.0):
        z_mean = np.full((count, latent_dim), shift)
        z_log_var = np.full((count, latent_dim), math.log(0.5))
        closed_form = float(vk.losses.gaussian_kl(z_mean[:1], z_log_var[:1])[0])
        estimate = aggregate.aggregate_kl(z_mean, z_log_var, num_samples=4000, seed=0)
        assert estimate == pytest.approx(closed_form, rel=0.05)
        estimates.append(estimate)
    assert estimates[0] < estimates[1] < estimates[2]


def test_aggregate_kl_of_spread_narrow_posteriors_is_at_least_the_rate_minus_log_n():
    # ELBO surgery: mean KL(q(z|x) || p) = I(x; z) + KL(q(z) || p), with I <= log N.
    rng = np.random.default_rng(0)
    z_mean, z_log_var = rng.normal(scale=2.0, size=(200, 3)), np.full((200, 3), -4.0)
    rate = float(np.mean(keras.ops.convert_to_numpy(vk.losses.gaussian_kl(z_mean, z_log_var))))
    estimate = aggregate.aggregate_kl(z_mean, z_log_var, num_samples=2000, seed=1)
    assert estimate >= rate - math.log(200) - 0.1
    assert estimate < rate


# ----------------------------------------------------------------------------- mixtures


def test_posterior_codes_spread_like_the_aggregate_not_like_the_means():
    # 20,000 images whose posteriors all are N(mu_i, 2^2) with mu_i in {-1, +1}:
    # q(z) has variance 1 + 4 per dimension; the means alone have variance 1.
    rng = np.random.default_rng(0)
    z_mean = rng.choice([-1.0, 1.0], size=(20_000, 3))
    z_log_var = np.full_like(z_mean, math.log(4.0))
    codes = aggregate.draw_posterior_codes(z_mean, z_log_var, seed=0)
    assert codes.shape == z_mean.shape and codes.dtype == np.float64
    np.testing.assert_allclose(codes.var(axis=0), 5.0, rtol=0.05)
    np.testing.assert_allclose(codes, aggregate.draw_posterior_codes(z_mean, z_log_var, seed=0))
    assert not np.allclose(codes, aggregate.draw_posterior_codes(z_mean, z_log_var, seed=1))


def test_draw_posterior_codes_rejects_mismatched_posteriors_and_a_bad_seed():
    good = gaussian_codes(10)
    with pytest.raises(ValueError, match="same shape"):
        aggregate.draw_posterior_codes(good, good[:5])
    with pytest.raises(ValueError, match="seed"):
        aggregate.draw_posterior_codes(good, good, seed=-1)
    with pytest.raises(TypeError, match="array of codes"):
        aggregate.draw_posterior_codes("means", good)


def test_fit_code_mixture_finds_the_clusters_of_the_codes():
    rng = np.random.default_rng(0)
    centres = np.array([[-4.0, 0.0], [4.0, 0.0]])
    codes = centres[rng.integers(0, 2, 1000)] + 0.3 * rng.standard_normal((1000, 2))
    mixture = aggregate.fit_code_mixture(codes, num_components=2, seed=0)
    assert isinstance(mixture, GaussianMixture)
    np.testing.assert_allclose(np.sort(mixture.means_[:, 0]), [-4.0, 4.0], atol=0.1)
    drawn = aggregate.draw_codes(mixture, 300, latent_dim=2, seed=0)
    assert drawn.shape == (300, 2) and drawn.dtype == np.float32
    assert np.abs(np.abs(drawn[:, 0]) - 4.0).max() < 2.0, "mixture samples sit on the clusters"


def test_draw_codes_from_a_mixture_are_repeatable_by_seed_and_not_grouped_by_component():
    codes = np.concatenate([gaussian_codes(200, 2, -5.0), gaussian_codes(200, 2, 5.0, seed=1)])
    mixture = aggregate.fit_code_mixture(codes, num_components=2, seed=0)
    first, again = (aggregate.draw_codes(mixture, 100, 2, seed=3) for _ in range(2))
    other = aggregate.draw_codes(mixture, 100, 2, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert 0 < np.sum(first[:50, 0] > 0) < 50, "the first half holds both components"
    assert mixture.random_state == 0, "the caller's mixture is left as it was"


def test_draw_codes_takes_a_callable_with_the_seeded_generator():
    def shifted_prior(num_samples, rng):
        return 10.0 + rng.standard_normal((num_samples, 3))

    drawn = aggregate.draw_codes(shifted_prior, 4, 3, seed=7)
    np.testing.assert_allclose(drawn, 10.0 + np.random.default_rng(7).standard_normal((4, 3)),
                               rtol=1e-6)


def test_draw_codes_defaults_to_the_standard_normal_prior():
    np.testing.assert_array_equal(
        aggregate.draw_codes(None, 5, 3, seed=1),
        np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32))


@pytest.fixture(scope="module")
def small_vae():
    return vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(8,), seed=0)


def test_vae_sample_decodes_codes_from_the_given_prior(small_vae):
    far_codes = np.full((3, 2), 4.0, dtype=np.float32)
    samples = small_vae.sample(3, seed=0, prior=lambda n, rng: far_codes)
    np.testing.assert_allclose(samples, small_vae.decode(far_codes), rtol=1e-6)
    mixture = aggregate.fit_code_mixture(gaussian_codes(100, 2), num_components=2, seed=0)
    assert small_vae.sample(6, seed=0, prior=mixture).shape == (6,) + TOY_SHAPE
    np.testing.assert_allclose(small_vae.sample(4, seed=2),
                               small_vae.decode(aggregate.draw_codes(None, 4, 2, seed=2)))


# ----------------------------------------------------------------------------- errors


def test_vae_sample_rejects_a_prior_of_the_wrong_kind_or_width(small_vae):
    with pytest.raises(TypeError, match="prior must be None"):
        small_vae.sample(3, prior="gaussian")
    with pytest.raises(ValueError, match=r"shape \(3, 5\).*latent_dim=2"):
        small_vae.sample(3, prior=lambda n, rng: np.zeros((n, 5)))
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        small_vae.sample(3, prior=lambda n, rng: np.zeros((2, 2)))
    wide = aggregate.fit_code_mixture(gaussian_codes(50, 4), num_components=1)
    with pytest.raises(ValueError, match="another model"):
        small_vae.sample(3, prior=wide)
    with pytest.raises(ValueError, match="NaN"):
        small_vae.sample(2, prior=lambda n, rng: np.full((n, 2), np.nan))
    with pytest.raises(TypeError, match="numbers"):
        small_vae.sample(2, prior=lambda n, rng: np.full((n, 2), "a"))


def test_code_functions_reject_bad_codes():
    good = gaussian_codes(10)
    with pytest.raises(TypeError, match="array of codes"):
        aggregate.nearest_distances("codes", good)
    with pytest.raises(ValueError, match=r"batch axis: z\[None\]"):
        aggregate.nearest_distances(good[0], good)
    with pytest.raises(ValueError, match="3 are expected"):
        aggregate.nearest_distances(gaussian_codes(4, latent_dim=2), good)
    with pytest.raises(ValueError, match="NaN"):
        aggregate.log_prior_density(np.full((2, 3), np.inf))
    with pytest.raises(ValueError, match="same shape"):
        aggregate.code_statistics(good, good[:5])
    with pytest.raises(ValueError, match="non-empty"):
        aggregate.log_aggregate_density(good, np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="chunk_size"):
        aggregate.nearest_distances(good, good, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size"):
        aggregate.log_aggregate_density(good, good, good, chunk_size=2.5)


def test_kl_and_mixture_reject_bad_settings():
    good = gaussian_codes(10)
    with pytest.raises(ValueError, match="num_samples"):
        aggregate.aggregate_kl(good, good, num_samples=0)
    with pytest.raises(ValueError, match="seed"):
        aggregate.aggregate_kl(good, good, seed=-1)
    with pytest.raises(TypeError, match="seed"):
        aggregate.aggregate_kl(good, good, seed=1.5)
    with pytest.raises(ValueError, match="cannot fit 20 components"):
        aggregate.fit_code_mixture(good, num_components=20)
    with pytest.raises(ValueError, match="covariance_type"):
        aggregate.fit_code_mixture(good, covariance_type="banded")
    with pytest.raises(TypeError, match="num_components"):
        aggregate.fit_code_mixture(good, num_components=2.0)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "tied", "spherical"])
def test_mixture_log_prob_matches_scikit_learn_for_every_covariance_type(covariance_type):
    from keras import ops

    from vae_keras import losses

    codes = np.concatenate([gaussian_codes(150, 3, seed=1), gaussian_codes(150, 3, 4.0, seed=2)])
    mixture = aggregate.fit_code_mixture(codes, num_components=3,
                                         covariance_type=covariance_type, seed=0)
    means, factors, log_weights = aggregate.mixture_parameters(mixture, latent_dim=3)
    assert factors.shape == (3, 3, 3) and means.dtype == np.float32
    queries = gaussian_codes(40, 3, 2.0, seed=3).astype(np.float32)
    ours = ops.convert_to_numpy(
        losses.gaussian_mixture_log_prob(queries, means, factors, log_weights))
    np.testing.assert_allclose(ours, mixture.score_samples(queries), rtol=1e-4, atol=1e-4)
    # A leading sample axis, as the bound's (K, batch, latent) codes have, is kept.
    stacked = ops.convert_to_numpy(
        losses.gaussian_mixture_log_prob(queries.reshape(4, 10, 3), means, factors, log_weights))
    np.testing.assert_allclose(stacked.reshape(-1), ours, rtol=1e-6)


def test_mixture_parameters_reject_an_unfitted_or_foreign_prior_and_a_wrong_width():
    with pytest.raises(TypeError, match="fitted scikit-learn GaussianMixture"):
        aggregate.mixture_parameters(GaussianMixture(2))
    with pytest.raises(TypeError, match="fitted scikit-learn GaussianMixture"):
        aggregate.mixture_parameters("N(0, I)")
    mixture = aggregate.fit_code_mixture(gaussian_codes(50, 4), num_components=1)
    with pytest.raises(ValueError, match="size 4.*size 2"):
        aggregate.mixture_parameters(mixture, latent_dim=2)


def test_aggregate_kl_against_another_prior_uses_its_log_prob():
    # p = N(0, I) given as a prior object gives the default's estimate; p = the shared
    # posterior itself (a one-component mixture fitted to its codes) gives about 0.
    z_mean = np.full((50, 2), 1.0)
    z_log_var = np.full((50, 2), math.log(0.5))
    default = aggregate.aggregate_kl(z_mean, z_log_var, num_samples=2000, seed=0)
    normal = vk.priors.StandardNormal(latent_dim=2)
    assert aggregate.aggregate_kl(z_mean, z_log_var, num_samples=2000, seed=0, prior=normal) == \
        pytest.approx(default, rel=1e-4)
    codes = aggregate.draw_posterior_codes(np.repeat(z_mean, 40, axis=0),
                                           np.repeat(z_log_var, 40, axis=0), seed=1)
    itself = vk.priors.GaussianMixture.fit(codes, num_components=1, seed=0)
    assert abs(aggregate.aggregate_kl(z_mean, z_log_var, num_samples=2000, seed=0,
                                      prior=itself)) < 0.05 * default
    with pytest.raises(TypeError, match="from_sklearn"):
        aggregate.aggregate_kl(z_mean, z_log_var, prior=object())


def test_the_prior_kl_to_the_aggregate_is_zero_at_the_prior_and_matches_one_gaussian():
    zeros = np.zeros((5, 3))
    assert aggregate.prior_kl_to_aggregate(zeros, zeros, num_samples=500, seed=0) == pytest.approx(
        0.0, abs=1e-9)
    # One posterior N(m, s^2 I): KL(N(0, I) || N(m, s^2 I)) = sum(log s + (1 + m^2) / (2 s^2) - 1/2).
    mean, scale = np.array([[0.5, -1.0, 0.0]]), 0.5
    exact = float(np.sum(np.log(scale) + (1 + mean ** 2) / (2 * scale ** 2) - 0.5))
    estimate = aggregate.prior_kl_to_aggregate(mean, np.full_like(mean, 2 * np.log(scale)),
                                               num_samples=200_000, seed=1)
    assert estimate == pytest.approx(exact, rel=0.02)


def test_narrow_posteriors_leave_holes_that_the_kl_to_the_aggregate_sees():
    rng = np.random.default_rng(0)
    means = rng.standard_normal((200, 2))
    wide = aggregate.prior_kl_to_aggregate(means * 0.5, np.full_like(means, np.log(0.75)), seed=0)
    narrow = aggregate.prior_kl_to_aggregate(means, np.full_like(means, np.log(1e-4)), seed=0)
    assert narrow > wide + 5

