"""One model on every Keras 3 backend: a file saved under one loads under the others.

With its prior: the files include a model with a fitted mixture and one with a VampPrior.

Each backend runs in its own process (Keras picks its backend once, at import). A
process per backend trains a small VAE and saves it; then a process per backend
loads every saved file and reports its codes and its bounds, computed with the same
noise (vae_keras.evaluation draws it with TensorFlow's stateless generator on every
backend). The codes and bounds must agree across backends within float rounding.
Backends that are not installed are skipped; CI installs all three.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BACKENDS = [name for name, module in [("tensorflow", "tensorflow"), ("jax", "jax"),
                                      ("torch", "torch")]
            if importlib.util.find_spec(module) is not None]

SAVE = """
import sys, json
import numpy as np
import vae_keras as vk
vk.course._gpu_names()  # TensorFlow first, quietly
import keras
sys.path.insert(0, {tests!r})
from conftest import make_bar_images
keras.utils.set_random_seed(0)
images = make_bar_images(256, seed=1)
vae = vk.VAE(latent_dim=2, image_shape=(8, 8, 1), hidden_units=(16,), seed=3)
vae.compile(optimizer=keras.optimizers.Adam(3e-3))
vae.fit(vk.make_dataset(images, 64, binarize=True, seed=0), epochs=2, verbose=0,
        callbacks=[vk.KLWarmup(warmup_epochs=1)])
vae.save({path!r})
# The priors travel too: a mixture fitted after training, a VampPrior trained with the model.
vae.fit_prior_mixture(images, num_components=3, seed=0)
vae.save({mixture_path!r})
vamp = vk.VAE(latent_dim=2, image_shape=(8, 8, 1), hidden_units=(16,), seed=3,
              prior=vk.priors.VampPrior(4, seed=0))
vamp.compile(optimizer=keras.optimizers.Adam(3e-3))
vamp.fit(images, epochs=1, batch_size=64, verbose=0)
vamp.save({vamp_path!r})
conditional = vk.ConditionalVAE(latent_dim=2, num_classes=3, image_shape=(8, 8, 1),
                                hidden_units=(16,), seed=3)
conditional.compile()
conditional.fit(images, np.arange(256) % 3, epochs=1, batch_size=64, verbose=0)
conditional.save({conditional_path!r})
"""

LOAD = """
import sys, json
import numpy as np
import vae_keras as vk
vk.course._gpu_names()
import keras
sys.path.insert(0, {tests!r})
from conftest import make_bar_images
images = vk.data.binarize(make_bar_images(32, seed=2), seed=0)
labels = np.arange(32) % 3
report = {{}}
for name, path in {paths!r}.items():
    vae = keras.saving.load_model(path)
    report[name] = {{"codes": vae.encode_mean(images).tolist(),
                     "elbo": vae.elbo(images, per_image=True, seed=5).tolist(),
                     "nll": vae.nll(images, num_samples=40, per_image=True, seed=5).tolist()}}
for name, path in {conditional_paths!r}.items():
    cvae = keras.saving.load_model(path)
    report["conditional-" + name] = {{
        "codes": cvae.encode_mean(images, labels).tolist(),
        "nll": cvae.nll(images, labels, num_samples=40, per_image=True, seed=5).tolist()}}
print("REPORT" + json.dumps(report))
"""


def _run(backend, script):
    environment = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=environment, cwd=ROOT, timeout=600)
    assert result.returncode == 0, f"{backend}:\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs at least two Keras backends installed")
def test_a_file_saved_under_one_backend_gives_the_same_codes_and_bounds_under_every_other(tmp_path):
    tests = str(ROOT / "tests")
    paths = {f"{kind}-{b}": str(tmp_path / f"{kind}-{b}.keras")
             for b in BACKENDS for kind in ["vae", "mixture", "vamp"]}
    conditional_paths = {b: str(tmp_path / f"cvae-{b}.keras") for b in BACKENDS}
    for backend in BACKENDS:
        _run(backend, SAVE.format(tests=tests, path=paths[f"vae-{backend}"],
                                  mixture_path=paths[f"mixture-{backend}"],
                                  vamp_path=paths[f"vamp-{backend}"],
                                  conditional_path=conditional_paths[backend]))
    reports = {}
    for backend in BACKENDS:
        output = _run(backend, LOAD.format(tests=tests, paths=paths,
                                           conditional_paths=conditional_paths))
        reports[backend] = json.loads(output.split("REPORT", 1)[1])
    reference = reports[BACKENDS[0]]
    for backend, report in reports.items():
        for saved, values in report.items():
            for key, value in values.items():
                np.testing.assert_allclose(
                    value, reference[saved][key], rtol=1e-4, atol=1e-4,
                    err_msg=f"{key} of the model saved under {saved}, loaded under {backend}")


DATA_PARALLEL = """
import sys, json
import numpy as np
import vae_keras as vk
vk.course._gpu_names()
import jax, keras
if {parallel}:
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
sys.path.insert(0, {tests!r})
from conftest import make_bar_images
keras.utils.set_random_seed(0)
images = make_bar_images(512)
vae = vk.VAE(latent_dim=2, image_shape=(8, 8, 1), hidden_units=(32,), seed=1)
vae.compile(optimizer=keras.optimizers.Adam(3e-3))
history = vae.fit(images, epochs=3, batch_size=64, verbose=0)
print("REPORT" + json.dumps({{"devices": len(jax.devices()), "loss": history.history["loss"]}}))
"""


@pytest.mark.skipif("jax" not in BACKENDS, reason="needs JAX")
def test_jax_data_parallel_on_two_devices_trains_as_one_device_does():
    # Two logical CPU devices stand in for two GPUs: DataParallel splits each batch
    # between them and averages the gradients, which must give one device's training.
    reports = []
    for parallel in (False, True):
        environment = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2",
                           XLA_FLAGS="--xla_force_host_platform_device_count=2")
        result = subprocess.run(
            [sys.executable, "-c", DATA_PARALLEL.format(parallel=parallel,
                                                        tests=str(ROOT / "tests"))],
            capture_output=True, text=True, env=environment, cwd=ROOT, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        reports.append(json.loads(result.stdout.split("REPORT", 1)[1]))
    assert reports[1]["devices"] == 2
    np.testing.assert_allclose(reports[1]["loss"], reports[0]["loss"], rtol=1e-3)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "tensorflow"])
def test_the_command_line_trains_on_the_backend_it_is_given(backend, fake_data_dir, tmp_path):
    import keras

    output = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "vae_keras", "--backend", backend, "train", "--data-dir",
         str(fake_data_dir), "--output", str(output), "--epochs", "1", "--train-size", "300",
         "--validation-size", "100", "--test-size", "50", "--iwae-samples", "10",
         "--verbose", "0", "--batch-size", "50"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{backend} backend" in result.stdout  # printed with the settings
    metrics = json.loads((output / "metrics.json").read_text())
    assert np.isfinite(metrics["test"]["nll_nats"])
    model = keras.saving.load_model(output / "model.keras")  # and it loads here, on TensorFlow
    assert model.latent_dim == metrics["settings"]["latent_dim"]


def test_files_saved_by_version_0_1_still_load_with_the_same_codes():
    # Saved by the code of 0.1 (commit b71a362, TensorFlow only), before the train steps
    # were split by backend; loaded here on whichever backend this run uses.
    import keras

    from conftest import make_bar_images

    import vae_keras as vk

    folder = ROOT / "tests" / "data"
    expected = json.loads((folder / "saved-0.1.json").read_text())
    probe = vk.data.binarize(make_bar_images(8, seed=2), seed=0)
    vae = keras.saving.load_model(folder / "vae-0.1.keras")
    cvae = keras.saving.load_model(folder / "cvae-0.1.keras")
    autoencoder = keras.saving.load_model(folder / "ae-0.1.keras")
    np.testing.assert_allclose(vae.encode_mean(probe), expected["vae_codes"], atol=1e-5)
    np.testing.assert_allclose(cvae.encode_mean(probe, np.arange(8) % 3), expected["cvae_codes"],
                               atol=1e-5)
    np.testing.assert_allclose(autoencoder.encode(probe), expected["ae_codes"], atol=1e-5)
    np.testing.assert_allclose(vae.elbo(probe, per_image=True, seed=5), expected["vae_elbo"],
                               rtol=1e-4)
