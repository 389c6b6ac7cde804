"""Train a tiny VAE for tests/test_multi_worker.py, as one worker or as the reference.

    python tests/multi_worker_script.py worker OUT.json      # TF_CONFIG names the cluster
    python tests/multi_worker_script.py reference OUT.json   # one process, no cluster

Every run trains the same model (same seed, same initial weights) on the same
global batches of 64 images with plain SGD (Adam would hide a wrongly scaled
gradient), and writes its per-epoch losses, final weights and replica count as JSON.

- ``worker``: ``vk.performance.make_strategy("multi_worker")``, one replica per process. Each worker
  builds the same global dataset; tf.data's auto-sharding (DATA: every worker reads
  the whole dataset and keeps its part) gives each worker half of every global batch.
- ``reference``: one process, two runs: on one device (the plain single-process
  run) and under ``MirroredStrategy`` over two logical CPU devices, which splits each
  batch between two replicas as the two workers do, so both draw the sampling
  noise the same way the workers do.

The strategies are made before any TensorFlow op runs, as both
``MultiWorkerMirroredStrategy`` and logical devices require.
"""

import json
import pathlib
import sys

TESTS = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS.parent), str(TESTS)]  # this checkout's vae_keras, and conftest
import vae_keras as vk  # noqa: E402  (first, so TensorFlow loads quietly)
from conftest import TOY_SHAPE, make_bar_images  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

ROLE, OUT = sys.argv[1], pathlib.Path(sys.argv[2])
if ROLE == "worker":
    STRATEGIES = {"multi_worker": vk.performance.make_strategy("multi_worker")}
else:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    STRATEGIES = {"single": tf.distribute.OneDeviceStrategy("/cpu:0"),
                  "mirrored": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])}

GLOBAL_BATCH = 64
EPOCHS = 3


def train(strategy):
    """Per-epoch losses, final weights and replica count of one short training run."""
    keras.utils.set_random_seed(0)
    images = make_bar_images(8 * GLOBAL_BATCH, seed=3)
    with strategy.scope():
        model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(32,))
        model.compile(optimizer=keras.optimizers.SGD(0.05), steps_per_execution=1)
    # The same global dataset everywhere: batches of GLOBAL_BATCH in a fixed order.
    dataset = vk.make_dataset(images, batch_size=GLOBAL_BATCH, shuffle=False)
    history = model.fit(dataset, epochs=EPOCHS, verbose=0).history
    return {"loss": history["loss"],
            "weights": [np.asarray(w).ravel().tolist() for w in model.get_weights()],
            "replicas": strategy.num_replicas_in_sync}


results = {name: train(strategy) for name, strategy in STRATEGIES.items()}
OUT.write_text(json.dumps(results))
