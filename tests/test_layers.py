"""The Sampling layer: shape, distribution, gradients, seeding, serialization."""

import keras
import numpy as np
import pytest

import vae_keras as vk

from vae_keras import Sampling


def test_samples_have_the_posterior_mean_and_variance():
    keras.utils.set_random_seed(0)
    mean = np.tile(np.array([[1.5, -2.0, 0.0]], np.float32), (50000, 1))
    log_var = np.tile(np.log(np.array([[0.25, 4.0, 1.0]], np.float32)), (50000, 1))
    z = keras.ops.convert_to_numpy(Sampling()([mean, log_var]))
    assert z.shape == (50000, 3)
    np.testing.assert_allclose(z.mean(axis=0), [1.5, -2.0, 0.0], atol=0.03)
    np.testing.assert_allclose(z.var(axis=0), [0.25, 4.0, 1.0], rtol=0.03)


def test_gradients_flow_to_mean_and_log_variance():
    from vae_keras.autodiff import gradients

    layer = Sampling(seed=1)
    zeros = np.zeros((4, 2), np.float32)
    _, (grad_mean, grad_log_var) = gradients(
        lambda mean, log_var: keras.ops.sum(keras.ops.square(layer([mean, log_var]))),
        zeros, zeros)
    assert np.all(np.isfinite(grad_mean)) and np.any(grad_mean != 0)
    assert np.any(grad_log_var != 0)


def test_global_seed_makes_draws_repeatable():
    inputs = [np.zeros((3, 2), np.float32), np.zeros((3, 2), np.float32)]
    keras.utils.set_random_seed(42)
    first = keras.ops.convert_to_numpy(Sampling()(inputs))
    keras.utils.set_random_seed(42)
    second = keras.ops.convert_to_numpy(Sampling()(inputs))
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, keras.ops.convert_to_numpy(Sampling()(inputs)))


def test_config_round_trip():
    layer = Sampling(seed=7, name="s")
    clone = Sampling.from_config(layer.get_config())
    assert clone.seed == 7 and clone.name == "s"
    assert keras.saving.get_registered_object("vae_keras>Sampling") is Sampling


def test_the_random_stream_survives_save_and_load(tmp_path):
    inputs = keras.Input((2,)), keras.Input((2,))
    model = keras.Model(inputs, Sampling(seed=3)(inputs))
    zeros = [np.zeros((4, 2), np.float32)] * 2
    model(zeros)
    model.save(tmp_path / "m.keras")
    expected = keras.ops.convert_to_numpy(model(zeros))
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(zeros)), expected)


def test_sampling_refuses_mismatched_shapes_with_a_clear_error():
    with pytest.raises(ValueError, match=r"same shape.*\(4, 2\).*\(4, 3\)"):
        vk.Sampling()([np.zeros((4, 2), "float32"), np.zeros((4, 3), "float32")])
    with pytest.raises(ValueError, match="pair"):
        vk.Sampling()(np.zeros((4, 2), "float32"))


def test_reparameterize_broadcasts_sample_axes():
    mean = np.array([[1.0, -1.0]], "float32")
    log_var = np.log(np.array([[4.0, 0.25]], "float32"))
    noise = np.array([[[1.0, 1.0]], [[-1.0, 2.0]]], "float32")  # (K=2, batch=1, 2)
    z = keras.ops.convert_to_numpy(vk.layers.reparameterize(mean, log_var, noise))
    np.testing.assert_allclose(z, [[[3.0, -0.5]], [[-1.0, 0.0]]], rtol=1e-6)


def test_gradients_are_those_of_the_formula_on_every_backend():
    value, (gradient_x, gradient_y) = vk.autodiff.gradients(
        lambda x, y: keras.ops.sum(x ** 2 * y), np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert value == pytest.approx(1 * 3 + 4 * 4)
    np.testing.assert_allclose(gradient_x, [2 * 1 * 3, 2 * 2 * 4])
    np.testing.assert_allclose(gradient_y, [1.0, 4.0])
    with pytest.raises(TypeError, match="at least one array"):
        vk.autodiff.gradients(lambda: 0.0)
