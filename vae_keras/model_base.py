"""The plumbing the models share, kept out of :mod:`vae_keras.models` so its core reads in one sitting.

:class:`ImageModel` is the ``keras.Model`` under the autoencoder and the VAE:
argument checks on every entry point, the compile defaults, ``fit``'s one
iterator for all epochs, the metric trackers, the JAX step's stateless
bookkeeping, ``decode`` and ``reconstruct`` as NumPy, saving the sub-models, the
evaluation's fast likelihood path (:meth:`ImageModel.log_likelihood_of_samples`), and
the VAE's prior: giving a model its prior (:func:`set_prior`) and drawing codes from it.
What makes a model an autoencoder or a VAE, its loss and its train steps, is in
:mod:`vae_keras.models`.
"""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vae_keras import _checks, aggregate, architectures, losses, performance, priors
from vae_keras.settings import LOGIT_LIKELIHOODS
from vae_keras.callbacks import NonFiniteLossGuard


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


class ImageModel(keras.Model):
    """What every model of the package shares, except its loss and its train steps.

    Subclasses (:class:`vae_keras.models.Autoencoder`, :class:`vae_keras.VAE`) define
    ``compute_loss_terms`` and the likelihood; this class checks what comes in,
    keeps one ``Mean`` tracker per entry of ``metric_names``, and wraps Keras's
    workflows (``compile``, ``fit``, ``evaluate``, ``predict``).
    """

    metric_names = ("loss",)

    def __init__(self, image_shape, likelihood, **kwargs):
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
        if self.likelihood == "bernoulli" and keras.backend.backend() == "tensorflow":
            return _bernoulli_log_likelihood_kernel(ops.cast(images, "float32"), decoder_outputs)
        return self.log_likelihood(images, decoder_outputs)

    def _stateless_loss_terms(self, trainable, non_trainable, inputs, training):
        """``compute_loss_terms`` on given variable values; returns it and the new non-trainables."""
        mapping = (list(zip(self.trainable_variables, trainable))
                   + list(zip(self.non_trainable_variables, non_trainable)))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            terms = self.compute_loss_terms(inputs, training=training)
        updated = [scope.get_current_value(variable) for variable in self.non_trainable_variables]
        return terms, [new if new is not None else old for new, old in zip(updated, non_trainable)]

    def _stateless_update_trackers(self, metrics_variables, terms):
        with keras.StatelessScope(
                state_mapping=list(zip(self.metrics_variables, metrics_variables))) as scope:
            logs = self._update_trackers(terms)
        updated = [scope.get_current_value(variable) for variable in self.metrics_variables]
        return logs, [new if new is not None else old
                      for new, old in zip(updated, metrics_variables)]

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
        encoder = _one_output(keras.saving.deserialize_keras_object(config.pop("encoder")))
        decoder = _one_output(keras.saving.deserialize_keras_object(config.pop("decoder")))
        if config.get("prior") is not None:  # files saved before priors were saved have none
            config["prior"] = keras.saving.deserialize_keras_object(config["prior"])
        return cls(encoder, decoder, **config)


def _one_output(model):
    """A functional sub-model with one output, as it was saved, even where Keras made it a list.

    Keras 3.15 reloads a one-output functional model saved by Keras 3.8 (the floor) as a
    model whose output is a list of one tensor; a decoder (or an autoencoder's encoder) must
    return the tensor itself.
    The same layers, so the same weights, in a model that says so.
    """
    outputs = getattr(model, "outputs", None)
    if (isinstance(model, keras.Model) and isinstance(outputs, list) and len(outputs) == 1
            and isinstance(model.output, list)):
        inputs = model.inputs if len(model.inputs) > 1 else model.inputs[0]
        return keras.Model(inputs, outputs[0], name=model.name)
    return model





def encoder_and_decoder(class_name, encoder, decoder, latent_dim, architecture, image_shape,
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


def check_decoder(decoder, latent_dim, image_shape, likelihood):
    output_shape = _output_shapes(decoder, (latent_dim,))
    if isinstance(output_shape, list) or tuple(output_shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"The decoder must map codes of shape (batch, {latent_dim}) to images of shape "
            f"(batch,) + {tuple(image_shape)}; it returns {output_shape}."
        )
    if likelihood in LOGIT_LIKELIHOODS and _ends_with_sigmoid(decoder):
        name = "continuous Bernoulli" if likelihood == "continuous_bernoulli" else "Bernoulli"
        raise ValueError(
            f"The decoder ends with a sigmoid, but the {name} likelihood takes logits (it "
            "applies the sigmoid itself, stably). Remove the final activation "
            "(activation=None), or use likelihood='gaussian' for a decoder that outputs means."
        )


def check_posterior_shapes(encoder_shapes):
    """A VAE's encoder returns [z_mean, z_log_var] of one shape (batch, latent_dim)."""
    if (not isinstance(encoder_shapes, list) or len(encoder_shapes) not in (2, 3)
            or encoder_shapes[0] != encoder_shapes[1] or len(encoder_shapes[0]) != 2):
        raise ValueError(
            f"A VAE's encoder must return [z_mean, z_log_var], two tensors of shape "
            f"(batch, latent_dim); this one returns {encoder_shapes}. Build one with "
            f"vae_keras.build_encoder(..., variational=True)."
        )


# ----------------------------------------------------------------------------- the prior


def set_prior(model, prior):
    """Make ``prior`` the ``p(z)`` of ``model`` (what ``VAE.set_prior`` does).

    The prior is checked against the model's codes and images
    (:meth:`vae_keras.priors.Prior.bind`) and must be usable: an unfitted mixture
    is refused. It becomes a tracked sub-layer, so its weights (a mixture's arrays,
    a VampPrior's pseudo-inputs) are the model's: saved with it, and trained by the
    train steps when trainable. The prior it replaces is untracked, so its weights
    leave the model.

    Raises:
        TypeError: something that is not a :mod:`vae_keras.priors` prior (a fitted
            scikit-learn mixture is converted).
        ValueError: a prior for codes of another size, pseudo-inputs of another image
            shape, an unfitted mixture, or a trainable prior given to a model whose
            optimizer is built already (its optimizer has no state for the new weights).
    """
    prior = priors.as_prior(prior, model.latent_dim)
    if prior is None:
        raise TypeError("prior must be a vae_keras.priors prior, e.g. "
                        "vk.priors.StandardNormal(); got None.")
    prior.check_ready("make a model's prior of")
    old = getattr(model, "prior", None)
    if prior is old:
        return
    prior.bind(model)  # first: a VampPrior makes its pseudo-inputs here
    optimizer = getattr(model, "optimizer", None)
    if prior.trainable_weights and optimizer is not None and getattr(optimizer, "built", False):
        raise ValueError(
            f"A {type(prior).__name__} has trainable weights, and this model's optimizer was "
            f"built without them. Give the prior when the model is made: "
            f"VAE(..., prior=vk.priors.{type(prior).__name__}(...)).")
    tracker = getattr(model, "_tracker", None)  # Keras's record of the model's sub-layers
    if old is not None and tracker is not None and hasattr(tracker, "untrack"):
        tracker.untrack(old)  # else the old prior's weights would stay among the model's
    model.prior = prior


def draw_prior_codes(model, prior, num_samples, seed):
    """Codes ``(num_samples, latent_dim)`` for ``VAE.sample``: from ``model.prior``, or ``prior``.

    ``prior`` may be another :mod:`vae_keras.priors` prior or what
    :func:`vae_keras.aggregate.draw_codes` takes (a callable, an object with
    ``sample``, such as a scikit-learn mixture), as before priors were part of the model.
    """
    if prior is None:
        prior = model.prior
    if isinstance(prior, priors.Prior):
        if prior is not model.prior:
            prior.bind(model)  # the same checks as the model's own prior: codes of its size
        return prior.sample(num_samples, seed=seed)
    return aggregate.draw_codes(prior, num_samples, model.latent_dim, seed=seed)


def posterior_codes(posterior, seed):
    """One code drawn from each posterior ``(z_mean, z_log_var)``: what a mixture prior fits."""
    return aggregate.draw_posterior_codes(*posterior, seed=seed)
