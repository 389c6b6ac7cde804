"""The command line on a tiny IDX dataset: outputs, errors, Ctrl-C, SIGKILL, a kept run."""

import contextlib
import json
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import vae_keras as vk
from conftest import REPO_ROOT, file_md5, press_ctrl_c_at_end_of_second_epoch, write_idx
from vae_keras import cli
from vae_keras import settings as run_settings

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


def test_a_mixture_prior_is_fitted_after_training_saved_and_used_by_evaluate_and_sample(
        fake_data_dir, tmp_path, capsys):
    output = tmp_path / "run"
    assert cli.main(["train", "--data-dir", str(fake_data_dir), "--latent-dim", "2",
                     "--hidden-units", "16,8", "--prior", "mixture:3", "--output", str(output)]
                    + QUICK) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["settings"]["prior"] == "mixture:3"
    assert metrics["settings"]["hidden_units"] == [16, 8]
    assert metrics["test"]["prior"] == "mixture:3" and metrics["prior_fit_seconds"] >= 0
    model = vk.runs.load_model(output / "model.keras")
    assert isinstance(model.prior, vk.priors.GaussianMixture) and model.prior.num_components == 3
    assert [layer.units for layer in model.encoder.layers if type(layer).__name__ == "Dense"][:2] \
        == [16, 8]
    capsys.readouterr()
    assert cli.main(["evaluate", str(output / "model.keras"), "--data-dir", str(fake_data_dir),
                     "--iwae-samples", "5", "--test-size", "20"]) == 0
    assert "prior: mixture:3" in capsys.readouterr().out
    assert cli.main(["sample", str(output / "model.keras"), "--num-samples", "4",
                     "--output", str(tmp_path / "s.png")]) == 0
    np.testing.assert_allclose(model.sample(4, seed=0),
                               model.decode(model.prior.sample(4, seed=0)), atol=1e-6)


def test_a_vamp_prior_run_builds_a_model_whose_pseudo_inputs_train():
    settings = run_settings.RunSettings(latent_dim=2, hidden_units=[8], prior="vamp:4")
    model = vk.runs.build_model(settings)
    assert isinstance(model.prior, vk.priors.VampPrior) and model.prior.num_components == 4
    assert any(w is model.prior.pseudo_inputs_variable for w in model.trainable_weights)
    with pytest.raises(ValueError, match="--conditional"):
        run_settings.RunSettings(prior="vamp:4", conditional=True).check()


def test_a_hierarchical_prior_run_builds_a_model_whose_second_layer_trains():
    settings = run_settings.RunSettings(latent_dim=2, hidden_units=[8], prior="hierarchical:3")
    model = vk.runs.build_model(settings)
    assert isinstance(model.prior, vk.priors.HierarchicalPrior) and model.prior.top_dim == 3
    prior_weights = model.prior.trainable_weights
    assert prior_weights and all(any(w is v for v in model.trainable_weights)
                                 for w in prior_weights)


def test_the_recommended_configuration_is_one_command_and_the_benchmarks_row():
    import importlib.util

    args = cli._build_parser().parse_args(["train", *run_settings.RECOMMENDED_TRAIN_ARGS])
    settings = run_settings.RunSettings(
        **{name: value for name, value in vars(args).items() if name in cli._FIELDS})
    settings.check()
    spec = importlib.util.spec_from_file_location(
        "likelihood_benchmark", REPO_ROOT / "benchmarks" / "likelihood.py")
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        benchmark = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(benchmark)
    finally:
        sys.path.remove(str(REPO_ROOT / "benchmarks"))
    row = benchmark.CONFIGS["recommended"]
    assert row is benchmark.CONFIGS["deep_warmup_mixture"]
    assert (settings.latent_dim, settings.architecture, tuple(settings.hidden_units)) == (
        row["model"]["latent_dim"], row["model"]["architecture"], row["model"]["hidden_units"])
    assert (settings.batch_size, settings.learning_rate, settings.warmup_epochs) == (
        row["batch_size"], row["learning_rate"], row["warmup_epochs"])
    assert settings.prior == f"mixture:{row['mixture_components']}"
    assert row["anneal"] == "cosine" and settings.time_budget  # a budget run decays by cosine
    assert settings.time_budget == 10 - benchmark.MIXTURE_RESERVE_MINUTES
    assert settings.validation_size == 0  # the benchmark trains on all training images
    command = " ".join(run_settings.RECOMMENDED_TRAIN_ARGS)
    for path in ["README.md", "benchmarks/likelihood.py", "vae_keras/cli.py"]:
        text = " ".join((REPO_ROOT / path).read_text().replace("\\", " ").split())
        assert command in text, path


@pytest.mark.parametrize("arguments, message", [
    (["train", "--prior", "gauss"], "--prior: prior='gauss' (--prior) is not understood"),
    (["train", "--prior", "mixture:0"], "K must be >= 1"),
    (["train", "--hidden-units", "512,,256"], "--hidden-units: hidden units"),
    (["train", "--hidden-units", "0"], "whole numbers >= 1"),
])
def test_bad_prior_and_hidden_units_are_refused_with_one_line(arguments, message, capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(arguments)
    assert raised.value.code == 2 and message in capsys.readouterr().err


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
    assert raised.value.code == 2
    assert "--latent-dim: must be a whole number >= 1" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["train", "--data-dir", str(empty), "--output", str(tmp_path / "run")]) == 2
    assert "lacks mnist" in capsys.readouterr().err
    assert cli.main(["evaluate", str(tmp_path / "nothing.h5")]) == 2
    assert ".keras" in capsys.readouterr().err


def test_resume_continues_from_the_command_line(fake_data_dir, tmp_path, capsys):
    # The equality of resumed and uninterrupted runs is tested on runs.train
    # (tests/test_runs.py); here, that the command line reaches it.
    args = ["train", "--data-dir", str(fake_data_dir), "--output", str(tmp_path / "run")] + QUICK
    args[args.index("--epochs") + 1] = "3"
    with pytest.MonkeyPatch.context() as patch:  # undone after it: fake_data_dir's patch stays
        press_ctrl_c_at_end_of_second_epoch(patch)
        assert cli.main(args) == cli.EXIT_INTERRUPTED
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
    assert choices["precision"] == list(vk.performance.PRECISIONS)
    # vae_keras.settings copies them so that the parser needs no TensorFlow: the copies agree.
    assert run_settings.DATA_DIR_VARIABLE == vk.data.DATA_DIR_VARIABLE
    assert run_settings.LEARNED_SCALES == vk.models.LEARNED_SCALES
    assert run_settings.DEFAULT_OBSERVATION_SCALE == vk.models.DEFAULT_OBSERVATION_SCALE
    with pytest.raises(SystemExit):
        cli.main(["train", "--observation-scale", "-1"])


def test_conditional_train_draws_one_row_per_class_and_sample_draws_a_label(
        fake_data_dir, tmp_path, monkeypatch, capsys):
    grids = []
    original = vk.plotting.image_grid

    def recording_grid(images, ncols=8, **kwargs):
        grids.append((len(images), ncols))
        return original(images, ncols=ncols, **kwargs)

    monkeypatch.setattr(vk.plotting, "image_grid", recording_grid)
    output = tmp_path / "conditional"
    assert cli.main(["train", "--conditional", "--data-dir", str(fake_data_dir), "--latent-dim",
                     "2", "--output", str(output)] + QUICK) == 0
    model = vk.runs.load_model(output / "model.keras")
    assert isinstance(model, vk.ConditionalVAE) and model.num_classes == 10
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["settings"]["conditional"] and metrics["test"]["num_samples"] == 20
    assert grids[0] == (80, 8)  # samples.png: 10 rows (one per class) of 8
    assert "conditional VAE" in capsys.readouterr().out

    sevens = tmp_path / "sevens.png"
    assert cli.main(["sample", str(output / "model.keras"), "--label", "7", "--num-samples", "4",
                     "--output", str(sevens)]) == 0
    assert sevens.stat().st_size > 0 and grids[-1] == (4, 8)
    assert cli.main(["evaluate", str(output / "model.keras"), "--data-dir", str(fake_data_dir),
                     "--iwae-samples", "5", "--test-size", "20"]) == 0
    assert cli.main(["sample", str(output / "model.keras"), "--label", "12",
                     "--output", str(tmp_path / "x.png")]) == 2
    assert "0..9" in capsys.readouterr().err


def test_label_on_a_plain_model_says_it_needs_a_conditional_one(tmp_path, capsys):
    vk.VAE(latent_dim=2).save(tmp_path / "plain.keras")
    assert cli.main(["sample", str(tmp_path / "plain.keras"), "--label", "3",
                     "--output", str(tmp_path / "x.png")]) == 2
    assert "--conditional" in capsys.readouterr().err


def run_python(*arguments, **options):
    """A fresh interpreter (this one has TensorFlow loaded already), from the repository root."""
    return subprocess.run([sys.executable, *arguments], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120, **options)


def test_help_and_usage_errors_answer_without_loading_tensorflow(tmp_path):
    code = """
import sys
from vae_keras import cli
for argv in (["--help"], ["train", "--help"], ["evaluate", "--help"],
             ["train", "--importance-samples", "0"]):
    try:
        cli.main(argv)
    except SystemExit as exit:
        print("exit", exit.code)
print("loaded", "tensorflow" in sys.modules, "keras" in sys.modules)
"""
    result = run_python("-c", code)
    assert result.stdout.split("\n")[-2:] == ["loaded False False", ""], result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("exit")] == [
        "exit 0", "exit 0", "exit 0", "exit 2"]
    # The same through `python -m vae_keras`: one line, exit 2, no traceback, nothing written.
    output = tmp_path / "run"
    result = run_python("-m", "vae_keras", "train", "--importance-samples", "0",
                        "--output", str(output))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--importance-samples: must be a whole number >= 1, got 0" in result.stderr
    assert not output.exists()


def test_help_gives_each_default_once_and_says_what_none_means():
    parser = cli._build_parser()
    for name, command in parser._subparsers._group_actions[0].choices.items():
        formatter = command._get_formatter()
        for action in command._actions:
            if not action.option_strings or action.nargs == 0:  # positionals, flags, -h
                continue
            text = formatter._get_help_string(action)
            assert text.count("(default") == 1, (name, action.dest, text)
        assert "(default: None)" not in " ".join(command.format_help().split()), name


@pytest.mark.parametrize("arguments, message", [
    (["train", "--importance-samples", "0"], "--importance-samples: must be a whole number >= 1"),
    (["train", "--epochs", "2.5"], "--epochs: expected a whole number"),
    (["train", "--learning-rate", "0"], "--learning-rate: must be a finite number > 0"),
    (["train", "--beta", "nan"], "--beta: must be a finite number >= 0"),
    (["train", "--time-budget", "-1"], "--time-budget: must be a finite number > 0"),
    (["train", "--seed", "-1"], "--seed: must be a whole number >= 0"),
    (["train", "--validation-size", "-1"], "--validation-size: must be a whole number >= 0"),
    (["train", "--observation-scale", "0"], "--observation-scale: must be a finite number > 0"),
    (["train", "--resume", "--overwrite"], "not allowed with argument --resume"),
    (["evaluate", "m.keras", "--iwae-samples", "-1"], "--iwae-samples: must be a whole number"),
    (["sample", "m.keras", "--num-samples", "0"], "--num-samples: must be a whole number >= 1"),
    (["sample", "m.keras", "--label", "-1"], "--label: must be a whole number >= 0"),
])
def test_bad_numbers_are_refused_by_argparse_before_anything_is_written(
        arguments, message, tmp_path, capsys):
    if arguments[0] == "train":
        arguments = arguments + ["--output", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as raised:
        cli.main(arguments)
    assert raised.value.code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_settings_that_cannot_run_are_refused_before_the_data_loads(tmp_path, capsys):
    # The data folder does not exist: each refusal must come before the data is looked for.
    missing = ["--data-dir", str(tmp_path / "no-data")]
    run = str(tmp_path / "run")
    assert cli.main(["train", "--output", run, "--observation-scale", "learned"] + missing) == 2
    assert "Gaussian likelihood only" in capsys.readouterr().err
    assert cli.main(["train", "--output", run, "--warmup-epochs", "1", "--cycle-epochs", "2"]
                    + missing) == 2
    assert "not both" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert cli.main(["train", "--output", str(blocker / "run")] + missing) == 2
    err = capsys.readouterr().err
    assert f"is under {blocker}, which is a file" in err and "Traceback" not in err
    assert cli.main(["evaluate", "m.keras", "--json", str(tmp_path / "no" / "x.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A completed two-epoch run (latent_dim 2), trained once; tests copy it to change it."""
    data_dir = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    (data_dir / "mnist").mkdir()
    for prefix, count in [("train", 700), ("t10k", 100)]:
        images = (rng.random((count, 28, 28)) < 0.2) * rng.integers(0, 256, (count, 28, 28))
        write_idx(data_dir / "mnist" / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(data_dir / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, count))
    output = tmp_path_factory.mktemp("finished") / "run"
    with fake_files_pass_the_checksum_check(data_dir):
        assert cli.main(["train", "--data-dir", str(data_dir), "--latent-dim", "2",
                         "--output", str(output)] + QUICK) == 0
    return output


@contextlib.contextmanager
def fake_files_pass_the_checksum_check(data_dir):
    """As the fake_data_dir fixture does: the fake files' sums stand in for the originals'."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(vk.data.ORIGINAL_MD5, "mnist", {
            path.name: file_md5(path) for path in (data_dir / "mnist").glob("*.gz")})
        yield


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A copy of the finished run, and a snapshot of its files' bytes."""
    output = tmp_path / "run"
    shutil.copytree(finished_run, output)
    return output, snapshot(output)


def snapshot(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def test_a_rerun_without_resume_is_refused_and_the_run_kept(run_copy, capsys):
    output, before = run_copy
    assert cli.main(["train", "--latent-dim", "2", "--output", str(output)] + QUICK) == 2
    err = capsys.readouterr().err
    assert f"{output} already holds a completed run, 2 of 2 epochs" in err
    assert "model.keras" in err and "--resume" in err and "--overwrite" in err
    assert "Traceback" not in err and snapshot(output) == before


def test_resume_with_changed_options_lists_them_and_changes_nothing(run_copy, capsys):
    output, before = run_copy
    assert cli.main(["train", "--output", str(output), "--resume", "--latent-dim", "16",
                     "--learning-rate", "1e-5", "--epochs", "3", "--verbose", "0"]) == 2
    err = capsys.readouterr().err
    # --latent-dim 16 is the default, but it was given: it counts, against the saved 2.
    assert "--latent-dim saved 2, given 16; --learning-rate saved 0.001, given 1e-05" in err
    assert "only --epochs, --time-budget, --verbose, --data-dir may change" in err
    assert snapshot(output) == before


def test_resuming_a_complete_run_says_so_and_how_to_extend_it(run_copy, capsys):
    output, before = run_copy
    assert cli.main(["train", "--output", str(output), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "is complete (2 of 2 epochs, test ELBO" in err and "A larger --epochs extends it" in err
    assert "epochs 3-2" not in err and snapshot(output) == before


def test_a_damaged_checkpoint_is_refused_and_the_results_kept(run_copy, capsys):
    output, before = run_copy
    damaged = bytearray(before["checkpoint.keras"])
    damaged[len(damaged) // 2:len(damaged) // 2 + 64] = b"\xff" * 64
    (output / "checkpoint.keras").write_bytes(bytes(damaged))
    assert cli.main(["train", "--output", str(output), "--resume", "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.keras is damaged" in err and "--overwrite" in err
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["status"] == "completed" and "elbo" in metrics["test"]
    assert (output / "metrics.json").read_bytes() == before["metrics.json"]


def test_resume_without_metrics_json_says_what_is_missing(run_copy, capsys):
    output, _ = run_copy
    (output / "metrics.json").unlink()
    assert cli.main(["train", "--output", str(output), "--resume", "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert "holds a checkpoint" in err and "but no metrics.json" in err
    assert "Traceback" not in err and "FileNotFoundError" not in err


def test_overwrite_replaces_the_run(run_copy, capsys):
    output, _ = run_copy
    data_dir = json.loads((output / "metrics.json").read_text())["settings"]["data_dir"]
    arguments = ["train", "--data-dir", data_dir, "--output", str(output), "--overwrite"] + QUICK
    arguments[arguments.index("--epochs") + 1] = "1"
    with fake_files_pass_the_checksum_check(pathlib.Path(data_dir)):
        assert cli.main(arguments) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 1 and metrics["settings"]["latent_dim"] == 16
    assert not (output / "latent_scatter.png").exists()  # the old run's 2-D figures went too
    assert json.loads((output / "checkpoint.json").read_text())["epochs_completed"] == 1


def test_a_nan_loss_stops_the_run_and_keeps_the_best_model(fake_data_dir, tmp_path, monkeypatch,
                                                          capsys):
    original = vk.callbacks.NonFiniteLossGuard.on_epoch_end

    def nan_in_second_epoch(self, epoch, logs=None):  # the real guard sees a NaN loss
        original(self, epoch, dict(logs or {}, loss=float("nan")) if epoch == 1 else logs)

    monkeypatch.setattr(vk.callbacks.NonFiniteLossGuard, "on_epoch_end", nan_in_second_epoch)
    output = tmp_path / "run"
    assert cli.main(["train", "--data-dir", str(fake_data_dir), "--output", str(output)]
                    + QUICK) == 1
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["status"] == "stopped_nan" and metrics["epochs_completed"] == 1
    assert (output / "model.keras").is_file() and "learning rate" in metrics["message"]
    assert "best model so far" in capsys.readouterr().err


def test_sigkill_then_resume_finishes_the_run(fake_data_dir, tmp_path, capsys):
    # A run killed without warning (SIGKILL: no Python handler runs) while it trains.
    output = tmp_path / "run"
    arguments = ["-m", "vae_keras", "train", "--data-dir", str(fake_data_dir),
                 "--output", str(output)] + QUICK
    arguments[arguments.index("--epochs") + 1] = "1000"
    process = subprocess.Popen([sys.executable, *arguments], cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not (output / "checkpoint.json").is_file() and time.monotonic() < deadline:
            assert process.poll() is None, "the run ended before it was killed"
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=60)
    assert json.loads((output / "metrics.json").read_text())["status"] == "running"
    assert cli.main(["train", "--output", str(output)]) == 2  # not replaced by a plain rerun
    assert "or was killed" in capsys.readouterr().err
    done = json.loads((output / "checkpoint.json").read_text())["epochs_completed"]
    assert done >= 1
    assert cli.main(["train", "--output", str(output), "--resume", "--epochs", str(done + 1),
                     "--verbose", "0"]) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_completed"] == done + 1
    assert len(metrics["history"]["loss"]) == done + 1
