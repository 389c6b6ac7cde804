"""How disentangled is a code? Metrics against known factors of variation.

A code is *disentangled* when each true factor of the data (shape, size,
position...) is carried by one latent dimension and that dimension carries
nothing else. With data whose factors are known, such as
:mod:`vae_keras.sprites`, that can be measured:

- :func:`mutual_information_gap` (MIG, Chen et al. 2018): for each factor, the
  gap between the two latent dimensions that know the most about it, as a
  fraction of what there is to know. 1 when one dimension alone captures the
  factor, 0 when two dimensions share it equally or none knows it.
- :func:`factor_vae_score` (Kim & Mnih 2018): how well "which dimension stops
  moving when one factor is held fixed" predicts the factor.
- :func:`active_units` (Burda et al. 2016): how many dimensions the encoder
  uses at all.
- :func:`kl_per_dimension`: each dimension's share of the KL term, the order
  :func:`vae_keras.plotting.latent_traversals` draws them in.

Scores of this kind vary a lot from one training seed to the next (Locatello
et al. 2019): compare them over several seeds. Used by notebook 10.
"""

import numpy as np

from vae_keras import _checks

DEFAULT_NUM_BINS = 20  # as disentanglement_lib (Locatello et al. 2019) discretises codes


def _as_codes(codes, name="codes", min_dims=1, min_codes=2):
    if isinstance(codes, (str, bytes, dict)) or codes is None:
        raise TypeError(f"{name} must be a NumPy array (n, latent_dim), got {type(codes).__name__}.")
    array = np.asarray(codes)
    if not np.issubdtype(array.dtype, np.number) or array.dtype == bool:
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}.")
    if array.ndim != 2 or len(array) < min_codes:
        raise ValueError(f"{name} must have shape (n, latent_dim) with n >= {min_codes}, got "
                         f"{array.shape}. "
                         f"A single code needs a batch axis: codes[None].")
    if array.shape[1] < min_dims:
        raise ValueError(f"{name} need at least {min_dims} dimensions, got {array.shape[1]}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contain NaN or infinite values.")
    return array.astype(np.float64)


def _as_factors(factors, num_codes):
    array = np.asarray(factors)
    if array.ndim == 1:
        array = array[:, None]
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"factors must be integer indices of each factor's value, shape (n, num_factors) "
            f"(for example Sprites.factors), got dtype {array.dtype}. Discretise continuous "
            f"factors first, e.g. with np.digitize.")
    if array.ndim != 2 or len(array) != num_codes:
        raise ValueError(f"factors must have shape ({num_codes}, num_factors), one row per code; "
                         f"got {array.shape}.")
    single = [k for k in range(array.shape[1]) if len(np.unique(array[:, k])) < 2]
    if single:
        raise ValueError(f"factor column(s) {single} take a single value in these data, so there "
                         f"is nothing to capture; drop them or use data where they vary.")
    return array


def discretize(codes, num_bins=DEFAULT_NUM_BINS):
    """Bin each code dimension into ``num_bins`` equal-width bins over its own range.

    Mutual information between a continuous code and a discrete factor needs a
    density estimate; the simplest is a histogram, as in disentanglement_lib.
    Equal-width bins give a dimension that copies a factor with up to
    ``num_bins`` values one bin per value, so its information is the factor's
    whole entropy. A constant dimension falls in one bin and carries nothing.

    Args:
        codes: array ``(n, latent_dim)``.
        num_bins: bins per dimension, >= 2.

    Returns:
        int array ``(n, latent_dim)`` of bin indices in ``[0, num_bins)``.
    """
    codes = _as_codes(codes)
    num_bins = _checks.check_whole_number("num_bins", num_bins, minimum=2)
    low, high = codes.min(axis=0), codes.max(axis=0)
    width = np.where(high > low, (high - low) / num_bins, 1.0)
    return np.clip(np.floor((codes - low) / width), 0, num_bins - 1).astype(np.int64)


def _entropy(counts):
    probabilities = counts[counts > 0] / counts.sum()
    return float(-np.sum(probabilities * np.log(probabilities)))


def _mutual_information(first, second):
    """I(a; b) in nats of two int arrays, from their joint histogram: H(a) + H(b) - H(a, b)."""
    _, first = np.unique(first, return_inverse=True)
    _, second = np.unique(second, return_inverse=True)
    joint = np.bincount(first * (second.max() + 1) + second)
    return max(0.0, _entropy(np.bincount(first)) + _entropy(np.bincount(second)) - _entropy(joint))


def mutual_information(codes, factors, num_bins=DEFAULT_NUM_BINS):
    """Mutual information between each code dimension and each factor, in nats.

    Computed from the joint histogram of the binned codes and the factor
    values (the plug-in estimate, the same as scikit-learn's
    ``mutual_info_score``).

    Args:
        codes: array ``(n, latent_dim)``, e.g. posterior means.
        factors: int array ``(n, num_factors)`` of factor value indices.
        num_bins: bins per code dimension (see :func:`discretize`).

    Returns:
        Array ``(latent_dim, num_factors)``: ``I(z_j; v_k)`` of the binned codes.
    """
    binned = discretize(codes, num_bins)
    factors = _as_factors(factors, len(binned))
    return np.array([[_mutual_information(factors[:, k], binned[:, j])
                      for k in range(factors.shape[1])] for j in range(binned.shape[1])])


def factor_entropy(factors):
    """Entropy ``H(v_k)`` of each factor's values in these data, in nats; array ``(num_factors,)``."""
    factors = _as_factors(factors, len(np.asarray(factors)))
    return np.array([_entropy(np.unique(column, return_counts=True)[1]) for column in factors.T])


def mutual_information_gap(codes, factors, num_bins=DEFAULT_NUM_BINS, per_factor=False):
    """The mutual information gap (MIG) of Chen et al. (2018), in [0, 1].

    For each factor ``v_k``, sort the dimensions by ``I(z_j; v_k)`` (from
    :func:`mutual_information`); the gap between the first and the second,
    divided by the factor's entropy ``H(v_k)``, is 1 when one dimension knows
    the factor completely and no other knows anything about it, and near 0
    when the factor is spread evenly over several dimensions or known to none.
    MIG is the mean over factors. It is not invariant to rotations of the code:
    a code that copies each factor into its own dimension scores 1, the same
    code turned by a rotation that mixes every factor equally into all
    dimensions scores 0, and a random rotation, which mixes unevenly, lands in
    between (0.05 to 0.35 for five factors in eight dimensions).

    The codes are discretised with ``num_bins`` equal-width bins per dimension
    (:func:`discretize`); the factors must already be discrete (value indices).
    Histogram estimates are biased upwards by about ``(bins - 1)(values - 1) /
    (2 n)`` nats, so use thousands of codes.

    Args:
        codes: array ``(n, latent_dim)`` with ``latent_dim >= 2``, e.g. posterior means.
        factors: int array ``(n, num_factors)``, e.g. ``Sprites.factors``.
        num_bins: bins per code dimension, >= 2.
        per_factor: also return each factor's normalised gap.

    Returns:
        The MIG as a float, or ``(mig, gaps)`` with ``per_factor=True``.

    Raises:
        TypeError: codes not numeric, or factors not integer.
        ValueError: shapes that do not match, fewer than two dimensions, NaNs,
            or a factor that takes a single value.
    """
    codes = _as_codes(codes, min_dims=2)
    factors = _as_factors(factors, len(codes))
    information = np.sort(mutual_information(codes, factors, num_bins), axis=0)
    gaps = (information[-1] - information[-2]) / factor_entropy(factors)
    score = float(np.mean(gaps))
    return (score, gaps) if per_factor else score


def kl_per_dimension(z_mean, z_log_var):
    """The mean KL divergence ``KL(q(z_j | x) || N(0, 1))`` of each dimension, in nats.

    The KL term of the loss is the sum of these. A dimension the decoder does
    not use costs nothing only if its posterior equals the prior, so a KL near 0
    marks an unused ("collapsed") dimension.

    Args:
        z_mean: array ``(n, latent_dim)``, posterior means.
        z_log_var: array ``(n, latent_dim)``, posterior log-variances.

    Returns:
        Array ``(latent_dim,)``, averaged over the images.
    """
    z_mean = _as_codes(z_mean, "z_mean", min_codes=1)
    z_log_var = _as_codes(z_log_var, "z_log_var", min_codes=1)
    if z_mean.shape != z_log_var.shape:
        raise ValueError(f"z_mean {z_mean.shape} and z_log_var {z_log_var.shape} must have the "
                         f"same shape: pass both outputs of model.encode(images).")
    return np.mean(0.5 * (z_mean ** 2 + np.exp(z_log_var) - z_log_var - 1.0), axis=0)


def active_units(z_mean, threshold=0.01):
    """Count the dimensions whose posterior mean moves with the input (Burda et al. 2016).

    A dimension is active when ``Var_x(E[z_j | x]) > threshold``: the code
    changes from image to image along it. An inactive one has the prior's
    posterior for every image and the decoder ignores it.

    Args:
        z_mean: array ``(n, latent_dim)`` of posterior means.
        threshold: the variance below which a dimension counts as inactive.

    Returns:
        ``(count, variances)``: the number of active dimensions and the variance
        of each dimension's mean over the images.
    """
    z_mean = _as_codes(z_mean, "z_mean")
    threshold = _checks.check_positive("threshold", threshold)
    variances = np.var(z_mean, axis=0)
    return int(np.sum(variances > threshold)), variances


def factor_vae_score(codes, factors, num_votes=2000, batch_size=64, prune_threshold=0.05,
                     seed=0):
    """The FactorVAE score of Kim & Mnih (2018), in [0, 1], from codes of a factor grid.

    One vote: pick a factor at random and one of its values, take ``batch_size``
    codes of images that share that value, divide each dimension's variance
    over them by its variance over all codes, and note the dimension where it is
    smallest: fixing the factor should freeze the dimension that carries it. A
    majority-vote classifier then maps each dimension to the factor it was
    noted for most often; the score is its accuracy on a second, held-out set
    of votes. 1 when each factor freezes its own dimension; with ``K`` factors,
    about ``1 / K`` when no dimension follows any factor. Dimensions whose
    variance over all codes is below ``prune_threshold`` (collapsed ones)
    never win a vote.

    Unlike :func:`mutual_information_gap` the score does not ask that a factor
    be known to one dimension *only*: a code that copies one factor into two
    dimensions still scores 1, and a random rotation of a copying code scores
    0.9 to 1 (each factor still freezes the dimension it loads on most) where
    its MIG drops to 0.05-0.35. Only a rotation that mixes every factor equally
    into every dimension brings the score down towards chance.

    Args:
        codes: array ``(n, latent_dim)``, e.g. posterior means, of data in which
            every factor value appears in at least ``batch_size`` images (such
            as all of :func:`vae_keras.sprites.make_sprites`).
        factors: int array ``(n, num_factors)`` of factor value indices.
        num_votes: votes for fitting the classifier, and again for scoring it.
        batch_size: codes per vote (Kim & Mnih use 64).
        prune_threshold: dimensions with a smaller variance than this are skipped.
        seed: int for the random choice of factors, values and codes.

    Returns:
        The score, a float.

    Raises:
        TypeError, ValueError: as :func:`mutual_information_gap`, and when no
            dimension is above ``prune_threshold`` or a factor value is rarer
            than ``batch_size``.
    """
    codes = _as_codes(codes)
    factors = _as_factors(factors, len(codes))
    num_votes = _checks.check_whole_number("num_votes", num_votes)
    batch_size = _checks.check_whole_number("batch_size", batch_size, minimum=2)
    prune_threshold = _checks.check_positive("prune_threshold", prune_threshold, allow_zero=True)
    seed = _checks.check_whole_number("seed", seed, minimum=0)
    scale = np.var(codes, axis=0)
    active = scale > prune_threshold
    if not np.any(active):
        raise ValueError(f"No code dimension varies more than prune_threshold={prune_threshold} "
                         f"over these codes: the encoder has collapsed, or lower the threshold.")
    members = [[np.flatnonzero(column == value) for value in np.unique(column)]
               for column in factors.T]
    rarest = min(len(rows) for groups in members for rows in groups)
    if rarest < batch_size:
        raise ValueError(f"Some factor value appears in only {rarest} images, fewer than "
                         f"batch_size={batch_size}: lower batch_size or use more of the grid.")
    rng = np.random.default_rng(seed)
    num_factors = factors.shape[1]

    def votes():
        counts = np.zeros((codes.shape[1], num_factors), np.int64)
        for _ in range(num_votes):
            k = rng.integers(num_factors)
            rows = members[k][rng.integers(len(members[k]))]
            chosen = codes[rng.choice(rows, size=batch_size, replace=False)]
            ratio = np.where(active, np.var(chosen, axis=0) / np.where(active, scale, 1.0), np.inf)
            counts[np.argmin(ratio), k] += 1
        return counts

    training, held_out = votes(), votes()
    predicted = np.argmax(training, axis=1)  # each dimension's majority factor
    return float(np.sum(held_out[np.arange(len(predicted)), predicted]) / num_votes)
