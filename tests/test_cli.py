"""The command line on a tiny IDX dataset: outputs, errors, Ctrl-C."""

import json

import pytest

import vae_keras as vk
from conftest import press_ctrl_c_at_end_of_second_epoch
from vae_keras import cli

QUICK = ["--epochs", "2", "--train-size", "300", "--validation-size", "100", "--test-size", "50",
         "--iwae-samples", "20", "--verbose", "0", "--batch-size", "50"]


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


def test_resume_continues_from_the_command_line(fake_data_dir, tmp_path, monkeypatch, capsys):
    # The equality of resumed and uninterrupted runs is tested on runs.train
    # (tests/test_runs.py); here, that the command line reaches it.
    press_ctrl_c_at_end_of_second_epoch(monkeypatch)
    args = ["train", "--data-dir", str(fake_data_dir), "--output", str(tmp_path / "run")] + QUICK
    args[args.index("--epochs") + 1] = "3"
    assert cli.main(args) == cli.EXIT_INTERRUPTED
    monkeypatch.undo()
    assert cli.main(["train", "--output", str(tmp_path / "run"), "--resume", "--verbose", "0"]) == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs_completed"] == 3
    assert "Test ELBO" in capsys.readouterr().out


def test_resume_without_a_checkpoint_says_so(tmp_path, capsys):
    assert cli.main(["train", "--output", str(tmp_path), "--resume"]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err


def test_a_file_that_is_not_a_model_gets_a_true_message(tmp_path, capsys):
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"\x00" * 100)
    assert cli.main(["evaluate", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "not a Keras model file" in err and "File not found" not in err


def test_choices_come_from_the_library():
    parser = cli._build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    choices = {action.dest: action.choices for action in train._actions if action.choices}
    assert choices["dataset"] == list(vk.data.DATASETS)
    assert choices["likelihood"] == list(vk._checks.LIKELIHOODS)
    assert choices["architecture"] == list(vk._checks.ARCHITECTURES)
    assert choices["strategy"] == list(vk.performance.STRATEGIES)
    with pytest.raises(SystemExit):
        cli.main(["train", "--observation-scale", "-1"])
