"""The reparameterization trick: one function, and the Keras layer that draws its noise."""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import keras
from keras import layers, ops


def reparameterize(z_mean, z_log_var, noise):
    """``z = mean + exp(0.5 * log_var) * noise``: a posterior sample from standard-normal noise.

    The one place the reparameterization is written. Training draws ``noise``
    inside :class:`Sampling`; evaluation passes its own (K samples per image,
    from a stateless seed), so both go through the same arithmetic. ``noise`` may
    carry leading sample axes, e.g. ``(K, batch, latent_dim)`` against
    ``(batch, latent_dim)`` means: broadcasting gives K samples per image.

    Args:
        z_mean: posterior means, shape ``(batch, latent_dim)``.
        z_log_var: posterior log-variances, same shape.
        noise: draws from ``N(0, I)``, shape ``(..., batch, latent_dim)``.

    Returns:
        Samples of ``q(z | x)`` with the shape of ``noise``.
    """
    z_mean, z_log_var, noise = (ops.convert_to_tensor(x) for x in (z_mean, z_log_var, noise))
    return z_mean + ops.exp(0.5 * z_log_var) * noise


class SeedStateMixin:
    """Saves a layer's ``seed_generator`` state with the model, and restores it on loading.

    A loaded model then continues the random stream where the saved one stopped, so
    training resumed from a ``.keras`` file draws what the uninterrupted run would have.
    For layers that own a ``keras.random.SeedGenerator`` as ``self.seed_generator``
    and no weights of their own (:class:`Sampling`, the text VAE's word dropout).
    """

    def save_own_variables(self, store):
        store["seed_generator_state"] = ops.convert_to_numpy(self.seed_generator.state)

    def load_own_variables(self, store):
        # `.keys()`, not `in store`: Keras before 3.10 hands an H5 entry without
        # `__contains__`. Files written before the state was saved lack the key.
        if "seed_generator_state" in store.keys():
            self.seed_generator.state.assign(store["seed_generator_state"])


@keras.saving.register_keras_serializable(package="vae_keras")
class Sampling(SeedStateMixin, layers.Layer):
    """Draws ``z = mean + exp(0.5 * log_var) * epsilon`` with ``epsilon ~ N(0, I)``.

    The randomness enters only through ``epsilon``, so gradients flow to ``mean``
    and ``log_var`` (the reparameterization trick, Kingma & Welling 2014); the
    arithmetic is :func:`reparameterize`. The layer owns a
    ``keras.random.SeedGenerator``: with ``seed=None`` it is seeded from Keras's
    global seed, so ``keras.utils.set_random_seed`` makes runs repeatable. The
    generator's state is saved with the model (Keras saves weights, not seed
    states, by itself), so a model loaded from a checkpoint continues the same
    random stream, and a resumed training run matches an uninterrupted one.

    Args:
        seed: optional int for this layer's own random stream.
        **kwargs: passed to ``keras.layers.Layer`` (``name``, ``dtype``...).

    Call args:
        inputs: a pair ``(z_mean, z_log_var)`` of tensors of shape ``(batch, latent_dim)``.

    Returns:
        A sample ``z`` of shape ``(batch, latent_dim)``.

    Raises:
        ValueError: if ``inputs`` is not a pair of tensors of one shape.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Nothing to build (no weights; the seed state exists already): built from the
        # start, so Keras never traces the whole model symbolically to build it (JAX's
        # trainer would, with the images alone, which a conditional model cannot take).
        self.built = True

    def call(self, inputs):
        z_mean, z_log_var = _check_pair(inputs)
        epsilon = keras.random.normal(
            ops.shape(z_mean), dtype=z_mean.dtype, seed=self.seed_generator
        )
        return reparameterize(z_mean, z_log_var, epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config


def _check_pair(inputs):
    """``(z_mean, z_log_var)`` of one static shape, or a ValueError that says what came in."""
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        raise ValueError(
            f"Sampling takes a pair [z_mean, z_log_var], got {type(inputs).__name__}"
            f"{'' if not isinstance(inputs, (list, tuple)) else f' of {len(inputs)} items'}. "
            f"Call it as Sampling()([z_mean, z_log_var])."
        )
    z_mean, z_log_var = inputs
    mean_shape, log_var_shape = tuple(z_mean.shape), tuple(z_log_var.shape)
    # Checked on static shapes (known when Keras builds or traces the layer): a
    # mismatch would otherwise surface as an InvalidArgumentError deep in the graph.
    if len(mean_shape) != len(log_var_shape) or any(
            a is not None and b is not None and a != b
            for a, b in zip(mean_shape, log_var_shape)):
        raise ValueError(
            f"Sampling needs z_mean and z_log_var of the same shape, got {mean_shape} and "
            f"{log_var_shape}. The encoder's two heads must both have latent_dim units."
        )
    return z_mean, z_log_var
