"""Resumable training runs: what ``vae-keras train`` does, as a function.

A run trains a VAE on MNIST or Fashion-MNIST and writes to its output folder:

- ``model.keras``: the model with the best validation loss (saved whenever it
  improves, so Ctrl-C or a crash keeps the best model so far);
- ``checkpoint.keras`` and ``checkpoint.json``: the latest epoch's model,
  optimizer and history, from which ``train(..., resume=True)`` continues;
- ``metrics.json``: the settings, per-epoch training and validation losses, and
  the final test ELBO and importance-weighted NLL (nats and bits/dim);
- ``samples.png``, ``reconstructions.png``, ``loss_curves.png``, and with
  ``latent_dim=2`` also ``latent_scatter.png`` and ``manifold.png``.

Every file is written under a temporary name in the same folder and renamed
into place, so Ctrl-C, a crash or SIGKILL leaves each file whole, old or new.
Before anything loads, :func:`vae_keras.settings.prepare` refuses what would
lose work: a new run over an existing one (without ``overwrite=True``), a
resumed run with other settings than the saved ones, a damaged checkpoint.

With ``prior="mixture:K"`` the best model gets a Gaussian mixture of K components,
fitted by EM to one code drawn from each training image's posterior after training
(:meth:`vae_keras.VAE.fit_prior_mixture`) and saved in ``model.keras``, before the
test evaluation; ``prior="vamp:K"`` trains a VampPrior with the model, and
``prior="hierarchical:D"`` a second stochastic layer (:class:`~vae_keras.priors.HierarchicalPrior`).

With ``conditional=True`` the model is a :class:`~vae_keras.ConditionalVAE`
trained on image-label pairs, evaluated on ``log p(x | y)``, and
``samples.png`` has one row per class.

A resumed run ends where an uninterrupted one would: each epoch's batches are
a pure function of ``(seed, epoch)`` (:func:`epoch_dataset`), and the Sampling
layer's random stream is saved with the checkpoint. This machinery is for long
runs; the notebooks and ``VAE.fit`` do not need it.
"""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import dataclasses
import math
import os
import pathlib
import time
import zipfile

import keras
import numpy as np
import tensorflow as tf

from vae_keras import (_checks, callbacks, conditional, data, evaluation, models, performance,
                       plotting, priors)
from vae_keras import settings as run_settings
# The settings and constants live in vae_keras.settings, which the command line reads
# without loading TensorFlow; these names keep them where coursework finds them.
from vae_keras.settings import (  # noqa: F401
    BINARIZE_CHOICES,
    EXIT_INTERRUPTED,
    MAX_BUDGETED_EPOCHS,
    RunSettings,
)

NUM_CLASSES = 10  # MNIST and Fashion-MNIST, for a conditional run
FIGURE_FILES = ("samples.png", "reconstructions.png", "loss_curves.png", "latent_scatter.png",
                "manifold.png")


def epoch_dataset(images, batch_size, epochs, binarize=False, seed=None, shuffle=True,
                  labels=None):
    """The batches of several epochs back to back, each a pure function of ``(seed, epoch)``.

    Batch i of epoch e takes its images from a permutation seeded by
    ``(seed, e)`` and its binarization noise from ``(seed, e * n + i)``. Batches
    never span two epochs, so each epoch holds the same batches as when built
    alone, and a run resumed at epoch e sees what an uninterrupted one would.

    Args:
        images: float array ``(n, h, w, c)`` in [0, 1].
        batch_size: images per batch.
        epochs: a non-empty ``range`` of epoch numbers, e.g. ``range(5, 30)``.
        binarize: dynamic binarization (each pixel ~ Bernoulli(gray value)).
        seed: int making the order and the noise repeatable (None is 0).
        shuffle: a new order each epoch.
        labels: optional class labels, one per image: the batches are then
            ``(images, labels)`` pairs (a conditional run).

    Returns:
        ``(dataset, steps_per_epoch)``: train with ``model.fit(dataset,
        initial_epoch=epochs.start, epochs=epochs.stop, steps_per_epoch=steps_per_epoch)``.
    """
    images = data.check_pipeline_images(images, binarize)
    batch_size = _checks.check_whole_number("batch_size", batch_size)
    epoch_numbers = _check_epochs(epochs)
    count = len(images)
    pixels = tf.constant(images)  # copied once, shared by every epoch
    base = tf.constant(0 if seed is None else int(seed), tf.int64)

    def one_epoch(epoch_number):
        order = tf.range(count, dtype=tf.int64)
        if shuffle:
            order = tf.cast(tf.argsort(tf.random.stateless_uniform(
                [count], seed=tf.stack([base, epoch_number]))), tf.int64)
        indices = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
        noise_seeds = tf.data.Dataset.range(count).map(
            lambda step: tf.stack([base, epoch_number * count + step]))
        return tf.data.Dataset.zip((indices, noise_seeds))

    steps_per_epoch = -(-count // batch_size)
    batches = tf.data.Dataset.from_tensor_slices(
        tf.constant(epoch_numbers, tf.int64)).flat_map(one_epoch).apply(
        # flat_map hides the length; state it, for fit's progress bar.
        tf.data.experimental.assert_cardinality(len(epoch_numbers) * steps_per_epoch))
    return data.gather_batches(batches, pixels, binarize, labels), steps_per_epoch


def _check_epochs(epochs):
    if not isinstance(epochs, range):
        raise TypeError(f"epochs must be a range of epoch numbers, e.g. range(0, 30); "
                        f"got {epochs!r}.")
    if len(epochs) == 0 or epochs.start < 0 or epochs.step != 1:
        raise ValueError(f"epochs={epochs!r} must be a non-empty range of epoch numbers >= 0 "
                         f"with step 1, e.g. range(first_epoch, epochs).")
    return list(epochs)


def epoch_segments(first_epoch, epochs, batches_per_epoch, steps_per_execution):
    """The ranges of epochs that each get one dataset (and one ``fit`` call).

    One range for the whole run (one iterator: no per-epoch stall), unless an
    epoch does not split into whole executions
    (:func:`vae_keras.performance.epoch_fits_executions`); then one per epoch.
    """
    if first_epoch >= epochs:
        return []
    if performance.epoch_fits_executions(batches_per_epoch, steps_per_execution):
        return [range(first_epoch, epochs)]
    return [range(epoch, epoch + 1) for epoch in range(first_epoch, epochs)]


class TrainingCheckpoint(keras.callbacks.Callback):
    """Saves what a long run needs to survive an interruption, after every epoch.

    In ``directory``:

    - ``model.keras``: the model with the best ``monitor`` value so far;
    - ``checkpoint.keras``: the latest model, optimizer state included;
    - ``checkpoint.json``: epochs completed, the best value, and the per-epoch
      history of every logged value.

    Files are written under a temporary name and renamed, so an interruption
    during a save never leaves a damaged file. ``checkpoint.json`` records the
    size and CRC of the ``checkpoint.keras`` it goes with, and is written (under
    its temporary name) before either is renamed: if the process is killed
    between the two renames, :meth:`load_state` finds the new state beside the
    new model and uses it. :func:`train` with ``resume=True`` uses both to continue a run.

    Args:
        directory: output folder (created if needed).
        monitor: the logged value that decides the best model, e.g. ``"val_loss"``.
        best: the best value so far (when resuming).
        history: the history so far (when resuming), a dict of lists.
    """

    MODEL, CHECKPOINT, STATE = (run_settings.MODEL_FILE, run_settings.CHECKPOINT_FILE,
                                run_settings.STATE_FILE)

    def __init__(self, directory, monitor="val_loss", best=math.inf, history=None):
        super().__init__()
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.monitor = monitor
        self.best = float(best)
        self.history = {key: list(values) for key, values in (history or {}).items()}
        self.epochs_completed = len(self.history.get("loss", []))

    def _save_model(self, name):
        """Save the model under a temporary ``.keras`` name beside ``name``; return that path."""
        temporary = self.directory / f"{name}.partial.keras"  # model.save wants .keras
        self.model.save(temporary)
        return temporary

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(np.asarray(value)))
        self.epochs_completed = epoch + 1
        value = logs.get(self.monitor)
        if value is not None and float(np.asarray(value)) < self.best:
            self.best = float(np.asarray(value))
            os.replace(self._save_model(self.MODEL), self.directory / self.MODEL)
        model = self._save_model(self.CHECKPOINT)
        state = {"epochs_completed": self.epochs_completed, "monitor": self.monitor,
                 "best": self.best, "history": self.history,
                 "checkpoint_file": run_settings.file_record(model)}
        # Both are whole on disk before either is renamed (see the class docstring).
        state_file = run_settings.write_partial_json(self.directory / self.STATE, state)
        os.replace(model, self.directory / self.CHECKPOINT)
        os.replace(state_file, self.directory / self.STATE)

    @classmethod
    def load_state(cls, directory):
        """The saved state of a run in ``directory``, or None if it has none.

        Raises:
            ValueError: ``checkpoint.json`` cannot be read, or does not go with
                ``checkpoint.keras`` (see :func:`vae_keras.settings.read_checkpoint_state`).
        """
        return run_settings.read_checkpoint_state(directory)


def load_model(path):
    """Load a ``.keras`` model file, with an error that says what is wrong with the file.

    Raises:
        ValueError: the path is not a ``.keras`` file, does not exist, or holds no
            Keras model (Keras itself would report "File not found" for a file that
            exists but is not a model).
    """
    path = pathlib.Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path} is not a .keras file; pass the model.keras that "
                         f"`vae-keras train` wrote.")
    if not path.is_file():
        raise ValueError(f"{path} does not exist; pass the model.keras that "
                         f"`vae-keras train` wrote.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} exists but is not a Keras model file (a .keras file is a "
                         f"zip archive written by model.save); it may be damaged or "
                         f"something else renamed. Train again or pass another file.")
    try:
        return keras.models.load_model(path)
    except Exception as error:  # Keras's messages for broken archives mislead (see docstring)
        raise ValueError(f"{path} is a zip archive but Keras could not load a model from it "
                         f"({type(error).__name__}: {error}).") from error


def load_training_data(settings):
    """Train, validation and test arrays for a run, split and binarized as its settings say.

    Returns:
        ``(x_train, x_validation, x_test, y_test, x_test_evaluated, y_train,
        y_validation)``: the test images as they are (for figures) and as
        evaluated (binarized once with a fixed seed for the Bernoulli likelihood,
        as in the literature); the training and validation labels last.
    """
    (x_train, y_train), (x_test, y_test) = data.load_dataset(settings.dataset, settings.data_dir)
    if settings.train_size:
        x_train = x_train[:settings.train_size + settings.validation_size]
        y_train = y_train[:len(x_train)]
    if settings.validation_size >= len(x_train):
        raise ValueError(f"--validation-size {settings.validation_size} leaves no training "
                         f"images out of {len(x_train)}; lower it.")
    split = len(x_train) - settings.validation_size
    x_train, x_validation = x_train[:split], x_train[split:]
    y_train, y_validation = y_train[:split], y_train[split:]
    x_test, y_test = x_test[:settings.test_size], y_test[:settings.test_size]
    x_test_evaluated = x_test
    if settings.uses_binarization:
        x_validation = data.binarize(x_validation, seed=settings.seed + 1)
        x_test_evaluated = data.binarize(x_test, seed=settings.seed + 2)
    return x_train, x_validation, x_test, y_test, x_test_evaluated, y_train, y_validation


def evaluate(model, images, iwae_samples, seed, labels=None):
    """The test ELBO, and with ``iwae_samples`` > 0 the importance-weighted NLL, as a dict.

    ``labels`` go with the images for a conditional model (bounds on ``log p(x | y)``).
    """
    inputs = (images,) if labels is None else (images, labels)
    results = {"elbo": model.elbo(*inputs, seed=seed), "num_images": int(len(images)),
               "prior": priors.describe(model.prior)}
    if iwae_samples:
        results.update(evaluation.negative_log_likelihood(
            model, images, num_samples=iwae_samples, seed=seed, labels=labels))
    return results


def samples_by_class(model, per_class, seed):
    """A conditional model's samples, ``per_class`` of each class in turn: one grid row each."""
    labels = np.repeat(np.arange(model.num_classes), per_class)
    return model.sample(len(labels), labels=labels, seed=seed)


def save_figure(figure, path):
    """Save a Matplotlib figure to ``path`` under a temporary name, rename it, and close it.

    The temporary file (``samples.partial.png``) lies in the same folder, so the
    rename is atomic. The format comes from the extension; a path without one
    gets Matplotlib's default format (``.png``), as ``figure.savefig`` would add it.

    Returns:
        The path written, a ``pathlib.Path``.
    """
    import matplotlib.pyplot as plt

    path = pathlib.Path(path)
    if not path.suffix:
        path = path.with_name(f"{path.name}.{plt.rcParams['savefig.format']}")
    temporary = path.with_name(f"{path.stem}.partial{path.suffix}")
    try:
        figure.savefig(temporary, bbox_inches="tight", format=path.suffix[1:])
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
        plt.close(figure)
    return path


def write_figures(model, output, test_images, test_labels, history, seed):
    """Samples, reconstructions, loss curves (and for 2-D codes the code space) as PNGs.

    A conditional model's samples have one row per class, and its images are
    encoded and decoded with their labels (no manifold: it would need a label).
    """
    is_conditional = isinstance(model, conditional.ConditionalVAE)
    if is_conditional:
        samples = plotting.image_grid(samples_by_class(model, 8, seed), ncols=8,
                                      title="samples, one row per class")
    else:
        samples = plotting.image_grid(model.sample(64, seed=seed), ncols=8,
                                      title="samples from the prior")
    save_figure(samples, output / "samples.png")
    labels = [test_labels] if is_conditional else []  # a conditional model's methods take them
    reconstructions = model.reconstruct(test_images[:10], *[y[:10] for y in labels])
    save_figure(plotting.reconstruction_rows(test_images[:10], reconstructions),
                 output / "reconstructions.png")
    if history:
        save_figure(plotting.loss_curves(history), output / "loss_curves.png")
    if model.latent_dim == 2:
        save_figure(plotting.latent_scatter(model.encode_mean(test_images, *labels), test_labels,
                                             title="test set, posterior means"),
                     output / "latent_scatter.png")
        if not is_conditional:
            save_figure(plotting.latent_manifold(model, grid_size=20), output / "manifold.png")


def build_model(settings):
    """A new, compiled VAE as the settings describe (call inside the strategy's scope).

    A ``mixture:K`` prior is fitted after training (:func:`fit_prior`); until then the
    model trains with the standard normal.
    """
    options = dict(num_classes=NUM_CLASSES) if settings.conditional else {}
    kind, _ = run_settings.parse_prior(settings.prior)
    # N(0, I) for normal and mixture (the mixture replaces it after training); a prior that
    # trains with the model (vamp, hierarchical) is made here, seeded like the run.
    prior = (None if kind in ("normal", "mixture")
             else priors.parse(settings.prior, seed=settings.seed))
    model = (conditional.ConditionalVAE if settings.conditional else models.VAE)(
        latent_dim=settings.latent_dim, architecture=settings.architecture,
        likelihood=settings.likelihood, beta=settings.beta,
        observation_scale=settings.observation_scale, seed=settings.seed,
        importance_samples=settings.importance_samples, hidden_units=settings.hidden_units,
        prior=prior, **options)
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate))
    return model


def fit_prior(model, settings, images, labels=None):
    """Fit the ``mixture:K`` prior of the settings to ``model``; return the seconds it took.

    One code drawn from each training image's posterior, then EM
    (:meth:`vae_keras.VAE.fit_prior_mixture`): the ex-post prior of
    ``benchmarks/likelihood.py``'s mixture rows. Other priors need no fit (0 s).
    """
    kind, components = run_settings.parse_prior(settings.prior)
    if kind != "mixture":
        return 0.0
    started = time.perf_counter()
    if labels is None:
        model.fit_prior_mixture(images, components, seed=settings.seed)
    else:
        model.fit_prior_mixture(images, labels, components, seed=settings.seed)
    return time.perf_counter() - started


def train(settings, resume=False, log=print, overwrite=False):
    """Run (or resume) a training run and write its files; return its ``metrics`` dict.

    Ctrl-C (``KeyboardInterrupt``) and a NaN loss do not raise: the best model so
    far is kept and ``metrics["status"]`` says ``"interrupted"`` or
    ``"stopped_nan"`` (with ``metrics["message"]``); a completed run has
    ``"completed"`` and ``metrics["test"]``.

    Everything that can be checked without data is checked first
    (:func:`vae_keras.settings.prepare`), and the first file is written only once
    the data and the model (or the checkpoint) have loaded.

    Args:
        settings: a :class:`RunSettings`.
        resume: continue the run in ``settings.output`` from its last checkpoint,
            with its saved settings. Only ``epochs`` (to extend it), ``time_budget``
            (a new budget), ``verbose`` and ``data_dir`` may differ from them;
            settings that differ from the defaults are compared with the saved ones.
        log: where progress lines go (``print`` by default).
        overwrite: replace the run that ``settings.output`` already holds;
            without it such a folder is refused.

    Raises:
        ValueError: settings that cannot run; a folder that already holds a run
            (without ``overwrite``); for ``resume``, a folder without a checkpoint
            or ``metrics.json``, a damaged checkpoint, settings that differ from
            the saved ones, or a complete run with no epochs left.
    """
    settings, state = run_settings.prepare(settings, resume=resume, overwrite=overwrite)
    output = settings.output_folder()
    # With a time budget, epochs is only an upper bound: the budget decides.
    settings.epochs = settings.epochs or (MAX_BUDGETED_EPOCHS if settings.time_budget
                                          else run_settings.DEFAULT_EPOCHS)
    keras.utils.set_random_seed(settings.seed)
    performance.set_precision(settings.precision)
    (x_train, x_validation, x_test, y_test, x_test_evaluated, y_train,
     y_validation) = load_training_data(settings)
    if not settings.conditional:  # a plain VAE is trained and evaluated on images alone
        y_train = y_validation = None
    validation = x_validation if y_validation is None else (x_validation, y_validation)

    strategy = performance.make_strategy(settings.strategy)
    with strategy.scope():
        model = (load_model(output / TrainingCheckpoint.CHECKPOINT) if state is not None
                 else build_model(settings))
    # Only now, with the data and the model loaded, is the folder changed: a refusal
    # above (a damaged checkpoint, missing data) leaves the run's files as they were.
    output.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in run_settings.RUN_FILES + FIGURE_FILES:
            (output / name).unlink(missing_ok=True)  # none of the old run may pass for the new
    metrics = {"settings": dataclasses.asdict(settings), "status": "running"}
    run_settings.write_json(output / run_settings.METRICS_FILE, metrics)

    monitor = "val_loss" if len(x_validation) else "loss"
    checkpoint = TrainingCheckpoint(output, monitor,
                                    best=state["best"] if state else float("inf"),
                                    history=state["history"] if state else None)
    schedules = []
    if settings.warmup_epochs:
        schedules.append(callbacks.KLWarmup(settings.warmup_epochs, end=settings.beta))
    if settings.cycle_epochs:
        schedules.append(callbacks.CyclicalKLAnnealing(settings.cycle_epochs, high=settings.beta))
    budget = callbacks.TimeBudget(settings.time_budget) if settings.time_budget else None
    if budget is not None:
        schedules.append(budget)

    first_epoch = checkpoint.epochs_completed
    if first_epoch < settings.epochs:
        span = (f"epochs {first_epoch + 1}-{settings.epochs}"
                f"{f' or {settings.time_budget:g} minutes' if budget else ''}")
    else:  # stopped after its last epoch, before its evaluation was written
        span = f"all {settings.epochs} epochs trained, evaluating"
    log(f"{'Resuming' if state else 'Training'} a {settings.architecture} "
        f"{'conditional VAE' if settings.conditional else 'VAE'} (latent_dim="
        f"{settings.latent_dim}, {settings.likelihood}, beta={settings.beta}, prior "
        f"{settings.prior}) on {len(x_train)} "
        f"{settings.dataset} images, {span}, "
        f"{strategy.num_replicas_in_sync} replica(s), {performance.describe_defaults()}; "
        f"writing to {output}/")
    started, status, message = time.time(), "completed", None
    try:
        batches = math.ceil(len(x_train) / settings.batch_size)
        for epochs in epoch_segments(first_epoch, settings.epochs, batches,
                                     model.steps_per_execution):
            if budget is not None and budget.spent:
                break
            dataset, steps_per_epoch = epoch_dataset(
                x_train, settings.batch_size, epochs, binarize=settings.uses_binarization,
                seed=settings.seed, labels=y_train)
            model.fit(dataset, initial_epoch=epochs.start, epochs=epochs.stop,
                      steps_per_epoch=steps_per_epoch,
                      callbacks=schedules + [checkpoint],  # last: it records what others logged
                      verbose=settings.verbose,
                      validation_data=validation if len(x_validation) else None)
    except KeyboardInterrupt:
        status, message = "interrupted", "Interrupted (Ctrl-C)."
    except FloatingPointError as error:
        status, message = "stopped_nan", str(error)

    model_path = output / TrainingCheckpoint.MODEL
    metrics.update(status=status, train_seconds=round(time.time() - started, 1),
                   epochs_completed=checkpoint.epochs_completed, history=checkpoint.history)
    if message:
        metrics["message"] = message
    if model_path.exists():
        best = load_model(model_path)
        if status == "completed" and run_settings.parse_prior(settings.prior)[0] == "mixture":
            log(f"Fitting the {settings.prior} prior to the codes of {len(x_train)} "
                f"training images...")
            metrics["prior_fit_seconds"] = round(fit_prior(best, settings, x_train, y_train), 1)
            temporary = output / f"{TrainingCheckpoint.MODEL}.partial.keras"
            best.save(temporary)  # model.keras keeps the fitted prior
            os.replace(temporary, model_path)
        if status == "completed":
            log(f"Evaluating the best model on {len(x_test)} test images "
                f"(IWAE with K={settings.iwae_samples})...")
            metrics["test"] = evaluate(best, x_test_evaluated, settings.iwae_samples,
                                       settings.seed,
                                       labels=y_test if settings.conditional else None)
        write_figures(best, output, x_test, y_test, checkpoint.history, settings.seed)
    run_settings.write_json(output / run_settings.METRICS_FILE, metrics)
    return metrics
