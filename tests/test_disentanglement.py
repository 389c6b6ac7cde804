"""Disentanglement metrics on codes whose answer is known, and the latent traversal figure."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn import metrics  # noqa: E402

from vae_keras import disentanglement, losses, plotting  # noqa: E402

SIZES = (3, 6, 6, 10, 10)  # the default sprite grid


def grid_factors(count=5000, seed=0):
    """Independent factor indices, as in a random subset of the sprite grid."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, size, count) for size in SIZES], axis=1)


def copied_codes(factors, extra_dims=3, seed=0):
    """Each factor (standardised, plus a little noise) in its own dimension, then unused ones."""
    rng = np.random.default_rng(seed)
    codes = (factors - factors.mean(0)) / factors.std(0) + 0.01 * rng.standard_normal(factors.shape)
    return np.concatenate([codes, 0.01 * rng.standard_normal((len(factors), extra_dims))], axis=1)


def random_rotation(dims, seed=0):
    # The Q of a Gaussian matrix's QR decomposition is a uniformly random orthogonal matrix.
    return np.linalg.qr(np.random.default_rng(seed).standard_normal((dims, dims)))[0]


def test_a_code_that_copies_each_factor_into_its_own_dimension_scores_one():
    factors = grid_factors()
    score, gaps = disentanglement.mutual_information_gap(copied_codes(factors), factors,
                                                         per_factor=True)
    assert score > 0.97 and gaps.shape == (5,) and np.all(gaps > 0.95)
    # The copies do not care about the dimensions' order or sign, nor about stretching.
    shuffled = copied_codes(factors)[:, ::-1] * np.array([-3.0, 1, 2, 1, 0.5, 1, 1, 7])
    assert disentanglement.mutual_information_gap(shuffled, factors) > 0.97


def test_a_rotated_code_or_noise_scores_near_zero():
    factors = grid_factors()
    codes = copied_codes(factors)  # 5 factors and 3 unused dimensions
    # Sylvester's Hadamard matrix / sqrt(8) is a rotation that mixes every factor equally
    # into all 8 dimensions: no dimension knows more than another.
    hadamard = np.array([[1.0]])
    for _ in range(3):
        hadamard = np.block([[hadamard, hadamard], [hadamard, -hadamard]])
    assert disentanglement.mutual_information_gap(codes @ hadamard / np.sqrt(8), factors) < 0.02
    # A random rotation mixes unevenly, so some factor may keep a gap: low, but not 0.
    rotated = [disentanglement.mutual_information_gap(codes @ random_rotation(8, seed), factors)
               for seed in range(5)]
    assert max(rotated) < 0.4 and np.median(rotated) < 0.25, rotated
    noise = np.random.default_rng(1).standard_normal((len(factors), 8))
    assert disentanglement.mutual_information_gap(noise, factors) < 0.02


def test_a_factor_shared_by_two_dimensions_has_no_gap():
    factors = grid_factors()
    codes = copied_codes(factors, extra_dims=0)
    codes = np.concatenate([codes, codes[:, 3:4]], axis=1)  # x twice
    _, gaps = disentanglement.mutual_information_gap(codes, factors, per_factor=True)
    assert gaps[3] < 0.01 and np.all(np.delete(gaps, 3) > 0.95)


def test_mutual_information_of_a_copy_is_the_factor_entropy():
    factors = grid_factors()
    information = disentanglement.mutual_information(copied_codes(factors), factors)
    entropy = disentanglement.factor_entropy(factors)
    np.testing.assert_allclose(np.diag(information[:5]), entropy, rtol=1e-6)
    np.testing.assert_allclose(entropy, np.log(SIZES), atol=0.01)  # uniform factors
    assert information.shape == (8, 5) and information[5:].max() < 0.05


def test_mutual_information_matches_scikit_learn():
    rng = np.random.default_rng(0)
    codes, factors = rng.standard_normal((300, 3)), rng.integers(0, 4, (300, 2))
    codes[:, 0] += factors[:, 1]  # one dimension that knows something
    binned = disentanglement.discretize(codes, num_bins=7)
    expected = [[metrics.mutual_info_score(factors[:, k], binned[:, j]) for k in range(2)]
                for j in range(3)]
    np.testing.assert_allclose(disentanglement.mutual_information(codes, factors, num_bins=7),
                               expected, rtol=1e-9, atol=1e-12)


def test_discretize_uses_equal_width_bins_per_dimension():
    codes = np.array([[0.0, 5.0], [1.0, 5.0], [0.49, 5.0], [0.51, 5.0]])
    binned = disentanglement.discretize(codes, num_bins=2)
    np.testing.assert_array_equal(binned, [[0, 0], [1, 0], [0, 0], [1, 0]])  # constant: one bin


def test_kl_per_dimension_sums_to_the_loss_kl_and_is_zero_at_the_prior():
    rng = np.random.default_rng(0)
    z_mean, z_log_var = rng.standard_normal((50, 4)), rng.standard_normal((50, 4))
    per_dimension = disentanglement.kl_per_dimension(z_mean, z_log_var)
    total = np.mean(np.asarray(losses.gaussian_kl(z_mean.astype("float32"),
                                                  z_log_var.astype("float32"))))
    assert per_dimension.sum() == pytest.approx(total, rel=1e-4)
    np.testing.assert_allclose(disentanglement.kl_per_dimension(np.zeros((3, 2)), np.zeros((3, 2))), 0)


def test_active_units_count_the_dimensions_whose_mean_moves():
    rng = np.random.default_rng(0)
    z_mean = np.concatenate([rng.standard_normal((200, 3)), 0.05 * rng.standard_normal((200, 2))], 1)
    count, variances = disentanglement.active_units(z_mean)
    assert count == 3 and variances.shape == (5,)
    assert disentanglement.active_units(z_mean, threshold=1e-4)[0] == 5


@pytest.mark.parametrize("codes, factors, error, match", [
    (np.zeros((10, 3)), np.zeros((10, 2)), TypeError, "integer"),
    (np.zeros((10, 3)), np.zeros((9, 2), int), ValueError, "one row per code"),
    (np.zeros((10, 1)), np.arange(10)[:, None] % 2, ValueError, "at least 2 dimensions"),
    (np.full((10, 3), np.nan), np.arange(10)[:, None] % 2, ValueError, "NaN"),
    (np.zeros((10, 3)), np.zeros((10, 2), int), ValueError, "single value"),
    (np.zeros(10), np.arange(10) % 2, ValueError, "codes\\[None\\]"),
    ("codes", np.arange(10) % 2, TypeError, "NumPy array"),
])
def test_mig_names_bad_input(codes, factors, error, match):
    with pytest.raises(error, match=match):
        disentanglement.mutual_information_gap(codes, factors)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="num_bins"):
        disentanglement.discretize(np.zeros((4, 2)), num_bins=1)
    with pytest.raises(ValueError, match="same shape"):
        disentanglement.kl_per_dimension(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="threshold"):
        disentanglement.active_units(np.zeros((4, 2)), threshold=0)


class FakeVAE:
    """Dimension j of the code lights pixel (0, j); the KL of dimension j grows with j."""

    latent_dim = 4

    def encode(self, images):
        count = len(images)
        return np.tile(np.arange(4.0), (count, 1)), np.zeros((count, 4))

    def decode(self, codes):
        images = np.zeros((len(codes), 6, 6, 1), np.float32)
        images[:, 0, :4, 0] = 1 / (1 + np.exp(-codes))
        return images


def test_traversals_have_a_row_per_dimension_ordered_by_kl(monkeypatch):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plt.show() was called"))
    figure, ax = plt.subplots()
    assert plotting.latent_traversals(FakeVAE(), np.zeros((5, 6, 6, 1)), num_steps=5, ax=ax) is figure
    mosaic = ax.images[0].get_array()
    assert mosaic.shape == (4 * 7 - 1, 5 * 7 - 1)  # 4 rows of 5 images of 6x6, 1-pixel gaps
    labels = [label.get_text() for label in ax.get_yticklabels()]
    assert [label.split()[0] for label in labels] == ["z3", "z2", "z1", "z0"]
    first_row = mosaic[0, :]  # top pixel row of the first traversal row
    lit = first_row[[7 * step + 3 for step in range(5)]]  # pixel (0, 3): dimension 3 varies
    assert np.all(np.diff(lit) > 0)
    assert isinstance(plotting.latent_traversals(FakeVAE(), np.zeros((1, 6, 6, 1))), Figure)
    with pytest.raises(ValueError, match="base_index"):
        plotting.latent_traversals(FakeVAE(), np.zeros((2, 6, 6, 1)), base_index=2)
    plt.close("all")


def test_factor_vae_score_is_one_for_copies_and_near_chance_for_mixed_codes_or_noise():
    factors = grid_factors()
    codes = copied_codes(factors)
    assert disentanglement.factor_vae_score(codes, factors, num_votes=500) > 0.99
    hadamard = np.array([[1.0]])
    for _ in range(3):
        hadamard = np.block([[hadamard, hadamard], [hadamard, -hadamard]])
    mixed = disentanglement.factor_vae_score(codes @ hadamard / np.sqrt(8), factors, num_votes=500)
    noise = np.random.default_rng(1).standard_normal((len(factors), 8))
    chance = disentanglement.factor_vae_score(noise, factors, num_votes=500)
    assert mixed < 0.5 and chance < 0.35, (mixed, chance)  # chance is 1 / 5 factors
    # Unlike MIG, it barely minds a random rotation: each factor still freezes the
    # dimension it loads on most.
    rotated = [disentanglement.factor_vae_score(codes @ random_rotation(8, seed), factors,
                                                num_votes=500) for seed in range(3)]
    assert np.median(rotated) > 0.85, rotated
    # A factor copied into two dimensions still freezes a dimension of its own.
    doubled = np.concatenate([codes, codes[:, 3:4]], axis=1)
    assert disentanglement.factor_vae_score(doubled, factors, num_votes=500) > 0.99


def test_factor_vae_score_names_bad_input():
    factors = grid_factors(200)
    with pytest.raises(ValueError, match="prune_threshold"):
        disentanglement.factor_vae_score(np.zeros((200, 3)), factors)
    with pytest.raises(ValueError, match="batch_size"):
        disentanglement.factor_vae_score(copied_codes(factors), factors, batch_size=64)
    with pytest.raises(TypeError, match="num_votes"):
        disentanglement.factor_vae_score(copied_codes(factors), factors, num_votes=1.5)
