"""Every documented error: bad input gets a ValueError/TypeError that names the fix."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import vae_keras as vk
from conftest import TOY_SHAPE


@pytest.fixture(scope="module")
def model():
    vae = vk.VAE(latent_dim=2)
    vae.compile()
    return vae


GOOD = np.zeros((4, 28, 28, 1), np.float32)


@pytest.mark.parametrize("images, message", [
    (np.zeros((4, 28, 28), np.float32), r"images\[\.\.\., None\]"),
    (np.zeros((28, 28, 1), np.float32), r"images\[None\]"),
    (np.zeros((4, 784), np.float32), "reshape"),
    (np.zeros((4, 32, 32, 1), np.float32), r"\(batch, 28, 28, 1\)"),
    (np.zeros((4, 28, 28, 1), np.uint8), "/ 255"),
    (np.full((4, 28, 28, 1), 255.0, np.float32), "divide by 255"),
    (np.full((4, 28, 28, 1), -0.5, np.float32), r"\[0, 1\]"),
    (np.full((4, 28, 28, 1), np.nan, np.float32), "NaN"),
])
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict", "encode", "elbo"])
def test_bad_images_get_a_clear_value_error(model, images, message, method):
    with pytest.raises(ValueError, match=message):
        if method == "fit":
            model.fit(images, epochs=1, verbose=0)
        elif method in ("evaluate", "predict"):
            getattr(model, method)(images, verbose=0)
        else:
            getattr(model, method)(images)


def test_bad_validation_data_and_datasets_are_caught_before_training(model):
    with pytest.raises(ValueError, match="validation images"):
        model.fit(GOOD, epochs=1, verbose=0, validation_data=(GOOD + 2.0,))
    dataset = tf.data.Dataset.from_tensor_slices(np.zeros((8, 28, 28), np.float32)).batch(4)
    with pytest.raises(ValueError, match="channel axis"):
        model.fit(dataset, epochs=1, verbose=0)
    raw = tf.data.Dataset.from_tensor_slices(np.full((8, 28, 28, 1), 200.0, np.float32)).batch(4)
    with pytest.raises(ValueError, match="first dataset batch"):
        model.fit(raw, epochs=1, verbose=0)


def test_not_images_is_a_type_error(model):
    with pytest.raises(TypeError, match="NumPy array"):
        model.fit("mnist.npz", epochs=1, verbose=0)


def test_gaussian_likelihood_accepts_values_outside_0_1():
    vae = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, likelihood="gaussian", hidden_units=(8,))
    vae.check_images(np.full((2, 8, 8, 1), 3.0, np.float32))


@pytest.mark.parametrize("latent_dim, error", [(0, ValueError), (-3, ValueError),
                                               (2.5, TypeError), ("2", TypeError)])
def test_latent_dim_must_be_a_positive_integer(latent_dim, error):
    with pytest.raises(error, match="latent_dim"):
        vk.VAE(latent_dim=latent_dim)
    with pytest.raises(error, match="latent_dim"):
        vk.Autoencoder(latent_dim=latent_dim)


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match=r"\['bernoulli', 'gaussian', 'continuous_bernoulli'\]"):
        vk.VAE(latent_dim=2, likelihood="poisson")
    with pytest.raises(ValueError, match=r"\['dense', 'conv'\]"):
        vk.VAE(latent_dim=2, architecture="resnet")
    with pytest.raises(ValueError, match="fashion_mnist"):
        vk.data.load_dataset("cifar10", data_dir="/nonexistent")


def test_construction_errors():
    with pytest.raises(ValueError, match="latent_dim"):
        vk.VAE()
    with pytest.raises(ValueError, match="both an encoder and a decoder"):
        vk.VAE(vk.build_encoder("dense", 2))
    with pytest.raises(TypeError, match="keras.Model"):
        vk.VAE("encoder", "decoder")
    with pytest.raises(ValueError, match="z_mean, z_log_var"):
        vk.VAE(vk.build_encoder("dense", 2, variational=False), vk.build_decoder("dense", 2))
    with pytest.raises(ValueError, match="multiples of 4"):
        vk.VAE(latent_dim=2, architecture="conv", image_shape=(30, 30, 1))
    with pytest.raises(ValueError, match="beta"):
        vk.VAE(latent_dim=2, beta=-1.0)
    with pytest.raises(ValueError, match="without loss="):
        vk.VAE(latent_dim=2).compile(loss="mse")


def test_decoder_must_fit_the_encoder_and_the_likelihood():
    encoder = vk.build_encoder("dense", 3)
    with pytest.raises(ValueError, match=r"\(batch, 3\)"):
        vk.VAE(encoder, vk.build_decoder("dense", 3, image_shape=(14, 14, 1)))
    codes = keras.Input(shape=(3,))
    probabilities = layers.Reshape((28, 28, 1))(layers.Dense(784, activation="sigmoid")(codes))
    with pytest.raises(ValueError, match="sigmoid"):
        vk.VAE(encoder, keras.Model(codes, probabilities))
    vk.VAE(encoder, keras.Model(codes, probabilities), likelihood="gaussian")  # fine: means


def test_decode_and_sample_check_their_arguments(model):
    with pytest.raises(ValueError, match=r"z\[None\]"):
        model.decode(np.zeros(2))
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        model.decode(np.zeros((3, 5)))
    with pytest.raises(ValueError, match=">= 1"):
        model.sample(0)
    with pytest.raises(TypeError, match="whole number"):
        model.sample(2.5)
    with pytest.raises(ValueError, match="num_samples"):
        model.nll(GOOD, num_samples=0)


def test_missing_data_files_are_named_with_their_origin(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(ValueError) as raised:
        vk.load_mnist(tmp_path)
    message = str(raised.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "LeCun" in message
    assert "VAE_KERAS_DATA" in message and "train-images-idx3-ubyte.gz" not in message


@pytest.mark.parametrize("call", [
    lambda m: vk.latent.lerp(np.zeros(2), np.ones(2), steps=2.5),
    lambda m: m.sample(2.5),
    lambda m: m.elbo(GOOD, batch_size=2.5),
    lambda m: m.nll(GOOD, num_samples=2.5),
    lambda m: m.decode(np.zeros((2, 2)), batch_size=2.5),
    lambda m: vk.make_dataset(GOOD, batch_size=2.5),
    lambda m: vk.applications.denoise(m, GOOD, noise_std=0.1, steps=2.5),
], ids=["lerp-steps", "sample", "elbo-batch", "nll-samples", "decode-batch", "dataset-batch",
        "denoise-steps"])
def test_one_rule_a_fractional_count_is_a_type_error(model, call):
    with pytest.raises(TypeError, match="whole number"):
        call(model)


@pytest.mark.parametrize("call", [
    lambda m: vk.latent.lerp(np.zeros(2), np.ones(2), steps=1),
    lambda m: m.sample(0),
    lambda m: m.elbo(GOOD, batch_size=0),
    lambda m: vk.applications.anomaly_scores(m, GOOD, seed=-3),
], ids=["lerp-steps", "sample", "elbo-batch", "seed"])
def test_one_rule_a_count_out_of_range_is_a_value_error(model, call):
    with pytest.raises(ValueError, match=">="):
        call(model)


def test_one_rule_an_autoencoder_is_not_a_vae():
    autoencoder = vk.Autoencoder(latent_dim=2)
    for function in (vk.evaluation.elbo_per_image, vk.applications.anomaly_scores,
                     vk.applications.compression_bits):
        with pytest.raises(TypeError, match="vae_keras.VAE"):
            function(autoencoder, GOOD)


@pytest.mark.parametrize("scale", ["learned", "learned_per_pixel", 0.5])
@pytest.mark.parametrize("build", [
    lambda scale: vk.VAE(latent_dim=2, observation_scale=scale),
    lambda scale: vk.ConditionalVAE(latent_dim=2, num_classes=3, image_shape=TOY_SHAPE,
                                    observation_scale=scale),
], ids=["VAE", "ConditionalVAE"])
def test_an_observation_scale_with_the_bernoulli_likelihood_is_refused(build, scale):
    # Bernoulli pixels have no scale: a learned one would never train, a fixed one be ignored.
    with pytest.raises(ValueError, match=r"Gaussian likelihood only \(likelihood='gaussian'\)"):
        build(scale)


def test_an_observation_scale_at_its_default_or_with_the_gaussian_likelihood_is_fine():
    vk.VAE(latent_dim=2, observation_scale=0.1)  # the default, as a saved model's config has it
    assert vk.VAE(latent_dim=2, likelihood="gaussian",
                  observation_scale="learned").observation_scale == "learned"


@pytest.fixture(scope="module")
def conditional_model():
    return vk.ConditionalVAE(latent_dim=2, num_classes=3, image_shape=TOY_SHAPE,
                             hidden_units=(8,), seed=0)


@pytest.mark.parametrize("label", [2.5, 7.0, np.float32(1.0), True, "7"])
def test_a_single_label_that_is_not_an_int_is_a_type_error(conditional_model, label):
    with pytest.raises(TypeError, match=r"labels=7\) or an int array") as raised:
        conditional_model.sample(4, labels=label)
    assert "argmax" not in str(raised.value)  # a hint for rows of probabilities, not a scalar


def test_labels_out_of_range_stay_value_errors_and_argmax_is_hinted_only_for_2d(conditional_model):
    with pytest.raises(ValueError, match=r"0\.\.2"):
        conditional_model.sample(4, labels=3)
    with pytest.raises(ValueError, match="whole numbers") as raised:
        conditional_model.decode(np.zeros((2, 2)), [0.5, 1.0])
    assert "argmax" not in str(raised.value)
    with pytest.raises(ValueError, match=r"argmax\(axis=1\)"):
        conditional_model.decode(np.zeros((2, 2)), np.eye(3)[[0, 1]])
    assert conditional_model.sample(2, labels=np.int64(2), seed=0).shape == (2,) + TOY_SHAPE


@pytest.mark.parametrize("pair", [tuple, list])
def test_fit_code_mixture_refuses_the_pair_that_encode_returns(pair):
    rng = np.random.default_rng(0)
    z_mean, z_log_var = rng.standard_normal((20, 2)), rng.standard_normal((20, 2))
    with pytest.raises(TypeError, match=r"\(z_mean, z_log_var\).*draw_posterior_codes\("
                                        r"z_mean, z_log_var, seed\).*encode_mean\(x\)"):
        vk.aggregate.fit_code_mixture(pair([z_mean, z_log_var]), num_components=2)
    codes = vk.aggregate.draw_posterior_codes(z_mean, z_log_var, seed=0)
    assert vk.aggregate.fit_code_mixture(codes, num_components=2, seed=0).n_components == 2
