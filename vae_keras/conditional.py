"""A conditional VAE: encoder and decoder also see the class label ("draw me a 7").

The model of Kingma et al. (2014, the M2 model with every label given) and Sohn
et al. (2015): the encoder is ``q(z | x, y)``, the decoder ``p(x | z, y)``, and the
prior ``p(z)`` is the same whatever the label: ``N(0, I)`` by default, or a Gaussian
mixture fitted after training (``cvae.fit_prior_mixture(images, labels)``), kept in
the model as a VAE's is (a VampPrior's pseudo-inputs carry no label: it is refused).
The conditional ELBO, with the standard normal,

``log p(x | y) >= E_q(z|x,y)[log p(x | z, y)] - KL(q(z | x, y) || N(0, I))``

is the VAE's with ``y`` added to both networks, so :class:`ConditionalVAE` is a
:class:`~vae_keras.VAE` whose forward pass reads labels: it overrides how a batch
is unpacked (``(images, labels)``) and how the encoder and decoder are called
(one-hot labels as their second input), and keeps the VAE's training step,
likelihood, KL term and evaluation. Notebook 09 trains one on MNIST.

It lives in its own module so that ``models.py``, the teaching core, stays short.
"""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vae_keras import _checks, architectures, evaluation, model_base, models


def _label_input_width(model, name):
    """The width of a conditional sub-model's one-hot label input, or a clear error."""
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 2 or len(inputs[1].shape) != 2:
        first = "images" if name == "encoder" else "codes"
        raise ValueError(
            f"A ConditionalVAE's {name} takes two inputs, [{first}, one-hot labels of shape "
            f"(batch, num_classes)]; this one has {len(inputs or [])}. Build one with "
            f"vae_keras.build_{name}(..., num_classes=10) or keras.Model([{first}, labels], ...).")
    return int(inputs[1].shape[-1])


@keras.saving.register_keras_serializable(package="vae_keras")
class ConditionalVAE(models.VAE):
    """A VAE whose encoder sees (image, label) and whose decoder sees (code, label).

    Labels are class indices ``0..num_classes - 1``; the model turns them into
    one-hot vectors, which the default architectures concatenate to the image
    features (encoder) and to the code (decoder). Train on image-label pairs,
    then draw a chosen class::

        cvae = ConditionalVAE(latent_dim=4, num_classes=10)
        cvae.compile()
        cvae.fit(x_train, y_train, epochs=10)          # or a Dataset of (images, labels)
        sevens = cvae.sample(16, labels=7)              # or labels=[0, 1, ..., 9, ...]

    Every method that reads images also takes their labels: ``encode(images,
    labels)``, ``decode(codes, labels)``, ``elbo(images, labels)``, ``nll(images,
    labels)`` (the importance-weighted bound of ``log p(x | y)``), and ``predict``
    on ``[images, labels]``.

    Args:
        encoder: optional ``keras.Model`` from ``[images, one-hot labels]`` to
            ``[z_mean, z_log_var]``.
        decoder: optional ``keras.Model`` from ``[codes, one-hot labels]`` to
            per-pixel outputs (logits for Bernoulli, means for Gaussian).
        num_classes: number of classes (>= 2); read from the encoder when one is given.
        latent_dim: code size when building the default architecture.
        **kwargs: the other arguments of :class:`~vae_keras.VAE` (``architecture``,
            ``likelihood``, ``beta``, ``observation_scale``, ``seed``,
            ``image_shape``, ``hidden_units``, ``filters``, ``name``...).

    Raises:
        ValueError: neither sub-models nor ``latent_dim`` and ``num_classes``, or
            sub-models without a label input, or label counts that disagree.
    """

    def __init__(self, encoder=None, decoder=None, *, num_classes=None, latent_dim=None,
                 **kwargs):
        if num_classes is not None:
            num_classes = _checks.check_whole_number("num_classes", num_classes, 2)
        if encoder is None and decoder is None:
            if latent_dim is None or num_classes is None:
                raise ValueError("Give latent_dim and num_classes (e.g. ConditionalVAE("
                                 "latent_dim=8, num_classes=10)) or an encoder and a decoder.")
            encoder, decoder = self._default_sub_models(latent_dim, num_classes, kwargs)
        elif encoder is None or decoder is None:
            raise ValueError("Give both an encoder and a decoder, or neither (with latent_dim "
                             "and num_classes).")
        widths = {name: _label_input_width(model, name)
                  for name, model in [("encoder", encoder), ("decoder", decoder)]}
        if num_classes is None:
            num_classes = widths["encoder"]
        if set(widths.values()) != {num_classes}:
            raise ValueError(
                f"The label counts disagree: num_classes={num_classes}, the encoder's label "
                f"input has {widths['encoder']} and the decoder's {widths['decoder']}. Build "
                f"both with the same num_classes.")
        self.num_classes = num_classes
        super().__init__(encoder, decoder, latent_dim=latent_dim, **kwargs)

    @staticmethod
    def _default_sub_models(latent_dim, num_classes, kwargs):
        architecture = kwargs.get("architecture", "dense")
        image_shape = kwargs.get("image_shape", architectures.DEFAULT_IMAGE_SHAPE)
        options = {key: tuple(int(v) for v in kwargs[key]) for key in ("hidden_units", "filters")
                   if kwargs.get(key) is not None}
        likelihood = _checks.check_choice("likelihood", kwargs.get("likelihood", "bernoulli"),
                                          _checks.LIKELIHOODS)
        gaussian = likelihood == "gaussian"  # means through a sigmoid; the others give logits
        encoder = architectures.build_encoder(architecture, latent_dim, image_shape,
                                              num_classes=num_classes, **options)
        decoder = architectures.build_decoder(architecture, latent_dim, image_shape,
                                              output_activation="sigmoid" if gaussian else None,
                                              num_classes=num_classes, **options)
        return encoder, decoder

    # ------------------------------------------------------------------ the forward pass
    # Training, evaluation and call() are the VAE's; only these read the labels.

    def unpack_batch(self, data):
        """``(images, labels)`` from a batch: ``fit(images, labels)`` or a Dataset of pairs."""
        if isinstance(data, (tuple, list)) and len(data) == 1:
            data = data[0]  # predict-style ([images, labels],)
        if not isinstance(data, (tuple, list)) or len(data) < 2:
            raise ValueError("A ConditionalVAE trains on (images, labels): call fit(images, "
                             "labels) or pass a Dataset of pairs, e.g. vk.make_dataset(images, "
                             "labels=labels).")
        return data[0], data[1]

    def images_of(self, inputs):
        return inputs[0]

    def _one_hot(self, labels):
        return ops.one_hot(ops.cast(labels, "int32"), self.num_classes, dtype="float32")

    def posterior(self, inputs, training=False):
        """``(z_mean, z_log_var)`` of ``q(z | x, y)`` for ``inputs = (images, labels)``."""
        images, labels = inputs
        # Keras refuses a call on a mix of arrays and tensors: make both tensors.
        images = ops.convert_to_tensor(images, dtype="float32")
        outputs = self.encoder([images, self._one_hot(labels)], training=training)
        return ops.cast(outputs[0], "float32"), ops.cast(outputs[1], "float32")

    def decoder_output(self, codes, inputs=None, training=False, decoder=None):
        """The decoder's output for ``codes`` under the labels of ``inputs``, as float32."""
        decoder = self.decoder if decoder is None else decoder
        output = decoder([codes, self._one_hot(inputs[1])], training=training)
        return ops.cast(output, "float32")

    # ------------------------------------------------------------------ Keras workflows

    def _pairs(self, x, y, what="images"):
        """Check ``(x, y)`` for fit/evaluate; return them with labels as int64."""
        if isinstance(x, tf.data.Dataset):
            spec = x.element_spec
            if not isinstance(spec, (tuple, list)) or len(spec) < 2:
                raise ValueError(
                    f"The labels are missing: this Dataset yields only {what}. A ConditionalVAE "
                    f"needs (images, labels) pairs: vk.make_dataset(images, labels=labels).")
            return x, y
        return x, _checks.check_labels(y, len(np.asarray(x)) if x is not None else None,
                                       self.num_classes)

    def fit(self, x=None, y=None, **kwargs):
        """Train on ``x`` images and ``y`` labels, or on ``x``, a Dataset of pairs.

        ``validation_data`` is ``(images, labels)``. Otherwise as
        :meth:`vae_keras.VAE.fit`.
        """
        self.check_images(x, what="training images (x)")
        x, y = self._pairs(x, y)
        validation_data = kwargs.get("validation_data")
        if validation_data is not None and not isinstance(validation_data, tf.data.Dataset):
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) < 2:
                raise ValueError("validation_data must be (images, labels) for a ConditionalVAE.")
            images, labels = validation_data[:2]
            self.check_images(images, what="validation images")
            kwargs["validation_data"] = (images, _checks.check_labels(
                labels, len(images), self.num_classes, what="validation labels"))
        elif validation_data is not None:
            self._pairs(validation_data, None, what="validation images")
        return super().fit(x, y, **kwargs)

    def evaluate(self, x=None, y=None, **kwargs):
        """The loss terms on ``x`` images with ``y`` labels (or a Dataset of pairs)."""
        self.check_images(x)
        x, y = self._pairs(x, y)
        return super().evaluate(x, y, **kwargs)

    def predict(self, x, **kwargs):
        """Reconstructions of ``x = [images, labels]`` (or ``(images, labels)``)."""
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise ValueError("predict takes [images, labels] for a ConditionalVAE, e.g. "
                             "model.predict([images, labels]).")
        images, labels = self._checked(x[0], x[1])
        return super().predict([images, labels], **kwargs)

    # ------------------------------------------------------------------ NumPy conveniences

    def _checked(self, images, labels):
        self.check_images(images)
        images = np.asarray(images, dtype=np.float32)
        return images, _checks.check_labels(labels, len(images), self.num_classes)

    def _labels_for(self, labels, count):
        """One label for all ``count`` items, or one each, as an int64 array.

        Raises:
            TypeError: a single label that is not an integer (``2.5``, ``True``, ``"7"``).
            ValueError: as :func:`vae_keras._checks.check_labels` (out of range...).
        """
        if labels is not None and np.ndim(labels) == 0:
            label = np.asarray(labels)
            if label.dtype == bool or not np.issubdtype(label.dtype, np.integer):
                raise TypeError(
                    f"labels must be one integer class index for all {count} (e.g. labels=7) "
                    f"or an int array with one label each; got {type(labels).__name__} "
                    f"{labels!r}.")
            labels = np.full(count, label.item())
        return _checks.check_labels(labels, count, self.num_classes)

    def encode(self, images, labels, batch_size=256):
        """The parameters of ``q(z | x, y)``: ``(z_mean, z_log_var)`` as NumPy."""
        images, labels = self._checked(images, labels)
        batch_size = _checks.check_whole_number("batch_size", batch_size)
        one_hot = np.eye(self.num_classes, dtype=np.float32)[labels]
        outputs = self.encoder.predict([images, one_hot], batch_size=batch_size, verbose=0)
        return np.asarray(outputs[0]), np.asarray(outputs[1])

    def encode_mean(self, images, labels, batch_size=256):
        """The posterior means of ``images`` given their ``labels``, ``(n, latent_dim)``."""
        return self.encode(images, labels, batch_size=batch_size)[0]

    def decode(self, codes, labels, batch_size=256):
        """Mean images of ``p(x | z, y)`` for ``codes`` under ``labels`` (one, or one per code)."""
        codes = self.check_codes(codes)
        labels = self._labels_for(labels, len(codes))
        batch_size = _checks.check_whole_number("batch_size", batch_size)
        one_hot = np.eye(self.num_classes, dtype=np.float32)[labels]
        output = self.decoder.predict([codes, one_hot], batch_size=batch_size, verbose=0)
        return ops.convert_to_numpy(self.mean_images(output))

    def reconstruct(self, images, labels, batch_size=256):
        """Encode images with their labels to the mean code and decode under the same labels."""
        codes = self.encode_mean(images, labels, batch_size=batch_size)
        return self.decode(codes, labels, batch_size=batch_size)

    def sample(self, num_samples, labels=None, seed=None, batch_size=256):
        """Draw images of chosen classes: codes from ``cvae.prior``, decoded under ``labels``.

        Args:
            num_samples: how many images, >= 1.
            labels: one class for all (``labels=7``) or one per image (length ``num_samples``).
            seed: optional int; without it NumPy's global generator is used.
            batch_size: how many codes to decode at once.

        Returns:
            Mean images, ``(num_samples,) + image_shape``.
        """
        num_samples = _checks.check_whole_number("num_samples", num_samples)
        labels = self._labels_for(labels, num_samples)
        codes = model_base.draw_prior_codes(self, None, num_samples, seed)
        return self.decode(codes, labels, batch_size=batch_size)

    def fit_prior_mixture(self, images, labels, num_components=50, covariance_type="full",
                          seed=None, batch_size=256):
        """Fit a Gaussian mixture to codes drawn from ``q(z | x, y)`` and make it the prior.

        As :meth:`vae_keras.VAE.fit_prior_mixture`, with the images' labels.

        Returns:
            The fitted :class:`~vae_keras.priors.GaussianMixture`, now ``self.prior``.
        """
        codes = model_base.posterior_codes(self.encode(images, labels, batch_size=batch_size),
                                           seed)
        return super().fit_prior_mixture(codes=codes, num_components=num_components,
                                         covariance_type=covariance_type, seed=seed)

    def elbo(self, images, labels, batch_size=500, per_image=False, seed=None):
        """The conditional ELBO, a lower bound on ``log p(x | y)``, in nats."""
        images, labels = self._checked(images, labels)
        values = evaluation.elbo_per_image(self, images, batch_size=batch_size, seed=seed,
                                           labels=labels)
        return values if per_image else float(np.mean(values))

    def nll(self, images, labels, num_samples=1000, batch_size=100, per_image=False, seed=None):
        """``-log p(x | y)`` estimated with the importance-weighted bound, in nats."""
        images, labels = self._checked(images, labels)
        log_likelihood = evaluation.importance_weighted_log_likelihood(
            self, images, num_samples=num_samples, batch_size=batch_size, seed=seed,
            labels=labels)
        return -log_likelihood if per_image else float(-np.mean(log_likelihood))

    def get_config(self):
        config = super().get_config()
        config["num_classes"] = self.num_classes
        return config
