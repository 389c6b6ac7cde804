"""The models: a plain ``Autoencoder`` and the variational autoencoder ``VAE``.

Both are ``keras.Model`` subclasses whose ``train_step`` (TensorFlow backend,
``tf.GradientTape``) and ``test_step`` take the loss from
``compute_loss_terms``: the reconstruction term alone for the autoencoder, the
reconstruction term plus ``beta`` times the KL term for the VAE. Losses are
summed over pixels and latent dimensions and averaged over the batch, so they
read in nats per image, the unit of the likelihood literature.
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vae_keras import _checks, aggregate, architectures, evaluation, losses, performance
from vae_keras.callbacks import NonFiniteLossGuard
from vae_keras.layers import Sampling, reparameterize

# Learned observation scales: one shared sigma, or one per pixel. A learned sigma
# is kept above this floor: a pixel that the decoder reproduces exactly (MNIST's
# always-black border) would otherwise drive its sigma, and the likelihood, to infinity.
LEARNED_SCALES = ("learned", "learned_per_pixel")
MIN_LEARNED_SCALE = 1e-3


def _images_from(data):
    """Keras hands a step ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``: take x."""
    if isinstance(data, (tuple, list)):
        return data[0]
    return data


def _check_model(name, model):
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            f"{name} must be a keras.Model (or layer), got {type(model).__name__}. Build one "
            f"with vae_keras.build_encoder / build_decoder or keras.Model(inputs, outputs)."
        )


def _output_shapes(model, input_shape):
    inputs = [keras.KerasTensor((None,) + tuple(input_shape))]
    # A conditional model's further inputs (one-hot labels) keep their own shapes.
    inputs += [keras.KerasTensor(x.shape) for x in (getattr(model, "inputs", None) or [])[1:]]
    spec = model.compute_output_spec(inputs if len(inputs) > 1 else inputs[0])
    if isinstance(spec, dict):
        spec = list(spec.values())
    if isinstance(spec, (list, tuple)):
        return [tuple(s.shape) for s in spec]
    return tuple(spec.shape)


def _input_shape(model, fallback):
    inputs = getattr(model, "inputs", None)
    if inputs:
        return tuple(inputs[0].shape[1:])
    return tuple(fallback)


# Compiled with XLA so that its element-wise steps fuse into one pass over the
# logits; without it each step reads and writes all of them, which costs more than
# the arithmetic saved. XLA compiles once per input shape. No reduce_retracing:
# models with images of different ranks share this function, and a trace relaxed to
# an unknown rank could not tell the pixel axes from the sample axes.
_bernoulli_log_likelihood_kernel = tf.function(
    losses.bernoulli_log_likelihood_by_products, jit_compile=True)


def _ends_with_sigmoid(model):
    for layer in reversed(getattr(model, "layers", [])):
        activation = getattr(layer, "activation", None)
        if activation is not None:
            return activation is keras.activations.sigmoid
    return False


def _one_iterator_for_all_epochs(dataset, fit_kwargs, steps_per_execution=1):
    """Repeat a finite dataset over the epochs of ``fit`` so Keras keeps one iterator.

    Without ``steps_per_epoch`` Keras makes a new iterator every epoch, and
    TensorFlow then tears down the old iterator's thread pool and re-optimizes
    the pipeline's map functions: a stall of 1.2-2 s at the start of most epochs
    on a 2-core CPU (``benchmarks/throughput.py`` measures it; a 10,000-image
    epoch took 5 s instead of 3.2 s; Keras even makes two iterators per epoch,
    one of them unused). ``dataset.repeat(n)`` gives the batches of n passes
    over the dataset, each with a fresh shuffle and noise, from one iterator:
    the same training, minus the stall. (Epoch k sees pass k; Keras's own
    path, with its unused iterators, sees passes 1, 3, 5, ...)

    Datasets of unknown or infinite length, and calls that set
    ``steps_per_epoch``, are left alone, as are epochs that do not split into
    whole executions of ``steps_per_execution`` steps
    (:func:`vae_keras.performance.epoch_fits_executions`). Validation passes
    still make a new iterator each time: Keras's ``evaluate`` resets it
    whatever the arguments.
    """
    asked = range(fit_kwargs.get("initial_epoch", 0), fit_kwargs.get("epochs", 1))
    batches = int(dataset.cardinality())
    if (len(asked) <= 1 or batches <= 0 or fit_kwargs.get("steps_per_epoch") is not None
            or not performance.epoch_fits_executions(batches, steps_per_execution)):
        return dataset, fit_kwargs
    return dataset.repeat(len(asked)), dict(fit_kwargs, steps_per_epoch=batches)


class _ImageModel(keras.Model):
    """What the autoencoder and the VAE share: input checks, the train and test steps.

    Subclasses define ``compute_loss_terms(inputs, training)``, returning a dict
    of per-batch scalars whose keys are ``metric_names`` (``"loss"`` first).
    ``inputs`` is what :meth:`unpack_batch` takes from a batch: the images here,
    ``(images, labels)`` for a model that also reads labels.

    The likelihood lives in two methods that everything else calls (training,
    evaluation, sampling, the applications): :meth:`log_likelihood` from decoder
    output to ``log p(x | z)``, and :meth:`mean_images` from decoder output to
    the mean image. :meth:`log_likelihood_of_samples` is the evaluation's fast
    path to the same values; a subclass that changes the likelihood overrides it too.
    """

    metric_names = ("loss",)

    def __init__(self, image_shape, likelihood, **kwargs):
        _checks.require_tensorflow_backend()
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.likelihood = likelihood
        self.trackers = [keras.metrics.Mean(name=name) for name in self.metric_names]

    @property
    def metrics(self):
        # Listed here so Keras resets the trackers at the start of every epoch.
        return self.trackers

    @property
    def num_pixels(self):
        """Number of values in one image (the 'dimensions' of bits per dimension)."""
        return int(np.prod(self.image_shape))

    def check_images(self, images, what="images"):
        """Raise a clear ValueError/TypeError if ``images`` do not fit this model."""
        _checks.check_images(images, self.image_shape, self.likelihood, what=what)

    def unpack_batch(self, data):
        """What ``compute_loss_terms`` takes from a batch Keras hands a step: the images."""
        return _images_from(data)

    def images_of(self, inputs):
        """The images among ``inputs`` (the output of :meth:`unpack_batch`)."""
        return inputs

    def log_observation_scale(self):
        """Log of the Gaussian likelihood's standard deviation (unused by Bernoulli)."""
        return 0.0

    def log_likelihood(self, images, decoder_output):
        """``log p(x | z)`` per image in nats, from the decoder's output for ``z``.

        The one place the likelihood is chosen: Bernoulli pixels from logits, or
        Gaussian pixels around the decoder's means with this model's scale.

        Returns:
            A float32 tensor of shape ``(batch,)``.
        """
        return losses.reconstruction_log_likelihood(
            images, ops.cast(decoder_output, "float32"), self.likelihood,
            self.log_observation_scale())

    def log_likelihood_of_samples(self, images, decoder_outputs):
        """``log p(x | z_k)`` for K decoder outputs per image: shape ``(K, batch)``.

        The value of :meth:`log_likelihood` on K copies of the images, computed
        for speed, because evaluation calls it for every importance sample: the
        images are broadcast against ``decoder_outputs`` of shape ``(K, batch,
        ...)`` instead of copied, and Bernoulli pixels go through one
        XLA-compiled kernel (:func:`vae_keras.losses.bernoulli_log_likelihood_by_products`,
        one ``exp`` per pixel and the element-wise work fused into one pass).
        Evaluation only: training differentiates :meth:`log_likelihood`.
        """
        decoder_outputs = ops.cast(decoder_outputs, "float32")
        if self.likelihood == "bernoulli":
            return _bernoulli_log_likelihood_kernel(ops.cast(images, "float32"), decoder_outputs)
        return self.log_likelihood(images, decoder_outputs)

    def mean_images(self, decoder_output):
        """The mean image of ``p(x | z)``: pixel probabilities (Bernoulli) or means (Gaussian)."""
        decoder_output = ops.cast(decoder_output, "float32")
        if self.likelihood == "bernoulli":
            return ops.sigmoid(decoder_output)
        return decoder_output

    def compute_loss_terms(self, inputs, training=False):
        raise NotImplementedError

    def train_step(self, data):
        """One optimizer step on a batch; returns the running means of the loss terms."""
        inputs = self.unpack_batch(data)
        with tf.GradientTape() as tape:
            terms = self.compute_loss_terms(inputs, training=True)
            # Under tf.distribute each replica sees 1/N of the global batch and the
            # gradients are summed across replicas: divide so the sum is the mean.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled_loss = self.optimizer.scale_loss(terms["loss"] / replicas)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._update_trackers(terms)

    def test_step(self, data):
        """The loss terms on a batch without training (used by evaluate and validation)."""
        terms = self.compute_loss_terms(self.unpack_batch(data), training=False)
        return self._update_trackers(terms)

    def _update_trackers(self, terms):
        for tracker in self.trackers:
            tracker.update_state(terms[tracker.name])
        return {tracker.name: tracker.result() for tracker in self.trackers}

    def compile(self, optimizer="adam", **kwargs):
        """Configure training; the default optimizer is Adam with learning rate 1e-3.

        The loss is built in, so ``loss=`` is not accepted. Options the caller
        leaves out (``steps_per_execution``, ``jit_compile``) come from
        :func:`vae_keras.performance.default_compile_options`, chosen by device.
        """
        if kwargs.get("loss") is not None:
            raise ValueError(
                f"{type(self).__name__} computes its own loss in compute_loss_terms; call "
                f"compile() without loss= (for example compile(optimizer='adam'))."
            )
        for key, value in performance.default_compile_options().items():
            kwargs.setdefault(key, value)
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        # Keras skips compile() on load for models that override it; ours only adds a
        # default and a check, so a loaded model comes back compiled, optimizer state too.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, **kwargs):
        """``keras.Model.fit`` after checking the images; ``y`` is ignored.

        ``validation_data`` may also be a bare array of images. A
        :class:`~vae_keras.callbacks.NonFiniteLossGuard` is added, so a NaN loss
        stops training with an error instead of leaving NaN weights. A finite
        ``tf.data.Dataset`` is repeated over the epochs with ``steps_per_epoch``
        set, which trains on the same batches but keeps one iterator: Keras would
        otherwise rebuild it each epoch, a stall of 1-2 s per epoch on a CPU.
        """
        self.check_images(x, what="training images (x)")
        validation_data = kwargs.get("validation_data")
        if validation_data is not None:
            if isinstance(validation_data, np.ndarray) or tf.is_tensor(validation_data):
                validation_data = (validation_data,)
            if isinstance(validation_data, (tuple, list)):
                validation_data = tuple(validation_data)
                self.check_images(validation_data[0], what="validation images")
            else:
                self.check_images(validation_data, what="validation images")
            kwargs["validation_data"] = validation_data
        if isinstance(x, tf.data.Dataset):
            kwargs.setdefault("shuffle", False)  # a Dataset shuffles itself; Keras warns otherwise
            x, kwargs = _one_iterator_for_all_epochs(x, kwargs,
                                                     self.steps_per_execution or 1)
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if not any(isinstance(c, NonFiniteLossGuard) for c in callbacks):
            # First in line, so a NaN epoch is caught before any checkpoint saves it.
            callbacks.insert(0, NonFiniteLossGuard())
        return super().fit(x, y, callbacks=callbacks, **kwargs)

    def evaluate(self, x=None, y=None, **kwargs):
        """``keras.Model.evaluate`` after checking the images; ``y`` is ignored."""
        self.check_images(x)
        return super().evaluate(x, y, **kwargs)

    def predict(self, x, **kwargs):
        """``keras.Model.predict`` (reconstructions) after checking the images."""
        self.check_images(x)
        return super().predict(x, **kwargs)

    def check_codes(self, codes):
        """``codes`` as float32 ``(n, latent_dim)`` for this model; ValueError otherwise."""
        codes = np.asarray(codes, dtype=np.float32)
        if codes.ndim != 2 or codes.shape[1] != self.latent_dim:
            raise ValueError(
                f"codes must have shape (n, {self.latent_dim}) for this model; got "
                f"{codes.shape}. A single code z needs a batch axis: z[None]."
            )
        return codes

    def decode(self, codes, batch_size=256):
        """Decode codes to mean images (pixel probabilities for Bernoulli), as NumPy.

        Args:
            codes: array of shape ``(n, latent_dim)``.
            batch_size: how many codes to decode at once.

        Returns:
            Images of shape ``(n,) + image_shape``, values in [0, 1] for Bernoulli.
        """
        codes = self.check_codes(codes)
        batch_size = _checks.check_whole_number("batch_size", batch_size)
        output = self.decoder.predict(codes, batch_size=batch_size, verbose=0)
        return ops.convert_to_numpy(self.mean_images(output))

    def reconstruct(self, images, batch_size=256):
        """Encode images to their (mean) code and decode them again, as NumPy."""
        return self.decode(self.encode_mean(images, batch_size=batch_size), batch_size)

    def get_config(self):
        # The sub-models are saved whole, so a model built from a latent size and one
        # built from a user's encoder and decoder load the same way.
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        decoder = keras.saving.deserialize_keras_object(config.pop("decoder"))
        return cls(encoder, decoder, **config)


@keras.saving.register_keras_serializable(package="vae_keras")
class Autoencoder(_ImageModel):
    """A plain, deterministic autoencoder: image -> code -> image.

    Trained on the Bernoulli reconstruction loss (binary cross-entropy summed over
    pixels), the same term as the VAE's, so the two can be compared in nats.

    Build it from a latent size (``Autoencoder(latent_dim=2)``) with the dense or
    convolutional architecture, or from your own encoder (images -> one code) and
    decoder (code -> logits).

    Args:
        encoder: optional ``keras.Model`` from images to codes.
        decoder: optional ``keras.Model`` from codes to per-pixel logits.
        latent_dim: code size when building the default architecture.
        architecture: ``"dense"`` or ``"conv"``.
        image_shape: shape of one image.
        hidden_units: widths of the dense layers (optional).
        filters: channels of the convolutions for ``"conv"`` (optional).
        **kwargs: passed to ``keras.Model`` (``name``...).
    """

    metric_names = ("loss",)

    def __init__(self, encoder=None, decoder=None, *, latent_dim=None, architecture="dense",
                 image_shape=architectures.DEFAULT_IMAGE_SHAPE, hidden_units=None, filters=None,
                 **kwargs):
        encoder, decoder, image_shape, code_shape = _encoder_and_decoder(
            "Autoencoder", encoder, decoder, latent_dim, architecture, image_shape,
            dict(hidden_units=hidden_units, filters=filters), variational=False)
        if isinstance(code_shape, list) or len(code_shape) != 2:
            raise ValueError(
                f"An Autoencoder's encoder must return one code of shape (batch, latent_dim); "
                f"this one returns {code_shape}. For (z_mean, z_log_var) use vae_keras.VAE."
            )
        super().__init__(image_shape, "bernoulli", **kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = int(code_shape[1])
        if latent_dim is not None and _checks.check_latent_dim(latent_dim) != self.latent_dim:
            raise ValueError(f"latent_dim={latent_dim} but the encoder's code has "
                             f"{self.latent_dim} dimensions.")
        _check_decoder(decoder, self.latent_dim, self.image_shape, "bernoulli")
        self.built = True

    def call(self, inputs, training=False):
        """Reconstruct ``inputs``: pixel probabilities of shape ``(batch,) + image_shape``."""
        return self.mean_images(
            self.decoder(self.encoder(inputs, training=training), training=training))

    def compute_loss_terms(self, images, training=False):
        """The reconstruction loss ``-log p(x | code)`` averaged over the batch."""
        logits = self.decoder(self.encoder(images, training=training), training=training)
        return {"loss": -ops.mean(self.log_likelihood(images, logits))}

    def encode(self, images, batch_size=256):
        """The codes of ``images``, shape ``(n, latent_dim)``, as NumPy."""
        self.check_images(images)
        batch_size = _checks.check_whole_number("batch_size", batch_size)
        return np.asarray(self.encoder.predict(images, batch_size=batch_size, verbose=0))

    def encode_mean(self, images, batch_size=256):
        """Same as :meth:`encode` (an autoencoder's code is a point); for a shared API."""
        return self.encode(images, batch_size=batch_size)



def _encoder_and_decoder(class_name, encoder, decoder, latent_dim, architecture, image_shape,
                         options, variational, output_activation=None):
    """Build the default sub-models or check the user's; return them with their shapes.

    Returns:
        ``(encoder, decoder, image_shape, encoder_output_shapes)``.
    """
    if encoder is None and decoder is None:
        if latent_dim is None:
            raise ValueError(f"Give latent_dim (e.g. {class_name}(latent_dim=2)) or an encoder "
                             f"and a decoder ({class_name}(encoder, decoder)).")
        options = {key: tuple(int(v) for v in value) for key, value in options.items()
                   if value is not None}
        encoder = architectures.build_encoder(architecture, latent_dim, image_shape,
                                              variational=variational, **options)
        decoder = architectures.build_decoder(architecture, latent_dim, image_shape,
                                              output_activation=output_activation, **options)
    elif encoder is None or decoder is None:
        raise ValueError("Give both an encoder and a decoder, or neither (with latent_dim).")
    _check_model("encoder", encoder)
    _check_model("decoder", decoder)
    image_shape = _input_shape(encoder, image_shape)
    return encoder, decoder, image_shape, _output_shapes(encoder, image_shape)


def _check_decoder(decoder, latent_dim, image_shape, likelihood):
    output_shape = _output_shapes(decoder, (latent_dim,))
    if isinstance(output_shape, list) or tuple(output_shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"The decoder must map codes of shape (batch, {latent_dim}) to images of shape "
            f"(batch,) + {tuple(image_shape)}; it returns {output_shape}."
        )
    if likelihood == "bernoulli" and _ends_with_sigmoid(decoder):
        raise ValueError(
            "The decoder ends with a sigmoid, but the Bernoulli likelihood takes logits (it "
            "applies the sigmoid itself, stably). Remove the final activation "
            "(activation=None), or use likelihood='gaussian' for a decoder that outputs means."
        )


@keras.saving.register_keras_serializable(package="vae_keras")
class VAE(_ImageModel):
    """A variational autoencoder (Kingma & Welling, 2014) with a Gaussian posterior.

    The encoder maps an image ``x`` to the mean and log-variance of
    ``q(z | x) = N(z_mean, diag(exp(z_log_var)))``; the :class:`~vae_keras.layers.Sampling`
    layer draws ``z`` with the reparameterization trick; the decoder maps ``z`` to
    the parameters of ``p(x | z)``: per-pixel logits (Bernoulli) or means
    (Gaussian with standard deviation ``observation_scale``, fixed or learned).
    Training minimizes ``reconstruction_loss + beta * kl_loss``, the negative ELBO
    when ``beta == 1``.

    Two ways to build it::

        vae = VAE(latent_dim=2)                    # default dense architecture
        vae = VAE(latent_dim=16, architecture="conv")
        vae = VAE(encoder, decoder)                # your own keras.Models

    Your encoder returns ``[z_mean, z_log_var]`` (a third output, such as the
    ``z`` of the Keras example's encoder, is ignored) and your decoder returns
    logits for the Bernoulli likelihood or means for the Gaussian one.

    Args:
        encoder: optional ``keras.Model`` from images to ``[z_mean, z_log_var]``.
        decoder: optional ``keras.Model`` from codes to per-pixel outputs.
        latent_dim: code size when building the default architecture.
        architecture: ``"dense"`` or ``"conv"`` for the default architecture.
        likelihood: ``"bernoulli"`` (pixels in [0, 1]) or ``"gaussian"``.
        beta: weight of the KL term (1 is the ELBO; see ``vae_keras.callbacks``).
        observation_scale: the Gaussian likelihood's standard deviation sigma: a
            number (fixed), ``"learned"`` (one shared sigma trained with the
            model) or ``"learned_per_pixel"`` (one per pixel). A learned sigma
            starts at 0.1 and stays above ``MIN_LEARNED_SCALE``. Notebook 07
            shows why a fixed sigma acts as a hidden beta and learning it fixes that.
        seed: optional int for the sampling layer's random stream.
        importance_samples: K, codes drawn per image in training. 1 (the
            default) trains on the ELBO; K > 1 on the importance-weighted bound
            (IWAE, Burda et al. 2015), tighter than the ELBO and evaluated the
            same way, at the cost of K decoder passes per image. ``beta`` then
            weighs ``log p(z) - log q(z|x)`` inside each importance weight.
        image_shape: shape of one image when building the default architecture.
        hidden_units: widths of the dense layers (optional).
        filters: channels of the convolutions for ``"conv"`` (optional).
        **kwargs: passed to ``keras.Model`` (``name``...).
    """

    metric_names = ("loss", "reconstruction_loss", "kl_loss")

    def __init__(self, encoder=None, decoder=None, *, latent_dim=None, architecture="dense",
                 likelihood="bernoulli", beta=1.0, observation_scale=0.1, seed=None,
                 importance_samples=1, image_shape=architectures.DEFAULT_IMAGE_SHAPE,
                 hidden_units=None, filters=None, **kwargs):
        likelihood = _checks.check_choice("likelihood", likelihood, _checks.LIKELIHOODS)
        beta = _checks.check_positive("beta", beta, allow_zero=True)
        importance_samples = _checks.check_whole_number("importance_samples", importance_samples)
        if isinstance(observation_scale, str):
            observation_scale = _checks.check_choice("observation_scale", observation_scale,
                                                     LEARNED_SCALES)
        else:
            observation_scale = _checks.check_positive("observation_scale", observation_scale)
        encoder, decoder, image_shape, encoder_shapes = _encoder_and_decoder(
            "VAE", encoder, decoder, latent_dim, architecture, image_shape,
            dict(hidden_units=hidden_units, filters=filters), variational=True,
            output_activation=None if likelihood == "bernoulli" else "sigmoid")
        _check_posterior_shapes(encoder_shapes)
        super().__init__(image_shape, likelihood, **kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = int(encoder_shapes[0][1])
        if latent_dim is not None and _checks.check_latent_dim(latent_dim) != self.latent_dim:
            raise ValueError(f"latent_dim={latent_dim} but the encoder's codes have "
                             f"{self.latent_dim} dimensions.")
        self._check_decoder()
        self.seed = seed
        self.importance_samples = importance_samples
        self.observation_scale = observation_scale
        if observation_scale in LEARNED_SCALES:
            shape = () if observation_scale == "learned" else self.image_shape
            self._log_scale = self.add_weight(
                shape=shape, initializer=keras.initializers.Constant(math.log(0.1)),
                trainable=True, dtype="float32", name="log_observation_scale")
        # float32 whatever the policy: the noise and the code feed the float32 losses.
        self.sampling = Sampling(seed=seed, name="sampling", dtype="float32")
        # A variable, not a float: callbacks change it between batches without retracing.
        self._beta = keras.Variable(beta, dtype="float32", trainable=False, name="beta")
        self._initial_beta = beta
        self.built = True

    def _check_decoder(self):
        _check_decoder(self.decoder, self.latent_dim, self.image_shape, self.likelihood)

    @property
    def beta(self):
        """The current weight of the KL term in the loss."""
        return float(ops.convert_to_numpy(self._beta))

    @beta.setter
    def beta(self, value):
        self._beta.assign(_checks.check_positive("beta", value, allow_zero=True))

    def log_observation_scale(self):
        """Log sigma of the Gaussian likelihood: the fixed value, or the learned one (floored)."""
        if self.observation_scale in LEARNED_SCALES:
            return ops.maximum(ops.cast(self._log_scale, "float32"), math.log(MIN_LEARNED_SCALE))
        return math.log(self.observation_scale)

    @property
    def observation_scale_value(self):
        """The Gaussian likelihood's current sigma as NumPy: a scalar, or one per pixel."""
        return np.exp(ops.convert_to_numpy(self.log_observation_scale()))

    # ------------------------------------------------------------------ the forward pass
    # Training, call(), the ELBO and the IWAE bound all go through posterior(),
    # decoder_output(), reparameterize() and log_likelihood(); a model that also
    # reads labels (a conditional VAE) overrides the first two and images_of().

    def posterior(self, inputs, training=False):
        """``(z_mean, z_log_var)`` of ``q(z | x)`` as float32 tensors."""
        outputs = self.encoder(inputs, training=training)
        # Losses in float32 even when the layers compute in float16 (mixed precision).
        return ops.cast(outputs[0], "float32"), ops.cast(outputs[1], "float32")

    def decoder_output(self, codes, inputs=None, training=False, decoder=None):
        """The decoder's output (logits or means) for ``codes``, as float32.

        ``inputs`` (the batch the codes came from, repeated as often) is ignored
        here; a conditional model reads its labels from it. ``decoder`` replaces
        ``self.decoder`` (evaluation passes a bfloat16 copy of it).
        """
        decoder = self.decoder if decoder is None else decoder
        return ops.cast(decoder(codes, training=training), "float32")

    def reconstruction_and_kl(self, inputs, noise=None, training=False):
        """``log p(x | z)`` for one ``z ~ q(z | x)`` and ``KL(q(z | x) || p(z))``, per example.

        With ``noise=None`` the Sampling layer draws ``z`` (training); evaluation
        passes its own standard-normal ``noise`` for repeatable draws.
        """
        z_mean, z_log_var = self.posterior(inputs, training)
        if noise is None:
            z = self.sampling([z_mean, z_log_var])
        else:
            z = reparameterize(z_mean, z_log_var, noise)
        output = self.decoder_output(z, inputs, training)
        return (self.log_likelihood(self.images_of(inputs), output),
                losses.gaussian_kl(z_mean, z_log_var))

    def log_importance_weights(self, inputs, noise, decoder=None, posterior=None,
                               prior_log_prob=None):
        """``log p(x | z_k) + log p(z_k) - log q(z_k | x)`` for K codes per example.

        Args:
            inputs: a batch (what :meth:`unpack_batch` returns).
            noise: standard-normal draws of shape ``(K, batch, latent_dim)``.
            decoder: optional stand-in for ``self.decoder`` (see :meth:`decoder_output`).
            posterior: optional ``(z_mean, z_log_var)`` of ``inputs``, from
                :meth:`posterior`; evaluation encodes a batch once and passes it
                for every chunk of its K samples.
            prior_log_prob: optional function of codes ``(..., latent_dim)`` giving
                ``log p(z)`` in place of ``log N(z; 0, I)``, e.g. a mixture fitted
                after training (:func:`vae_keras.aggregate.mixture_parameters`).

        Returns:
            Log weights of shape ``(K, batch)``; their log-mean-exp over K is the
            importance-weighted bound (:func:`vae_keras.losses.importance_weighted_bound`).
        """
        log_likelihood, log_prior_ratio, _ = self._log_weight_terms(
            inputs, noise, decoder=decoder, posterior=posterior, prior_log_prob=prior_log_prob)
        return log_likelihood + log_prior_ratio

    def _log_weight_terms(self, inputs, noise=None, training=False, decoder=None, posterior=None,
                          prior_log_prob=None):
        """``log p(x | z_k)`` and ``log p(z_k) - log q(z_k | x)``, each ``(K, batch)``, and the KL.

        With ``noise=None`` the Sampling layer draws ``importance_samples`` codes
        per example (training); evaluation passes its own noise ``(K, batch, latent)``
        and, optionally, the batch's ``posterior`` computed once.
        The third value is the closed-form ``KL(q(z | x) || p(z))`` per example.
        """
        z_mean, z_log_var = self.posterior(inputs, training) if posterior is None else posterior
        batch = ops.shape(z_mean)[0]
        if noise is None:
            num_samples = self.importance_samples
            # K copies of the posterior, K-major, so the draws reshape to (K, batch, latent).
            flat_codes = self.sampling([ops.tile(z_mean, [num_samples, 1]),
                                        ops.tile(z_log_var, [num_samples, 1])])
            z = ops.reshape(flat_codes, (num_samples, batch, self.latent_dim))
        else:
            num_samples = ops.shape(noise)[0]
            z = reparameterize(z_mean[None], z_log_var[None], noise)  # (K, batch, latent)
        # K copies of the batch, K-major like the reshape of z, for the decoder of a model
        # that reads more than the codes (a conditional one reads the labels); the
        # copies of the images are pruned from the graph when nothing reads them.
        repeated = tf.nest.map_structure(
            lambda x: ops.tile(x, [num_samples] + [1] * (len(x.shape) - 1)), inputs)
        output = self.decoder_output(ops.reshape(z, (-1, self.latent_dim)), repeated, training,
                                     decoder)
        output = ops.reshape(output, (num_samples, batch) + tuple(output.shape[1:]))
        images = self.images_of(inputs)
        if noise is None:  # training: the gradient flows through the plain likelihood
            log_p_x_given_z = self.log_likelihood(images, output)
        else:
            log_p_x_given_z = self.log_likelihood_of_samples(images, output)
        log_prior = (losses.standard_normal_log_prob(z) if prior_log_prob is None
                     else prior_log_prob(z))
        log_prior_ratio = (log_prior
                           - losses.diagonal_gaussian_log_prob(z, z_mean[None], z_log_var[None]))
        return log_p_x_given_z, log_prior_ratio, losses.gaussian_kl(z_mean, z_log_var)

    def compute_loss_terms(self, inputs, training=False):
        """The loss and its two terms for a batch, each averaged over the batch.

        ``reconstruction_loss = -mean log p(x | z)`` with ``z ~ q(z | x)`` drawn by
        the Sampling layer, ``kl_loss = mean KL(q(z | x) || p(z))`` in closed form
        (:func:`vae_keras.losses.gaussian_kl`), and ``loss = reconstruction_loss +
        beta * kl_loss``. ``train_step`` takes the gradient of ``loss``.

        With ``importance_samples`` K > 1, ``loss`` is instead the negative
        importance-weighted bound over K codes per image (each log weight
        ``log p(x|z_k) + beta * (log p(z_k) - log q(z_k|x))``), which is at most
        the negative ELBO; the two terms are then reported for monitoring, the
        reconstruction averaged over the K codes.
        """
        if self.importance_samples == 1:
            log_likelihood, kl = self.reconstruction_and_kl(inputs, training=training)
            reconstruction_loss = -ops.mean(log_likelihood)
            kl_loss = ops.mean(kl)
            loss = reconstruction_loss + ops.cast(self._beta, "float32") * kl_loss
            return {"loss": loss, "reconstruction_loss": reconstruction_loss, "kl_loss": kl_loss}
        log_likelihood, log_prior_ratio, kl = self._log_weight_terms(inputs, training=training)
        log_weights = log_likelihood + ops.cast(self._beta, "float32") * log_prior_ratio
        return {"loss": -ops.mean(losses.importance_weighted_bound(log_weights)),
                "reconstruction_loss": -ops.mean(log_likelihood),
                "kl_loss": ops.mean(kl)}

    def call(self, inputs, training=False):
        """Reconstruct ``inputs``: decode a sampled code when training, the mean otherwise."""
        z_mean, z_log_var = self.posterior(inputs, training)
        z = self.sampling([z_mean, z_log_var]) if training else z_mean
        return self.mean_images(self.decoder_output(z, inputs, training))

    # ------------------------------------------------------------------ NumPy conveniences

    def encode(self, images, batch_size=256):
        """The posterior's parameters for ``images``: ``(z_mean, z_log_var)`` as NumPy."""
        self.check_images(images)
        batch_size = _checks.check_whole_number("batch_size", batch_size)
        outputs = self.encoder.predict(images, batch_size=batch_size, verbose=0)
        return np.asarray(outputs[0]), np.asarray(outputs[1])

    def encode_mean(self, images, batch_size=256):
        """The posterior means of ``images``, shape ``(n, latent_dim)``: the usual 'code'."""
        return self.encode(images, batch_size=batch_size)[0]

    def sample(self, num_samples, seed=None, batch_size=256, prior=None):
        """Generate images by decoding codes drawn from the prior ``N(0, I)``, or from ``prior``.

        Args:
            num_samples: how many images, >= 1.
            seed: optional int; without it NumPy's global generator is used, which
                ``keras.utils.set_random_seed`` seeds.
            batch_size: how many codes to decode at once.
            prior: optional code distribution instead of ``N(0, I)``: a callable
                ``prior(num_samples, rng)`` returning codes ``(num_samples, latent_dim)``,
                or an object with ``sample(num_samples)`` such as a scikit-learn
                ``GaussianMixture`` fitted to training codes
                (:func:`vae_keras.aggregate.fit_code_mixture`). See
                :func:`vae_keras.aggregate.draw_codes`.

        Returns:
            Mean images (pixel probabilities for Bernoulli), ``(num_samples,) + image_shape``.
        """
        codes = aggregate.draw_codes(prior, num_samples, self.latent_dim, seed=seed)
        return self.decode(codes, batch_size=batch_size)

    def elbo(self, images, batch_size=500, per_image=False, seed=None):
        """The ELBO of ``images`` in nats (one posterior sample each, analytic KL).

        Returns the mean over images, or one value per image with ``per_image=True``.
        See :func:`vae_keras.evaluation.elbo_per_image`.
        """
        values = evaluation.elbo_per_image(self, images, batch_size=batch_size, seed=seed)
        return values if per_image else float(np.mean(values))

    def nll(self, images, num_samples=1000, batch_size=100, per_image=False, seed=None,
            prior=None):
        """Negative log-likelihood estimate ``-log p(x)`` in nats, from the IWAE bound.

        With ``num_samples`` importance samples per image (K; 1000 or more for numbers
        comparable with the literature). Returns the mean over images, or one value
        per image with ``per_image=True``. With ``prior`` (a fitted Gaussian
        mixture), of the sampler ``sample(prior=prior)`` uses. See
        :func:`vae_keras.evaluation.importance_weighted_log_likelihood`.
        """
        log_likelihood = evaluation.importance_weighted_log_likelihood(
            self, images, num_samples=num_samples, batch_size=batch_size, seed=seed,
            prior=prior)
        return -log_likelihood if per_image else float(-np.mean(log_likelihood))

    def get_config(self):
        config = super().get_config()
        config.update(
            likelihood=self.likelihood,
            beta=self._initial_beta,
            observation_scale=self.observation_scale,
            seed=self.seed,
            importance_samples=self.importance_samples,
        )
        return config


def _check_posterior_shapes(encoder_shapes):
    """A VAE's encoder returns [z_mean, z_log_var] of one shape (batch, latent_dim)."""
    if (not isinstance(encoder_shapes, list) or len(encoder_shapes) not in (2, 3)
            or encoder_shapes[0] != encoder_shapes[1] or len(encoder_shapes[0]) != 2):
        raise ValueError(
            f"A VAE's encoder must return [z_mean, z_log_var], two tensors of shape "
            f"(batch, latent_dim); this one returns {encoder_shapes}. Build one with "
            f"vae_keras.build_encoder(..., variational=True)."
        )
