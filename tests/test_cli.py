"""The command line on a tiny IDX dataset: outputs, errors, Ctrl-C."""

import json

import keras
import numpy as np
import pytest

import vae_keras.callbacks
from vae_keras import cli

QUICK = ["--epochs", "2", "--train-size", "300", "--validation-size", "100", "--test-size", "50",
         "--iwae-samples", "20", "--verbose", "0", "--batch-size", "50"]


def press_ctrl_c_at_end_of_second_epoch(monkeypatch):
    """Raise KeyboardInterrupt as the second epoch ends, before it is checkpointed."""
    original = vae_keras.callbacks.NonFiniteLossGuard.on_epoch_end

    def interrupt(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(vae_keras.callbacks.NonFiniteLossGuard, "on_epoch_end", interrupt)


def test_train_writes_model_metrics_and_figures_then_evaluate_and_sample(fake_data_dir, tmp_path, capsys):
    output = tmp_path / "run"
    code = cli.main(["train", "--data-dir", str(fake_data_dir), "--latent-dim", "2",
                     "--output", str(output), "--warmup-epochs", "1"] + QUICK)
    assert code == 0
    for name in ["model.keras", "metrics.json", "samples.png", "reconstructions.png",
                 "loss_curves.png", "latent_scatter.png", "manifold.png"]:
        assert (output / name).is_file(), name
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_completed"] == 2
    assert set(metrics["history"]) >= {"loss", "val_loss", "kl_loss", "beta"}
    test = metrics["test"]
    assert test["nll_nats"] <= -test["elbo"] + 5  # IWAE is (up to noise) tighter than the ELBO
    assert test["num_samples"] == 20 and test["num_images"] == 50
    assert "NLL" in capsys.readouterr().out

    assert cli.main(["evaluate", str(output / "model.keras"), "--data-dir", str(fake_data_dir),
                     "--iwae-samples", "5", "--test-size", "20",
                     "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["num_samples"] == 5
    assert cli.main(["sample", str(output / "model.keras"), "--num-samples", "4",
                     "--output", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0


def test_ctrl_c_keeps_the_best_model_so_far(fake_data_dir, tmp_path, monkeypatch, capsys):
    press_ctrl_c_at_end_of_second_epoch(monkeypatch)
    output = tmp_path / "run"
    args = ["train", "--data-dir", str(fake_data_dir), "--output", str(output)] + QUICK
    args[args.index("--epochs") + 1] = "5"
    assert cli.main(args) == cli.EXIT_INTERRUPTED
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and (output / "model.keras").is_file()
    assert "best model so far" in capsys.readouterr().err


def test_bad_arguments_exit_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["train", "--latent-dim", "0"])
    assert raised.value.code == 2 and "--latent-dim must be >= 1" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["train", "--data-dir", str(empty)]) == 2
    assert "lacks mnist" in capsys.readouterr().err
    assert cli.main(["evaluate", str(tmp_path / "nothing.h5")]) == 2
    assert ".keras" in capsys.readouterr().err


def test_resume_gives_the_same_result_as_an_uninterrupted_run(fake_data_dir, tmp_path, monkeypatch):
    args = ["train", "--data-dir", str(fake_data_dir), "--latent-dim", "2",
            "--warmup-epochs", "2"] + QUICK
    args[args.index("--epochs") + 1] = "3"
    assert cli.main(args + ["--output", str(tmp_path / "whole")]) == 0

    press_ctrl_c_at_end_of_second_epoch(monkeypatch)
    assert cli.main(args + ["--output", str(tmp_path / "split")]) == cli.EXIT_INTERRUPTED
    monkeypatch.undo()
    assert json.loads((tmp_path / "split" / "checkpoint.json").read_text())["epochs_completed"] == 1
    assert cli.main(["train", "--output", str(tmp_path / "split"), "--resume", "--verbose", "0"]) == 0

    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    split = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert split["epochs_completed"] == whole["epochs_completed"] == 3
    for key in ["loss", "val_loss", "kl_loss", "beta"]:
        np.testing.assert_allclose(split["history"][key], whole["history"][key], rtol=1e-5)
    whole_model = keras.models.load_model(tmp_path / "whole" / "checkpoint.keras")
    split_model = keras.models.load_model(tmp_path / "split" / "checkpoint.keras")
    for a, b in zip(whole_model.get_weights(), split_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert split["test"]["elbo"] == pytest.approx(whole["test"]["elbo"], rel=1e-4)


def test_resume_without_a_checkpoint_says_so(tmp_path, capsys):
    assert cli.main(["train", "--output", str(tmp_path), "--resume"]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err
