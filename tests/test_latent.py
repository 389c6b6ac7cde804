"""Interpolation and latent arithmetic."""

import numpy as np
import pytest

from vae_keras import latent


def test_lerp_is_a_straight_line_with_both_ends():
    path = latent.lerp(np.zeros(3), np.array([2.0, 4.0, 6.0]), steps=3)
    np.testing.assert_allclose(path, [[0, 0, 0], [1, 2, 3], [2, 4, 6]])


def test_slerp_keeps_the_norm_between_codes_of_equal_norm():
    start, end = np.array([3.0, 0.0, 0.0]), np.array([0.0, 3.0, 0.0])
    path = latent.slerp(start, end, steps=9)
    np.testing.assert_allclose(path[[0, -1]], [start, end], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 3.0, rtol=1e-6)
    # lerp's midpoint falls inside the sphere: 3 / sqrt(2)
    assert np.linalg.norm(latent.lerp(start, end, 9)[4]) == pytest.approx(3 / np.sqrt(2), rel=1e-6)


def test_slerp_of_parallel_codes_is_lerp():
    np.testing.assert_allclose(latent.slerp(np.ones(2), 2 * np.ones(2), 4),
                               latent.lerp(np.ones(2), 2 * np.ones(2), 4), rtol=1e-6)


def test_attribute_vector_and_arithmetic():
    with_attribute = np.array([[1.0, 5.0], [3.0, 5.0]])
    without = np.array([[0.0, 1.0]])
    vector = latent.attribute_vector(with_attribute, without)
    np.testing.assert_allclose(vector, [2.0, 4.0])
    np.testing.assert_allclose(latent.add_attribute(np.zeros((2, 2)), vector, 0.5), [[1, 2], [1, 2]])


def test_argument_errors():
    with pytest.raises(ValueError, match="steps"):
        latent.lerp(np.zeros(2), np.ones(2), steps=1)
    with pytest.raises(ValueError, match="one code"):
        latent.slerp(np.zeros((2, 2)), np.ones(2))
    with pytest.raises(ValueError, match="same width"):
        latent.attribute_vector(np.zeros((2, 3)), np.zeros((2, 4)))


def test_interpolate_and_arithmetic_decode_images(trained_toy_vae):
    model, images = trained_toy_vae
    strip = latent.interpolate(model, images[0], images[1], steps=5, method="slerp")
    assert strip.shape == (5, 8, 8, 1)
    np.testing.assert_allclose(strip[0], model.reconstruct(images[:1])[0], atol=1e-5)
    assert latent.arithmetic(model, images[0], images[1], images[2]).shape == (8, 8, 1)
    with pytest.raises(ValueError, match="slerp"):
        latent.interpolate(model, images[0], images[1], method="cubic")


def test_grid_step_distances_grow_with_the_offset_on_a_smooth_grid():
    # Images that are a linear function of the grid position: distance proportional to offset.
    size = 6
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    images = np.stack([rows.ravel(), cols.ravel(), np.zeros(size * size)], axis=1)
    distances = latent.grid_step_distances(images, size, offsets=(1, 3))
    assert distances[1].shape == (2 * size * (size - 1),)
    np.testing.assert_allclose(distances[1], 1.0)
    np.testing.assert_allclose(distances[3], 3.0)


def test_grid_step_distances_refuses_a_grid_of_the_wrong_size():
    with pytest.raises(ValueError, match="grid has 16 images"):
        latent.grid_step_distances(np.zeros((15, 4)), 4)
    with pytest.raises(ValueError, match="offset 4 does not fit"):
        latent.grid_step_distances(np.zeros((16, 4)), 4, offsets=(4,))
