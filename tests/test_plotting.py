"""Every plot returns a Figure, draws into a given ax, and never shows."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from vae_keras import plotting  # noqa: E402

IMAGES = np.random.default_rng(0).random((12, 8, 8, 1)).astype(np.float32)


def test_tile_images_layout():
    mosaic = plotting.tile_images(IMAGES, ncols=5, padding=1)
    assert mosaic.shape == (3 * 9 - 1, 5 * 9 - 1)
    np.testing.assert_array_equal(mosaic[:8, 9:17], IMAGES[1, ..., 0])


@pytest.mark.parametrize("draw", [
    lambda ax: plotting.image_grid(IMAGES, ncols=4, ax=ax),
    lambda ax: plotting.reconstruction_rows(IMAGES, IMAGES, ax=ax),
    lambda ax: plotting.latent_scatter(np.random.randn(50, 2), np.arange(50) % 10, ax=ax),
    lambda ax: plotting.interpolation_strip(IMAGES[:5], ax=ax),
    lambda ax: plotting.loss_curves({"loss": [3, 2, 1], "val_loss": [3, 2.5, 2]}, ax=ax),
])
def test_plots_return_a_figure_and_use_the_given_axes(draw, monkeypatch):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plt.show() was called"))
    assert isinstance(draw(None), Figure)
    figure, ax = plt.subplots()
    assert draw(ax) is figure
    plt.close("all")


def test_manifold_codes_are_normal_quantiles():
    codes = plotting.manifold_codes(grid_size=3, quantile_range=(0.1587, 0.8413))
    np.testing.assert_allclose(np.unique(codes[:, 0]), [-1.0, 0.0, 1.0], atol=1e-3)
    assert codes[0, 1] > codes[-1, 1]  # the top row has the largest z[1]


def test_manifold_needs_two_dimensions(trained_toy_vae):
    model, _ = trained_toy_vae
    assert isinstance(plotting.latent_manifold(model, grid_size=4), Figure)
    model_like = type("M", (), {"latent_dim": 3})()
    with pytest.raises(ValueError, match="latent_dim=2"):
        plotting.latent_manifold(model_like)
    plt.close("all")


def test_the_manifold_is_labelled_in_code_units_and_its_square_drawn_on_a_scatter(trained_toy_vae):
    # The grid's ticks name the codes at its first, middle and last tiles, and the square on a
    # scatter spans the same quantiles: the two pictures can be read against each other.
    model, _ = trained_toy_vae
    figure = plotting.latent_manifold(model, grid_size=5)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-1.64", "0.00", "1.64"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1.64", "0.00", "-1.64"]
    _, scatter_ax = plt.subplots()
    square = plotting.draw_manifold_square(scatter_ax)
    np.testing.assert_allclose(square.get_xy(), (-1.6449, -1.6449), atol=1e-3)
    np.testing.assert_allclose(square.get_width(), 2 * 1.6449, atol=1e-3)
    plt.close("all")


def test_gaps_between_tiles_are_blank_paper():
    mosaic = plotting.tile_images(np.ones((2, 3, 3, 1), np.float32), ncols=2, padding=1)
    assert mosaic[:, 3].max() == 0.0  # the separating column holds no ink
