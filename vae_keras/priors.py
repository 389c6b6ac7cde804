"""The prior ``p(z)`` of a VAE, as a part of the model that trains, samples and saves with it.

Three priors share one interface, each a Keras layer registered for saving:

- ``log_prob(z)``: ``log p(z)`` in nats, summed over the latent dimensions, for codes of
  shape ``(..., latent_dim)``; written in ``keras.ops``, so it runs (and differentiates)
  on every backend, inside the train steps and the compiled evaluation;
- ``sample(num_samples, seed=None)``: codes ``(num_samples, latent_dim)`` as NumPy,
  what ``vae.sample(n)`` decodes;
- ``kl(z_mean, z_log_var, z)``: the KL term of the ELBO for one image, given the code
  ``z`` drawn from its posterior: ``log q(z | x) - log p(z)`` at that ``z`` (a one-sample
  Monte Carlo estimate, as in Tomczak & Welling's code), or the closed form where there
  is one.

The priors:

- :class:`StandardNormal`: ``N(0, I)``, the default, with the closed-form KL
  (:func:`vae_keras.losses.gaussian_kl`); it has no weights.
- :class:`GaussianMixture`: an *ex-post* prior (Ghosh et al. 2020, notebook 11): fitted
  after training by scikit-learn's EM to codes drawn from the training images'
  posteriors (``vae.fit_prior_mixture(x_train, num_components=50)``), stored as
  non-trainable weights (means, Cholesky factors of the precisions, log weights), so
  ``model.save`` keeps it.
- :class:`VampPrior`: the "variational mixture of posteriors" prior (Tomczak & Welling
  2018), ``p(z) = (1/K) sum_k q(z | u_k)``, the mean of the encoder's posteriors at K
  learned pseudo-inputs ``u_k``: trainable weights of the images' shape, trained with
  the model by every backend's train step.
- :class:`HierarchicalPrior`: a second stochastic layer (Burda et al. 2015's two-layer
  model, Tomczak & Welling's HVAE): ``p(z) = integral p(z | u) N(u; 0, I) du`` with a top
  code ``u``, a network for ``p(z | u)`` and its own encoder ``q(u | z)``, trained with the
  model. Its ``log_prob`` is an estimate (one draw of ``u`` per call), not an exact value.

A VAE holds one as ``vae.prior`` (``VAE(prior=...)``); the model checks that it fits
its codes and images when it is given (:meth:`Prior.bind`).
"""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import math
import numbers
import weakref

import keras
import numpy as np
from keras import ops

from vae_keras import _checks, losses
from vae_keras.layers import SeedStateMixin

LOG_2PI = math.log(2.0 * math.pi)


def _generator(seed):
    """A NumPy generator: seeded by ``seed``, or by a draw from NumPy's global generator.

    ``keras.utils.set_random_seed`` seeds the global one, so unseeded samples repeat too.
    """
    seed = _checks.check_seed(seed)
    return np.random.default_rng(np.random.randint(0, 2**31 - 1) if seed is None else seed)


def _check_components(num_components):
    """K >= 1 as an int: TypeError for 2.5 or "50", ValueError for 0 or -3, naming the fix."""
    if isinstance(num_components, bool) or not isinstance(num_components, numbers.Integral):
        raise TypeError(f"num_components must be a whole number >= 1 (e.g. 50), got "
                        f"{type(num_components).__name__} {num_components!r}.")
    if num_components < 1:
        raise ValueError(f"num_components must be >= 1 (a mixture needs at least one "
                         f"component), got {num_components}; try 10 to 500.")
    return int(num_components)


class Prior(keras.layers.Layer):
    """What every prior shares: its code size, the one-sample KL, and the model check.

    A subclass defines :meth:`log_prob` and :meth:`sample`. The KL term defaults to
    the one-sample Monte Carlo estimate ``log q(z | x) - log p(z)`` at the code ``z``
    that training drew; :class:`StandardNormal` overrides it with the closed form.

    Args:
        latent_dim: the code size, or None to take the model's when it is bound.
        **kwargs: passed to ``keras.layers.Layer`` (``name``...).
    """

    has_closed_form_kl = False  # True where kl() ignores z (the standard normal)

    def __init__(self, latent_dim=None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # log-densities stay float32 under mixed precision
        super().__init__(**kwargs)
        self.latent_dim = None if latent_dim is None else _checks.check_latent_dim(latent_dim)
        self.built = True  # the weights, if any, exist once the sizes are known

    def bind(self, model):
        """Check that this prior fits ``model``'s codes (and images); take its sizes if unset.

        Called by the VAE when the prior is given to it (``VAE(prior=...)`` or
        ``vae.set_prior(...)``).

        Raises:
            ValueError: a prior for codes of another size than ``model.latent_dim``.
        """
        if self.latent_dim is None:
            self.latent_dim = int(model.latent_dim)
        elif self.latent_dim != model.latent_dim:
            raise ValueError(
                f"This {type(self).__name__} prior is for codes of size {self.latent_dim}, but "
                f"the model's codes have size {model.latent_dim}. Fit or build the prior for "
                f"this model (e.g. vae.fit_prior_mixture(x_train) for a mixture).")

    def log_prob(self, z):
        """``log p(z)`` summed over the last axis, in nats: shape ``z.shape[:-1]``."""
        raise NotImplementedError

    def sample(self, num_samples, seed=None):
        """``num_samples`` codes from ``p(z)``, float32 NumPy ``(num_samples, latent_dim)``."""
        raise NotImplementedError

    def kl(self, z_mean, z_log_var, z):
        """The ELBO's KL term per example: ``log q(z | x) - log p(z)`` at the drawn ``z``.

        An unbiased one-sample estimate of ``KL(q(z | x) || p(z))`` (Tomczak &
        Welling 2018 train the VampPrior with it). ``z`` has the shape of ``z_mean``.
        """
        return losses.diagonal_gaussian_log_prob(z, z_mean, z_log_var) - self.log_prob(z)

    def monte_carlo_kl(self, z_mean, z_log_var, num_samples=100, seed=None):
        """``KL(q(z | x) || p(z))`` per example, averaged over ``num_samples`` codes per posterior.

        The estimate :meth:`kl` makes with one code, made with many: for the standard
        normal it converges to the closed form (tested), for the other priors it is
        the rate that has no closed form (:func:`vae_keras.applications.compression_bits`).

        Args:
            z_mean: posterior means ``(n, latent_dim)``.
            z_log_var: their log-variances, same shape.
            num_samples: codes drawn per posterior, >= 1.
            seed: optional int for the draws.

        Returns:
            float64 NumPy array ``(n,)`` in nats.
        """
        z_mean, z_log_var = _checks.as_posteriors(z_mean, z_log_var)
        num_samples = _checks.check_whole_number("num_samples", num_samples)
        noise = _generator(seed).standard_normal((num_samples,) + z_mean.shape)
        codes = (z_mean[None] + np.exp(0.5 * z_log_var)[None] * noise).astype(np.float32)
        log_q = losses.diagonal_gaussian_log_prob(codes, z_mean[None].astype(np.float32),
                                                  z_log_var[None].astype(np.float32))
        estimates = ops.convert_to_numpy(log_q - self.log_prob(codes))
        return np.asarray(estimates, dtype=np.float64).mean(axis=0)

    def check_ready(self, what="use"):
        """Raise a ValueError if the prior cannot be used yet (an unfitted mixture)."""

    def _check_count(self, num_samples):
        self.check_ready("sample from")
        return _checks.check_whole_number("num_samples", num_samples)

    def get_config(self):
        config = super().get_config()
        config["latent_dim"] = self.latent_dim
        return config


@keras.saving.register_keras_serializable(package="vae_keras")
class StandardNormal(Prior):
    """The standard normal prior ``p(z) = N(0, I)``, every VAE's default.

    Its KL term is the closed form :func:`vae_keras.losses.gaussian_kl`, as in
    Kingma & Welling (2014); it has no weights.

    Args:
        latent_dim: the code size, or None to take the model's.
    """

    has_closed_form_kl = True

    def log_prob(self, z):
        """``log N(z; 0, I)`` summed over the last axis (``losses.standard_normal_log_prob``)."""
        return losses.standard_normal_log_prob(z)

    def sample(self, num_samples, seed=None):
        """Standard-normal codes; without a seed from NumPy's global generator.

        ``keras.utils.set_random_seed`` seeds that generator, so ``vae.sample(16)``
        repeats after it, as before priors were part of the model.
        """
        num_samples = self._check_count(num_samples)
        seed = _checks.check_seed(seed)
        shape = (num_samples, self.latent_dim)
        codes = (np.random.standard_normal(shape) if seed is None
                 else np.random.default_rng(seed).standard_normal(shape))
        return codes.astype(np.float32)

    def kl(self, z_mean, z_log_var, z=None):
        """The closed-form ``KL(q(z | x) || N(0, I))``; ``z`` is not needed."""
        return losses.gaussian_kl(z_mean, z_log_var)


@keras.saving.register_keras_serializable(package="vae_keras")
class GaussianMixture(Prior):
    """A Gaussian mixture over the codes, fitted after training: the ex-post prior.

    ``g(z) = sum_c w_c N(z; mean_c, Sigma_c)`` with full covariances, stored as
    scikit-learn stores them: means ``(C, d)``, lower-triangular Cholesky factors
    ``P_c`` of the precisions (``Sigma_c^-1 = P_c P_c^T``, ``(C, d, d)``) and log
    weights ``(C,)``. They are non-trainable weights of the layer, so a model
    saved with the mixture loads with it. Make one with
    ``vae.fit_prior_mixture(x_train, num_components=50)`` (EM on one code drawn from
    each training image's posterior), :meth:`fit` on codes, or :meth:`from_sklearn`
    from a fitted ``sklearn.mixture.GaussianMixture`` of any covariance type.

    An unfitted mixture (``GaussianMixture(50)``) only names its size: sampling
    from it or using it as a model's prior raises a ValueError that says how to fit it.

    Args:
        num_components: C, the Gaussians in the mixture, >= 1.
        latent_dim: the code size; required for a fitted mixture.
        fitted: whether the weights hold a fitted mixture (set by :meth:`fit`,
            :meth:`from_sklearn` and loading).
        **kwargs: passed to ``keras.layers.Layer``.

    Raises:
        TypeError, ValueError: a ``num_components`` that is not a whole number >= 1.
    """

    def __init__(self, num_components=10, latent_dim=None, fitted=False, **kwargs):
        super().__init__(latent_dim=latent_dim, **kwargs)
        self.num_components = _check_components(num_components)
        self.fitted = bool(fitted)
        if self.fitted:
            if self.latent_dim is None:
                raise ValueError("A fitted GaussianMixture needs its latent_dim.")
            self._make_weights()

    def _make_weights(self):
        count, dims = self.num_components, self.latent_dim
        self.means = self.add_weight(shape=(count, dims), initializer="zeros", trainable=False,
                                     dtype="float32", name="means")
        self.precision_cholesky = self.add_weight(
            shape=(count, dims, dims), initializer="zeros", trainable=False, dtype="float32",
            name="precision_cholesky")
        self.log_weights = self.add_weight(shape=(count,), initializer="zeros", trainable=False,
                                           dtype="float32", name="log_weights")

    @classmethod
    def from_parameters(cls, means, precision_cholesky, log_weights, **kwargs):
        """A fitted mixture from its arrays (:func:`vae_keras.aggregate.mixture_parameters`)."""
        means = np.asarray(means, dtype=np.float32)
        if means.ndim != 2:
            raise ValueError(f"means must have shape (num_components, latent_dim), got "
                             f"{means.shape}.")
        mixture = cls(num_components=means.shape[0], latent_dim=means.shape[1], fitted=True,
                      **kwargs)
        mixture.means.assign(means)
        mixture.precision_cholesky.assign(np.asarray(precision_cholesky, dtype=np.float32))
        mixture.log_weights.assign(np.asarray(log_weights, dtype=np.float32))
        return mixture

    @classmethod
    def from_sklearn(cls, mixture, latent_dim=None, **kwargs):
        """The prior of a fitted ``sklearn.mixture.GaussianMixture`` (any covariance type).

        Args:
            mixture: e.g. from :func:`vae_keras.aggregate.fit_code_mixture`.
            latent_dim: optional; the model's code size, which the mixture must match.

        Raises:
            TypeError: anything but a fitted scikit-learn ``GaussianMixture``.
            ValueError: a mixture over codes of another size than ``latent_dim``.
        """
        from vae_keras import aggregate

        return cls.from_parameters(*aggregate.mixture_parameters(mixture, latent_dim), **kwargs)

    @classmethod
    def fit(cls, codes, num_components=10, covariance_type="full", seed=None, **kwargs):
        """Fit a mixture to codes ``(n, latent_dim)`` by EM (scikit-learn) and return it as a prior.

        For a prior to bound the likelihood with, fit it to one code drawn from
        each training image's posterior (:func:`vae_keras.aggregate.draw_posterior_codes`),
        which spreads like the aggregate posterior ``q(z)`` (notebook 11).

        Raises:
            TypeError, ValueError: as :func:`vae_keras.aggregate.fit_code_mixture`
                (fewer codes than components, ``num_components < 1``...).
        """
        from vae_keras import aggregate

        _check_components(num_components)
        return cls.from_sklearn(aggregate.fit_code_mixture(codes, num_components,
                                                           covariance_type, seed), **kwargs)

    def check_ready(self, what="use"):
        """Raise a ValueError, with the fix, if the mixture has not been fitted."""
        if not self.fitted:
            raise ValueError(
                f"Cannot {what} this GaussianMixture prior: it has not been fitted. Train the "
                f"model first (with the standard normal prior), then fit the mixture to its "
                f"codes: vae.fit_prior_mixture(x_train, num_components={self.num_components}) "
                f"(or GaussianMixture.fit(codes) / GaussianMixture.from_sklearn(mixture)).")

    def mixture_parameters(self):
        """``(means, precision_cholesky, log_weights)`` as float32 NumPy arrays.

        (Not ``parameters``: on PyTorch a layer is a ``torch.nn.Module``, which has one.)
        """
        self.check_ready("read")
        return tuple(np.asarray(ops.convert_to_numpy(v), dtype=np.float32)
                     for v in (self.means, self.precision_cholesky, self.log_weights))

    def log_prob(self, z):
        """``log g(z)`` (:func:`vae_keras.losses.gaussian_mixture_log_prob`)."""
        self.check_ready("compute log p(z) with")
        return losses.gaussian_mixture_log_prob(z, self.means, self.precision_cholesky,
                                                self.log_weights)

    def sample(self, num_samples, seed=None):
        """Codes drawn from the mixture: a component by its weight, then its Gaussian.

        ``z = mean_c + P_c^-T epsilon`` has covariance ``(P_c P_c^T)^-1 = Sigma_c``.
        Without a seed NumPy's global generator is used.
        """
        num_samples = self._check_count(num_samples)
        seed = _checks.check_seed(seed)
        rng = _generator(seed)
        means, factors, log_weights = (a.astype(np.float64) for a in self.mixture_parameters())
        weights = np.exp(log_weights - log_weights.max())
        chosen = rng.choice(self.num_components, size=num_samples, p=weights / weights.sum())
        noise = rng.standard_normal((num_samples, self.latent_dim))
        codes = np.empty((num_samples, self.latent_dim))
        for component in np.unique(chosen):
            rows = chosen == component
            # Solve P^T x = epsilon for every code of this component at once.
            codes[rows] = means[component] + np.linalg.solve(factors[component].T,
                                                             noise[rows].T).T
        return codes.astype(np.float32)

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components, fitted=self.fitted)
        return config


@keras.saving.register_keras_serializable(package="vae_keras")
class VampPrior(Prior):
    """The VampPrior (Tomczak & Welling 2018): the mean of the posteriors at K pseudo-inputs.

    ``p(z) = (1/K) sum_k q(z | u_k)``, where ``q`` is the model's own encoder and
    the pseudo-inputs ``u_k`` are trainable weights of the images' shape, kept in
    [0, 1] by a clip (their code's hard-tanh). They train with the model: the
    KL term is the one-sample estimate ``log q(z | x) - log p(z)`` at the drawn ``z``
    (no closed form exists), and its gradient reaches the pseudo-inputs through
    ``log p(z)``. Each training step encodes the K pseudo-inputs once more, the
    price of this prior.

    Args:
        num_components: K, the pseudo-inputs, >= 1 (Tomczak & Welling use 500 on MNIST).
        image_shape: the shape of one image; taken from the model if None.
        initial_images: optional array ``(K,) + image_shape`` in [0, 1] to start the
            pseudo-inputs from (e.g. K random training images). Without it they start as
            uniform noise in [0, 1], seeded by ``seed``.
        seed: optional int for the starting noise.
        latent_dim: the code size; taken from the model if None.
        **kwargs: passed to ``keras.layers.Layer``.

    Raises:
        TypeError, ValueError: ``num_components`` not a whole number >= 1, or
            ``initial_images`` that are not ``num_components`` images in [0, 1].
    """

    def __init__(self, num_components=500, image_shape=None, initial_images=None, seed=None,
                 latent_dim=None, **kwargs):
        super().__init__(latent_dim=latent_dim, **kwargs)
        self.num_components = _check_components(num_components)
        self.seed = _checks.check_seed(seed)
        self._initial_images = None
        if initial_images is not None:
            initial = np.asarray(initial_images, dtype=np.float32)
            if initial.ndim < 2 or len(initial) != self.num_components:
                raise ValueError(
                    f"initial_images must hold num_components={self.num_components} images, "
                    f"shape ({self.num_components},) + image_shape; got {initial.shape}.")
            if not np.all(np.isfinite(initial)) or initial.min() < 0 or initial.max() > 1:
                raise ValueError("initial_images must have pixel values in [0, 1]; scale "
                                 "0-255 images by 1/255.")
            self._initial_images = initial
            image_shape = initial.shape[1:] if image_shape is None else image_shape
            if tuple(image_shape) != initial.shape[1:]:
                raise ValueError(f"initial_images have image shape {initial.shape[1:]}, but "
                                 f"image_shape={tuple(image_shape)}.")
        self.image_shape = None if image_shape is None else tuple(int(d) for d in image_shape)
        self._model = None  # a weak reference to the model whose encoder is q
        if self.image_shape is not None:
            self._make_weights()

    def _make_weights(self):
        self.pseudo_inputs_variable = self.add_weight(
            shape=(self.num_components,) + self.image_shape,
            initializer=keras.initializers.RandomUniform(0.0, 1.0, seed=self.seed),
            trainable=True, dtype="float32", name="pseudo_inputs")
        if self._initial_images is not None:
            if self._initial_images.shape[1:] != self.image_shape:
                raise ValueError(
                    f"initial_images have image shape {self._initial_images.shape[1:]}, but the "
                    f"pseudo-inputs need {self.image_shape} (the model's images).")
            self.pseudo_inputs_variable.assign(self._initial_images)
            self._initial_images = None  # in the variable now; not kept twice

    def bind(self, model):
        """Check the code size and the pseudo-inputs' shape against ``model``, and use its encoder.

        Raises:
            ValueError: codes of another size, pseudo-inputs of another shape than the
                model's images, or a model whose encoder also reads labels.
        """
        super().bind(model)
        if getattr(model, "num_classes", None) is not None:
            raise ValueError(
                "A VampPrior's pseudo-inputs are images without labels, but a ConditionalVAE's "
                "encoder q(z | x, y) also reads a label. Use the standard normal prior or a "
                "GaussianMixture (cvae.fit_prior_mixture(images, labels)) with a ConditionalVAE.")
        if self.image_shape is None:
            self.image_shape = tuple(model.image_shape)
            self._make_weights()
        elif tuple(self.image_shape) != tuple(model.image_shape):
            raise ValueError(
                f"The VampPrior's pseudo-inputs have image shape {self.image_shape}, but the "
                f"model's images have shape {tuple(model.image_shape)}. Build it with "
                f"image_shape={tuple(model.image_shape)} (or leave image_shape out: it is taken "
                f"from the model).")
        self._model = weakref.ref(model)  # weak: the model holds the prior, not the reverse

    @property
    def pseudo_inputs(self):
        """The K pseudo-inputs ``u_k``, clipped to [0, 1]: a tensor ``(K,) + image_shape``."""
        return ops.clip(self.pseudo_inputs_variable, 0.0, 1.0)

    def components(self):
        """``(z_mean, z_log_var)`` of ``q(z | u_k)`` for the K pseudo-inputs, each ``(K, d)``."""
        model = self._model() if self._model is not None else None
        if model is None:
            raise ValueError("This VampPrior is not part of a model yet: give it to one, "
                             "VAE(..., prior=VampPrior(500)); its components are the model's "
                             "posteriors at the pseudo-inputs.")
        return model.posterior(self.pseudo_inputs)

    def log_prob(self, z):
        """``log (1/K) sum_k N(z; mean_k, diag(var_k))`` over the pseudo-inputs' posteriors.

        The squared distances are expanded as matrix products
        (``sum_d (z - m)^2 / v = z^2 . (1/v) - 2 z . (m/v) + m^2 . (1/v)``), so memory
        grows as codes x K, not codes x K x latent_dim.
        """
        z_mean, z_log_var = self.components()
        z = ops.convert_to_tensor(z, dtype="float32")
        codes = ops.reshape(z, (-1, self.latent_dim))
        precision = ops.exp(-z_log_var)  # (K, d)
        constant = -0.5 * (ops.sum(ops.square(z_mean) * precision + z_log_var, axis=-1)
                           + self.latent_dim * LOG_2PI)  # (K,)
        log_components = constant[None, :] - 0.5 * (
            ops.matmul(ops.square(codes), ops.transpose(precision))
            - 2.0 * ops.matmul(codes, ops.transpose(z_mean * precision)))
        log_density = ops.logsumexp(log_components, axis=-1) - math.log(self.num_components)
        return ops.reshape(log_density, ops.shape(z)[:-1])

    def sample(self, num_samples, seed=None):
        """Codes drawn from the prior: a pseudo-input at random, then its posterior."""
        num_samples = self._check_count(num_samples)
        seed = _checks.check_seed(seed)
        rng = _generator(seed)
        z_mean, z_log_var = (np.asarray(ops.convert_to_numpy(x), dtype=np.float64)
                             for x in self.components())
        chosen = rng.integers(0, self.num_components, num_samples)
        noise = rng.standard_normal((num_samples, self.latent_dim))
        return (z_mean[chosen] + np.exp(0.5 * z_log_var[chosen]) * noise).astype(np.float32)

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components, image_shape=self.image_shape,
                      seed=self.seed)
        return config


# Log-variances of the hierarchical prior's Gaussians are clipped to this range: a variance
# of e^-8 is already far tighter than any posterior of a trained model, and the clip keeps an
# early, wild step from making log p(z) overflow.
HIERARCHICAL_LOG_VAR_RANGE = (-8.0, 4.0)


@keras.saving.register_keras_serializable(package="vae_keras")
class HierarchicalPrior(SeedStateMixin, Prior):
    """A second stochastic layer: the code's prior is itself a small VAE, trained with the model.

    ``p(z) = integral p(z | u) N(u; 0, I) du``: a top code ``u`` of ``top_dim``
    dimensions, a dense network for ``p(z | u) = N(mean(u), diag(var(u)))``, and its
    own encoder ``q(u | z)`` (dense, Gaussian) to infer ``u`` from a code. With the
    VAE's ``q(z | x)`` and ``p(x | z)`` this is Burda et al. (2015)'s model with two
    stochastic layers (Tomczak & Welling's HVAE has the same generative chain).

    ``p(z)`` has no closed form, so :meth:`log_prob` returns an estimate: with
    ``u_m ~ q(u | z)``, ``log (1/M) sum_m p(z | u_m) N(u_m; 0, I) / q(u_m | z)`` for
    ``M = inner_samples`` draws (a fresh draw at every call, from the layer's own
    seed stream). It is a lower bound on ``log p(z)`` in expectation, and its
    exponential is unbiased for ``p(z)``. So, with ``M = 1``:

    - the VAE's ELBO, ``log p(x | z) + log_prob(z) - log q(z | x)``, is exactly the
      two-layer ELBO, and training maximizes it;
    - the VAE's importance-weighted bound over K codes (``vae.nll``) is the two-layer
      IWAE bound over K joint draws ``(z_k, u_k)``: a valid bound on ``log p(x)``,
      comparable with the one-layer models' bounds.

    The output layers start at zero, so an untrained prior is exactly ``N(0, I)``
    (``p(z | u) = N(0, I)`` and ``q(u | z) = N(0, I)``: the estimate is then exact);
    training moves it from there.

    Args:
        top_dim: size of the top code ``u``, >= 1.
        hidden_units: widths of the dense (tanh) layers of each of the two networks.
        inner_samples: M, draws of ``u`` per call of :meth:`log_prob` (1 in training,
            as Burda et al.; more gives a tighter estimate of ``log p(z)``).
        seed: optional int for the draws of ``u``.
        latent_dim: the code size; taken from the model if None.
        **kwargs: passed to ``keras.layers.Layer``.

    Raises:
        TypeError, ValueError: a ``top_dim`` or ``inner_samples`` that is not a whole
            number >= 1, or ``hidden_units`` that are not widths >= 1.
    """

    def __init__(self, top_dim=16, hidden_units=(256, 256), inner_samples=1, seed=None,
                 latent_dim=None, **kwargs):
        super().__init__(latent_dim=latent_dim, **kwargs)
        self.top_dim = _checks.check_whole_number("top_dim", top_dim)
        if isinstance(hidden_units, (str, numbers.Number)) or not all(
                isinstance(w, numbers.Integral) and not isinstance(w, bool) and w >= 1
                for w in hidden_units):
            raise TypeError(f"hidden_units must be a list of widths >= 1 such as (256, 256), "
                            f"got {hidden_units!r}.")
        self.hidden_units = tuple(int(w) for w in hidden_units)
        self.inner_samples = _checks.check_whole_number("inner_samples", inner_samples)
        self.seed = _checks.check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(seed)
        if self.latent_dim is not None:  # else bind() makes them, with the model's code size
            self._make_networks()

    def _make_networks(self):
        def network(name, inputs, outputs):
            widths = (inputs,) + self.hidden_units
            stack = []
            for i, units in enumerate(self.hidden_units):
                dense = keras.layers.Dense(units, activation="tanh", dtype="float32",
                                           name=f"{name}_hidden_{i}")
                dense.build((None, widths[i]))
                stack.append(dense)
            for part in ("mean", "log_var"):
                # Zero output layers: the network starts as N(0, I), whatever it is fed.
                dense = keras.layers.Dense(outputs, kernel_initializer="zeros", dtype="float32",
                                           name=f"{name}_{part}")
                dense.build((None, widths[-1]))
                stack.append(dense)
            return stack

        self.generative_layers = network("p_z_given_u", self.top_dim, self.latent_dim)
        self.inference_layers = network("q_u_given_z", self.latent_dim, self.top_dim)

    def bind(self, model):
        """Check the code size against ``model``; build the two networks if it was unknown."""
        size_was_unknown = self.latent_dim is None
        super().bind(model)
        if size_was_unknown:
            self._make_networks()

    @staticmethod
    def _gaussian(stack, inputs):
        hidden = inputs
        for dense in stack[:-2]:
            hidden = dense(hidden)
        low, high = HIERARCHICAL_LOG_VAR_RANGE
        return stack[-2](hidden), ops.clip(stack[-1](hidden), low, high)

    def generative(self, u):
        """``(mean, log_var)`` of ``p(z | u)`` for top codes ``u`` of shape ``(n, top_dim)``."""
        return self._gaussian(self.generative_layers, u)

    def inference(self, z):
        """``(mean, log_var)`` of ``q(u | z)`` for codes ``z`` of shape ``(n, latent_dim)``."""
        return self._gaussian(self.inference_layers, z)

    def log_prob(self, z):
        """An estimate of ``log p(z)`` over ``inner_samples`` fresh draws of ``u ~ q(u | z)``.

        Shape ``z.shape[:-1]``; see the class docstring for what it bounds.
        """
        z = ops.convert_to_tensor(z, dtype="float32")
        codes = ops.reshape(z, (-1, self.latent_dim))
        u_mean, u_log_var = self.inference(codes)
        draws = self.inner_samples
        noise = keras.random.normal((draws,) + tuple(ops.shape(u_mean)), dtype="float32",
                                    seed=self.seed_generator)
        u = u_mean[None] + ops.exp(0.5 * u_log_var)[None] * noise  # (M, n, top_dim)
        z_mean, z_log_var = self.generative(ops.reshape(u, (-1, self.top_dim)))
        shape = (draws, -1, self.latent_dim)
        log_weights = (losses.diagonal_gaussian_log_prob(
                           codes[None], ops.reshape(z_mean, shape), ops.reshape(z_log_var, shape))
                       + losses.standard_normal_log_prob(u)
                       - losses.diagonal_gaussian_log_prob(u, u_mean[None], u_log_var[None]))
        log_density = ops.logsumexp(log_weights, axis=0) - math.log(draws)
        return ops.reshape(log_density, ops.shape(z)[:-1])

    def sample(self, num_samples, seed=None):
        """Codes from the prior: ``u ~ N(0, I)``, then ``z ~ p(z | u)``."""
        num_samples = self._check_count(num_samples)
        seed = _checks.check_seed(seed)
        rng = _generator(seed)
        u = rng.standard_normal((num_samples, self.top_dim)).astype(np.float32)
        z_mean, z_log_var = (np.asarray(ops.convert_to_numpy(x), dtype=np.float64)
                             for x in self.generative(ops.convert_to_tensor(u)))
        noise = rng.standard_normal((num_samples, self.latent_dim))
        return (z_mean + np.exp(0.5 * z_log_var) * noise).astype(np.float32)

    def get_config(self):
        config = super().get_config()
        config.update(top_dim=self.top_dim, hidden_units=list(self.hidden_units),
                      inner_samples=self.inner_samples, seed=self.seed)
        return config


def parse(text, seed=None):
    """A prior from its --prior text: ``normal``, ``mixture:K``, ``vamp:K``, ``hierarchical:D``.

    ``mixture:K`` returns an unfitted :class:`GaussianMixture` (fitted after
    training); ``vamp:K`` a :class:`VampPrior` with K pseudo-inputs;
    ``hierarchical:D`` a :class:`HierarchicalPrior` with a top code of D dimensions.
    ``seed`` seeds the two priors that train (their starting noise, their draws).

    Raises:
        ValueError: text that is none of these (see :func:`vae_keras.settings.parse_prior`).
    """
    from vae_keras import settings

    kind, count = settings.parse_prior(text)
    if kind == "normal":
        return StandardNormal()
    if kind == "hierarchical":
        return HierarchicalPrior(count, seed=seed)
    return GaussianMixture(count) if kind == "mixture" else VampPrior(count, seed=seed)


def describe(prior):
    """A prior's command-line name: ``"normal"``, ``"mixture:50"``, ``"vamp:500"``,
    ``"hierarchical:16"``, or its class."""
    if isinstance(prior, StandardNormal):
        return "normal"
    if isinstance(prior, GaussianMixture):
        return f"mixture:{prior.num_components}"
    if isinstance(prior, VampPrior):
        return f"vamp:{prior.num_components}"
    if isinstance(prior, HierarchicalPrior):
        return f"hierarchical:{prior.top_dim}"
    return type(prior).__name__


def as_prior(prior, latent_dim=None):
    """A prior object from what ``prior=`` arguments accept; None stays None.

    A :class:`Prior` is returned as it is; a fitted scikit-learn ``GaussianMixture``
    (what ``prior=`` took before priors were part of the model) becomes a
    :class:`GaussianMixture`.

    Raises:
        TypeError: anything else.
    """
    if prior is None or isinstance(prior, Prior):
        return prior
    if hasattr(prior, "means_") and hasattr(prior, "precisions_cholesky_"):
        return GaussianMixture.from_sklearn(prior, latent_dim)
    raise TypeError(f"prior must be a vae_keras.priors prior (StandardNormal, GaussianMixture, "
                    f"VampPrior, HierarchicalPrior) or a fitted sklearn GaussianMixture; got "
                    f"{type(prior).__name__}.")
