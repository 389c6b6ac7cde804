"""The conditional VAE: shapes, the loss by hand, save/load, every error, training, real MNIST."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import vae_keras as vk
from conftest import TOY_SHAPE, make_bar_images, real_data_dir

NUM_CLASSES = 3


def toy_labels(count):
    return np.arange(count) % NUM_CLASSES


def toy_model(**kwargs):
    options = dict(latent_dim=2, num_classes=NUM_CLASSES, image_shape=TOY_SHAPE,
                   hidden_units=(16,), seed=0)
    options.update(kwargs)
    return vk.ConditionalVAE(**options)


@pytest.fixture(scope="module")
def model():
    cvae = toy_model()
    cvae.compile()
    return cvae


IMAGES = make_bar_images(12)
LABELS = toy_labels(12)


@pytest.mark.parametrize("architecture", ["dense", "conv"])
def test_default_architectures_have_the_right_shapes(architecture):
    model = vk.ConditionalVAE(latent_dim=3, num_classes=10, architecture=architecture)
    assert [tuple(x.shape) for x in model.encoder.inputs] == [(None, 28, 28, 1), (None, 10)]
    assert [tuple(x.shape) for x in model.decoder.inputs] == [(None, 3), (None, 10)]
    images = np.random.default_rng(0).random((4, 28, 28, 1)).astype(np.float32)
    labels = np.array([0, 3, 7, 9])
    z_mean, z_log_var = model.encode(images, labels)
    assert z_mean.shape == z_log_var.shape == (4, 3)
    assert model.decode(z_mean, labels).shape == (4, 28, 28, 1)
    assert model.predict([images, labels], verbose=0).shape == (4, 28, 28, 1)
    assert model.predict((images, labels), verbose=0).shape == (4, 28, 28, 1)
    assert model.reconstruct(images, labels).shape == (4, 28, 28, 1)
    samples = model.sample(5, labels=7, seed=0)
    assert samples.shape == (5, 28, 28, 1) and samples.min() >= 0 and samples.max() <= 1


def test_the_label_changes_the_output_and_sample_takes_one_label_or_one_each(model):
    codes = np.zeros((NUM_CLASSES, 2), np.float32)
    decoded = model.decode(codes, np.arange(NUM_CLASSES))
    assert not np.allclose(decoded[0], decoded[1])
    # sample(labels=c) is decode(prior codes, c): one label for all, or one label each.
    one_each = model.sample(NUM_CLASSES, labels=np.arange(NUM_CLASSES), seed=5)
    codes = np.random.default_rng(5).standard_normal((NUM_CLASSES, 2)).astype(np.float32)
    np.testing.assert_allclose(one_each, model.decode(codes, np.arange(NUM_CLASSES)), atol=1e-6)
    np.testing.assert_allclose(model.sample(NUM_CLASSES, labels=2, seed=5)[2], one_each[2],
                               atol=1e-6)
    # Float labels that are whole numbers are fine.
    np.testing.assert_allclose(model.decode(codes, [0.0, 1.0, 2.0]), one_each, atol=1e-6)


def test_loss_terms_recomputed_by_hand(model):
    images, labels = IMAGES, LABELS
    # With noise of zero the sample is the posterior mean: check the loss terms by hand.
    log_likelihood, kl = model.reconstruction_and_kl(
        (images, labels), noise=np.zeros((len(images), 2), np.float32))
    one_hot = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    z_mean, z_log_var = (keras.ops.convert_to_numpy(t) for t in model.encoder([images, one_hot]))
    logits = keras.ops.convert_to_numpy(model.decoder([z_mean, one_hot])).astype(np.float64)
    expected_ll = np.sum(images * logits - np.logaddexp(0.0, logits), axis=(1, 2, 3))
    expected_kl = 0.5 * np.sum(z_mean ** 2 + np.exp(z_log_var) - 1.0 - z_log_var, axis=1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(log_likelihood), expected_ll, rtol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kl), expected_kl, rtol=1e-4, atol=1e-6)
    # The training loss is -log p(x | z, y) + beta * KL, averaged over the batch.
    terms = {k: float(v) for k, v in model.compute_loss_terms((images, labels)).items()}
    assert terms["loss"] == pytest.approx(terms["reconstruction_loss"] + terms["kl_loss"], rel=1e-5)
    assert terms["kl_loss"] == pytest.approx(float(expected_kl.mean()), rel=1e-4)


def test_elbo_and_nll_bound_log_p_x_given_y(model):
    images, labels = make_bar_images(32, seed=3), toy_labels(32)
    elbo = model.elbo(images, labels, seed=0, per_image=True)
    nll = model.nll(images, labels, num_samples=64, seed=0, per_image=True)
    assert elbo.shape == nll.shape == (32,)
    # The IWAE bound with K samples is (in expectation) tighter than the ELBO.
    assert np.mean(-nll) > np.mean(elbo) - 0.5
    assert model.nll(images, labels, num_samples=64, seed=0) == pytest.approx(float(nll.mean()))
    # The labels matter: the same images under other labels get other values.
    other = model.elbo(images, (labels + 1) % NUM_CLASSES, seed=0, per_image=True)
    assert not np.allclose(other, elbo)
    results = vk.evaluation.negative_log_likelihood(model, images, num_samples=8, seed=0,
                                                    labels=labels)
    assert results["nll_nats"] > 0


def test_short_fit_on_arrays_and_on_a_dataset_lowers_the_loss():
    keras.utils.set_random_seed(1)
    images = make_bar_images(1024)
    labels = toy_labels(1024)
    model = toy_model(hidden_units=(64,), seed=1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(images, labels, epochs=4, batch_size=64, verbose=0,
                        validation_data=(images[:128], labels[:128])).history
    assert history["loss"][-1] < 0.85 * history["loss"][0]
    assert set(history) >= {"loss", "reconstruction_loss", "kl_loss", "val_loss"}
    dataset = vk.make_dataset(images, 64, binarize=True, seed=0, labels=labels)
    history = model.fit(dataset, epochs=2, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    results = model.evaluate(images[:128], labels[:128], verbose=0, return_dict=True)
    assert results["loss"] == pytest.approx(results["reconstruction_loss"] + results["kl_loss"],
                                            rel=1e-4)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_save_and_load_round_trip_keeps_outputs(tmp_path, likelihood):
    keras.utils.set_random_seed(0)
    model = toy_model(likelihood=likelihood, beta=0.5)
    model.compile()
    model.fit(IMAGES, LABELS, epochs=1, verbose=0)
    model.save(tmp_path / "cvae.keras")
    loaded = keras.models.load_model(tmp_path / "cvae.keras")  # no custom_objects
    assert isinstance(loaded, vk.ConditionalVAE) and loaded.num_classes == NUM_CLASSES
    assert loaded.likelihood == likelihood and loaded.beta == pytest.approx(0.5)
    np.testing.assert_array_equal(loaded.predict([IMAGES, LABELS], verbose=0),
                                  model.predict([IMAGES, LABELS], verbose=0))
    np.testing.assert_array_equal(loaded.sample(4, labels=1, seed=0), model.sample(4, labels=1, seed=0))
    loaded.fit(IMAGES, LABELS, epochs=1, verbose=0)  # and it can keep training


def two_input_encoder(num_classes=NUM_CLASSES, latent_dim=2):
    images, labels = keras.Input(TOY_SHAPE), keras.Input((num_classes,))
    x = layers.Concatenate()([layers.Flatten()(images), layers.Dense(4)(labels)])
    x = layers.Dense(16, activation="relu")(x)
    return keras.Model([images, labels], [layers.Dense(latent_dim)(x), layers.Dense(latent_dim)(x)])


def two_input_decoder(num_classes=NUM_CLASSES, latent_dim=2):
    codes, labels = keras.Input((latent_dim,)), keras.Input((num_classes,))
    x = layers.Dense(16, activation="relu")(layers.Concatenate()([codes, labels]))
    return keras.Model([codes, labels], layers.Reshape(TOY_SHAPE)(layers.Dense(64)(x)))


def test_a_users_encoder_and_decoder_train_save_and_load(tmp_path):
    keras.utils.set_random_seed(0)
    model = vk.ConditionalVAE(two_input_encoder(), two_input_decoder())
    assert model.num_classes == NUM_CLASSES and model.latent_dim == 2
    model.compile()
    model.fit(IMAGES, LABELS, epochs=1, verbose=0)
    model.save(tmp_path / "custom.keras")
    loaded = keras.models.load_model(tmp_path / "custom.keras")
    np.testing.assert_array_equal(loaded.predict([IMAGES, LABELS], verbose=0),
                                  model.predict([IMAGES, LABELS], verbose=0))


@pytest.mark.parametrize("labels, error, message", [
    (None, ValueError, "labels are missing"),
    ("sevens", TypeError, "integer class labels"),
    (LABELS[:5], ValueError, "5 labels for 12 images"),
    (LABELS + 0.5, ValueError, "whole numbers"),
    (LABELS + NUM_CLASSES, ValueError, r"0\.\.2.*num_classes=3"),
    (-LABELS - 1, ValueError, r"0\.\.2"),
    (np.eye(NUM_CLASSES)[LABELS], ValueError, r"argmax\(axis=1\)"),
    (np.eye(10)[LABELS], ValueError, "disagree with the model's 3 classes"),
])
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict", "encode", "elbo", "nll"])
def test_bad_labels_get_a_clear_error(model, labels, error, message, method):
    with pytest.raises(error, match=message):
        if method in ("fit", "evaluate"):
            getattr(model, method)(IMAGES, labels, verbose=0)
        elif method == "predict":
            model.predict([IMAGES, labels], verbose=0)
        else:
            getattr(model, method)(IMAGES, labels)


def test_bad_labels_for_decode_sample_and_datasets(model):
    with pytest.raises(ValueError, match="labels are missing"):
        model.sample(4)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        model.sample(4, labels=3)
    with pytest.raises(ValueError, match="2 labels for 4 images"):
        model.decode(np.zeros((4, 2)), [0, 1])
    with pytest.raises(TypeError, match="labels=7"):  # one label for all: an int
        model.decode(np.zeros((4, 2)), 1.5)
    images_only = tf.data.Dataset.from_tensor_slices(IMAGES).batch(4)
    with pytest.raises(ValueError, match="labels are missing"):
        model.fit(images_only, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"\(images, labels\)"):
        model.fit(IMAGES, LABELS, epochs=1, verbose=0, validation_data=IMAGES)
    with pytest.raises(ValueError, match=r"\[images, labels\]"):
        model.predict(IMAGES, verbose=0)
    with pytest.raises(ValueError, match="3 labels for 2 images"):
        vk.make_dataset(IMAGES[:2], labels=[0, 1, 2])


def test_sub_models_and_label_counts_that_disagree_are_refused():
    with pytest.raises(ValueError, match="latent_dim and num_classes"):
        vk.ConditionalVAE(latent_dim=2)
    with pytest.raises(ValueError, match="two inputs"):
        vk.ConditionalVAE(vk.build_encoder("dense", 2, TOY_SHAPE), two_input_decoder())
    with pytest.raises(ValueError, match="label counts disagree"):
        vk.ConditionalVAE(two_input_encoder(), two_input_decoder(num_classes=4))
    with pytest.raises(ValueError, match="label counts disagree"):
        vk.ConditionalVAE(two_input_encoder(), two_input_decoder(), num_classes=10)
    with pytest.raises(TypeError, match="num_classes"):
        vk.ConditionalVAE(latent_dim=2, num_classes=2.5)
    with pytest.raises(ValueError, match="num_classes"):
        vk.ConditionalVAE(latent_dim=2, num_classes=1)


@pytest.mark.slow
def test_conditional_samples_on_real_mnist_are_recognised_as_their_label():
    data_dir = real_data_dir()
    if data_dir is None:
        pytest.skip("no MNIST data directory: set VAE_KERAS_DATA to run the end-to-end test")
    (x_train, y_train), (x_test, y_test) = vk.load_mnist(data_dir)
    keras.utils.set_random_seed(0)
    # Notebook 09's fast settings: a small code (4 dimensions) leaves the class to the label.
    model = vk.ConditionalVAE(latent_dim=4, num_classes=10, hidden_units=(256,), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(vk.make_dataset(x_train[:20000], 128, binarize=True, seed=0, labels=y_train[:20000]),
              epochs=5, verbose=0)
    judge = vk.quality.build_digit_classifier()
    vk.quality.fit_digit_classifier(judge, x_train[:10000], y_train[:10000], epochs=2, seed=0)
    wanted = np.repeat(np.arange(10), 30)
    report = vk.quality.recognition_report(judge, model.sample(len(wanted), labels=wanted, seed=0))
    hits = report["labels"] == wanted
    assert hits.mean() > 0.6, hits.mean()  # chance is 0.1; 0.86-0.90 over seeds 0-2
    assert min(hits[wanted == digit].mean() for digit in range(10)) > 0.3
