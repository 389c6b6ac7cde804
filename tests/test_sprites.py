"""The sprite generator: the factors drive the pixels, a seed fixes the set, bad input is named."""

import math

import numpy as np
import pytest

from vae_keras import sprites

SMALL = dict(num_scales=2, num_orientations=2, num_positions=3)  # 3 x 2 x 2 x 3 x 3 = 108 images


def centre_of_mass(image):
    rows, cols = np.nonzero(image[..., 0])
    return rows.mean(), cols.mean()


def sprite(shape=0, scale=1.0, orientation=0.0, x=0.5, y=0.5):
    return sprites.render(np.array([[shape, scale, orientation, x, y]]))[0]


def test_every_combination_once_as_binary_images_with_their_factors():
    data = sprites.make_sprites(**SMALL)
    assert len(data) == 108 and data.images.shape == (108, 28, 28, 1)
    assert data.images.dtype == np.float32 and set(np.unique(data.images)) == {0.0, 1.0}
    assert data.factors.shape == (108, 5) and data.factor_names == sprites.FACTOR_NAMES
    assert len({tuple(row) for row in data.factors}) == 108
    for k, grid in enumerate(data.factor_values):
        np.testing.assert_array_equal(data.values[:, k], grid[data.factors[:, k]])
    assert data.factor_values[2].max() == pytest.approx(math.pi / 4)
    np.testing.assert_array_equal(data.images, sprites.render(data.values))


def test_the_same_seed_gives_the_same_set_and_another_seed_another_order():
    first, again = sprites.make_sprites(**SMALL, seed=3), sprites.make_sprites(**SMALL, seed=3)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.factors, again.factors)
    other = sprites.make_sprites(**SMALL, seed=4)
    assert not np.array_equal(first.factors, other.factors)
    subset = sprites.make_sprites(**SMALL, num_images=20, seed=3)
    assert len(subset) == 20 and len({tuple(row) for row in subset.factors}) == 20


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_the_centre_of_mass_follows_x_and_y(shape):
    positions = np.linspace(0, 1, 5)
    across = np.array([centre_of_mass(sprite(shape, x=x)) for x in positions])
    down = np.array([centre_of_mass(sprite(shape, y=y)) for y in positions])
    assert np.all(np.diff(across[:, 1]) > 1.0) and np.ptp(across[:, 0]) < 0.5
    assert np.all(np.diff(down[:, 0]) > 1.0) and np.ptp(down[:, 1]) < 0.5


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_the_area_follows_the_scale(shape):
    areas = np.array([sprite(shape, scale=s).sum() for s in np.linspace(0.5, 1.0, 6)])
    assert np.all(np.diff(areas) >= 0) and areas[-1] > areas[2] > areas[0]
    assert 2.5 < areas[-1] / areas[0] < 7  # area grows like scale squared (x4), in whole pixels


def test_shape_and_orientation_change_the_mask():
    masks = [sprite(shape) for shape in range(3)]
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.sum(masks[a] != masks[b]) >= 10, (a, b)
    for shape in range(3):
        turned = sprite(shape, orientation=math.pi / 4)
        assert np.sum(turned != masks[shape]) >= 10
        assert abs(turned.sum() - masks[shape].sum()) < 0.2 * masks[shape].sum()  # same size


def test_the_largest_sprites_stay_inside_the_image():
    corners = [[shape, 1.0, angle, x, y] for shape in range(3) for angle in (0.0, math.pi / 4)
               for x in (0.0, 1.0) for y in (0.0, 1.0)]
    images = sprites.render(np.array(corners))[..., 0]
    assert np.all(images.sum(axis=(1, 2)) > 0)
    edges = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    assert edges.max() == 0.0


def test_other_image_sizes():
    data = sprites.make_sprites(**SMALL, image_size=32)
    assert data.images.shape == (108, 32, 32, 1)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(num_scales=0), ValueError, "num_scales"),
    (dict(num_positions=2.5), TypeError, "num_positions"),
    (dict(num_images=10_000, **SMALL), ValueError, "combinations"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(image_size=4), ValueError, "image_size"),
])
def test_make_sprites_names_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        sprites.make_sprites(**kwargs)


@pytest.mark.parametrize("values, match", [
    (np.zeros((2, 4)), "shape \\(n, 5\\)"),
    ([[3, 1.0, 0.0, 0.5, 0.5]], "shape indices"),
    ([[0, 0.0, 0.0, 0.5, 0.5]], "scales"),
    ([[0, 1.0, 0.0, 1.5, 0.5]], "x and y"),
])
def test_render_names_bad_values(values, match):
    with pytest.raises(ValueError, match=match):
        sprites.render(values)
