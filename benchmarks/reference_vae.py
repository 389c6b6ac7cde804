"""The reference: the convolutional VAE most Keras users start from, in our own words.

Architecture as in the Keras VAE example: encoder Conv2D(32) and Conv2D(64),
3x3, stride 2, ReLU, then Dense(16) and a 2-D latent; the decoder mirrors it
with Dense(7*7*64) and Conv2DTranspose(64), (32), stride 2, then a 3x3
Conv2DTranspose to one sigmoid channel. Training is its usual shape: a
``train_step`` with ``tf.GradientTape``, binary cross-entropy on the decoder's
sigmoid output summed over pixels, the closed-form KL, Keras's default compile
settings, and ``fit`` on NumPy arrays with batch size 128.

The benchmarks compare ``vae_keras`` against this, at the same architecture
and batch size, so the ratio measures the package's engineering, not a smaller net.
"""

import keras
import tensorflow as tf
from keras import layers, ops

import vae_keras as vk

FILTERS = (32, 64)
DENSE_UNITS = (16,)
LATENT_DIM = 2
BATCH_SIZE = 128


def build_reference_encoder(latent_dim=LATENT_DIM):
    images = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(images)
    x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Dense(16, activation="relu")(layers.Flatten()(x))
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = vk.Sampling()([z_mean, z_log_var])
    return keras.Model(images, [z_mean, z_log_var, z], name="reference_encoder")


def build_reference_decoder(latent_dim=LATENT_DIM):
    codes = keras.Input(shape=(latent_dim,))
    x = layers.Dense(7 * 7 * 64, activation="relu")(codes)
    x = layers.Reshape((7, 7, 64))(x)
    x = layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(x)
    probabilities = layers.Conv2DTranspose(1, 3, padding="same", activation="sigmoid")(x)
    return keras.Model(codes, probabilities, name="reference_decoder")


class ReferenceVAE(keras.Model):
    """The tutorial-style VAE: everything in one ``train_step``."""

    def __init__(self, latent_dim=LATENT_DIM, **kwargs):
        super().__init__(**kwargs)
        self.encoder = build_reference_encoder(latent_dim)
        self.decoder = build_reference_decoder(latent_dim)
        self.total_loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            reconstruction = self.decoder(z)
            per_pixel = keras.losses.binary_crossentropy(data, reconstruction)
            reconstruction_loss = ops.mean(ops.sum(per_pixel, axis=(1, 2)))
            kl = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            kl_loss = ops.mean(ops.sum(kl, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {m.name: m.result() for m in self.metrics}


def build_reference():
    """The reference model, compiled with Keras's defaults and Adam."""
    model = ReferenceVAE()
    model.compile(optimizer=keras.optimizers.Adam())
    return model


def build_package_model(latent_dim=LATENT_DIM):
    """vae_keras's VAE with the reference's architecture (its decoder outputs logits)."""
    return vk.VAE(latent_dim=latent_dim, architecture="conv", filters=FILTERS,
                  hidden_units=DENSE_UNITS)


def training_flops_per_image():
    """Floating-point operations of one training step per image, counted layer by layer.

    A multiply-add counts 2. A convolution costs ``2 * H_out * W_out * k * k * C_in *
    C_out``; a stride-2 transposed convolution scatters each *input* pixel, so it
    costs the same with the input's height and width. A training step is the
    forward pass plus a backward pass of about twice its cost (gradients for the
    inputs and for the weights).
    """
    def conv(height, width, c_in, c_out, k=3):
        return 2 * height * width * k * k * c_in * c_out

    forward = (
        conv(14, 14, 1, 32) + conv(7, 7, 32, 64)                # encoder convolutions
        + 2 * 3136 * 16 + 2 * 2 * 16 * LATENT_DIM               # encoder dense layers
        + 2 * LATENT_DIM * 3136                                  # decoder dense
        + conv(7, 7, 64, 64) + conv(14, 14, 64, 32)              # transposed, by input size
        + conv(28, 28, 32, 1)                                    # output layer (stride 1)
    )
    return 3 * forward
