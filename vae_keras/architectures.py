"""Encoder and decoder builders for images (dense MLP and convolutional).

Each builder returns a functional ``keras.Model``. Under a mixed-precision
policy the hidden layers compute in float16/bfloat16, while the layers that
produce the code and the pixel outputs are float32, so the losses never see
half-precision logits. Encoders map images to
``(z_mean, z_log_var)`` (or to a single code for the plain autoencoder);
decoders map codes to one output per pixel: logits for the Bernoulli likelihood
(``output_activation=None``) or means for the Gaussian one (``"sigmoid"``).

With ``num_classes`` a builder makes the conditional version (for
:class:`~vae_keras.ConditionalVAE`): a second input of one-hot labels,
concatenated to the flattened image features (encoders) or to the code
(decoders), so the model is ``[images, labels] -> code`` and
``[code, labels] -> pixels``.
"""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import keras
import numpy as np
from keras import layers

from vae_keras import _checks

DEFAULT_IMAGE_SHAPE = (28, 28, 1)
DEFAULT_DENSE_UNITS = (512, 256)
DEFAULT_CONV_FILTERS = (32, 64)
DEFAULT_CONV_DENSE_UNITS = (256,)


def _check_image_shape(image_shape):
    image_shape = tuple(int(d) for d in image_shape)
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(
            f"image_shape must be (height, width, channels), e.g. (28, 28, 1); got {image_shape}."
        )
    return image_shape


def _conditioned(inputs, features, num_classes):
    """Add a one-hot label input concatenated to ``features``: ``(model inputs, features)``."""
    if num_classes is None:
        return inputs, features
    num_classes = _checks.check_whole_number("num_classes", num_classes, 2)
    labels = keras.Input(shape=(num_classes,), name="labels")
    return [inputs, labels], layers.Concatenate(name="with_labels")([features, labels])


def _encoder_head(features, latent_dim, variational):
    if variational:
        z_mean = layers.Dense(latent_dim, name="z_mean", dtype="float32")(features)
        z_log_var = layers.Dense(latent_dim, name="z_log_var", dtype="float32")(features)
        return [z_mean, z_log_var]
    return layers.Dense(latent_dim, name="code", dtype="float32")(features)


def build_dense_encoder(latent_dim, image_shape=DEFAULT_IMAGE_SHAPE,
                        hidden_units=DEFAULT_DENSE_UNITS, variational=True, name="encoder",
                        num_classes=None):
    """An MLP encoder: flatten, ReLU hidden layers, then the code.

    Args:
        latent_dim: size of the code, >= 1.
        image_shape: shape of one image.
        hidden_units: widths of the hidden layers, first to last.
        variational: output ``[z_mean, z_log_var]`` (VAE) or one code (autoencoder).
        name: the model's name.
        num_classes: if given, a conditional encoder of ``[images, one-hot labels]``.

    Returns:
        A ``keras.Model`` from images to the code.
    """
    latent_dim = _checks.check_latent_dim(latent_dim)
    image_shape = _check_image_shape(image_shape)
    images = keras.Input(shape=image_shape, name="images")
    inputs, x = _conditioned(images, layers.Flatten()(images), num_classes)
    for units in hidden_units:
        x = layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs, _encoder_head(x, latent_dim, variational), name=name)


def build_dense_decoder(latent_dim, image_shape=DEFAULT_IMAGE_SHAPE,
                        hidden_units=DEFAULT_DENSE_UNITS, output_activation=None, name="decoder",
                        num_classes=None):
    """An MLP decoder mirroring :func:`build_dense_encoder`.

    Args:
        latent_dim: size of the code, >= 1.
        image_shape: shape of one output image.
        hidden_units: widths of the encoder's hidden layers; used in reverse order.
        output_activation: ``None`` for logits, ``"sigmoid"`` for means in [0, 1].
        name: the model's name.
        num_classes: if given, a conditional decoder of ``[codes, one-hot labels]``.

    Returns:
        A ``keras.Model`` from codes to one output per pixel.
    """
    latent_dim = _checks.check_latent_dim(latent_dim)
    image_shape = _check_image_shape(image_shape)
    codes = keras.Input(shape=(latent_dim,), name="z")
    inputs, x = _conditioned(codes, codes, num_classes)
    for units in reversed(tuple(hidden_units)):
        x = layers.Dense(units, activation="relu")(x)
    x = layers.Dense(int(np.prod(image_shape)), activation=output_activation, name="pixels",
                     dtype="float32")(x)
    outputs = layers.Reshape(image_shape, dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def _check_conv_shape(image_shape, filters):
    factor = 2 ** len(filters)
    if image_shape[0] % factor or image_shape[1] % factor:
        raise ValueError(
            f"The convolutional architecture halves the image {len(filters)} times, so height "
            f"and width must be multiples of {factor}; got {image_shape[:2]}. Pad the images "
            f"or use architecture='dense'."
        )


def build_conv_encoder(latent_dim, image_shape=DEFAULT_IMAGE_SHAPE, filters=DEFAULT_CONV_FILTERS,
                       hidden_units=DEFAULT_CONV_DENSE_UNITS, variational=True, name="encoder",
                       num_classes=None):
    """A convolutional encoder: 3x3 stride-2 convolutions, a dense layer, then the code.

    With ``filters=(32, 64)`` and ``hidden_units=(16,)`` this is the encoder of the
    Keras VAE example that most users start from.

    Args:
        latent_dim: size of the code, >= 1.
        image_shape: shape of one image; height and width divisible by ``2**len(filters)``.
        filters: channels of each stride-2 convolution.
        hidden_units: widths of the dense layers after flattening.
        variational: output ``[z_mean, z_log_var]`` (VAE) or one code (autoencoder).
        name: the model's name.
        num_classes: if given, a conditional encoder of ``[images, one-hot labels]``.

    Returns:
        A ``keras.Model`` from images to the code.
    """
    latent_dim = _checks.check_latent_dim(latent_dim)
    image_shape = _check_image_shape(image_shape)
    _check_conv_shape(image_shape, filters)
    images = keras.Input(shape=image_shape, name="images")
    x = images
    for channels in filters:
        x = layers.Conv2D(channels, 3, strides=2, padding="same", activation="relu")(x)
    inputs, x = _conditioned(images, layers.Flatten()(x), num_classes)
    for units in hidden_units:
        x = layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs, _encoder_head(x, latent_dim, variational), name=name)


def build_conv_decoder(latent_dim, image_shape=DEFAULT_IMAGE_SHAPE, filters=DEFAULT_CONV_FILTERS,
                       output_activation=None, name="decoder", num_classes=None):
    """A convolutional decoder mirroring :func:`build_conv_encoder`.

    A dense layer to a ``(h/2^n, w/2^n, filters[-1])`` grid, 3x3 stride-2
    transposed convolutions back up to full size, then a 3x3 convolution to the
    image's channels.

    Args:
        latent_dim: size of the code, >= 1.
        image_shape: shape of one output image.
        filters: the encoder's channels; used in reverse order.
        output_activation: ``None`` for logits, ``"sigmoid"`` for means in [0, 1].
        name: the model's name.
        num_classes: if given, a conditional decoder of ``[codes, one-hot labels]``.

    Returns:
        A ``keras.Model`` from codes to one output per pixel.
    """
    latent_dim = _checks.check_latent_dim(latent_dim)
    image_shape = _check_image_shape(image_shape)
    _check_conv_shape(image_shape, filters)
    factor = 2 ** len(filters)
    grid = (image_shape[0] // factor, image_shape[1] // factor, filters[-1])
    codes = keras.Input(shape=(latent_dim,), name="z")
    inputs, x = _conditioned(codes, codes, num_classes)
    x = layers.Dense(int(np.prod(grid)), activation="relu")(x)
    x = layers.Reshape(grid)(x)
    for channels in reversed(tuple(filters)):
        x = layers.Conv2DTranspose(channels, 3, strides=2, padding="same", activation="relu")(x)
    outputs = layers.Conv2DTranspose(
        image_shape[-1], 3, padding="same", activation=output_activation, name="pixels",
        dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def build_encoder(architecture, latent_dim, image_shape=DEFAULT_IMAGE_SHAPE, variational=True,
                  **options):
    """Build the encoder named by ``architecture`` (``"dense"`` or ``"conv"``).

    ``options`` go to the builder (``hidden_units``, ``filters``).
    """
    architecture = _checks.check_choice("architecture", architecture, _checks.ARCHITECTURES)
    builder = build_dense_encoder if architecture == "dense" else build_conv_encoder
    return builder(latent_dim, image_shape, variational=variational, **options)


def build_decoder(architecture, latent_dim, image_shape=DEFAULT_IMAGE_SHAPE,
                  output_activation=None, **options):
    """Build the decoder named by ``architecture`` (``"dense"`` or ``"conv"``).

    ``options`` go to the builder (``hidden_units`` for dense, ``filters`` for conv).
    """
    architecture = _checks.check_choice("architecture", architecture, _checks.ARCHITECTURES)
    if architecture == "dense":
        return build_dense_decoder(latent_dim, image_shape, output_activation=output_activation,
                                   **options)
    options.pop("hidden_units", None)  # the conv decoder has no hidden dense stack to mirror
    return build_conv_decoder(latent_dim, image_shape, output_activation=output_activation,
                              **options)
