"""The models: a plain ``Autoencoder`` and the variational autoencoder ``VAE``.

Both are ``keras.Model`` subclasses whose ``train_step`` (one per Keras backend:
``tf.GradientTape``, JAX's stateless step, PyTorch's ``backward()``) and ``test_step``
take the loss from ``compute_loss_terms``: the reconstruction term alone for the
autoencoder, the reconstruction term plus ``beta`` times the KL term for the VAE.
Losses are summed over pixels and latent dimensions and averaged over the batch,
so they read in nats per image, the unit of the likelihood literature.

This file is the teaching core, in reading order: the likelihood and the train
steps the two models share, the autoencoder, then the VAE (its forward pass, its
loss, and the importance-weighted bound). Argument checks, compile defaults,
``fit``'s plumbing and the evaluation's fast paths are in :mod:`vae_keras.model_base`.
"""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vae_keras import _checks, architectures, evaluation, losses, model_base, priors
from vae_keras.layers import Sampling, reparameterize
from vae_keras.settings import DEFAULT_OBSERVATION_SCALE, LEARNED_SCALES, LOGIT_LIKELIHOODS  # noqa: F401

# A learned sigma is kept above this floor: a pixel that the decoder reproduces exactly
# (MNIST's always-black border) would otherwise drive its sigma, and the likelihood, to infinity.
MIN_LEARNED_SCALE = 1e-3


class _ImageModel(model_base.ImageModel):
    """What the autoencoder and the VAE share: the likelihood, and the train and test steps.

    Subclasses define ``compute_loss_terms(inputs, training)``, returning a dict
    of per-batch scalars whose keys are ``metric_names`` (``"loss"`` first).
    ``inputs`` is what :meth:`unpack_batch` takes from a batch: the images here,
    ``(images, labels)`` for a model that also reads labels.

    The likelihood lives in two methods that everything else calls (training,
    evaluation, sampling, the applications): :meth:`log_likelihood` from decoder
    output to ``log p(x | z)``, and :meth:`mean_images` from decoder output to
    the mean image. (The evaluation's fast path to the same values,
    :meth:`~vae_keras.model_base.ImageModel.log_likelihood_of_samples`, is in the
    base class; a subclass that changes the likelihood overrides it too.)
    """

    metric_names = ("loss",)

    def log_observation_scale(self):
        """Log of the Gaussian likelihood's standard deviation (unused by Bernoulli)."""
        return 0.0

    def log_likelihood(self, images, decoder_output):
        """``log p(x | z)`` per image in nats, from the decoder's output for ``z``.

        The one place the likelihood is chosen: Bernoulli pixels from logits,
        Gaussian pixels around the decoder's means with this model's scale, or
        continuous Bernoulli grey levels from logits (notebook 08).

        Returns:
            A float32 tensor of shape ``(batch,)``.
        """
        return losses.reconstruction_log_likelihood(
            images, ops.cast(decoder_output, "float32"), self.likelihood,
            self.log_observation_scale())

    def mean_images(self, decoder_output):
        """The mean image of ``p(x | z)``: pixel probabilities (Bernoulli) or means (Gaussian).

        The continuous Bernoulli's mean is not ``sigmoid(logits)``: it is pulled
        towards 1/2 (:func:`vae_keras.losses.continuous_bernoulli_mean`).
        """
        decoder_output = ops.cast(decoder_output, "float32")
        if self.likelihood == "bernoulli":
            return ops.sigmoid(decoder_output)
        if self.likelihood == "continuous_bernoulli":
            return losses.continuous_bernoulli_mean(decoder_output)
        return decoder_output

    def compute_loss_terms(self, inputs, training=False):
        raise NotImplementedError

    # ------------------------------------------------------------------ the train steps
    # One short step per Keras backend, each taking the gradient of the same
    # compute_loss_terms()["loss"]: the lesson is that loss, not the plumbing.

    def train_step(self, *args):
        """One optimizer step on a batch; returns the running means of the loss terms.

        Keras calls ``train_step(data)`` on TensorFlow and PyTorch and the stateless
        ``train_step(state, data)`` on JAX; each backend's step is below.
        """
        backend = keras.backend.backend()
        if backend == "jax":
            return self._jax_train_step(*args)
        if backend == "torch":
            return self._torch_train_step(*args)
        return self._tensorflow_train_step(*args)

    def _tensorflow_train_step(self, data):
        inputs = self.unpack_batch(data)
        with tf.GradientTape() as tape:
            terms = self.compute_loss_terms(inputs, training=True)
            loss = self._tensorflow_loss_to_differentiate(terms["loss"])
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._update_trackers(terms)

    def _tensorflow_loss_to_differentiate(self, loss):
        """The batch loss as TensorFlow's step differentiates it, for several devices.

        Under ``tf.distribute`` each replica sees 1/N of the global batch and the
        gradients are summed across replicas: dividing by N makes the sum the mean.
        Under mixed precision the optimizer scales the loss up (and its gradients back
        down) so that float16 gradients do not underflow. With one device and float32
        this returns ``loss`` unchanged. Kept apart from the step so that the step reads
        as the lesson it is: loss, gradient, update.
        """
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return self.optimizer.scale_loss(loss / replicas)

    def _torch_train_step(self, data):
        import torch

        inputs = self.unpack_batch(data)
        self.zero_grad()
        terms = self.compute_loss_terms(inputs, training=True)
        terms["loss"].backward()
        gradients = [variable.value.grad for variable in self.trainable_weights]
        with torch.no_grad():
            self.optimizer.apply(gradients, self.trainable_weights)
        return self._update_trackers(terms)

    def _jax_train_step(self, state, data):
        import jax

        trainable, non_trainable, optimizer_variables, metrics_variables = state
        inputs = self.unpack_batch(data)

        def loss_and_terms(trainable, non_trainable):
            # JAX is stateless: the step gets every variable's value as an argument and
            # must return the ones it changed, the Sampling layer's seed state included
            # (kept, every step would draw the same noise).
            terms, non_trainable = self._stateless_loss_terms(trainable, non_trainable, inputs,
                                                              training=True)
            return terms["loss"], (terms, non_trainable)

        (_, (terms, non_trainable)), gradients = jax.value_and_grad(
            loss_and_terms, has_aux=True)(trainable, non_trainable)
        trainable, optimizer_variables = self.optimizer.stateless_apply(
            optimizer_variables, gradients, trainable)
        logs, metrics_variables = self._stateless_update_trackers(metrics_variables, terms)
        return logs, (trainable, non_trainable, optimizer_variables, metrics_variables)

    def test_step(self, *args):
        """The loss terms on a batch without training (used by evaluate and validation)."""
        if keras.backend.backend() == "jax":
            trainable, non_trainable, metrics_variables = args[0]
            terms, non_trainable = self._stateless_loss_terms(
                trainable, non_trainable, self.unpack_batch(args[1]), training=False)
            logs, metrics_variables = self._stateless_update_trackers(metrics_variables, terms)
            return logs, (trainable, non_trainable, metrics_variables)
        terms = self.compute_loss_terms(self.unpack_batch(args[0]), training=False)
        return self._update_trackers(terms)
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
        encoder, decoder, image_shape, code_shape = model_base.encoder_and_decoder(
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
        model_base.check_decoder(decoder, self.latent_dim, self.image_shape, "bernoulli")
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



@keras.saving.register_keras_serializable(package="vae_keras")
class VAE(_ImageModel):
    """A variational autoencoder (Kingma & Welling, 2014) with a Gaussian posterior.

    The encoder maps an image ``x`` to the mean and log-variance of
    ``q(z | x) = N(z_mean, diag(exp(z_log_var)))``; the :class:`~vae_keras.layers.Sampling`
    layer draws ``z`` with the reparameterization trick; the decoder maps ``z`` to
    the parameters of ``p(x | z)``: per-pixel logits (Bernoulli) or means
    (Gaussian with standard deviation ``observation_scale``, fixed or learned).
    Training minimizes ``reconstruction_loss + beta * kl_loss``, the negative ELBO
    when ``beta == 1``. The prior ``p(z)`` is part of the model (``vae.prior``, saved
    with it): ``N(0, I)`` by default, or one of :mod:`vae_keras.priors` (a Gaussian
    mixture fitted after training, or a VampPrior trained with the model).

    Two ways to build it::

        vae = VAE(latent_dim=2)                    # default dense architecture
        vae = VAE(latent_dim=16, architecture="conv")
        vae = VAE(encoder, decoder)                # your own keras.Models

    Your encoder returns ``[z_mean, z_log_var]`` (a third output, such as the
    ``z`` of the Keras example's encoder, is ignored) and your decoder returns
    logits for the Bernoulli likelihoods or means for the Gaussian one.

    Args:
        encoder: optional ``keras.Model`` from images to ``[z_mean, z_log_var]``.
        decoder: optional ``keras.Model`` from codes to per-pixel outputs.
        latent_dim: code size when building the default architecture.
        architecture: ``"dense"`` or ``"conv"`` for the default architecture.
        likelihood: ``"bernoulli"`` (pixels in [0, 1]), ``"gaussian"``, or
            ``"continuous_bernoulli"`` (grey levels in [0, 1]; the cross-entropy
            plus its normalizer, a true density: notebook 08).
        beta: weight of the KL term (1 is the ELBO; see ``vae_keras.callbacks``).
        observation_scale: the Gaussian likelihood's standard deviation sigma: a
            number (fixed), ``"learned"`` (one shared sigma trained with the
            model) or ``"learned_per_pixel"`` (one per pixel). A learned sigma
            starts at 0.1 and stays above ``MIN_LEARNED_SCALE``. With
            ``likelihood="bernoulli"`` it must stay at its default. Notebook 07
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
        prior: the prior ``p(z)``: None for :class:`~vae_keras.priors.StandardNormal`
            (KL in closed form), a fitted :class:`~vae_keras.priors.GaussianMixture`, or a
            :class:`~vae_keras.priors.VampPrior` (its pseudo-inputs train with the model).
            Any other prior's KL term is the one-sample estimate at the drawn code.
        **kwargs: passed to ``keras.Model`` (``name``...).
    """

    metric_names = ("loss", "reconstruction_loss", "kl_loss")

    def __init__(self, encoder=None, decoder=None, *, latent_dim=None, architecture="dense",
                 likelihood="bernoulli", beta=1.0, observation_scale=DEFAULT_OBSERVATION_SCALE,
                 seed=None, importance_samples=1, image_shape=architectures.DEFAULT_IMAGE_SHAPE,
                 hidden_units=None, filters=None, prior=None, **kwargs):
        likelihood = _checks.check_choice("likelihood", likelihood, _checks.LIKELIHOODS)
        beta = _checks.check_positive("beta", beta, allow_zero=True)
        importance_samples = _checks.check_whole_number("importance_samples", importance_samples)
        if isinstance(observation_scale, str):
            observation_scale = _checks.check_choice("observation_scale", observation_scale,
                                                     LEARNED_SCALES)
        else:
            observation_scale = _checks.check_positive("observation_scale", observation_scale)
        if likelihood != "gaussian" and observation_scale != DEFAULT_OBSERVATION_SCALE:
            # Bernoulli pixels have no scale: a fixed one is ignored, a learned one never trains.
            raise ValueError(
                f"observation_scale={observation_scale!r} applies to the Gaussian likelihood "
                f"only (likelihood='gaussian'); the {likelihood} likelihood has no scale. Pass "
                f"likelihood='gaussian' to use it, or leave observation_scale out.")
        encoder, decoder, image_shape, encoder_shapes = model_base.encoder_and_decoder(
            "VAE", encoder, decoder, latent_dim, architecture, image_shape,
            dict(hidden_units=hidden_units, filters=filters), variational=True,
            output_activation=None if likelihood in LOGIT_LIKELIHOODS else "sigmoid")
        model_base.check_posterior_shapes(encoder_shapes)
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
            start = keras.initializers.Constant(math.log(DEFAULT_OBSERVATION_SCALE))
            self._log_scale = self.add_weight(shape=shape, initializer=start, trainable=True,
                                              dtype="float32", name="log_observation_scale")
        # float32 whatever the policy: the noise and the code feed the float32 losses.
        self.sampling = Sampling(seed=seed, name="sampling", dtype="float32")
        # A variable, not a float: callbacks change it between batches without retracing.
        self._beta = keras.Variable(beta, dtype="float32", trainable=False, name="beta")
        self._initial_beta = beta
        self.set_prior(priors.StandardNormal() if prior is None else prior)
        self.built = True

    def set_prior(self, prior):
        """Make ``prior`` this model's ``p(z)``: training, evaluation and sampling use it.

        Raises:
            TypeError: something that is not a :mod:`vae_keras.priors` prior.
            ValueError: a prior for other codes or images, or an unfitted mixture.
        """
        model_base.set_prior(self, prior)

    def _check_decoder(self):
        model_base.check_decoder(self.decoder, self.latent_dim, self.image_shape, self.likelihood)

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
        passes its own standard-normal ``noise`` for repeatable draws. The KL is the
        prior's (:meth:`vae_keras.priors.Prior.kl`): closed-form for ``N(0, I)``,
        else ``log q(z | x) - log p(z)`` at the same ``z``.
        """
        z_mean, z_log_var = self.posterior(inputs, training)
        if noise is None:
            z = self.sampling([z_mean, z_log_var])
        else:
            z = reparameterize(z_mean, z_log_var, noise)
        output = self.decoder_output(z, inputs, training)
        return (self.log_likelihood(self.images_of(inputs), output),
                self.prior.kl(z_mean, z_log_var, z))

    def compute_loss_terms(self, inputs, training=False):
        """The loss and its two terms for a batch, each averaged over the batch.

        ``reconstruction_loss = -mean log p(x | z)`` with ``z ~ q(z | x)`` drawn by
        the Sampling layer, ``kl_loss = mean KL(q(z | x) || p(z))`` (in closed form,
        :func:`vae_keras.losses.gaussian_kl`, for the standard normal prior; the
        one-sample estimate ``log q(z|x) - log p(z)`` for a mixture or a VampPrior),
        and ``loss = reconstruction_loss + beta * kl_loss``. ``train_step`` takes the
        gradient of ``loss``, which reaches a VampPrior's pseudo-inputs through ``log p(z)``.

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

    # ------------------------------------------------------------------ the importance-weighted bound
    # Training with importance_samples > 1, and the evaluation's log weights.

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
        The third value is ``KL(q(z | x) || p(z))`` per example, for monitoring: the
        closed form for ``N(0, I)``, else the mean of ``log q - log p`` over the K codes.
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
        log_prior = self.prior.log_prob(z) if prior_log_prob is None else prior_log_prob(z)
        log_prior_ratio = (log_prior
                           - losses.diagonal_gaussian_log_prob(z, z_mean[None], z_log_var[None]))
        kl = (losses.gaussian_kl(z_mean, z_log_var) if self.prior.has_closed_form_kl
              else -ops.mean(log_prior_ratio, axis=0))
        return log_p_x_given_z, log_prior_ratio, kl

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
        """Generate images by decoding codes drawn from the model's prior (``vae.prior``).

        Args:
            num_samples: how many images, >= 1.
            seed: optional int; without it NumPy's global generator is used, which
                ``keras.utils.set_random_seed`` seeds.
            batch_size: how many codes to decode at once.
            prior: optional code distribution instead of the model's prior: another
                :mod:`vae_keras.priors` prior, a callable ``prior(num_samples, rng)``
                returning codes ``(num_samples, latent_dim)``, or an object with
                ``sample(num_samples)`` such as a scikit-learn ``GaussianMixture``
                (see :func:`vae_keras.aggregate.draw_codes`).

        Returns:
            Mean images (pixel probabilities for Bernoulli), ``(num_samples,) + image_shape``.
        """
        codes = model_base.draw_prior_codes(self, prior, num_samples, seed)
        return self.decode(codes, batch_size=batch_size)

    def fit_prior_mixture(self, images=None, num_components=50, codes=None,
                          covariance_type="full", seed=None, batch_size=256):
        """Fit a Gaussian mixture to this model's codes and make it the prior; return it.

        The ex-post prior (Ghosh et al. 2020; notebook 11): after training, EM
        (scikit-learn) fits ``num_components`` Gaussians to one code drawn from
        each image's posterior, which spreads like the aggregate posterior
        ``q(z)``. Sampling, the ELBO and the likelihood bound then use it, and
        ``model.save`` keeps it.

        Args:
            images: the training images (or ``codes`` instead: ``(n, latent_dim)``).
            num_components: Gaussians in the mixture, >= 1 and at most the number of codes.
            codes: optional codes to fit instead of encoding ``images``.
            covariance_type: scikit-learn's: ``"full"``, ``"diag"``, ``"tied"``, ``"spherical"``.
            seed: optional int for the drawn codes and EM's initialization.
            batch_size: images encoded at once.

        Returns:
            The fitted :class:`~vae_keras.priors.GaussianMixture`, now ``self.prior``.
        """
        if codes is None:
            if images is None:
                raise ValueError("Give the training images (vae.fit_prior_mixture(x_train)) "
                                 "or codes= (n, latent_dim) to fit the mixture to.")
            codes = model_base.posterior_codes(self.encode(images, batch_size=batch_size), seed)
        mixture = priors.GaussianMixture.fit(codes, num_components, covariance_type, seed)
        self.set_prior(mixture)
        return mixture

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
        per image with ``per_image=True``. The prior is the model's; ``prior`` (a
        :mod:`vae_keras.priors` mixture, or a fitted scikit-learn one) replaces it. See
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
            prior=keras.saving.serialize_keras_object(self.prior),
        )
        return config
