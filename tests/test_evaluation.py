"""The ELBO and importance-weighted estimates on a trained toy model."""

import keras
import numpy as np
import pytest
from conftest import tensorflow_only

from vae_keras import evaluation


def test_iwae_bound_is_above_the_elbo_and_rises_with_k(trained_toy_vae):
    model, images = trained_toy_vae
    elbo = evaluation.elbo_per_image(model, images, seed=0).mean()
    bounds = [evaluation.importance_weighted_log_likelihood(model, images, num_samples=k, seed=k).mean()
              for k in (1, 10, 100, 1000)]
    # K=1 is an unbiased estimate of the ELBO itself; larger K tightens the bound.
    assert bounds[0] == pytest.approx(elbo, abs=0.5)
    assert bounds[1] > elbo
    assert all(later > earlier for earlier, later in zip(bounds, bounds[1:])), bounds


def test_results_do_not_depend_on_chunking_or_batching(trained_toy_vae):
    model, images = trained_toy_vae
    reference = evaluation.importance_weighted_log_likelihood(
        model, images[:20], num_samples=50, batch_size=20, max_decoded=10_000, seed=3)
    # Chunks of 3 codes per decode call, batches of 20: the same draws, the same numbers.
    chunked = evaluation.importance_weighted_log_likelihood(
        model, images[:20], num_samples=50, batch_size=20, max_decoded=60, seed=3)
    np.testing.assert_allclose(chunked, reference, rtol=1e-5)


def test_seeded_evaluations_repeat(trained_toy_vae):
    model, images = trained_toy_vae
    first = evaluation.elbo_per_image(model, images, seed=5)
    np.testing.assert_array_equal(first, evaluation.elbo_per_image(model, images, seed=5))


def test_negative_log_likelihood_reports_nats_and_bits(trained_toy_vae):
    model, images = trained_toy_vae
    result = evaluation.negative_log_likelihood(model, images[:32], num_samples=10, seed=0)
    assert result["num_samples"] == 10
    assert result["bits_per_dim"] == pytest.approx(result["nll_nats"] / (64 * np.log(2)))
    # A trained model beats the uniform model, 64 * log(2) = 44.4 nats per 8x8 image.
    assert 0 < result["nll_nats"] < 64 * np.log(2)


def test_the_streamed_bound_is_the_log_mean_exp_of_the_models_log_weights(trained_toy_vae):
    import tensorflow as tf

    from vae_keras import losses

    model, images = trained_toy_vae
    streamed = evaluation.importance_weighted_log_likelihood(
        model, images[:30], num_samples=40, batch_size=30, max_decoded=270, seed=4)  # 9 per chunk
    # The draws the evaluation makes for its one batch (seed, first image), all K at once.
    noise = tf.random.stateless_normal([40, 30, model.latent_dim], seed=[4, 0]).numpy()
    direct = losses.importance_weighted_bound(model.log_importance_weights(images[:30], noise))
    np.testing.assert_allclose(streamed, keras.ops.convert_to_numpy(direct), rtol=1e-5)


@tensorflow_only
def test_bfloat16_evaluation_is_close_to_float32_and_follows_the_weights():
    import keras

    import vae_keras as vk
    from conftest import TOY_SHAPE, make_bar_images

    keras.utils.set_random_seed(0)
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(32,))
    images = make_bar_images(40, seed=3)
    for scale in (1.0, 1.5):  # the second pass: weights changed after the copy was made
        model.set_weights([w * scale for w in model.get_weights()])
        full = evaluation.importance_weighted_log_likelihood(model, images, 20, seed=0)
        half = evaluation.importance_weighted_log_likelihood(model, images, 20, seed=0,
                                                             precision="bfloat16")
        assert not np.array_equal(full, half)  # the copy does compute in bfloat16...
        np.testing.assert_allclose(half, full, rtol=2e-2)  # ...of this model's weights


def test_unknown_precisions_are_refused(trained_toy_vae):
    model, images = trained_toy_vae
    with pytest.raises(ValueError, match="precision"):
        evaluation.importance_weighted_log_likelihood(model, images[:4], 2, precision="float16")


def test_a_mixture_prior_replaces_the_standard_normal_in_every_log_weight(trained_toy_vae):
    import tensorflow as tf

    import vae_keras as vk
    from vae_keras import aggregate, losses

    model, images = trained_toy_vae
    z_mean, z_log_var = model.encode(images)
    rng = np.random.default_rng(0)
    codes = z_mean + np.exp(0.5 * z_log_var) * rng.standard_normal(z_mean.shape)
    mixture = aggregate.fit_code_mixture(codes, num_components=3, seed=0)
    with_mixture = evaluation.importance_weighted_log_likelihood(
        model, images[:30], num_samples=40, batch_size=30, max_decoded=270, seed=4,
        prior=mixture)
    # The same draws by hand: swap log N(z; 0, I) for the mixture's scikit-learn density.
    noise = tf.random.stateless_normal([40, 30, model.latent_dim], seed=[4, 0]).numpy()
    z = keras.ops.convert_to_numpy(
        vk.layers.reparameterize(z_mean[:30][None], z_log_var[:30][None], noise))
    log_weights = (keras.ops.convert_to_numpy(model.log_importance_weights(images[:30], noise))
                   - keras.ops.convert_to_numpy(losses.standard_normal_log_prob(z))
                   + mixture.score_samples(z.reshape(-1, model.latent_dim)).reshape(40, 30))
    np.testing.assert_allclose(
        with_mixture, keras.ops.convert_to_numpy(losses.importance_weighted_bound(log_weights)),
        rtol=1e-4)
    plain = evaluation.importance_weighted_log_likelihood(
        model, images[:30], num_samples=40, batch_size=30, seed=4)
    assert np.abs(with_mixture - plain).max() > 0.01  # the prior did change the weights
    assert model.nll(images[:30], 40, seed=4, prior=mixture) == pytest.approx(
        -with_mixture.mean(), rel=1e-5)


def test_a_prior_of_the_wrong_kind_or_width_is_refused_before_any_work(trained_toy_vae):
    from vae_keras import aggregate

    model, images = trained_toy_vae
    with pytest.raises(TypeError, match="GaussianMixture"):
        evaluation.importance_weighted_log_likelihood(model, images, 10, prior="mixture")
    wide = aggregate.fit_code_mixture(np.random.default_rng(0).normal(size=(50, 5)), 1)
    with pytest.raises(ValueError, match="size 5"):
        evaluation.negative_log_likelihood(model, images, 10, prior=wide)


@pytest.mark.parametrize("activation", [None, "sigmoid"])
@tensorflow_only
def test_the_nine_tap_output_layer_computes_the_transposed_convolution_it_copies(activation):
    import keras

    layer = keras.layers.Conv2DTranspose(1, 3, padding="same", activation=activation)
    inputs = np.random.default_rng(0).normal(size=(5, 7, 6, 8)).astype("float32")
    expected = keras.ops.convert_to_numpy(layer(inputs))
    assert evaluation._computes_by_taps(layer)
    copy = evaluation._NineTapTransposedConv.from_config(layer.get_config())
    copy.build(inputs.shape)
    copy.set_weights(layer.get_weights())
    copy.bias.assign(np.full((1,), 0.3, "float32"))
    layer.bias.assign(np.full((1,), 0.3, "float32"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(copy(inputs)),
                               keras.ops.convert_to_numpy(layer(inputs)), rtol=1e-5, atol=1e-5)
    assert not np.allclose(expected, keras.ops.convert_to_numpy(layer(inputs)))  # bias counted
    for other in [keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same"),
                  keras.layers.Conv2DTranspose(1, 5, padding="same"),
                  keras.layers.Conv2DTranspose(16, 3, padding="same"),
                  keras.layers.Conv2DTranspose(1, 3, padding="valid")]:
        assert not evaluation._computes_by_taps(other)


@tensorflow_only
def test_a_conv_decoder_evaluates_with_its_output_layer_by_taps_and_the_same_bound():
    import keras
    import tensorflow as tf

    import vae_keras as vk
    from vae_keras import losses

    keras.utils.set_random_seed(0)
    model = vk.VAE(latent_dim=2, image_shape=(8, 8, 1), architecture="conv", filters=(4, 8),
                   hidden_units=(16,))
    images = (np.random.default_rng(1).random((12, 8, 8, 1)) > 0.5).astype("float32")
    noise = tf.random.stateless_normal([30, 12, 2], seed=[2, 0])
    for scale in (1.0, 1.5):  # the second pass: weights changed after the copy was made
        model.set_weights([w * scale for w in model.get_weights()])
        streamed = evaluation.importance_weighted_log_likelihood(
            model, images, num_samples=30, batch_size=12, seed=2)
        # The model's own decoder, TensorFlow's transposed convolution, the same draws.
        direct = losses.importance_weighted_bound(model.log_importance_weights(images, noise))
        np.testing.assert_allclose(streamed, np.asarray(direct), rtol=1e-5)
    copy = evaluation._compiled_functions(model)["decoder"]
    assert isinstance(copy.layers[-1], evaluation._NineTapTransposedConv)


@pytest.mark.skipif(keras.backend.backend() == "tensorflow", reason="the other backends' message")
def test_bfloat16_on_another_backend_says_to_use_float32(trained_toy_vae):
    model, images = trained_toy_vae
    with pytest.raises(ValueError, match="precision='float32'"):
        evaluation.importance_weighted_log_likelihood(model, images[:4], num_samples=2,
                                                      precision="bfloat16")


def test_reconstruction_errors_decode_one_drawn_code_per_image(trained_toy_vae):
    model, images = trained_toy_vae
    errors = evaluation.reconstruction_errors(model, images[:32], seed=5)
    z_mean, z_log_var = model.encode(images[:32])
    noise = np.random.default_rng(5).standard_normal(z_mean.shape).astype(np.float32)
    expected = images[:32] - model.decode(z_mean + np.exp(0.5 * z_log_var) * noise)
    assert errors.shape == images[:32].shape
    np.testing.assert_allclose(errors, expected, atol=1e-6)
    np.testing.assert_array_equal(errors, evaluation.reconstruction_errors(model, images[:32], seed=5))
    assert not np.array_equal(errors, evaluation.reconstruction_errors(model, images[:32], seed=6))
    with pytest.raises(ValueError, match="integer"):
        evaluation.reconstruction_errors(model, (images[:4] * 255).astype(np.uint8))
