"""Resumable runs (vae_keras.runs): epoch datasets, segments, resume, and Ctrl-C."""

import json
import zipfile

import keras
import numpy as np
import pytest

import vae_keras as vk
from conftest import TOY_SHAPE, make_bar_images, press_ctrl_c_at_end_of_second_epoch
from vae_keras import runs
from vae_keras import settings as run_settings


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
    assert not list(output.glob("*partial*"))  # every temporary file was renamed into place
    state = json.loads((output / "checkpoint.json").read_text())
    assert state["checkpoint_file"] == run_settings.file_record(output / "checkpoint.keras")
    assert set(metrics["history"]) >= {"loss", "val_loss", "kl_loss", "beta"}


def test_resume_gives_the_same_result_as_an_uninterrupted_run(fake_data_dir, tmp_path):
    whole = runs.train(quick_settings(fake_data_dir, tmp_path / "whole", epochs=3,
                                      warmup_epochs=2.0), log=lambda _: None)
    split_settings = quick_settings(fake_data_dir, tmp_path / "split", epochs=3, warmup_epochs=2.0)
    with pytest.MonkeyPatch.context() as patch:  # undone after it: fake_data_dir's patch stays
        press_ctrl_c_at_end_of_second_epoch(patch)
        assert runs.train(split_settings, log=lambda _: None)["status"] == "interrupted"
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


def fake_run(folder, status="completed", epochs_completed=2, **settings):
    """A run's files without training: a zip for checkpoint.keras, and the JSON beside it.

    Enough for every refusal that comes before the data and the model load.
    """
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "checkpoint.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    (folder / "model.keras").write_bytes((folder / "checkpoint.keras").read_bytes())
    saved = dict(vars(runs.RunSettings(output=str(folder), latent_dim=2, epochs=2)), **settings)
    history = {"loss": [1.0] * epochs_completed}
    run_settings.write_json(folder / "checkpoint.json", {
        "epochs_completed": epochs_completed, "monitor": "val_loss", "best": 1.0,
        "history": history,
        "checkpoint_file": run_settings.file_record(folder / "checkpoint.keras")})
    metrics = {"settings": saved, "status": status, "epochs_completed": epochs_completed,
               "history": history}
    if status == "completed":
        metrics["test"] = {"elbo": -100.0, "num_images": 10}
    run_settings.write_json(folder / "metrics.json", metrics)
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_a_new_run_over_an_existing_one_is_refused_unless_overwrite(tmp_path):
    before = fake_run(tmp_path / "run")
    # The data folder does not exist: the refusal comes before the data is looked for.
    settings = runs.RunSettings(output=str(tmp_path / "run"), data_dir=str(tmp_path / "no-data"))
    with pytest.raises(ValueError, match=r"already holds a completed run, 2 of 2 epochs: "
                                         r"model\.keras, checkpoint\.keras.*--overwrite"):
        runs.train(settings, log=lambda _: None)
    assert {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir()} == before
    assert run_settings.prepare(settings, overwrite=True) == (settings, None)
    # A folder whose run stopped before its first epoch holds nothing to lose.
    (tmp_path / "empty").mkdir()
    run_settings.write_json(tmp_path / "empty" / "metrics.json",
                            {"status": "interrupted", "epochs_completed": 0})
    run_settings.prepare(runs.RunSettings(output=str(tmp_path / "empty")))


@pytest.mark.parametrize("changes, message", [
    (dict(latent_dim=8, learning_rate=1e-5, epochs=3),
     r"--latent-dim saved 2, given 8; --learning-rate saved 0\.001, given 1e-05\. .*only "
     r"--epochs, --time-budget, --verbose, --data-dir may change"),
    (dict(), r"is complete \(2 of 2 epochs, test ELBO -100\.00 nats\).*--epochs 3"),
])
def test_resume_refuses_other_settings_and_a_complete_run(tmp_path, changes, message):
    before = fake_run(tmp_path / "run")
    settings = runs.RunSettings(output=str(tmp_path / "run"), **changes)
    with pytest.raises(ValueError, match=message):
        runs.train(settings, resume=True, log=lambda _: None)
    assert {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir()} == before


def test_resume_may_change_epochs_budget_verbosity_and_data_folder(tmp_path):
    fake_run(tmp_path / "run", status="interrupted", epochs_completed=1, time_budget=5.0)
    given = runs.RunSettings(output=str(tmp_path / "run"), epochs=4, time_budget=2.0, verbose=0,
                             data_dir="elsewhere")
    resumed, state = run_settings.prepare(given, resume=True)
    assert (resumed.epochs, resumed.time_budget, resumed.verbose, resumed.data_dir) == (
        4, 2.0, 0, "elsewhere")
    assert resumed.latent_dim == 2 and state["epochs_completed"] == 1


def test_resume_without_metrics_json_or_with_a_damaged_checkpoint_says_so(tmp_path):
    fake_run(tmp_path / "a")
    (tmp_path / "a" / "metrics.json").unlink()
    with pytest.raises(ValueError, match="holds a checkpoint .* but no metrics.json"):
        runs.train(runs.RunSettings(output=str(tmp_path / "a")), resume=True)
    before = fake_run(tmp_path / "b", status="interrupted", epochs_completed=1)
    (tmp_path / "b" / "checkpoint.keras").write_bytes(before["checkpoint.keras"][:20])
    with pytest.raises(ValueError, match=r"checkpoint\.keras is damaged .*metrics\.json keeps"):
        runs.train(runs.RunSettings(output=str(tmp_path / "b")), resume=True)
    assert (tmp_path / "b" / "metrics.json").read_bytes() == before["metrics.json"]


def test_metrics_are_written_only_after_the_checkpoint_loads(fake_data_dir, tmp_path):
    # A whole zip that Keras cannot load, from a run saved before checkpoint.json recorded
    # its checkpoint's checksum: only loading it finds the fault, after the data loaded.
    before = fake_run(tmp_path / "run", data_dir=str(fake_data_dir), train_size=300,
                      validation_size=100, test_size=50)
    state = json.loads(before["checkpoint.json"])
    del state["checkpoint_file"]
    run_settings.write_json(tmp_path / "run" / "checkpoint.json", state)
    with pytest.raises(ValueError, match="Keras could not load a model"):
        runs.train(runs.RunSettings(output=str(tmp_path / "run"), epochs=3), resume=True,
                   log=lambda _: None)
    assert (tmp_path / "run" / "metrics.json").read_bytes() == before["metrics.json"]


def test_a_kill_between_the_two_renames_resumes_from_the_newer_state(tmp_path):
    # TrainingCheckpoint writes checkpoint.json.partial, renames checkpoint.keras, then
    # checkpoint.json: killed between the two, the new model sits beside the old state.
    fake_run(tmp_path / "run", status="running", epochs_completed=1)
    folder = tmp_path / "run"
    newer = json.loads((folder / "checkpoint.json").read_text())
    with zipfile.ZipFile(folder / "checkpoint.keras", "w") as archive:
        archive.writestr("config.json", '{"epoch": 2}')
    newer.update(epochs_completed=2, history={"loss": [1.0, 0.5]},
                 checkpoint_file=run_settings.file_record(folder / "checkpoint.keras"))
    run_settings.write_partial_json(folder / "checkpoint.json", newer)
    assert runs.TrainingCheckpoint.load_state(folder)["epochs_completed"] == 2
    (folder / "checkpoint.json.partial").unlink()  # a checkpoint that is not the state's
    with pytest.raises(ValueError, match="is not the model that .*checkpoint.json was saved with"):
        runs.TrainingCheckpoint.load_state(folder)


def test_an_output_under_a_file_is_refused_before_the_data_loads(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="which is a file, not a folder"):
        runs.train(runs.RunSettings(output=str(tmp_path / "file" / "run"),
                                    data_dir=str(tmp_path / "no-data")), log=lambda _: None)


@pytest.mark.parametrize("changes, error, message", [
    (dict(latent_dim=0), ValueError, r"latent_dim \(--latent-dim\) must be a whole number >= 1"),
    (dict(latent_dim=2.5), TypeError, "latent_dim"),
    (dict(importance_samples=0), ValueError, "importance_samples"),
    (dict(learning_rate=float("nan")), ValueError, "learning_rate"),
    (dict(likelihood="poisson"), ValueError, "likelihood='poisson' is not one of"),
    (dict(observation_scale="learned"), ValueError, "Gaussian likelihood only"),
    (dict(observation_scale=0.5), ValueError, "Gaussian likelihood only"),
    (dict(warmup_epochs=1, cycle_epochs=2), ValueError, "not both"),
])
def test_settings_are_checked_before_anything_loads(tmp_path, changes, error, message):
    settings = runs.RunSettings(output=str(tmp_path / "run"), data_dir=str(tmp_path / "none"),
                                **changes)
    with pytest.raises(error, match=message):
        runs.train(settings, log=lambda _: None)
    assert not (tmp_path / "run").exists()
    run_settings.prepare(runs.RunSettings(likelihood="gaussian", observation_scale="learned",
                                          output=str(tmp_path / "g")))
