"""The reparameterization trick as a Keras layer."""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="vae_keras")
class Sampling(layers.Layer):
    """Draws ``z = mean + exp(0.5 * log_var) * epsilon`` with ``epsilon ~ N(0, I)``.

    The randomness enters only through ``epsilon``, so gradients flow to ``mean``
    and ``log_var`` (the reparameterization trick, Kingma & Welling 2014). The layer
    owns a ``keras.random.SeedGenerator``: with ``seed=None`` it is seeded from
    Keras's global seed, so ``keras.utils.set_random_seed`` makes runs repeatable.
    The generator's state is saved with the model (Keras saves weights, not seed
    states, by itself), so a model loaded from a checkpoint continues the same
    random stream, and a resumed training run matches an uninterrupted one.

    Args:
        seed: optional int for this layer's own random stream.
        **kwargs: passed to ``keras.layers.Layer`` (``name``, ``dtype``...).

    Call args:
        inputs: a pair ``(z_mean, z_log_var)`` of tensors of shape ``(batch, latent_dim)``.

    Returns:
        A sample ``z`` of shape ``(batch, latent_dim)``.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(
            ops.shape(z_mean), dtype=z_mean.dtype, seed=self.seed_generator
        )
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def save_own_variables(self, store):
        store["seed_generator_state"] = ops.convert_to_numpy(self.seed_generator.state)

    def load_own_variables(self, store):
        if "seed_generator_state" in store:  # files written before this was saved lack it
            self.seed_generator.state.assign(store["seed_generator_state"])

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config
