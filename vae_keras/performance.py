"""Speed and scale: defaults by device, mixed precision, distribution strategies.

The defaults come from measurements (``benchmarks/throughput.py``; figures and
the machine they came from are in the README), not from folklore:

- CPU: no XLA (Keras's own "auto" already turns it off there; forcing it on
  made training 0.58x as fast on the 2-core machine we measured) and one step
  per ``tf.function`` call (8 steps measured no faster there, and one step keeps
  KL schedules and callbacks per batch, and lets ``fit`` keep one dataset
  iterator for all epochs whatever the batch count). TensorFlow's thread
  settings and oneDNN stay as they are: every alternative measured slower.
  ``set_precision("mixed")`` (bfloat16) trained 1.17x faster on a CPU with
  AVX512-BF16 but learned less per epoch, so it is opt-in.
- GPU: Keras's defaults (``jit_compile="auto"`` turns XLA on) and 32 steps per
  execution, since per-step launch overhead rather than arithmetic dominates a
  model this small on a GPU. Not yet measured by this project: no GPU was lent.

``VAE.compile`` and ``Autoencoder.compile`` fill in :func:`default_compile_options`
for whatever the caller does not set.
"""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import keras
import tensorflow as tf

from vae_keras import _checks

CPU_STEPS_PER_EXECUTION = 1
GPU_STEPS_PER_EXECUTION = 32
from vae_keras.settings import PRECISIONS, STRATEGIES  # noqa: E402,F401  (their home: no TensorFlow)


def has_gpu():
    """True when TensorFlow sees at least one GPU."""
    return bool(tf.config.list_physical_devices("GPU"))


def default_compile_options():
    """``compile()`` keyword arguments that make training fast on this device.

    Returns:
        A dict with ``steps_per_execution`` (and ``jit_compile`` on CPU).
    """
    if has_gpu():
        return {"steps_per_execution": GPU_STEPS_PER_EXECUTION}
    if keras.backend.backend() != "tensorflow":
        # TensorFlow's XLA measured slower than its graphs on a CPU; JAX has no graph
        # mode without XLA (jit_compile=False would run every op eagerly), and Keras
        # leaves torch.compile off unless asked. So the backend's own default stays.
        return {"steps_per_execution": CPU_STEPS_PER_EXECUTION}
    return {"jit_compile": False, "steps_per_execution": CPU_STEPS_PER_EXECUTION}


def epoch_fits_executions(batches_per_epoch, steps_per_execution):
    """True when an epoch splits into whole executions of ``steps_per_execution`` steps.

    The one home of this rule. Keras runs ``steps_per_execution`` optimizer steps
    per compiled call; when that does not divide an epoch's batches, an execution
    straddles two epochs, so a dataset that holds several epochs back to back
    (one iterator for the whole run) would misplace the epoch boundaries.
    ``fit`` then keeps Keras's per-epoch iterators and a resumable run
    (:mod:`vae_keras.runs`) builds one dataset per epoch.
    """
    return int(batches_per_epoch) % max(1, int(steps_per_execution or 1)) == 0


def describe_defaults():
    """A one-line description of the defaults in force here, for logs and benchmarks."""
    options = default_compile_options()
    device = "GPU" if has_gpu() else "CPU"
    policy = keras.config.dtype_policy().name
    settings = ", ".join(f"{key}={value}" for key, value in options.items())
    return f"{keras.backend.backend()} backend on the {device}: {settings}, dtype policy {policy}"


def set_precision(precision="mixed"):
    """Set Keras's global dtype policy; call it before building a model.

    ``"mixed"`` picks ``mixed_float16`` on a GPU (tensor cores; Keras adds loss
    scaling in ``compile``) and ``mixed_bfloat16`` on a CPU (no loss scaling
    needed: bfloat16 has float32's range). ``"float32"`` restores the default.
    The models keep their code, pixel outputs and losses in float32 either way.

    Returns:
        The name of the policy now in force.
    """
    precision = _checks.check_choice("precision", precision, PRECISIONS)
    if precision == "float32":
        policy = "float32"
    else:
        policy = "mixed_float16" if has_gpu() else "mixed_bfloat16"
    keras.mixed_precision.set_dtype_policy(policy)
    return policy


def _keras_version():
    """Keras's version as a tuple of its first two numbers, e.g. ``(3, 8)``."""
    return tuple(int(part) for part in keras.__version__.split(".")[:2])


def make_strategy(name="default"):
    """A ``tf.distribute`` strategy by name.

    - ``"default"``: one device (TensorFlow's default strategy).
    - ``"mirrored"``: ``MirroredStrategy``, data-parallel over this machine's GPUs
      (or its logical CPU devices), gradients all-reduced every step.
    - ``"multi_worker"``: ``MultiWorkerMirroredStrategy``, the same across machines;
      each machine runs the same command with its own ``TF_CONFIG`` (see README).

    Build and compile the model inside ``strategy.scope()``; ``fit`` splits each
    global batch across replicas, and ``VAE.train_step`` scales the loss so the
    summed gradients are those of the global batch mean.
    """
    name = _checks.check_choice("strategy", name, STRATEGIES)
    if name != "default" and keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"strategy={name!r} is a tf.distribute strategy, which needs Keras's TensorFlow "
            f"backend. On JAX, data parallelism over one host's devices is "
            f"keras.distribution.set_distribution(keras.distribution.DataParallel()) before "
            f"building the model; on PyTorch, train on one device.")
    if name != "default" and _keras_version() < (3, 10):
        # Keras before 3.10 syncs a metric's variables on every write across replicas, and
        # Mean adds with assign(total + value): each step sums every replica's copy of the
        # old total, so the totals double per step (2, 6, 14, 30, ...; fixed in keras#21072,
        # first released in 3.10.0). Training is right; the losses it reports are not, and
        # overflow to inf after about 127 steps with two replicas.
        raise ValueError(
            f"strategy={name!r} needs Keras 3.10 or newer (this is {keras.__version__}): older "
            f"versions report wrong losses under tf.distribute (running totals summed over "
            f"replicas at every step; inf after about 127 steps with two replicas). "
            f"pip install 'keras>=3.10', or train with strategy='default'.")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """TensorFlow's ``MultiWorkerMirroredStrategy``, made to work with Keras 3's ``fit``.

    Keras 3 (reported with 3.4 in tensorflow/tensorflow#72388; still so in 3.15)
    averages each step's metrics across workers with
    ``strategy.reduce("MEAN", value, axis=0)``; the metrics are scalars, which have
    no axis 0, so ``fit`` fails at its first step with "Invalid reduction dimension 0
    for input with 0 dimensions". This strategy
    reduces a scalar across workers only (``axis=None``), which is the mean Keras
    means; everything else is TensorFlow's. ``tests/test_multi_worker.py`` trains on
    two worker processes and checks the losses against a single process.
    """

    def reduce(self, reduce_op, value, axis):
        """``Strategy.reduce``, with ``axis`` ignored for scalars (they have none)."""
        first = self.experimental_local_results(value)[0]  # this worker's first replica
        if axis is not None and tf.convert_to_tensor(first).shape.rank == 0:
            axis = None
        return super().reduce(reduce_op, value, axis)
