"""Mixed precision and tf.distribute (two logical CPU devices stand in for two GPUs)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import vae_keras as vk
from conftest import REPO_ROOT, TOY_SHAPE, make_bar_images


@pytest.fixture
def mixed_precision():
    policy = vk.performance.set_precision("mixed")
    yield policy
    vk.performance.set_precision("float32")


def test_mixed_precision_trains_on_cpu_without_nan_and_keeps_losses_in_float32(mixed_precision):
    assert mixed_precision == "mixed_bfloat16"  # no GPU here: bfloat16 on the CPU
    keras.utils.set_random_seed(0)
    images = make_bar_images(512)
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(32,))
    assert model.encoder.layers[1].compute_dtype == "bfloat16"
    terms = model.compute_loss_terms(images[:8])
    assert all(value.dtype == "float32" for value in terms.values())
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(images, epochs=4, batch_size=64, verbose=0).history
    assert np.all(np.isfinite(history["loss"])) and history["loss"][-1] < history["loss"][0]
    assert np.isfinite(model.elbo(images[:64]))


@pytest.mark.parametrize("name", ["mirrored", "multi_worker"])
def test_distribution_strategies_are_refused_where_keras_reports_wrong_losses(monkeypatch, name):
    import keras

    monkeypatch.setattr(keras, "__version__", "3.9.2")
    with pytest.raises(ValueError, match=r"Keras 3\.10 or newer .*keras>=3\.10"):
        vk.performance.make_strategy(name)
    vk.performance.make_strategy("default")  # one device: nothing to sum across replicas


def test_precision_and_strategy_names_are_checked():
    with pytest.raises(ValueError, match="float32"):
        vk.performance.set_precision("half")
    with pytest.raises(ValueError, match="mirrored"):
        vk.performance.make_strategy("tpu")


def test_default_compile_options_are_used_unless_overridden():
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(8,))
    model.compile()
    assert model.steps_per_execution == vk.performance.default_compile_options()["steps_per_execution"]
    model.compile(steps_per_execution=3)
    assert model.steps_per_execution == 3


MIRRORED_SCRIPT = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
sys.path.insert(0, "tests")
import vae_keras as vk
from conftest import make_bar_images

images = make_bar_images(512, seed=3)

def run(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = vk.VAE(latent_dim=2, image_shape=(8, 8, 1), hidden_units=(32,))
        # SGD, not Adam: Adam would hide a wrongly scaled gradient (it is scale-invariant).
        model.compile(optimizer=keras.optimizers.SGD(0.01), steps_per_execution=1)
    history = model.fit(images, epochs=4, batch_size=64, shuffle=False, verbose=0).history
    return history["loss"], strategy.num_replicas_in_sync

single, one = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
mirrored, two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
print(json.dumps({"single": single, "mirrored": mirrored, "replicas": [one, two]}))
"""


def test_mirrored_strategy_matches_a_single_device():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True,
                            text=True, cwd=REPO_ROOT, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = json.loads(result.stdout.strip().splitlines()[-1])
    assert losses["replicas"] == [1, 2]
    # Same data, seed and initial weights; only the sampling noise is drawn per replica,
    # so the losses agree closely but not to the last digit.
    np.testing.assert_allclose(losses["mirrored"], losses["single"], rtol=0.02)
    assert losses["mirrored"][-1] < losses["mirrored"][0]
