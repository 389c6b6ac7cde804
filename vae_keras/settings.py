"""The settings of a training run, and every check that can run before TensorFlow loads.

``vae-keras --help`` and a usage error should answer at once, and a run should
refuse bad settings before it spends seconds loading TensorFlow and data, or
writes a file. So this module imports nothing but the standard library; the
command line builds its parser from it, and :func:`vae_keras.runs.train` calls
:func:`prepare` first, for the command line and for coursework alike.

:func:`prepare` is where a run's folder is protected: it refuses to start a new
run over an existing one (unless ``overwrite``), to resume with settings that
differ from the saved run's, to resume a run with no ``metrics.json`` or a
damaged checkpoint, to resume a complete run with nothing left to train, and an
output path under a file. :func:`write_json` writes every JSON file of a run
under a temporary name and renames it, so an interruption never leaves half a file.
"""

import dataclasses
import json
import math
import numbers
import os
import pathlib
import zipfile
import zlib

EXIT_INTERRUPTED = 130  # the exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells use
BINARIZE_CHOICES = ("auto", "yes", "no")
MAX_BUDGETED_EPOCHS = 10_000  # the epoch limit of a --time-budget run without --epochs
DEFAULT_EPOCHS = 30  # a new run's epochs without --epochs or --time-budget

# The choices the parser needs before TensorFlow loads. This is their home: the modules that
# use them (_checks, data, models, performance) import them from here. DATASETS alone is a
# copy of vae_keras.data.DATASETS's keys (that dict holds more); tests/test_cli.py checks it.
DATASETS = ("mnist", "fashion_mnist")
DATA_DIR_VARIABLE = "VAE_KERAS_DATA"
ARCHITECTURES = ("dense", "conv")
LIKELIHOODS = ("bernoulli", "gaussian", "continuous_bernoulli")
# The likelihoods whose decoder outputs logits (the others output means through a sigmoid).
LOGIT_LIKELIHOODS = ("bernoulli", "continuous_bernoulli")
# Learned observation scales: one shared sigma, or one per pixel.
LEARNED_SCALES = ("learned", "learned_per_pixel")
DEFAULT_OBSERVATION_SCALE = 0.1  # the Gaussian's sigma, and where a learned one starts
STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed")  # of training (evaluation's precisions are its own)
VERBOSITIES = (0, 1, 2)  # Keras fit's verbose
# The README's recommended configuration (benchmarks/likelihood.py's deep_warmup_mixture row)
# as `vae-keras train` options: tests/test_cli.py checks that it is the benchmark's row and
# that the README, the benchmark and the command line's docstring quote it. The training
# budget is the row's 10 minutes less the one it keeps for the mixture's fit.
RECOMMENDED_TRAIN_ARGS = ("--latent-dim", "32", "--hidden-units", "512,256,256",
                          "--warmup-epochs", "5", "--time-budget", "9", "--prior", "mixture:50",
                          "--validation-size", "0")
# The priors of --prior: "normal", "mixture:K" (fitted after training), "vamp:K" (trained),
# "hierarchical:D" (a second stochastic layer with a top code of D dimensions, trained).
PRIOR_KINDS = ("normal", "mixture", "vamp", "hierarchical")
PRIOR_FORMS = ("normal, mixture:K, vamp:K or hierarchical:D (K, D whole numbers >= 1, e.g. "
               "mixture:50, vamp:500, hierarchical:16)")

# The files of a run's folder (vae_keras.runs.TrainingCheckpoint writes the first three).
MODEL_FILE, CHECKPOINT_FILE, STATE_FILE = "model.keras", "checkpoint.keras", "checkpoint.json"
METRICS_FILE = "metrics.json"
RUN_FILES = (MODEL_FILE, CHECKPOINT_FILE, STATE_FILE, METRICS_FILE)

# The settings a resumed run may change: how long it trains (epochs, time_budget: a resumed
# run gets a new budget), how much it prints, and where the same dataset is read from.
# Every other setting decides what the run computes, so it is the saved run's.
RESUMABLE = ("epochs", "time_budget", "verbose", "data_dir")

# Bounds of the numeric settings: (whole number?, lowest value, is the lowest allowed?).
# None is allowed where the field's default is None (it then means what RunSettings says).
NUMBERS = {
    "latent_dim": (True, 1, True),
    "beta": (False, 0, True),
    "warmup_epochs": (False, 0, True),
    "cycle_epochs": (False, 0, True),
    "epochs": (True, 1, True),
    "time_budget": (False, 0, False),
    "importance_samples": (True, 1, True),
    "batch_size": (True, 1, True),
    "learning_rate": (False, 0, False),
    "seed": (True, 0, True),
    "train_size": (True, 1, True),
    "validation_size": (True, 0, True),
    "test_size": (True, 1, True),
    "iwae_samples": (True, 0, True),
}


def number_problem(value, whole, lowest, inclusive=True):
    """What is wrong with ``value`` as a number within these bounds, or None if nothing is.

    Args:
        value: the number to check.
        whole: whether it must be a whole number (an int, not a bool).
        lowest: the lowest value allowed.
        inclusive: whether ``lowest`` itself is allowed.

    Returns:
        None, or ``(error class, phrase)``: ``TypeError`` for a value of the wrong
        type (a string, a bool, 2.5 for a whole number), ``ValueError`` for one out
        of range, and a phrase such as ``"must be a whole number >= 1, got 0"``
        (the caller names the setting).
    """
    kind = "a whole number" if whole else "a finite number"
    phrase = f"must be {kind} {'>=' if inclusive else '>'} {lowest:g}, got {value!r}"
    wanted = numbers.Integral if whole else numbers.Real
    if isinstance(value, bool) or not isinstance(value, wanted):
        return TypeError, phrase
    if not math.isfinite(value) or value < lowest or (value == lowest and not inclusive):
        return ValueError, phrase
    return None


def check_number(name, value, whole, lowest, inclusive=True):
    """Return ``value`` if :func:`number_problem` finds nothing; raise its error otherwise."""
    problem = number_problem(value, whole, lowest, inclusive)
    if problem:
        error, phrase = problem
        raise error(f"{name} {phrase}.")
    return value


def parse_prior(text):
    """``--prior``'s text as ``(kind, K)``: ``("normal", None)``, ``("mixture", 50)``...

    Raises:
        ValueError: text of another form, naming the forms that work.
    """
    if not isinstance(text, str):
        raise TypeError(f"prior (--prior) must be text, one of {PRIOR_FORMS}; got "
                        f"{type(text).__name__} {text!r}.")
    kind, colon, count = text.strip().lower().partition(":")
    if kind == "normal" and not colon:
        return "normal", None
    if kind in PRIOR_KINDS[1:] and count.strip().lstrip("-").isdigit():
        components = int(count)
        if components < 1:
            letter, example = ("D", 16) if kind == "hierarchical" else ("K", 50)
            raise ValueError(f"prior={text!r} (--prior): {letter} must be >= 1 ({letter} = "
                             f"{components} is no distribution); e.g. {kind}:{example}.")
        return kind, components
    raise ValueError(f"prior={text!r} (--prior) is not understood: give {PRIOR_FORMS}.")


def parse_hidden_units(text):
    """``--hidden-units``' text as a list of widths: ``"512,256,256"`` -> ``[512, 256, 256]``.

    Raises:
        ValueError: anything but comma-separated whole numbers >= 1.
    """
    parts = [part.strip() for part in str(text).split(",")]
    if not parts or not all(part.isdigit() and int(part) >= 1 for part in parts):
        raise ValueError(f"hidden units {text!r} (--hidden-units): give the widths of the "
                         f"hidden layers as whole numbers >= 1 separated by commas, e.g. "
                         f"512,256,256.")
    return [int(part) for part in parts]


def option(name):
    """The command-line option of a setting: ``latent_dim`` -> ``--latent-dim``."""
    return "--" + name.replace("_", "-")


@dataclasses.dataclass
class RunSettings:
    """Everything that decides a training run; saved in ``metrics.json`` for ``--resume``.

    The fields are the options of ``vae-keras train`` (``--latent-dim`` is
    ``latent_dim``); ``binarize="auto"`` binarizes for the Bernoulli likelihood.
    ``epochs=None`` means 30 for a new run and the saved count for a resumed one,
    or with ``time_budget`` (minutes) as many as fit in the budget.
    ``observation_scale`` is the Gaussian likelihood's sigma (a number,
    ``"learned"`` or ``"learned_per_pixel"``); a Bernoulli run keeps the default.
    ``hidden_units`` lists the dense layers' widths (None: the architecture's
    default). ``prior`` is ``"normal"``, ``"mixture:K"`` (K Gaussians fitted by EM to
    codes of the training images after training, saved in ``model.keras``) or
    ``"vamp:K"`` (a VampPrior with K pseudo-inputs, trained with the model).
    """

    dataset: str = "mnist"
    data_dir: str = None
    architecture: str = "dense"
    latent_dim: int = 16
    hidden_units: list = None  # widths of the dense layers, e.g. [512, 256, 256]
    prior: str = "normal"
    likelihood: str = "bernoulli"
    observation_scale: object = DEFAULT_OBSERVATION_SCALE
    beta: float = 1.0
    warmup_epochs: float = 0.0
    cycle_epochs: float = 0.0
    epochs: int = None
    time_budget: float = None  # minutes; the learning rate decays to 0 at the end (cosine)
    importance_samples: int = 1  # codes per image in the training objective (1: the ELBO)
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0
    binarize: str = "auto"
    train_size: int = None
    validation_size: int = 5000
    test_size: int = None
    iwae_samples: int = 1000
    output: str = None
    verbose: int = 1
    strategy: str = "default"
    precision: str = "float32"
    conditional: bool = False  # a ConditionalVAE, trained on (image, label) pairs

    @property
    def uses_binarization(self):
        """Whether training images are binarized (and test images, once, with a fixed seed)."""
        return self.binarize == "yes" or (self.binarize == "auto"
                                          and self.likelihood == "bernoulli")

    def output_folder(self):
        """The output folder: ``output``, or ``runs/<dataset>-<architecture>-z<dim>-<likelihood>``."""
        return pathlib.Path(self.output or f"runs/{self.dataset}-{self.architecture}-"
                                           f"z{self.latent_dim}-{self.likelihood}"
                                           f"{'-conditional' if self.conditional else ''}")

    def check(self):
        """Raise if any setting cannot run; reads no file and imports nothing heavy.

        Raises:
            TypeError: a setting of the wrong type (a string for ``latent_dim``...).
            ValueError: a number out of range, an unknown choice, both KL
                schedules at once, or an ``observation_scale`` with the Bernoulli likelihood.
        """
        for name, choices in [("dataset", DATASETS), ("architecture", ARCHITECTURES),
                              ("likelihood", LIKELIHOODS), ("binarize", BINARIZE_CHOICES),
                              ("strategy", STRATEGIES), ("precision", PRECISIONS),
                              ("verbose", VERBOSITIES)]:
            value = getattr(self, name)
            if isinstance(value, bool) or value not in choices:
                raise ValueError(f"{name}={value!r} is not one of {list(choices)} "
                                 f"({option(name)}); choose one of those.")
        for name, bounds in NUMBERS.items():
            value = getattr(self, name)
            if value is None and getattr(RunSettings, name) is None:
                continue
            check_number(f"{name} ({option(name)})", value, *bounds)
        if not isinstance(self.conditional, bool):
            raise TypeError(f"conditional must be True or False, got {self.conditional!r}.")
        if self.hidden_units is not None:
            if isinstance(self.hidden_units, str) or not isinstance(self.hidden_units,
                                                                    (list, tuple)):
                raise TypeError(f"hidden_units (--hidden-units) must be a list of widths such "
                                f"as [512, 256, 256], got {self.hidden_units!r}.")
            if not self.hidden_units:
                raise ValueError("hidden_units (--hidden-units) needs at least one width, "
                                 "e.g. 512,256.")
            for width in self.hidden_units:
                check_number("each of hidden_units (--hidden-units)", width, True, 1)
        kind, _ = parse_prior(self.prior)
        if kind == "vamp" and self.conditional:
            raise ValueError("prior=vamp (--prior vamp:K) cannot go with conditional "
                             "(--conditional): the pseudo-inputs are images without labels. "
                             "Use --prior normal or --prior mixture:K.")
        _check_observation_scale(self.observation_scale, self.likelihood)
        if self.warmup_epochs and self.cycle_epochs:
            raise ValueError("Choose warmup_epochs (--warmup-epochs) or cycle_epochs "
                             "(--cycle-epochs), not both: each sets beta every epoch.")


def _check_observation_scale(scale, likelihood):
    if isinstance(scale, str):
        if scale not in LEARNED_SCALES:
            raise ValueError(f"observation_scale={scale!r}: give a number > 0 or one of "
                             f"{list(LEARNED_SCALES)}.")
    else:
        check_number("observation_scale (--observation-scale)", scale, False, 0, inclusive=False)
    if likelihood != "gaussian" and scale != DEFAULT_OBSERVATION_SCALE:
        # The Bernoulli likelihood has no scale: a learned one would never train.
        raise ValueError(
            f"observation_scale={scale!r} (--observation-scale) applies to the Gaussian "
            f"likelihood only; the {likelihood} likelihood has no scale (a fixed one would be "
            f"ignored, a learned one never train). Use likelihood='gaussian' (--likelihood "
            f"gaussian), or leave observation_scale out.")


def write_partial_json(path, value):
    """Write ``value`` as JSON beside ``path``, as ``<name>.partial``; return that path.

    The caller renames it into place with ``os.replace``: the temporary file is
    in the same folder, so the rename is atomic.
    """
    path = pathlib.Path(path)
    temporary = path.with_name(f"{path.name}.partial")
    try:
        with open(temporary, "w") as handle:
            json.dump(value, handle, indent=2, default=float)
            handle.flush()
            os.fsync(handle.fileno())  # the bytes reach the disk before the name does
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def write_json(path, value):
    """Write ``value`` as JSON to ``path`` under a temporary name, then rename it into place.

    A reader, or a run killed mid-write, sees the old file or the new one, never half of one.
    """
    os.replace(write_partial_json(path, value), path)


def file_record(path):
    """``{"size": bytes, "crc32": ...}`` of a file: what ``checkpoint.json`` says it goes with."""
    crc = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return {"size": os.path.getsize(path), "crc32": crc}


def check_output_folder(output, what="--output"):
    """Raise a ValueError unless ``output`` is a folder, or can be made one, that we can write.

    Checks the path only (nothing is created), so a bad ``--output`` is refused
    before any data loads.
    """
    output = pathlib.Path(output)
    existing = output
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == output else f"is under {existing}, which is a file"
        raise ValueError(f"{what} {output} {where}, not a folder; choose another {what} "
                         f"(a folder that exists, or one that can be created).")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {output}: cannot write in {existing} (no permission); "
                         f"choose another {what}.")


def check_output_file(path, what="--output"):
    """Raise a ValueError unless a file can be written at ``path`` (its folder exists)."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; give a file name, e.g. {path / 'out'}.")
    if not path.parent.is_dir():
        raise ValueError(f"{what} {path}: the folder {path.parent} does not exist; create it "
                         f"or choose another {what}.")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: cannot write in {path.parent} (no permission).")


def _read_json(path, what):
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} ({what}) cannot be read: {type(error).__name__}: "
                         f"{error}.") from error


def _no_epoch_finished(path):
    """Whether the metrics file at ``path`` is of a run that finished no epoch."""
    try:
        metrics = json.loads(path.read_text())
        return metrics.get("epochs_completed") == 0 and "test" not in metrics
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False  # unreadable: keep it, and say so


def _describe_run(output, present):
    """A few words on the run in ``output``: its status and epochs, and its files."""
    words = "a run"
    if METRICS_FILE in present:
        try:
            metrics = json.loads((output / METRICS_FILE).read_text())
            status, settings = metrics.get("status"), metrics.get("settings", {})
            done = metrics.get("epochs_completed")
            if done is None and STATE_FILE in present:
                done = json.loads((output / STATE_FILE).read_text()).get("epochs_completed")
            planned = f" of {settings['epochs']}" if settings.get("epochs") else ""
            epochs = f", {done}{planned} epochs" if done is not None else ""
            words = {"completed": f"a completed run{epochs}",
                     "interrupted": f"an interrupted run{epochs}",
                     "stopped_nan": f"a run stopped by a NaN loss{epochs}",
                     "running": f"a run that is still training in another process, or was "
                                f"killed{epochs}"}.get(status, f"a run ({status}{epochs})")
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            words = "a run (its metrics.json cannot be read)"
    return f"{words}: {', '.join(present)}"


def read_checkpoint_state(output):
    """The saved state (``checkpoint.json``) of the run in ``output``, or None if it has none.

    Raises:
        ValueError: ``checkpoint.json`` exists but cannot be read.
    """
    output = pathlib.Path(output)
    if not (output / STATE_FILE).is_file() or not (output / CHECKPOINT_FILE).is_file():
        return None
    state = _read_json(output / STATE_FILE, "the checkpoint's epochs and history")
    if not isinstance(state, dict) or not isinstance(state.get("history"), dict):
        raise ValueError(f"{output / STATE_FILE} holds no checkpoint state (epochs_completed, "
                         f"best, history); it is not a file vae-keras wrote.")
    recorded = state.get("checkpoint_file")  # absent in runs saved before it was recorded
    if recorded is None or recorded == file_record(output / CHECKPOINT_FILE):
        return state
    # A run killed between renaming checkpoint.keras and checkpoint.json: the new state
    # is whole under its temporary name (it is written before either rename).
    partial = output / f"{STATE_FILE}.partial"
    if partial.is_file():
        try:
            newer = json.loads(partial.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            newer = None
        if (isinstance(newer, dict) and isinstance(newer.get("history"), dict)
                and newer.get("checkpoint_file") == file_record(output / CHECKPOINT_FILE)):
            return newer
    raise ValueError(f"{output / CHECKPOINT_FILE} is not the model that {output / STATE_FILE} "
                     f"was saved with (their sizes or checksums differ): was one of them "
                     f"copied from another run, or changed? Put the pair back, or start again "
                     f"with --overwrite.")


def _check_archive(path):
    """Raise a ValueError if ``path`` is not a whole zip archive (a .keras file is one)."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()  # reads every member and checks its CRC
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        damaged = f"{type(error).__name__}: {error}"
    if damaged:
        raise ValueError(f"damaged ({damaged})")


def resume_differences(saved, given):
    """The given settings that differ from the saved run's, except the :data:`RESUMABLE` ones.

    Args:
        saved: the saved run's settings, a dict (``metrics.json``'s ``"settings"``).
        given: the settings the caller chose, a dict of field names to values.

    Returns:
        A list of ``(option, saved value, given value)``, e.g.
        ``[("--latent-dim", 16, 8)]``; empty if the given settings agree.
    """
    differences = []
    for name in [field.name for field in dataclasses.fields(RunSettings)]:  # in --help's order
        if name not in given or name in RESUMABLE or name == "output" or name not in saved:
            continue
        if saved[name] != given[name]:
            differences.append((option(name), saved[name], given[name]))
    return differences


def prepare(settings, resume=False, overwrite=False, given=None):
    """Check a run before it loads anything; return the settings it runs with.

    Nothing is written. For a new run: the settings, the output path, and that
    the folder holds no run (unless ``overwrite``). For ``resume``: the saved
    run's ``metrics.json`` and checkpoint, that the given settings agree with
    the saved ones (only :data:`RESUMABLE` settings may change), and that
    epochs are left to train.

    Args:
        settings: a :class:`RunSettings`.
        resume: continue the run in ``settings.output_folder()``.
        overwrite: replace the run in that folder, if there is one.
        given: the names of the settings the caller chose (the command line's
            options); by default those that differ from :class:`RunSettings`'s defaults.

    Returns:
        ``(settings, state)``: for a new run the settings as given and None; for
        a resumed run the saved settings (with the resumable ones as given) and
        the checkpoint state (``checkpoint.json``).

    Raises:
        ValueError: any of the refusals above; each says what is there and the fix.
    """
    if not isinstance(settings, RunSettings):
        raise TypeError(f"settings must be a vae_keras.runs.RunSettings, got "
                        f"{type(settings).__name__}.")
    if resume and overwrite:
        raise ValueError("Choose resume (--resume) or overwrite (--overwrite), not both.")
    output = settings.output_folder()
    check_output_folder(output)
    if not resume:
        settings.check()
        present = [name for name in RUN_FILES if (output / name).exists()]
        if present == [METRICS_FILE] and _no_epoch_finished(output / METRICS_FILE):
            present = []  # a run stopped before its first epoch: nothing to lose
        if present and not overwrite:
            raise ValueError(
                f"{output} already holds {_describe_run(output, present)}. Training again "
                f"would replace it. Continue it with --resume (a larger --epochs extends a "
                f"finished run), choose another --output, or replace it with --overwrite.")
        return settings, None
    return _prepare_resume(settings, output, given)


def _prepare_resume(settings, output, given):
    if not (output / STATE_FILE).is_file() or not (output / CHECKPOINT_FILE).is_file():
        raise ValueError(f"--resume: {output} holds no checkpoint ({STATE_FILE} and "
                         f"{CHECKPOINT_FILE}); run without --resume to start a new run.")
    if not (output / METRICS_FILE).is_file():
        raise ValueError(
            f"--resume: {output} holds a checkpoint ({STATE_FILE}, {CHECKPOINT_FILE}) but no "
            f"{METRICS_FILE}, which holds the run's settings; without them it cannot continue "
            f"as it began. Put {METRICS_FILE} back, or start a new run there with --overwrite "
            f"(this replaces the checkpoint).")
    metrics = _read_json(output / METRICS_FILE, "the run's settings")
    saved = metrics.get("settings") if isinstance(metrics, dict) else None
    if not isinstance(saved, dict):
        raise ValueError(f"--resume: {output / METRICS_FILE} holds no \"settings\"; it is not "
                         f"the metrics of a vae-keras run. Start a new run with --overwrite.")
    try:
        _check_archive(output / CHECKPOINT_FILE)
    except ValueError as error:
        raise ValueError(
            f"--resume: {output / CHECKPOINT_FILE} is {error}, so the run cannot continue; "
            f"nothing in {output} was changed ({METRICS_FILE} keeps its results, "
            f"{MODEL_FILE} the best model so far). Start again with --overwrite, or write "
            f"to another --output.") from None
    state = read_checkpoint_state(output)
    done = state.get("epochs_completed", 0)

    fields = [field.name for field in dataclasses.fields(RunSettings)]
    defaults = RunSettings()
    if given is None:
        given = [name for name in fields if getattr(settings, name) != getattr(defaults, name)]
    chosen = {name: getattr(settings, name) for name in given}
    differences = resume_differences(saved, chosen)
    if differences:
        lines = "; ".join(f"{name} saved {old!r}, given {new!r}" for name, old, new in differences)
        raise ValueError(
            f"--resume: these options differ from the run saved in {output}: {lines}. A "
            f"resumed run keeps its settings; only "
            f"{', '.join(option(name) for name in RESUMABLE)} may change. Drop the other "
            f"options to resume, or start a new run (another --output, or --overwrite).")
    resumed = RunSettings(**{key: value for key, value in saved.items() if key in fields})
    for name in RESUMABLE:
        if name in chosen:
            setattr(resumed, name, chosen[name])
    resumed.verbose = settings.verbose  # per invocation: this call's, not the saved run's
    resumed.output = str(output)
    resumed.check()  # a hand-edited metrics.json gets the same checks as new settings
    epochs = resumed.epochs or (MAX_BUDGETED_EPOCHS if resumed.time_budget else DEFAULT_EPOCHS)
    if metrics.get("status") == "completed" and done >= epochs:
        test = metrics.get("test", {})
        result = f", test ELBO {test['elbo']:.2f} nats" if "elbo" in test else ""
        raise ValueError(
            f"--resume: the run in {output} is complete ({done} of {epochs} epochs{result}); "
            f"there is nothing to resume. A larger --epochs extends it, e.g. --resume "
            f"--epochs {done + max(done // 2, 1)}.")
    return resumed, state
