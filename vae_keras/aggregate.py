"""The aggregate posterior q(z): where the encoder puts the data, and sampling from there.

A VAE samples by decoding codes from the prior ``p(z) = N(0, I)``, but the
decoder was trained on codes from the *aggregate posterior*

``q(z) = (1 / N) sum_i q(z | x_i)``,

the mixture of the posteriors of the ``N`` training images. The KL term of the
ELBO pulls each ``q(z | x)`` towards the prior; it does not make their mixture
equal to it, and prior samples that land where ``q(z)`` is thin ("holes")
decode to images the decoder never learned to draw. Notebook 11 uses every
function here:

- Measuring the mismatch: :func:`code_statistics` (per latent dimension: the
  spread of the posterior means, the posterior variance, the aggregate
  variance that the prior says should be 1, active units);
  :func:`nearest_distances` (how far each code lies from the nearest training
  code, computed in chunks); :func:`log_aggregate_density`, the density of the
  mixture of posteriors; and :func:`aggregate_kl`, a Monte Carlo estimate of
  ``KL(q(z) || p(z))`` with it.
- Sampling better: :func:`fit_code_mixture` fits a Gaussian mixture to the
  training codes (their means, or one code per image from
  :func:`draw_posterior_codes`) after training (ex-post density estimation, Ghosh et al.
  2020) with scikit-learn; ``VAE.sample(n, prior=mixture)`` then decodes codes
  drawn from it, through :func:`draw_codes`, and
  ``importance_weighted_log_likelihood(..., prior=mixture)`` bounds the
  likelihood of that sampler, through :func:`mixture_parameters`. To keep the
  mixture in the model (saved with it, and used by ``sample``, ``elbo`` and ``nll``
  without ``prior=``), ``vae.fit_prior_mixture(x_train)`` stores it as a
  :class:`vae_keras.priors.GaussianMixture`.

Codes are NumPy arrays of shape ``(n, latent_dim)``; posteriors are given by
the encoder's ``(z_mean, z_log_var)``, as ``VAE.encode`` returns them.
"""

import copy
import math

import numpy as np

from vae_keras import _checks, losses

LOG_2PI = math.log(2.0 * math.pi)
# Burda et al. (2016) call a latent dimension active when the variance of its
# posterior mean over the data exceeds 0.01: the code then varies with the image.
ACTIVE_THRESHOLD = 0.01
# Elements in one (chunk x reference) block of pairwise terms, in float64: 32 MB.
_BLOCK_ELEMENTS = 4_000_000


# ----------------------------------------------------------------------------- checks


def _check_chunk_size(chunk_size, reference_count):
    """The rows per block: given, or as many as keep a block near 32 MB."""
    if chunk_size is None:
        return max(1, _BLOCK_ELEMENTS // reference_count)
    return _checks.check_whole_number("chunk_size", chunk_size, 1)


# ----------------------------------------------------------------------------- statistics


def code_statistics(z_mean, z_log_var):
    """How the aggregate posterior spreads along each latent dimension.

    Under ``q(z)`` the variance of dimension ``d`` is the variance of the
    posterior means over the images plus the mean posterior variance (the law
    of total variance); the prior says it should be 1, with mean 0. A dimension
    whose means barely vary is *inactive*: the encoder ignores the image there
    and ``q(z | x)`` is the prior itself, which the KL term rewards.

    Args:
        z_mean: posterior means ``(n, latent_dim)``, e.g. of the training images.
        z_log_var: posterior log-variances of the same shape.

    Returns:
        A dict of arrays of shape ``(latent_dim,)``:

        - ``mean``: the mean of the posterior means (the aggregate's mean).
        - ``variance_of_means``: how much the code moves with the image.
        - ``mean_posterior_variance``: the average of ``exp(z_log_var)``.
        - ``aggregate_variance``: their sum, the variance of ``q(z)``.
        - ``active``: booleans, ``variance_of_means > 0.01`` (Burda et al. 2016).

        and ``moment_kl``, a float: ``KL(N(mean, diag(aggregate_variance)) || N(0, I))``
        in nats, the part of the mismatch that these per-dimension moments show.
        It is a lower bound on ``KL(q(z) || p(z))`` (the mismatch of the Gaussian
        with ``q``'s mean and full covariance is at least this, and ``q``'s own
        is at least that, because ``log p`` is quadratic), so comparing it with
        :func:`aggregate_kl` says how much of the mismatch lies beyond the moments.

    Raises:
        TypeError: codes that are not numbers.
        ValueError: shapes that are not ``(n, latent_dim)`` alike, NaN or inf.
    """
    z_mean, z_log_var = _checks.as_posteriors(z_mean, z_log_var)
    variance_of_means = z_mean.var(axis=0)
    mean_posterior_variance = np.exp(z_log_var).mean(axis=0)
    mean = z_mean.mean(axis=0)
    aggregate_variance = variance_of_means + mean_posterior_variance
    moment_kl = losses.gaussian_kl(mean[None], np.log(aggregate_variance)[None])
    return {
        "mean": mean,
        "variance_of_means": variance_of_means,
        "mean_posterior_variance": mean_posterior_variance,
        "aggregate_variance": aggregate_variance,
        "active": variance_of_means > ACTIVE_THRESHOLD,
        "moment_kl": float(np.asarray(moment_kl)[0]),
    }


def nearest_distances(codes, reference_codes, chunk_size=None):
    """The Euclidean distance from each code to its nearest reference code.

    With the training codes as reference, a large distance says the decoder
    never saw anything like this code. The pairwise distances are computed a
    block of ``chunk_size`` codes at a time, so memory stays bounded (about
    32 MB by default) however many codes and references there are.

    Args:
        codes: array ``(n, latent_dim)``, e.g. prior samples or encoded test images.
        reference_codes: array ``(m, latent_dim)``, e.g. the training codes.
        chunk_size: codes per block; by default as many as fit 4 million
            distances.

    Returns:
        Array ``(n,)`` of distances, float64.

    Raises:
        TypeError: codes that are not numbers, a non-integer ``chunk_size``.
        ValueError: bad shapes, different widths, NaN or inf, ``chunk_size < 1``.
    """
    reference = _checks.as_codes("reference_codes", reference_codes)
    codes = _checks.as_codes("codes", codes, width=reference.shape[1])
    chunk_size = _check_chunk_size(chunk_size, len(reference))
    reference_norms = np.sum(reference ** 2, axis=1)
    distances = np.empty(len(codes))
    for start in range(0, len(codes), chunk_size):
        block = codes[start:start + chunk_size]
        # |a - b|^2 = |a|^2 - 2 a.b + |b|^2: one matrix product per block.
        squared = (np.sum(block ** 2, axis=1)[:, None] - 2.0 * block @ reference.T
                   + reference_norms[None, :])
        distances[start:start + chunk_size] = np.sqrt(np.maximum(squared.min(axis=1), 0.0))
    return distances


def log_aggregate_density(codes, z_mean, z_log_var, chunk_size=None):
    """``log q(z)`` of the mixture of posteriors ``q(z) = (1/N) sum_i q(z | x_i)``.

    ``log q(z) = logsumexp_i log N(z; z_mean_i, diag(exp(z_log_var_i))) - log N``,
    computed exactly over all ``N`` posteriors, a block of ``chunk_size`` codes
    at a time. Unlike a distance, it measures closeness in each posterior's own
    scale: an inactive dimension, where every posterior is the prior, costs a
    prior sample nothing.

    Args:
        codes: the points ``z``, array ``(n, latent_dim)``.
        z_mean: posterior means ``(N, latent_dim)`` of the images that define ``q``.
        z_log_var: their log-variances, same shape.
        chunk_size: codes per block; by default as many as fit 4 million terms.

    Returns:
        Array ``(n,)`` of log densities in nats, float64.

    Raises:
        TypeError: codes that are not numbers, a non-integer ``chunk_size``.
        ValueError: bad or mismatched shapes, NaN or inf, ``chunk_size < 1``.
    """
    z_mean, z_log_var = _checks.as_posteriors(z_mean, z_log_var)
    codes = _checks.as_codes("codes", codes, width=z_mean.shape[1])
    chunk_size = _check_chunk_size(chunk_size, len(z_mean))
    precision = np.exp(-z_log_var)
    # The quadratic form sum_d (z_d - m_d)^2 p_d = z^2 . p - 2 z . (m p) + m^2 . p, as
    # matrix products, plus the per-posterior constant.
    weighted_mean = z_mean * precision
    constant = -0.5 * (np.sum(z_mean * weighted_mean + z_log_var, axis=1)
                       + z_mean.shape[1] * LOG_2PI)
    log_density = np.empty(len(codes))
    for start in range(0, len(codes), chunk_size):
        block = codes[start:start + chunk_size]
        log_components = constant[None, :] - 0.5 * (
            (block ** 2) @ precision.T - 2.0 * block @ weighted_mean.T)
        largest = log_components.max(axis=1, keepdims=True)
        log_density[start:start + chunk_size] = (
            largest[:, 0] + np.log(np.exp(log_components - largest).sum(axis=1)))
    return log_density - math.log(len(z_mean))


def log_prior_density(codes):
    """``log N(z; 0, I)`` of each code, in nats (array ``(n,)``)."""
    codes = _checks.as_codes("codes", codes)
    return -0.5 * (np.sum(codes ** 2, axis=1) + codes.shape[1] * LOG_2PI)


def aggregate_kl(z_mean, z_log_var, num_samples=2000, seed=None, chunk_size=None, prior=None):
    """Monte Carlo estimate of ``KL(q(z) || p(z))``, in nats, with ``p = N(0, I)`` by default.

    Draws ``z`` from the aggregate posterior (an image ``i`` at random, then
    ``z ~ q(z | x_i)``) and averages ``log q(z) - log p(z)``, with ``log q`` from
    :func:`log_aggregate_density` over the same ``N`` posteriors. 0 when every
    posterior is the prior; it grows as their mixture departs from it.

    It is the second part of the ELBO's KL term: averaged over the images,
    ``KL(q(z|x) || p(z)) = I(x; z) + KL(q(z) || p(z))`` (Hoffman & Johnson 2016,
    "ELBO surgery"), where the mutual information ``I(x; z)`` between image
    and code is at most ``log N``. The estimate is consistent as ``N`` grows; for
    finite ``N`` it treats the ``N`` images as the whole data distribution.

    Args:
        z_mean: posterior means ``(N, latent_dim)``, e.g. of the training images.
        z_log_var: their log-variances, same shape.
        num_samples: Monte Carlo draws from ``q(z)``, >= 1.
        seed: optional int for repeatable draws.
        chunk_size: passed to :func:`log_aggregate_density`.
        prior: ``p(z)`` when it is not ``N(0, I)``: a :mod:`vae_keras.priors` prior (a
            model's ``vae.prior``, such as a trained VampPrior), whose ``log_prob`` is used.

    Returns:
        The estimate as a float (nats).

    Raises:
        TypeError: codes that are not numbers, a non-integer ``num_samples`` or seed.
        ValueError: bad or mismatched shapes, NaN or inf, ``num_samples < 1``, a negative seed.
    """
    z_mean, z_log_var = _checks.as_posteriors(z_mean, z_log_var)
    num_samples = _checks.check_whole_number("num_samples", num_samples, 1)
    rng = np.random.default_rng(_checks.check_seed(seed))
    chosen = rng.integers(0, len(z_mean), num_samples)
    codes = (z_mean[chosen] + np.exp(0.5 * z_log_var[chosen])
             * rng.standard_normal((num_samples, z_mean.shape[1])))
    log_q = log_aggregate_density(codes, z_mean, z_log_var, chunk_size=chunk_size)
    if prior is None:
        log_p = log_prior_density(codes)
    else:
        if not callable(getattr(prior, "log_prob", None)):
            raise TypeError(f"prior must be a vae_keras.priors prior (with log_prob), got "
                            f"{type(prior).__name__}; wrap a scikit-learn mixture with "
                            f"vk.priors.GaussianMixture.from_sklearn.")
        import keras  # only here: the rest of this module is NumPy

        log_p = np.asarray(keras.ops.convert_to_numpy(prior.log_prob(codes.astype(np.float32))),
                           dtype=np.float64)
    return float(np.mean(log_q - log_p))


def prior_kl_to_aggregate(z_mean, z_log_var, num_samples=2000, seed=None, chunk_size=None):
    """Monte Carlo estimate of ``KL(p(z) || q(z))`` in nats, ``p = N(0, I)``: the prior's holes.

    The other direction from :func:`aggregate_kl`. It draws ``z`` from the prior
    and averages ``log p(z) - log q(z)``, so it is large when the prior puts mass
    where no posterior of the ``N`` images does: prior samples that land in such
    holes decode to images the decoder never learned to draw. 0 when every
    posterior is the prior. Unlike :func:`aggregate_kl` it is not bounded by
    ``log N``: narrow posteriors leave most of the prior's mass far from all of them.
    Notebook 07 uses it to show why small-sigma Gaussian VAEs give poor samples.

    Args:
        z_mean: posterior means ``(N, latent_dim)`` of the images that define ``q``.
        z_log_var: their log-variances, same shape.
        num_samples: Monte Carlo draws from the prior, >= 1.
        seed: optional int for repeatable draws.
        chunk_size: passed to :func:`log_aggregate_density`.

    Returns:
        The estimate as a float (nats).

    Raises:
        TypeError: codes that are not numbers, a non-integer ``num_samples`` or seed.
        ValueError: bad or mismatched shapes, NaN or inf, ``num_samples < 1``, a negative seed.
    """
    z_mean, z_log_var = _checks.as_posteriors(z_mean, z_log_var)
    num_samples = _checks.check_whole_number("num_samples", num_samples, 1)
    rng = np.random.default_rng(_checks.check_seed(seed))
    codes = rng.standard_normal((num_samples, z_mean.shape[1]))
    log_q = log_aggregate_density(codes, z_mean, z_log_var, chunk_size=chunk_size)
    return float(np.mean(log_prior_density(codes) - log_q))


# ----------------------------------------------------------------------------- sampling


def draw_posterior_codes(z_mean, z_log_var, seed=None):
    """One code drawn from each posterior: ``z_i = mu_i + sigma_i * epsilon_i``.

    A set of such codes is a sample of the aggregate posterior ``q(z)``, one
    point per image, so it spreads as ``q(z)`` does; the posterior means alone
    are narrower by each posterior's own variance. This is what
    :func:`fit_code_mixture` should be fitted to when the mixture will serve as
    the prior of the likelihood bound (notebook 11, section 5;
    ``benchmarks/likelihood.py``'s mixture rows).

    Args:
        z_mean: posterior means ``(n, latent_dim)``, as ``VAE.encode`` returns them.
        z_log_var: their log-variances, same shape.
        seed: optional int; the noise is ``np.random.default_rng(seed).standard_normal``
            of the codes' shape, so a seed gives the same codes every time.

    Returns:
        float64 array ``(n, latent_dim)``.

    Raises:
        TypeError: codes that are not numbers, a non-integer seed.
        ValueError: bad or mismatched shapes, NaN or inf, a negative seed.
    """
    z_mean, z_log_var = _checks.as_posteriors(z_mean, z_log_var)
    noise = np.random.default_rng(_checks.check_seed(seed)).standard_normal(z_mean.shape)
    return z_mean + np.exp(0.5 * z_log_var) * noise


def fit_code_mixture(codes, num_components=10, covariance_type="full", seed=None):
    """Fit a Gaussian mixture to codes: an ex-post prior to sample from (Ghosh et al. 2020).

    After training, the posterior means of the training images show where the
    decoder works. A Gaussian mixture fitted to them (scikit-learn's
    ``GaussianMixture``, by EM) is a density that follows those clusters
    instead of the round prior; ``vae.sample(n, prior=mixture)`` decodes codes
    drawn from it. This scikit-learn object is not part of the model: its ELBO
    and NLL still refer to the model's prior; ``vae.nll(images, prior=mixture)``
    bounds the likelihood of the sampler ``g(z) p(x | z)`` instead. To make it the
    model's prior, saved with it: ``vae.set_prior(vk.priors.GaussianMixture.from_sklearn(
    mixture))``, or ``vae.fit_prior_mixture(x_train)`` in one step.

    Args:
        codes: the training codes, ``(n, latent_dim)``, at least ``num_components`` of them:
            for sampling usually ``vae.encode_mean(x_train)``; for a prior to bound the
            likelihood with, one code drawn from each ``q(z | x)``, which spreads like
            ``q(z)`` itself (notebook 11, section 5).
        num_components: Gaussians in the mixture, >= 1 (Ghosh et al. use 10 for MNIST).
        covariance_type: ``"full"``, ``"diag"``, ``"tied"`` or ``"spherical"``.
        seed: optional int for the initialization and, later, for ``mixture.sample``.

    Returns:
        The fitted ``sklearn.mixture.GaussianMixture``.

    Raises:
        TypeError: codes that are not numbers, the ``(z_mean, z_log_var)`` pair that
            ``vae.encode`` returns, a non-integer ``num_components`` or seed.
        ValueError: bad shapes, NaN or inf, fewer codes than components, an
            unknown ``covariance_type``, a negative seed.
    """
    from sklearn.mixture import GaussianMixture  # here, so `import vae_keras` stays quick

    if (isinstance(codes, (tuple, list)) and len(codes) == 2
            and all(np.ndim(part) == 2 for part in codes)):
        # Two (n, d) arrays: the (z_mean, z_log_var) that vae.encode returns, not codes.
        raise TypeError(
            "codes is a pair of arrays, as vae.encode(x) returns (z_mean, z_log_var); a mixture "
            "is fitted to codes (n, latent_dim). Pass vk.aggregate.draw_posterior_codes("
            "z_mean, z_log_var, seed), one code per posterior (what a mixture used as the "
            "prior of the likelihood bound is fitted to), or vae.encode_mean(x) for sampling.")
    codes = _checks.as_codes("codes", codes)
    num_components = _checks.check_whole_number("num_components", num_components, 1)
    covariance_type = _checks.check_choice("covariance_type", covariance_type,
                                           ("full", "diag", "tied", "spherical"))
    if len(codes) < num_components:
        raise ValueError(f"{len(codes)} codes cannot fit {num_components} components; pass "
                         f"more codes or a smaller num_components.")
    mixture = GaussianMixture(num_components, covariance_type=covariance_type,
                              random_state=_checks.check_seed(seed))
    return mixture.fit(codes)


def mixture_parameters(mixture, latent_dim=None):
    """A fitted Gaussian mixture as arrays, to use it as the prior ``p(z)`` in a bound.

    The importance-weighted bound of a model that samples from the mixture ``g``,
    ``g(z) p(x | z)``, replaces ``log N(z; 0, I)`` by ``log g(z)``
    (``importance_weighted_log_likelihood(..., prior=mixture)``); these are the
    arrays :func:`vae_keras.losses.gaussian_mixture_log_prob` computes ``log g`` from.
    Every covariance type is turned into full Cholesky factors of the precisions.

    Args:
        mixture: a fitted scikit-learn ``GaussianMixture``, e.g. from :func:`fit_code_mixture`.
        latent_dim: optional; the model's code size, which the mixture must match.

    Returns:
        ``(means (C, d), precision_cholesky (C, d, d), log_weights (C,))``, float32.

    Raises:
        TypeError: anything but a fitted ``GaussianMixture``.
        ValueError: a mixture over codes of another size than ``latent_dim``.
    """
    needed = ("means_", "precisions_cholesky_", "weights_", "covariance_type")
    if not all(hasattr(mixture, name) for name in needed):
        raise TypeError(f"prior must be a fitted scikit-learn GaussianMixture (from "
                        f"vae_keras.aggregate.fit_code_mixture, or .fit() called on one); "
                        f"got {type(mixture).__name__} without {', '.join(needed)}.")
    means = np.asarray(mixture.means_, dtype=np.float64)
    num_components, dims = means.shape
    if latent_dim is not None and dims != latent_dim:
        raise ValueError(f"The mixture was fitted to codes of size {dims}; this model's codes "
                         f"have size {latent_dim}. Fit it to this model's codes "
                         f"(vae.encode(x_train)).")
    factors = np.asarray(mixture.precisions_cholesky_, dtype=np.float64)
    if mixture.covariance_type == "tied":  # one (d, d) factor for every component
        factors = np.broadcast_to(factors, (num_components, dims, dims))
    elif mixture.covariance_type == "diag":  # (C, d): the diagonal of each factor
        factors = factors[:, :, None] * np.eye(dims)
    elif mixture.covariance_type == "spherical":  # (C,): one scale per component
        factors = factors[:, None, None] * np.eye(dims)
    log_weights = np.log(np.asarray(mixture.weights_, dtype=np.float64))
    return (means.astype(np.float32), np.ascontiguousarray(factors, dtype=np.float32),
            log_weights.astype(np.float32))


def draw_codes(prior, num_samples, latent_dim, seed=None):
    """Draw ``num_samples`` codes from ``prior``; what ``VAE.sample`` decodes.

    Args:
        prior: where the codes come from:

            - ``None``: the model's prior ``N(0, I)``;
            - a callable ``prior(num_samples, rng)`` returning codes, called with
              ``rng = np.random.default_rng(seed)``;
            - an object with a ``sample(num_samples)`` method, such as a fitted
              scikit-learn ``GaussianMixture`` (:func:`fit_code_mixture`). A tuple
              result keeps its first item (scikit-learn returns codes and
              component labels). With a ``seed``, an object that has a
              ``random_state`` (scikit-learn's convention) draws from a copy
              seeded with it, and the codes are shuffled with the seed, since
              scikit-learn returns them grouped by component.
        num_samples: how many codes, >= 1.
        latent_dim: the width every code must have.
        seed: optional int; without it NumPy's global generator is used for
            ``N(0, I)`` (``keras.utils.set_random_seed`` seeds it).

    Returns:
        float32 array ``(num_samples, latent_dim)``.

    Raises:
        TypeError: a ``prior`` that is neither callable nor has ``sample``, or
            returns something that is not an array of numbers; a non-integer
            ``num_samples`` or seed.
        ValueError: codes of the wrong shape, or NaN or inf among them;
            ``num_samples < 1``, a negative seed.
    """
    num_samples = _checks.check_whole_number("num_samples", num_samples)
    shape = (num_samples, int(latent_dim))
    seed = _checks.check_seed(seed)
    if prior is None:
        codes = (np.random.standard_normal(shape) if seed is None
                 else np.random.default_rng(seed).standard_normal(shape))
        return codes.astype(np.float32)
    rng = np.random.default_rng(seed)
    if callable(getattr(prior, "sample", None)):
        if seed is not None and hasattr(prior, "random_state"):
            prior = copy.copy(prior)  # shallow: the fitted arrays are shared, not copied
            prior.random_state = seed
        codes = prior.sample(num_samples)
        codes = codes[0] if isinstance(codes, tuple) else codes
        if seed is not None:
            codes = np.asarray(codes)[rng.permutation(len(codes))]
    elif callable(prior):
        codes = prior(num_samples, rng)
    else:
        raise TypeError(f"prior must be None (N(0, I)), a callable prior(num_samples, rng) "
                        f"returning codes, or an object with a sample(num_samples) method such "
                        f"as a fitted sklearn GaussianMixture; got {type(prior).__name__}.")
    array = np.asarray(codes)
    if array.shape != shape:
        raise ValueError(f"The prior returned codes of shape {array.shape}; this model needs "
                         f"{shape}, one row of latent_dim={latent_dim} values per sample. Was "
                         f"the mixture fitted to another model's codes?")
    return _checks.as_codes("the prior's codes", array).astype(np.float32)
