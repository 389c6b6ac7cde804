"""The models: shapes, both ways of building, training, Keras workflows, save/load."""

import keras
import numpy as np
import pytest
from keras import layers

import vae_keras as vk
from conftest import TOY_SHAPE, make_bar_images


@pytest.mark.parametrize("architecture", ["dense", "conv"])
@pytest.mark.parametrize("latent_dim", [1, 2, 7])
def test_default_architectures_have_the_right_shapes(architecture, latent_dim):
    model = vk.VAE(latent_dim=latent_dim, architecture=architecture)
    images = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    z_mean, z_log_var = model.encode(images)
    assert z_mean.shape == z_log_var.shape == (3, latent_dim)
    assert model.decode(z_mean).shape == (3, 28, 28, 1)
    assert model.predict(images, verbose=0).shape == (3, 28, 28, 1)
    samples = model.sample(5, seed=0)
    assert samples.shape == (5, 28, 28, 1) and samples.min() >= 0 and samples.max() <= 1


def keras_example_encoder(latent_dim=2):
    """The encoder as the Keras VAE example writes it: outputs [z_mean, z_log_var, z]."""
    inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, 3, activation="relu", strides=2, padding="same")(inputs)
    x = layers.Conv2D(64, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Dense(16, activation="relu")(layers.Flatten()(x))
    z_mean = layers.Dense(latent_dim)(x)
    z_log_var = layers.Dense(latent_dim)(x)
    return keras.Model(inputs, [z_mean, z_log_var, vk.Sampling()([z_mean, z_log_var])])


def logits_decoder(latent_dim=2):
    codes = keras.Input(shape=(latent_dim,))
    x = layers.Dense(7 * 7 * 16, activation="relu")(codes)
    x = layers.Reshape((7, 7, 16))(x)
    x = layers.Conv2DTranspose(16, 3, strides=4, padding="same", activation="relu")(x)
    return keras.Model(codes, layers.Conv2D(1, 3, padding="same")(x))


def test_vae_from_a_users_encoder_and_decoder_trains_saves_and_loads(tmp_path):
    keras.utils.set_random_seed(0)
    model = vk.VAE(keras_example_encoder(), logits_decoder())
    assert model.latent_dim == 2 and model.image_shape == (28, 28, 1)
    images = (np.random.default_rng(0).random((64, 28, 28, 1)) < 0.3).astype(np.float32)
    model.compile()
    model.fit(images, epochs=1, batch_size=32, verbose=0)
    path = tmp_path / "custom.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(images[:4], verbose=0),
                               model.predict(images[:4], verbose=0), atol=1e-6)


def test_short_fit_reduces_the_loss_and_reports_all_terms():
    keras.utils.set_random_seed(1)
    images = make_bar_images(1024)
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(64,))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(images, epochs=5, batch_size=64, validation_data=images[:128], verbose=0)
    logs = history.history
    assert set(logs) >= {"loss", "reconstruction_loss", "kl_loss", "val_loss", "val_kl_loss"}
    # 0.79-0.82 after 5 epochs on each backend (their initial weights differ): at least 15%.
    assert logs["loss"][-1] < 0.85 * logs["loss"][0]
    np.testing.assert_allclose(np.array(logs["loss"]),
                               np.array(logs["reconstruction_loss"]) + np.array(logs["kl_loss"]),
                               rtol=1e-4)
    assert all(kl >= 0 for kl in logs["kl_loss"])
    results = model.evaluate(images[:128], verbose=0, return_dict=True)
    assert results["loss"] == pytest.approx(results["reconstruction_loss"] + results["kl_loss"], rel=1e-4)


def test_fit_accepts_a_dataset_and_label_pairs():
    images = make_bar_images(256)
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(16,))
    model.compile()
    model.fit(vk.make_dataset(images, 64, binarize=True, seed=0), epochs=1, verbose=0)
    model.fit(images, np.zeros(len(images)), epochs=1, verbose=0, validation_data=(images, images))


class _StepsSeen(keras.callbacks.Callback):
    """Records the steps per epoch fit ran with, and the batches of each epoch."""

    def on_train_begin(self, logs=None):
        self.steps, self.batches = self.params["steps"], []

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.batches[-1] += 1


def _train_toy(steps_per_execution=1):
    keras.utils.set_random_seed(4)
    images = make_bar_images(200)  # 4 batches of 64, the last one of 8
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(16,), seed=4)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), steps_per_execution=steps_per_execution)
    dataset = vk.make_dataset(images, 64, binarize=True, seed=0)
    seen = _StepsSeen()
    history = model.fit(dataset, epochs=4, callbacks=[seen], verbose=0)
    return model, seen, history.history["loss"]


def test_fit_over_several_epochs_keeps_one_iterator_and_sees_each_pass():
    # fit repeats a finite dataset over the epochs (one iterator, no per-epoch
    # rebuild): epoch k trains on pass k over the dataset, a fresh shuffle and noise.
    model, seen, losses = _train_toy()
    assert seen.steps == 4 and seen.batches == [4, 4, 4, 4]
    assert losses[-1] < losses[0]
    images = make_bar_images(200)
    passes = vk.make_dataset(images, 64, binarize=True, seed=0)
    one_by_one = [batch.numpy() for _ in range(3) for batch in passes]
    repeated, _ = vk.model_base._one_iterator_for_all_epochs(
        vk.make_dataset(images, 64, binarize=True, seed=0), {"epochs": 3})
    repeated = [batch.numpy() for batch in repeated]
    assert len(repeated) == len(one_by_one) == 12
    for a, b in zip(repeated, one_by_one):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.concatenate(repeated[:4]), np.concatenate(repeated[4:8]))


def test_which_datasets_fit_repeats():
    import tensorflow as tf

    dataset = vk.make_dataset(make_bar_images(200), 64)  # 4 batches
    repeat = vk.model_base._one_iterator_for_all_epochs
    repeated, kwargs = repeat(dataset, {"epochs": 5, "initial_epoch": 1})
    assert kwargs["steps_per_epoch"] == 4 and int(repeated.cardinality()) == 16
    unknown = dataset.filter(lambda batch: True)
    for args in [(dataset, {"epochs": 1}), (dataset, {"epochs": 3, "steps_per_epoch": 2}),
                 (dataset, {"epochs": 3}, 3), (unknown, {"epochs": 3}),
                 (dataset.repeat(), {"epochs": 3})]:
        assert repeat(*args) == args[:2]
    assert int(unknown.cardinality()) == tf.data.UNKNOWN_CARDINALITY


@pytest.mark.skipif(keras.backend.backend() == "torch",
                    reason="Keras runs one step per execution on PyTorch")
def test_fit_leaves_the_dataset_alone_when_an_execution_would_straddle_epochs():
    # 3 steps per execution do not divide 4 batches: Keras's own epoch handling applies.
    _, seen, losses = _train_toy(steps_per_execution=3)
    assert seen.batches == [2, 2, 2, 2]  # 2 executions of 3 steps per epoch
    assert len(losses) == 4 and np.all(np.isfinite(losses))


def test_beta_weights_the_kl_term_and_can_change_between_batches():
    images = make_bar_images(64)
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, beta=0.0, seed=3)
    terms = {k: float(v) for k, v in model.compute_loss_terms(images).items()}
    assert terms["loss"] == pytest.approx(terms["reconstruction_loss"])
    model.beta = 4.0
    terms = {k: float(v) for k, v in model.compute_loss_terms(images).items()}
    assert terms["loss"] == pytest.approx(terms["reconstruction_loss"] + 4.0 * terms["kl_loss"], rel=1e-5)


def test_gaussian_likelihood_trains_on_real_valued_pixels():
    keras.utils.set_random_seed(2)
    images = make_bar_images(512) * 0.8 + 0.1
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, likelihood="gaussian", hidden_units=(32,))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(images, epochs=3, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    means = model.reconstruct(images[:4])
    assert means.min() >= 0 and means.max() <= 1  # the default Gaussian decoder ends in a sigmoid


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "continuous_bernoulli"])
def test_vae_save_and_load_round_trip_keeps_outputs_beta_and_optimizer(tmp_path, likelihood):
    keras.utils.set_random_seed(0)
    images = make_bar_images(128)
    model = vk.VAE(latent_dim=3, image_shape=TOY_SHAPE, likelihood=likelihood, beta=0.5)
    model.compile()
    model.fit(images, epochs=1, verbose=0)
    model.beta = 0.75
    model.save(tmp_path / "vae.keras")
    loaded = keras.models.load_model(tmp_path / "vae.keras")
    assert isinstance(loaded, vk.VAE) and loaded.likelihood == likelihood
    assert loaded.beta == pytest.approx(0.75)
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), model.predict(images, verbose=0))
    np.testing.assert_array_equal(loaded.encode(images)[1], model.encode(images)[1])
    assert loaded.optimizer.iterations.numpy() == model.optimizer.iterations.numpy()
    loaded.fit(images, epochs=1, verbose=0)  # and it can keep training


def test_autoencoder_trains_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    images = make_bar_images(512)
    model = vk.Autoencoder(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(32,))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(images, epochs=4, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.encode(images).shape == (512, 2)
    model.save(tmp_path / "ae.keras")
    loaded = keras.models.load_model(tmp_path / "ae.keras")
    np.testing.assert_array_equal(loaded.reconstruct(images[:8]), model.reconstruct(images[:8]))


def test_conv_autoencoder_shapes():
    model = vk.Autoencoder(latent_dim=4, architecture="conv")
    assert model.reconstruct(np.zeros((2, 28, 28, 1), np.float32)).shape == (2, 28, 28, 1)


def test_elbo_and_nll_methods_agree_with_the_evaluation_module(trained_toy_vae):
    model, images = trained_toy_vae
    assert model.elbo(images, seed=0) == pytest.approx(
        float(np.mean(vk.evaluation.elbo_per_image(model, images, seed=0))))
    per_image = model.nll(images[:16], num_samples=20, per_image=True, seed=0)
    assert per_image.shape == (16,)
    assert model.nll(images[:16], num_samples=20, seed=0) == pytest.approx(float(per_image.mean()))


def test_the_likelihood_lives_in_two_methods():
    images = make_bar_images(4)
    logits = np.random.default_rng(0).normal(size=images.shape).astype(np.float32)
    bernoulli = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(8,))
    np.testing.assert_allclose(bernoulli.log_likelihood(images, logits),
                               vk.losses.bernoulli_log_likelihood(images, logits), rtol=1e-6)
    np.testing.assert_allclose(bernoulli.mean_images(logits), 1 / (1 + np.exp(-logits)), rtol=1e-5)
    gaussian = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(8,),
                      likelihood="gaussian", observation_scale=0.3)
    means = 1 / (1 + np.exp(-logits))
    expected = (-0.5 * np.log(2 * np.pi) - np.log(0.3)
                - 0.5 * ((images - means) / 0.3) ** 2).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(gaussian.log_likelihood(images, means), expected, rtol=1e-5)
    np.testing.assert_array_equal(gaussian.mean_images(means), means)
    continuous = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(8,),
                        likelihood="continuous_bernoulli")
    np.testing.assert_allclose(continuous.log_likelihood(images, logits),
                               vk.losses.continuous_bernoulli_log_likelihood(images, logits), rtol=1e-6)
    # Its mean is pulled towards 1/2, so it is not the sigmoid of the logits.
    np.testing.assert_allclose(continuous.mean_images(logits),
                               vk.losses.continuous_bernoulli_mean(logits), rtol=1e-6)
    pulled = keras.ops.convert_to_numpy(continuous.mean_images(logits))
    assert np.all(np.abs(pulled - 0.5) < np.abs(means - 0.5) + 1e-6)


def test_the_continuous_bernoulli_trains_on_grey_levels_with_logits():
    keras.utils.set_random_seed(3)
    images = vk.data.dequantize(np.round(make_bar_images(512) * 0.8 * 255 + 20) / 255, seed=0)
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(32,),
                   likelihood="continuous_bernoulli")
    assert not vk.model_base._ends_with_sigmoid(model.decoder)  # logits, as the Bernoulli's
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(images, epochs=3, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert np.isfinite(model.elbo(images, seed=0))
    means = model.reconstruct(images[:4])
    assert 0 < means.min() and means.max() < 1
    with pytest.raises(ValueError, match="continuous bernoulli likelihood needs pixel values"):
        model.elbo(images * 255)


def test_a_continuous_bernoulli_decoder_must_not_end_with_a_sigmoid():
    encoder = vk.build_encoder("dense", 2, TOY_SHAPE, hidden_units=(8,))
    decoder = vk.build_decoder("dense", 2, TOY_SHAPE, hidden_units=(8,), output_activation="sigmoid")
    with pytest.raises(ValueError, match="continuous Bernoulli likelihood takes logits"):
        vk.VAE(encoder, decoder, likelihood="continuous_bernoulli")


@pytest.mark.parametrize("kind, shape", [("learned", ()), ("learned_per_pixel", TOY_SHAPE)])
def test_a_learned_observation_scale_trains_towards_the_error_and_round_trips(kind, shape, tmp_path):
    keras.utils.set_random_seed(0)
    images = make_bar_images(512) * 0.8 + 0.1
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(32,),
                   likelihood="gaussian", observation_scale=kind)
    assert np.shape(model.observation_scale_value) == shape
    np.testing.assert_allclose(model.observation_scale_value, 0.1, rtol=1e-6)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(images, epochs=30, batch_size=64, verbose=0)
    sigma = model.observation_scale_value
    assert np.all(sigma >= vk.models.MIN_LEARNED_SCALE) and np.all(np.isfinite(sigma))
    if kind == "learned":
        # Maximum likelihood puts a shared sigma at the RMSE of the reconstructions.
        rmse = float(np.sqrt(np.mean((model.predict(images, verbose=0) - images) ** 2)))
        assert sigma == pytest.approx(rmse, rel=0.35)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.observation_scale_value, sigma, rtol=1e-6)
    np.testing.assert_allclose(loaded.elbo(images, seed=1), model.elbo(images, seed=1), rtol=1e-5)


@pytest.mark.parametrize("bad, error", [("learnt", ValueError), (-0.1, ValueError),
                                        ([0.1], TypeError)])
def test_bad_observation_scales_are_refused(bad, error):
    with pytest.raises(error, match="observation_scale"):
        vk.VAE(latent_dim=2, likelihood="gaussian", observation_scale=bad)


def test_evaluated_models_are_not_kept_alive():
    import gc
    import weakref

    images = make_bar_images(8)
    references = []
    for seed in range(3):
        model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(8,), seed=seed)
        model.elbo(images, seed=0)
        model.nll(images, num_samples=4, seed=0)
        references.append(weakref.ref(model))
    del model
    gc.collect()
    assert [reference() for reference in references] == [None, None, None]


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_log_likelihood_of_samples_equals_the_likelihood_of_copied_images(likelihood):
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(16,), likelihood=likelihood)
    rng = np.random.default_rng(0)
    images = (rng.random((6,) + TOY_SHAPE) < 0.5).astype(np.float32)
    outputs = rng.normal(scale=4.0, size=(3, 6) + TOY_SHAPE).astype(np.float32)
    copies = np.concatenate([images] * 3)  # K-major, as the outputs are
    expected = keras.ops.convert_to_numpy(
        model.log_likelihood(copies, outputs.reshape((-1,) + TOY_SHAPE))).reshape(3, 6)
    got = keras.ops.convert_to_numpy(model.log_likelihood_of_samples(images, outputs))
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-4)


# ---------------------------------------------------------------- importance-weighted training

def test_importance_weighted_training_loss_is_the_iwae_bound_of_the_sampling_layers_draws(
        trained_toy_vae):
    trained, images = trained_toy_vae
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(64,), seed=7,
                   importance_samples=5)
    model.set_weights(trained.get_weights())
    batch = images[:32]
    terms = model.compute_loss_terms(keras.ops.convert_to_tensor(batch))
    # The same draws from a fresh generator with the layer's seed, K-major: K copies of the batch.
    noise = keras.random.normal((5 * 32, 2), seed=keras.random.SeedGenerator(7))
    log_weights = model.log_importance_weights(batch, keras.ops.reshape(noise, (5, 32, 2)))
    expected = -np.mean(keras.ops.convert_to_numpy(vk.losses.importance_weighted_bound(log_weights)))
    np.testing.assert_allclose(float(terms["loss"]), expected, rtol=1e-5)
    # Jensen: the bound is at least the mean of its log weights, so the loss is at most theirs.
    assert float(terms["loss"]) <= -np.mean(keras.ops.convert_to_numpy(log_weights)) + 1e-4


def test_importance_weighted_training_learns_and_round_trips(bar_images, tmp_path):
    keras.utils.set_random_seed(0)
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(32,), importance_samples=3)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(bar_images, epochs=4, batch_size=64, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert set(history) >= {"loss", "reconstruction_loss", "kl_loss"}
    model.save(tmp_path / "iwae.keras")
    loaded = keras.saving.load_model(tmp_path / "iwae.keras")
    assert loaded.importance_samples == 3
    np.testing.assert_allclose(loaded.encode_mean(bar_images[:8]), model.encode_mean(bar_images[:8]),
                               rtol=1e-6)


def test_a_conditional_vae_trains_on_the_importance_weighted_bound(bar_images):
    keras.utils.set_random_seed(0)
    labels = np.arange(len(bar_images)) % 3
    model = vk.ConditionalVAE(latent_dim=2, num_classes=3, image_shape=TOY_SHAPE,
                              hidden_units=(32,), importance_samples=2)
    model.compile()
    history = model.fit(bar_images, labels, epochs=2, batch_size=64, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))


@pytest.mark.parametrize("bad, error", [(0, ValueError), (2.5, TypeError), ("5", TypeError)])
def test_bad_importance_sample_counts_are_refused(bad, error):
    with pytest.raises(error, match="importance_samples"):
        vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, importance_samples=bad)


def test_the_readmes_library_in_ten_lines_runs_unchanged_on_this_backend(fake_data_dir,
                                                                         monkeypatch, capsys):
    # The code block under "The library in ten lines", executed as a learner would paste it,
    # on the tiny MNIST-shaped files of fake_data_dir (the loader reads $VAE_KERAS_DATA).
    import re

    import matplotlib

    from conftest import REPO_ROOT

    matplotlib.use("Agg")
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## The library in ten lines", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "vk.VAE(latent_dim=2)" in code and "vae.nll(" in code
    monkeypatch.setenv("VAE_KERAS_DATA", str(fake_data_dir))
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    import matplotlib.pyplot as plt

    plt.close("all")
    last_line = capsys.readouterr().out.strip().splitlines()[-1]  # print(vae.elbo(...), vae.nll(...))
    elbo, nll = (float(v) for v in last_line.split())
    assert np.isfinite(elbo) and np.isfinite(nll) and nll > 0 and elbo < 0


def test_each_train_step_draws_new_noise_and_a_seeded_run_repeats():
    # On JAX the train step is a pure function: unless it returns the Sampling layer's new
    # seed state, every step would draw the same noise. Two steps move the state twice.
    images = make_bar_images(128)

    def train(seed):
        keras.utils.set_random_seed(seed)
        model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(16,), seed=seed)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        before = keras.ops.convert_to_numpy(model.sampling.seed_generator.state).copy()
        history = model.fit(images, epochs=2, batch_size=64, shuffle=False, verbose=0).history
        after = keras.ops.convert_to_numpy(model.sampling.seed_generator.state)
        return before, after, history["loss"]

    before, after, losses = train(3)
    assert not np.array_equal(before, after)
    assert int(after[1]) - int(before[1]) == 4  # one draw per step: 2 epochs of 2 batches
    _, again_after, again_losses = train(3)
    np.testing.assert_array_equal(again_after, after)
    np.testing.assert_allclose(again_losses, losses, rtol=1e-6)
