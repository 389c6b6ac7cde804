"""Training callbacks: KL-weight schedules, a time budget, a guard against NaN losses, a sigma trace.

Posterior collapse, where the KL term wins early and the decoder learns to
ignore the code, is the most common complaint about VAE tutorials. Starting
with a small KL weight ``beta`` and raising it (warm-up, Bowman et al. 2016;
cyclical annealing, Fu et al. 2019) is the usual fix. Both schedules here set
``model.beta`` before every batch and record it in the epoch logs as ``beta``.
Keras calls batch hooks once per ``steps_per_execution`` steps (1 by default on
CPU, 32 on GPU), so beta moves in steps of that many batches: a fine grain for
schedules that last epochs.
"""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import math
import time

import keras
import numpy as np

from vae_keras import _checks, evaluation


def sync_variables(model):
    """Put the model's variables back in place so a callback can read or set them mid-epoch.

    On JAX, Keras keeps the variables' values outside the model while an epoch runs
    (the train step is a pure function of them) and writes them back at the epoch's
    end; a callback that reads ``beta`` or sets the learning rate between batches
    asks for the write-back first, and Keras then reads the values it set. On
    TensorFlow and PyTorch the variables are always in place, and this does nothing.
    """
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()


class _KLSchedule(keras.callbacks.Callback):
    """Sets ``model.beta`` from a function of training progress measured in epochs."""

    def beta_at(self, epochs_done):
        """The KL weight after ``epochs_done`` (fractional) epochs of training."""
        raise NotImplementedError

    def on_train_begin(self, logs=None):
        if not hasattr(self.model, "beta"):
            raise TypeError(
                f"{type(self).__name__} sets the KL weight `beta` of a vae_keras.VAE, but "
                f"the model being trained is a {type(self.model).__name__} without one."
            )
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        sync_variables(self.model)
        self.model.beta = self.beta_at(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        steps = self.params.get("steps") if self.params else None
        if steps:
            sync_variables(self.model)
            self.model.beta = self.beta_at(self._epoch + batch / steps)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            sync_variables(self.model)
            logs["beta"] = self.model.beta


class KLWarmup(_KLSchedule):
    """Raises the KL weight linearly from ``start`` to ``end`` over ``warmup_epochs``.

    Args:
        warmup_epochs: epochs the ramp lasts (> 0); afterwards beta stays at ``end``.
        start: the weight at the first batch (0 lets the decoder learn to use z first).
        end: the final weight (1 gives the true ELBO).
    """

    def __init__(self, warmup_epochs, start=0.0, end=1.0):
        super().__init__()
        self.warmup_epochs = _checks.check_positive("warmup_epochs", warmup_epochs)
        self.start = _checks.check_positive("start", start, allow_zero=True)
        self.end = _checks.check_positive("end", end, allow_zero=True)

    def beta_at(self, epochs_done):
        fraction = min(1.0, epochs_done / self.warmup_epochs)
        return self.start + (self.end - self.start) * fraction


class CyclicalKLAnnealing(_KLSchedule):
    """Repeats a warm-up: in each cycle beta rises from 0 to ``high``, then holds.

    After Fu et al. (2019), "Cyclical Annealing Schedule: A Simple Approach to
    Mitigating KL Vanishing". Each cycle lasts ``cycle_epochs``; beta rises
    linearly during its first ``ramp_fraction`` and stays at ``high`` for the rest.
    After ``num_cycles`` cycles (if given) beta stays at ``high``.

    Args:
        cycle_epochs: length of one cycle in epochs (> 0).
        ramp_fraction: fraction of the cycle spent rising, in (0, 1].
        high: the weight at the top of each cycle.
        num_cycles: how many cycles to run; ``None`` cycles for the whole training.
    """

    def __init__(self, cycle_epochs, ramp_fraction=0.5, high=1.0, num_cycles=None):
        super().__init__()
        self.cycle_epochs = _checks.check_positive("cycle_epochs", cycle_epochs)
        self.ramp_fraction = _checks.check_positive("ramp_fraction", ramp_fraction)
        if self.ramp_fraction > 1:
            raise ValueError(f"ramp_fraction must be in (0, 1], got {ramp_fraction}.")
        self.high = _checks.check_positive("high", high, allow_zero=True)
        self.num_cycles = None if num_cycles is None else int(num_cycles)

    def beta_at(self, epochs_done):
        cycle, position = divmod(epochs_done / self.cycle_epochs, 1.0)
        if self.num_cycles is not None and cycle >= self.num_cycles:
            return self.high
        return self.high * min(1.0, position / self.ramp_fraction)


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops training with a clear error when the epoch's loss is NaN or infinite.

    At the start of every epoch it keeps a copy of the model's weights (a few MB
    at most for these models); if the epoch ends with a non-finite loss it puts
    that copy back, so the model is left usable rather than full of NaNs, and
    raises ``FloatingPointError`` saying what to try. ``VAE.fit`` and
    ``Autoencoder.fit`` add it automatically. The check runs once per epoch, not
    per batch, so it does not slow the training loop.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start_weights = self.model.get_weights()

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(np.asarray(loss))):
            return
        self.model.set_weights(self._epoch_start_weights)
        self.model.stop_training = True
        raise FloatingPointError(
            f"The training loss became {float(np.asarray(loss))} during epoch {epoch + 1}. "
            f"Training stopped and the weights from the start of that epoch were restored "
            f"(the optimizer's state may be damaged: compile again before more training). "
            f"Usual causes: a learning rate that is too high (try 1e-3 or less), inputs with "
            f"NaNs, or a Gaussian likelihood with a very small observation_scale."
        )


class TimeBudget(keras.callbacks.Callback):
    """Trains for a wall-clock budget and anneals the learning rate to zero at its end.

    What a learner has is minutes, not epochs. Give ``fit`` more epochs than can
    run; this callback stops at the end of the last epoch that fits in
    ``minutes`` (it never starts an epoch that the mean epoch time says would
    overrun), and before every batch sets the optimizer's learning rate from the
    fraction ``t`` of the budget spent: ``lr0 * (1 + cos(pi t)) / 2`` for
    ``anneal="cosine"``, ``lr0 * (1 - t)`` for ``"linear"``, ``lr0`` for
    ``None``, where ``lr0`` is the learning rate the optimizer was compiled with.
    A schedule that ends at the budget's end settles the weights where a
    constant rate keeps them jumping (benchmarks/likelihood.py measures it).

    The clock starts when the first ``fit`` it is given begins (graph tracing
    included) and keeps running across later ``fit`` calls with the same
    callback, so a run split into several calls (as :mod:`vae_keras.runs` does
    when an epoch does not split into whole executions) shares one budget:
    stop calling ``fit`` once :attr:`spent` is True. The learning rate is put
    back to ``lr0`` at the end of each call.

    Args:
        minutes: the budget, > 0.
        anneal: ``"cosine"`` (default), ``"linear"`` or ``None``.
        clock: a function returning seconds (``time.perf_counter``; tests pass a fake).

    Attributes:
        epochs: epochs completed; ``seconds``: training time used.
    """

    ANNEALS = ("cosine", "linear")

    def __init__(self, minutes, anneal="cosine", clock=time.perf_counter):
        super().__init__()
        self.clock = clock
        self.budget_seconds = 60.0 * _checks.check_positive("minutes", minutes)
        if anneal is not None:
            anneal = _checks.check_choice("anneal", anneal, self.ANNEALS)
        self.anneal = anneal
        self.epochs, self.seconds = 0, 0.0
        self._start = None
        self.spent = False  # True once the budget has stopped training

    def learning_rate_factor(self, fraction):
        """The learning rate's multiplier when ``fraction`` of the budget is spent."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self.anneal == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * fraction))
        if self.anneal == "linear":
            return 1.0 - fraction
        return 1.0

    def on_train_begin(self, logs=None):
        learning_rate = self.model.optimizer.learning_rate
        if not isinstance(learning_rate, keras.Variable):
            raise TypeError(
                "TimeBudget sets the learning rate itself, but the optimizer was given a "
                "LearningRateSchedule; compile with a plain number, e.g. "
                "keras.optimizers.Adam(2e-3), and choose TimeBudget(anneal=...).")
        self._initial_learning_rate = float(np.asarray(learning_rate))
        if self._start is None:
            self._start = self.clock()
        if self.spent:
            self.model.stop_training = True

    def on_train_batch_begin(self, batch, logs=None):
        if self.anneal is not None:
            fraction = (self.clock() - self._start) / self.budget_seconds
            sync_variables(self.model)
            self.model.optimizer.learning_rate.assign(
                self._initial_learning_rate * self.learning_rate_factor(fraction))

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1
        self.seconds = self.clock() - self._start
        if logs is not None:
            sync_variables(self.model)
            logs["learning_rate"] = float(np.asarray(self.model.optimizer.learning_rate))
        if self.seconds + self.seconds / self.epochs > self.budget_seconds:
            self.model.stop_training = self.spent = True

    def on_train_end(self, logs=None):
        self.seconds = self.clock() - self._start
        sync_variables(self.model)
        self.model.optimizer.learning_rate.assign(self._initial_learning_rate)


class SigmaTrace(keras.callbacks.Callback):
    """After every epoch, a Gaussian VAE's learned sigma and the RMSE it moves towards.

    The maximum-likelihood sigma of a Gaussian decoder is the root mean square of
    its reconstruction errors with codes drawn from ``q(z | x)``
    (:func:`vae_keras.evaluation.reconstruction_errors`). This callback records both
    after every epoch, on a fixed set of images and a fixed noise seed, so a
    notebook can show how far the learned value lags behind (notebook 07). With one
    sigma per pixel, both are recorded per pixel.

    Args:
        images: the images to measure the RMSE on (1,000 training images is plenty).
        seed: the codes' noise, the same after every epoch.

    Attributes:
        sigma: the learned sigma after each epoch (floats, or arrays per pixel).
        rmse: the RMSE after each epoch, of the same shape.

    Raises:
        ValueError: (when training starts) a model without a learned Gaussian sigma.
    """

    def __init__(self, images, seed=0):
        super().__init__()
        self.images = np.asarray(images, dtype=np.float32)
        self.seed = _checks.check_seed(seed)
        self.sigma, self.rmse = [], []

    def on_train_begin(self, logs=None):
        scale = getattr(self.model, "observation_scale", None)
        if getattr(self.model, "likelihood", None) != "gaussian" or not isinstance(scale, str):
            raise ValueError(
                "SigmaTrace follows a learned sigma: build the model with "
                "likelihood='gaussian' and observation_scale='learned' (or "
                f"'learned_per_pixel'); this one has likelihood="
                f"{getattr(self.model, 'likelihood', None)!r}, observation_scale={scale!r}.")
        self.model.check_images(self.images, what="SigmaTrace's images")

    def on_epoch_end(self, epoch, logs=None):
        sigma = np.asarray(self.model.observation_scale_value, dtype=np.float64)
        errors = evaluation.reconstruction_errors(self.model, self.images, seed=self.seed)
        squared = np.square(errors.astype(np.float64))
        rmse = np.sqrt(squared.mean() if sigma.ndim == 0 else squared.mean(axis=0))
        self.sigma.append(float(sigma) if sigma.ndim == 0 else sigma)
        self.rmse.append(float(rmse) if sigma.ndim == 0 else rmse)
        if logs is not None and sigma.ndim == 0:
            logs["sigma"], logs["rmse"] = float(sigma), float(rmse)

