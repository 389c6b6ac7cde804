"""The priors of vae_keras.priors: densities against SciPy, sampling, saving, training, errors.

Runs on every Keras backend (the Makefile's BACKEND_TESTS): log_prob is keras.ops, and the
VampPrior's pseudo-inputs train through each backend's train step.
"""

import math

import keras
import numpy as np
import pytest
from scipy import special, stats

import vae_keras as vk
from conftest import TOY_SHAPE, make_bar_images
from vae_keras import priors
from vae_keras import settings as run_settings

REPO_DATA = __import__("pathlib").Path(__file__).resolve().parent / "data"


def toy_vae(prior=None, latent_dim=2, seed=0):
    keras.utils.set_random_seed(seed)
    return vk.VAE(latent_dim=latent_dim, image_shape=TOY_SHAPE, hidden_units=(16,), prior=prior)


def numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def sklearn_mixture(codes, components=3, covariance_type="full", seed=0):
    return vk.aggregate.fit_code_mixture(codes, components, covariance_type, seed=seed)


@pytest.fixture(scope="module")
def codes():
    rng = np.random.default_rng(0)
    # Three clusters in 2-D, unlike N(0, I): a mixture has something to fit.
    centres = np.array([[-3.0, 0.0], [2.0, 2.0], [1.0, -3.0]])
    return (centres[rng.integers(0, 3, 600)] + 0.5 * rng.standard_normal((600, 2)))


# ----------------------------------------------------------------------------- log_prob


def test_standard_normal_log_prob_matches_scipy():
    z = np.random.default_rng(1).standard_normal((5, 4, 3)).astype(np.float32)
    expected = stats.multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z.reshape(-1, 3))
    np.testing.assert_allclose(numpy(priors.StandardNormal(3).log_prob(z)).ravel(), expected,
                               rtol=1e-5)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "tied", "spherical"])
def test_gaussian_mixture_log_prob_matches_scipy_and_sklearn(codes, covariance_type):
    fitted = sklearn_mixture(codes, covariance_type=covariance_type)
    prior = priors.GaussianMixture.from_sklearn(fitted)
    z = np.random.default_rng(2).normal(0, 3, (50, 2)).astype(np.float32)
    covariances = {"full": lambda c: fitted.covariances_[c],
                   "tied": lambda c: fitted.covariances_,
                   "diag": lambda c: np.diag(fitted.covariances_[c]),
                   "spherical": lambda c: fitted.covariances_[c] * np.eye(2)}[covariance_type]
    expected = special.logsumexp(
        [math.log(fitted.weights_[c])
         + stats.multivariate_normal(fitted.means_[c], covariances(c)).logpdf(z)
         for c in range(3)], axis=0)
    np.testing.assert_allclose(numpy(prior.log_prob(z)), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(expected, fitted.score_samples(z), rtol=1e-6)


def test_vamp_prior_log_prob_is_the_mean_of_the_pseudo_inputs_posteriors():
    vae = toy_vae(priors.VampPrior(4, seed=0))
    z_mean, z_log_var = (numpy(x) for x in vae.prior.components())
    # The components are the encoder's posteriors at the pseudo-inputs, clipped to [0, 1].
    pseudo = numpy(vae.prior.pseudo_inputs)
    assert pseudo.shape == (4,) + TOY_SHAPE and pseudo.min() >= 0 and pseudo.max() <= 1
    np.testing.assert_allclose(z_mean, vae.encode(pseudo.astype(np.float32))[0], atol=1e-5)
    z = np.random.default_rng(3).standard_normal((7, 2)).astype(np.float32)
    expected = special.logsumexp(
        [stats.norm(z_mean[k], np.exp(0.5 * z_log_var[k])).logpdf(z).sum(axis=1)
         for k in range(4)], axis=0) - math.log(4)
    np.testing.assert_allclose(numpy(vae.prior.log_prob(z)), expected, rtol=1e-4, atol=1e-4)
    # Leading sample axes, as in the importance-weighted bound: (K, batch, latent).
    stacked = numpy(vae.prior.log_prob(np.stack([z, z])))
    np.testing.assert_allclose(stacked, np.stack([expected, expected]), rtol=1e-4, atol=1e-4)


def linear_gaussian_hierarchy(exact_inference=True):
    """A hierarchical prior whose p(z) has a closed form, and that closed form.

    With no hidden layers and a constant variance, ``p(z | u) = N(W u + b, s^2 I)``, so
    ``p(z) = N(b, W W^T + s^2 I)``. W's columns are orthogonal, which makes the true
    posterior ``p(u | z)`` a Gaussian with a diagonal covariance: ``q(u | z)`` can be set
    to it exactly (every draw's weight is then ``p(z)``), or left wrong.
    """
    prior = priors.HierarchicalPrior(3, hidden_units=(), seed=0, latent_dim=4)
    rng = np.random.default_rng(0)
    columns, _ = np.linalg.qr(rng.standard_normal((4, 3)))
    scales, offset, noise_var = np.array([1.5, 0.7, 0.3]), rng.standard_normal(4), 0.25
    weights = columns * scales
    mean_layer, log_var_layer = prior.generative_layers
    mean_layer.set_weights([weights.T, offset])
    log_var_layer.set_weights([np.zeros((3, 4)), np.full(4, np.log(noise_var))])
    posterior_var = 1.0 / (1.0 + scales**2 / noise_var)
    gain = posterior_var[:, None] * weights.T / noise_var  # E[u | z] = gain (z - b)
    if not exact_inference:
        gain, posterior_var = 0.5 * gain, 2.0 * posterior_var
    mean_layer, log_var_layer = prior.inference_layers
    mean_layer.set_weights([gain.T, -gain @ offset])
    log_var_layer.set_weights([np.zeros((4, 3)), np.log(posterior_var)])
    return prior, stats.multivariate_normal(offset, weights @ weights.T + noise_var * np.eye(4))


def test_hierarchical_prior_log_prob_matches_the_closed_form_of_a_linear_hierarchy():
    prior, reference = linear_gaussian_hierarchy(exact_inference=True)
    z = 2.0 * np.random.default_rng(1).standard_normal((2, 5, 4)).astype(np.float32)
    # With the true posterior as q(u | z) the one-draw estimate is exact, whatever u is drawn.
    for _ in range(2):
        np.testing.assert_allclose(numpy(prior.log_prob(z)), reference.logpdf(z),
                                   rtol=1e-4, atol=1e-4)


def test_hierarchical_prior_estimate_is_a_bound_that_tightens_with_more_draws():
    prior, reference = linear_gaussian_hierarchy(exact_inference=False)
    z = np.random.default_rng(2).standard_normal((400, 4)).astype(np.float32)
    exact = reference.logpdf(z)
    gaps = {}
    for draws in (1, 64):
        estimate = priors.HierarchicalPrior.from_config(
            dict(prior.get_config(), inner_samples=draws))
        estimate.set_weights(prior.get_weights())
        gaps[draws] = float(np.mean(exact - numpy(estimate.log_prob(z))))
    # Below log p(z) on average (a lower bound), and tighter with 64 draws than with one.
    assert gaps[1] > 0.05 and 0 < gaps[64] < 0.5 * gaps[1], gaps


def test_an_untrained_hierarchical_prior_is_the_standard_normal():
    vae = toy_vae(priors.HierarchicalPrior(2, seed=0))
    z = np.random.default_rng(3).standard_normal((6, 2)).astype(np.float32)
    np.testing.assert_allclose(numpy(vae.prior.log_prob(z)),
                               stats.norm().logpdf(z).sum(axis=1), atol=1e-5)


def test_hierarchical_prior_samples_have_the_closed_forms_moments():
    prior, reference = linear_gaussian_hierarchy()
    draws = prior.sample(100000, seed=0).astype(np.float64)
    np.testing.assert_allclose(draws.mean(axis=0), reference.mean, atol=0.03)
    np.testing.assert_allclose(np.cov(draws.T), reference.cov, atol=0.05)
    np.testing.assert_array_equal(prior.sample(10, seed=1), prior.sample(10, seed=1))


# ----------------------------------------------------------------------------- sampling


def test_standard_normal_samples_have_mean_0_and_covariance_i():
    draws = priors.StandardNormal(3).sample(20000, seed=0)
    assert draws.shape == (20000, 3) and draws.dtype == np.float32
    np.testing.assert_allclose(draws.mean(axis=0), 0, atol=0.03)
    np.testing.assert_allclose(np.cov(draws.T), np.eye(3), atol=0.04)
    np.testing.assert_array_equal(draws, priors.StandardNormal(3).sample(20000, seed=0))


def test_gaussian_mixture_samples_have_the_mixtures_moments():
    means = np.array([[-2.0, 0.0], [3.0, 1.0]])
    covariances = np.array([[[1.0, 0.5], [0.5, 2.0]], [[0.3, 0.0], [0.0, 0.1]]])
    weights = np.array([0.3, 0.7])
    factors = np.linalg.cholesky(np.linalg.inv(covariances))  # precision = P P^T
    prior = priors.GaussianMixture.from_parameters(means, factors, np.log(weights))
    draws = prior.sample(40000, seed=0).astype(np.float64)
    mean = weights @ means
    covariance = sum(w * (c + np.outer(m - mean, m - mean))
                     for w, m, c in zip(weights, means, covariances))
    np.testing.assert_allclose(draws.mean(axis=0), mean, atol=0.04)
    np.testing.assert_allclose(np.cov(draws.T), covariance, atol=0.08)


def test_vamp_prior_samples_have_the_moments_of_its_components():
    vae = toy_vae(priors.VampPrior(3, seed=1))
    z_mean, z_log_var = (numpy(x) for x in vae.prior.components())
    draws = vae.prior.sample(30000, seed=0).astype(np.float64)
    variance = np.exp(z_log_var).mean(axis=0) + z_mean.var(axis=0)  # total variance, K equal
    np.testing.assert_allclose(draws.mean(axis=0), z_mean.mean(axis=0), atol=0.03)
    np.testing.assert_allclose(draws.var(axis=0), variance, rtol=0.05)


def test_vae_sample_decodes_codes_from_its_own_prior(codes):
    vae = toy_vae()
    vae.set_prior(priors.GaussianMixture.from_sklearn(sklearn_mixture(codes)))
    expected = vae.decode(vae.prior.sample(5, seed=4))
    np.testing.assert_allclose(vae.sample(5, seed=4), expected, atol=1e-6)
    # prior= still replaces it for one call, a scikit-learn mixture included.
    assert vae.sample(3, seed=0, prior=sklearn_mixture(codes)).shape == (3,) + TOY_SHAPE
    assert vae.sample(3, seed=0, prior=priors.StandardNormal()).shape == (3,) + TOY_SHAPE


# ----------------------------------------------------------------------------- the KL term


def test_monte_carlo_kl_of_the_standard_normal_matches_the_closed_form():
    rng = np.random.default_rng(5)
    z_mean = rng.normal(0, 1, (4, 3)).astype(np.float32)
    z_log_var = rng.normal(-1, 0.5, (4, 3)).astype(np.float32)
    closed = numpy(vk.losses.gaussian_kl(z_mean, z_log_var))
    prior = priors.StandardNormal(3)
    np.testing.assert_allclose(prior.kl(z_mean, z_log_var), closed)  # the model's term
    estimate = prior.monte_carlo_kl(z_mean, z_log_var, num_samples=20000, seed=0)
    np.testing.assert_allclose(estimate, closed, rtol=0.03, atol=0.02)
    # The one-sample estimate every other prior trains with, on N(0, I): unbiased.
    noise = rng.standard_normal((20000, 4, 3)).astype(np.float32)
    z = z_mean + np.exp(0.5 * z_log_var) * noise
    one_sample = numpy(priors.Prior.kl(prior, z_mean[None], z_log_var[None], z)).mean(axis=0)
    np.testing.assert_allclose(one_sample, closed, rtol=0.03, atol=0.02)


def test_a_mixture_prior_changes_the_kl_term_and_the_bound_consistently(codes):
    vae = toy_vae()
    images = vk.data.binarize(make_bar_images(16, seed=3), seed=0)
    fitted = sklearn_mixture(vae.encode_mean(images), components=2)
    before = vae.nll(images, num_samples=8, seed=0, prior=fitted)  # the old way: prior=
    vae.set_prior(priors.GaussianMixture.from_sklearn(fitted))
    np.testing.assert_allclose(vae.nll(images, num_samples=8, seed=0), before, rtol=1e-5)
    standard = vae.nll(images, num_samples=8, seed=0, prior=priors.StandardNormal())
    assert standard != pytest.approx(before)
    terms = vae.compute_loss_terms(keras.ops.convert_to_tensor(images))
    assert np.isfinite(numpy(terms["kl_loss"]))


# ----------------------------------------------------------------------------- saving


def _round_trip(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    return keras.saving.load_model(path)


@pytest.mark.parametrize("kind", ["normal", "mixture", "vamp", "hierarchical"])
def test_a_saved_model_loads_with_its_prior(kind, codes, tmp_path):
    prior = {"normal": None, "vamp": priors.VampPrior(3, seed=2),
             "mixture": priors.GaussianMixture.fit(codes, 3, seed=0),
             "hierarchical": trained_hierarchical_prior()}[kind]
    vae = toy_vae(prior)
    loaded = _round_trip(vae, tmp_path)
    assert type(loaded.prior) is type(vae.prior) and priors.describe(loaded.prior) == (
        {"normal": "normal", "mixture": "mixture:3", "vamp": "vamp:3",
         "hierarchical": "hierarchical:2"}[kind])
    # The hierarchical prior's estimate draws top codes: its seed state is saved too, so
    # the loaded prior's next draws are the saved one's.
    z = np.random.default_rng(0).standard_normal((6, 2)).astype(np.float32)
    np.testing.assert_allclose(numpy(loaded.prior.log_prob(z)), numpy(vae.prior.log_prob(z)),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loaded.sample(4, seed=1), vae.sample(4, seed=1), atol=1e-5)


def trained_hierarchical_prior():
    """A hierarchical prior for 2-D codes whose networks are not at their zero start."""
    prior = priors.HierarchicalPrior(2, hidden_units=(8,), seed=4, latent_dim=2)
    rng = np.random.default_rng(5)
    for weight in prior.weights:
        weight.assign(0.5 * rng.standard_normal(weight.shape).astype(np.float32))
    return prior


def test_files_saved_before_priors_load_with_the_standard_normal():
    for name in ["vae-0.1.keras", "cvae-0.1.keras"]:
        model = keras.saving.load_model(REPO_DATA / name)
        assert isinstance(model.prior, priors.StandardNormal)
        assert model.prior.latent_dim == model.latent_dim


def test_a_conditional_vae_fits_saves_and_samples_from_a_mixture(tmp_path):
    keras.utils.set_random_seed(0)
    cvae = vk.ConditionalVAE(latent_dim=2, num_classes=3, image_shape=TOY_SHAPE,
                             hidden_units=(16,))
    images = make_bar_images(60, seed=1)
    labels = np.arange(60) % 3
    mixture = cvae.fit_prior_mixture(images, labels, num_components=2, seed=0)
    assert cvae.prior is mixture and mixture.fitted
    loaded = _round_trip(cvae, tmp_path)
    assert priors.describe(loaded.prior) == "mixture:2"
    np.testing.assert_allclose(loaded.sample(4, labels=1, seed=3), cvae.sample(4, labels=1, seed=3),
                               atol=1e-5)


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("importance_samples", [1, 2])
def test_the_vamp_priors_pseudo_inputs_train_with_the_model(importance_samples):
    keras.utils.set_random_seed(0)
    vae = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(16,),
                 importance_samples=importance_samples, prior=priors.VampPrior(4, seed=0))
    assert any(w is vae.prior.pseudo_inputs_variable for w in vae.trainable_weights)
    before = numpy(vae.prior.pseudo_inputs_variable)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = vae.fit(make_bar_images(64, seed=1), epochs=1, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"][-1]) and np.isfinite(history.history["kl_loss"][-1])
    assert np.abs(numpy(vae.prior.pseudo_inputs_variable) - before).max() > 1e-4


@pytest.mark.parametrize("importance_samples", [1, 2])
def test_the_hierarchical_priors_networks_train_with_the_model(importance_samples):
    keras.utils.set_random_seed(0)
    vae = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(16,),
                 importance_samples=importance_samples,
                 prior=priors.HierarchicalPrior(2, hidden_units=(8,), seed=0))
    before = [numpy(w) for w in vae.prior.trainable_weights]
    assert len(before) == 12 and all(any(w is v for v in vae.trainable_weights)
                                    for w in vae.prior.trainable_weights)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = vae.fit(make_bar_images(64, seed=1), epochs=1, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"][-1]) and np.isfinite(history.history["kl_loss"][-1])
    moved = [np.abs(numpy(w) - b).max() for w, b in zip(vae.prior.trainable_weights, before)]
    assert min(moved) > 1e-5, moved  # the zero output layers too: they start, not stay, at 0


def test_bad_hierarchical_prior_arguments_are_refused():
    with pytest.raises(ValueError, match="top_dim must be >= 1"):
        priors.HierarchicalPrior(0)
    with pytest.raises(TypeError, match="hidden_units must be a list of widths"):
        priors.HierarchicalPrior(4, hidden_units=256)
    with pytest.raises(TypeError, match="hidden_units must be a list of widths"):
        priors.HierarchicalPrior(4, hidden_units=(256, 0))
    with pytest.raises(ValueError, match="inner_samples must be >= 1"):
        priors.HierarchicalPrior(4, inner_samples=0)
    with pytest.raises(ValueError, match="codes of size 3, but the model's codes have size 2"):
        toy_vae(priors.HierarchicalPrior(2, latent_dim=3))


def test_fit_prior_mixture_fits_codes_drawn_from_the_posteriors():
    vae = toy_vae()
    images = make_bar_images(80, seed=1)
    mixture = vae.fit_prior_mixture(images, num_components=4, seed=0)
    # The same fit by hand: one code drawn from each posterior, then EM with the same seed.
    codes = vk.aggregate.draw_posterior_codes(*vae.encode(images), seed=0)
    by_hand = priors.GaussianMixture.from_sklearn(sklearn_mixture(codes, 4, seed=0))
    np.testing.assert_allclose(mixture.mixture_parameters()[0], by_hand.mixture_parameters()[0],
                               rtol=1e-5, atol=1e-5)
    assert vae.prior is mixture and np.isfinite(vae.elbo(images[:8], seed=0))


# ----------------------------------------------------------------------------- errors


def test_a_prior_for_another_latent_size_is_refused(codes):
    three_d = np.hstack([codes, codes[:, :1]])
    with pytest.raises(ValueError, match="size 3.*size 2"):
        toy_vae(priors.GaussianMixture.fit(three_d, 2, seed=0))
    vae = toy_vae()
    with pytest.raises(ValueError, match="size 3"):
        vae.set_prior(sklearn_mixture(three_d, 2))
    with pytest.raises(ValueError, match="size 3"):
        vae.nll(make_bar_images(4), num_samples=2, prior=sklearn_mixture(three_d, 2))
    with pytest.raises(ValueError, match="size 4"):
        toy_vae(priors.StandardNormal(latent_dim=4))


@pytest.mark.parametrize("build", [
    lambda: priors.GaussianMixture(0), lambda: priors.VampPrior(-1),
    lambda: run_settings.parse_prior("mixture:0"), lambda: run_settings.parse_prior("vamp:-2")])
def test_fewer_than_one_component_is_refused(build):
    with pytest.raises(ValueError, match=">= 1"):
        build()


def test_a_fractional_component_count_is_a_type_error():
    with pytest.raises(TypeError, match="whole number"):
        priors.GaussianMixture(2.5)


def test_an_unfitted_mixture_says_how_to_fit_it():
    unfitted = priors.GaussianMixture(50)
    with pytest.raises(ValueError, match=r"not been fitted.*fit_prior_mixture\(x_train, "
                                         r"num_components=50\)"):
        unfitted.sample(4)
    with pytest.raises(ValueError, match="not been fitted"):
        toy_vae(unfitted)
    with pytest.raises(ValueError, match="not been fitted"):
        toy_vae().sample(4, prior=unfitted)
    with pytest.raises(ValueError, match="fewer|cannot fit"):
        toy_vae().fit_prior_mixture(make_bar_images(5), num_components=10)


def test_pseudo_inputs_of_the_wrong_image_shape_are_refused():
    with pytest.raises(ValueError, match=r"\(28, 28, 1\).*\(8, 8, 1\)"):
        toy_vae(priors.VampPrior(3, image_shape=(28, 28, 1)))
    with pytest.raises(ValueError, match="image shape"):
        toy_vae(priors.VampPrior(2, initial_images=np.zeros((2, 4, 4, 1), np.float32)))
    with pytest.raises(ValueError, match="num_components=3 images"):
        priors.VampPrior(3, initial_images=np.zeros((2, 8, 8, 1), np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        priors.VampPrior(1, initial_images=np.full((1, 8, 8, 1), 255.0, np.float32))
    with pytest.raises(ValueError, match="ConditionalVAE"):
        vk.ConditionalVAE(latent_dim=2, num_classes=3, image_shape=TOY_SHAPE, hidden_units=(8,),
                          prior=priors.VampPrior(2))


def test_initial_images_start_the_pseudo_inputs():
    images = make_bar_images(3, seed=4)
    vae = toy_vae(priors.VampPrior(3, initial_images=images))
    np.testing.assert_array_equal(numpy(vae.prior.pseudo_inputs), images)


def test_a_trainable_prior_after_the_optimizer_is_built_is_refused():
    vae = toy_vae()
    vae.compile()
    vae.fit(make_bar_images(32), epochs=1, batch_size=32, verbose=0)
    with pytest.raises(ValueError, match="Give the prior when the model is made"):
        vae.set_prior(priors.VampPrior(2))


@pytest.mark.parametrize("text", ["gauss", "mixture", "mixture:", "mixture:ten", "vamp:5x",
                                  "normal:3", ""])
def test_unparsable_prior_text_names_the_forms(text):
    with pytest.raises(ValueError, match="mixture:K, vamp:K or hierarchical:D"):
        run_settings.parse_prior(text)


def test_prior_text_parses_to_priors():
    assert run_settings.parse_prior(" Mixture:50 ") == ("mixture", 50)
    assert isinstance(priors.parse("normal"), priors.StandardNormal)
    assert priors.describe(priors.parse("vamp:500")) == "vamp:500"
    assert not priors.parse("mixture:50").fitted
    assert priors.describe(priors.parse("hierarchical:8")) == "hierarchical:8"
    with pytest.raises(ValueError, match="D must be >= 1"):
        run_settings.parse_prior("hierarchical:0")
