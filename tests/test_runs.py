"""Resumable runs (vae_keras.runs): epoch datasets, segments, resume, and Ctrl-C."""

import json

import keras
import numpy as np
import pytest

import vae_keras as vk
from conftest import TOY_SHAPE, make_bar_images, press_ctrl_c_at_end_of_second_epoch
from vae_keras import runs


def quick_settings(data_dir, output, **changes):
    settings = runs.RunSettings(data_dir=str(data_dir), output=str(output), latent_dim=2,
                                epochs=2, train_size=300, validation_size=100, test_size=50,
                                iwae_samples=20, verbose=0, batch_size=50)
    for key, value in changes.items():
        setattr(settings, key, value)
    return settings


def epoch_batches(images, epochs, seed=7, binarize=True):
    dataset, steps = runs.epoch_dataset(images, 16, epochs, binarize=binarize, seed=seed)
    return [b.numpy() for b in dataset], steps


def test_an_epoch_is_a_pure_function_of_seed_and_epoch():
    images = np.random.default_rng(0).random((50, 3, 3, 1)).astype(np.float32)
    first, steps = epoch_batches(images, range(3, 4), seed=1)
    assert steps == 4  # 16, 16, 16, 2
    np.testing.assert_array_equal(np.concatenate(first),
                                  np.concatenate(epoch_batches(images, range(3, 4), seed=1)[0]))
    assert not np.array_equal(np.concatenate(first),
                              np.concatenate(epoch_batches(images, range(4, 5), seed=1)[0]))
    assert not np.array_equal(np.concatenate(first),
                              np.concatenate(epoch_batches(images, range(3, 4), seed=2)[0]))
    plain = np.concatenate(epoch_batches(images, range(3, 4), seed=1, binarize=False)[0])
    rows = plain.reshape(50, -1)  # a permutation of the images
    assert sorted(map(tuple, rows)) == sorted(map(tuple, images.reshape(50, -1)))


def test_a_range_of_epochs_plays_the_single_epochs_back_to_back():
    images = np.random.default_rng(0).random((50, 3, 3, 1)).astype(np.float32)
    several, steps = epoch_batches(images, range(2, 5))
    one_by_one = sum((epoch_batches(images, range(e, e + 1))[0] for e in (2, 3, 4)), [])
    assert steps == 4 and len(several) == len(one_by_one) == 12
    for joined, alone in zip(several, one_by_one):
        np.testing.assert_array_equal(joined, alone)


@pytest.mark.parametrize("epochs, error", [
    (range(3, 3), ValueError), (range(-1, 2), ValueError), (range(0, 6, 2), ValueError),
    (3, TypeError), ("2", TypeError)])
def test_bad_epoch_arguments_are_refused(epochs, error):
    with pytest.raises(error, match="epochs"):
        runs.epoch_dataset(np.zeros((4, 2, 2, 1)), 2, epochs)


def test_segments_follow_the_one_steps_per_execution_rule():
    assert runs.epoch_segments(0, 5, batches_per_epoch=8, steps_per_execution=4) == [range(0, 5)]
    assert runs.epoch_segments(2, 4, batches_per_epoch=9, steps_per_execution=4) == [
        range(2, 3), range(3, 4)]
    assert runs.epoch_segments(5, 5, 8, 1) == []


def test_fit_on_an_epoch_dataset_runs_each_epoch_once():
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(16,), seed=0)
    model.compile()
    dataset, steps = runs.epoch_dataset(make_bar_images(200), 64, range(2, 5), binarize=True)
    batches_seen = []

    class Count(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            batches_seen.append(0)

        def on_train_batch_end(self, batch, logs=None):
            batches_seen[-1] += 1

    history = model.fit(dataset, initial_epoch=2, epochs=5, steps_per_epoch=steps,
                        callbacks=[Count()], verbose=0)
    assert steps == 4 and batches_seen == [4, 4, 4] and len(history.history["loss"]) == 3


def test_a_run_writes_model_metrics_and_figures(fake_data_dir, tmp_path):
    output = tmp_path / "run"
    metrics = runs.train(quick_settings(fake_data_dir, output, warmup_epochs=1.0), log=lambda _: None)
    assert metrics["status"] == "completed" and metrics["epochs_completed"] == 2
    for name in ["model.keras", "metrics.json", "samples.png", "reconstructions.png",
                 "loss_curves.png", "latent_scatter.png", "manifold.png", "checkpoint.keras"]:
        assert (output / name).is_file(), name
    assert json.loads((output / "metrics.json").read_text())["settings"]["latent_dim"] == 2
    assert set(metrics["history"]) >= {"loss", "val_loss", "kl_loss", "beta"}


def test_resume_gives_the_same_result_as_an_uninterrupted_run(fake_data_dir, tmp_path, monkeypatch):
    whole = runs.train(quick_settings(fake_data_dir, tmp_path / "whole", epochs=3,
                                      warmup_epochs=2.0), log=lambda _: None)
    press_ctrl_c_at_end_of_second_epoch(monkeypatch)
    split_settings = quick_settings(fake_data_dir, tmp_path / "split", epochs=3, warmup_epochs=2.0)
    assert runs.train(split_settings, log=lambda _: None)["status"] == "interrupted"
    monkeypatch.undo()
    state = json.loads((tmp_path / "split" / "checkpoint.json").read_text())
    assert state["epochs_completed"] == 1
    # Resuming needs only the folder: every other setting comes from metrics.json.
    split = runs.train(runs.RunSettings(output=str(tmp_path / "split"), verbose=0), resume=True,
                       log=lambda _: None)
    assert split["epochs_completed"] == whole["epochs_completed"] == 3
    for key in ["loss", "val_loss", "kl_loss", "beta"]:
        np.testing.assert_allclose(split["history"][key], whole["history"][key], rtol=1e-5)
    whole_model = keras.models.load_model(tmp_path / "whole" / "checkpoint.keras")
    split_model = keras.models.load_model(tmp_path / "split" / "checkpoint.keras")
    for a, b in zip(whole_model.get_weights(), split_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert split["test"]["elbo"] == pytest.approx(whole["test"]["elbo"], rel=1e-4)


def test_resume_without_a_checkpoint_says_so(tmp_path):
    with pytest.raises(ValueError, match="holds no checkpoint"):
        runs.train(runs.RunSettings(output=str(tmp_path)), resume=True)


def test_a_learned_observation_scale_runs_end_to_end(fake_data_dir, tmp_path):
    metrics = runs.train(quick_settings(fake_data_dir, tmp_path / "g", likelihood="gaussian",
                                        observation_scale="learned", iwae_samples=0),
                         log=lambda _: None)
    model = keras.models.load_model(tmp_path / "g" / "model.keras")
    assert metrics["status"] == "completed" and model.observation_scale == "learned"
    assert np.isfinite(metrics["test"]["elbo"]) and model.observation_scale_value != 0.1


def test_load_model_says_what_is_wrong_with_a_file(tmp_path):
    junk = tmp_path / "junk.keras"
    junk.write_text("not a model")
    with pytest.raises(ValueError, match="not a Keras model file"):
        runs.load_model(junk)
    with pytest.raises(ValueError, match="does not exist"):
        runs.load_model(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match=r"\.keras"):
        runs.load_model(tmp_path / "model.h5")


def test_a_time_budgeted_run_trains_the_importance_weighted_bound_until_the_budget_ends(
        fake_data_dir, tmp_path):
    # A budget of 60 ms: the first epoch spends it, so the run stops there, not at 10,000.
    metrics = runs.train(quick_settings(fake_data_dir, tmp_path / "b", epochs=None,
                                        time_budget=0.001, importance_samples=2, iwae_samples=0),
                         log=lambda _: None)
    assert metrics["status"] == "completed" and metrics["epochs_completed"] == 1
    assert metrics["settings"]["epochs"] == runs.MAX_BUDGETED_EPOCHS
    assert keras.models.load_model(tmp_path / "b" / "model.keras").importance_samples == 2
    assert "learning_rate" in metrics["history"]


def test_a_time_budget_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="time_budget"):
        runs.train(runs.RunSettings(time_budget=0, output=str(tmp_path / "x")), log=lambda _: None)
