"""Training throughput: vae_keras against the tutorial-style reference, in one run.

Both train the same convolutional architecture (benchmarks/reference_vae.py) at
the same batch size on the same MNIST images. Epochs alternate between the
implementations (reference, package, reference, ...) so that machine noise hits
both alike; the first epoch of each is warm-up (tracing) and is not timed. The
table reports images per second (median over timed epochs), the ratio to the
reference, the achieved GFLOP/s next to this machine's measured float32 matmul
peak, and the loss of each epoch.

Ablation variants isolate where time goes: the input pipeline alone, a
compute-only step on a fixed batch, XLA, steps_per_execution.

    python benchmarks/throughput.py                       # reference vs package defaults
    python benchmarks/throughput.py --variants all        # plus the ablation rows
    python benchmarks/throughput.py --images 20000 --epochs 3 --threads 2
"""

import argparse
import os
import pathlib
import platform
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per implementation")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0,
                        help="intra-op threads (0: TensorFlow's default)")
    parser.add_argument("--variants", default="default",
                        help="'default' (reference vs package), 'all', or a comma list of "
                             "reference,package,package_numpy,package_xla,package_spe1,"
                             "package_bf16")
    parser.add_argument("--data-dir", default=None)
    return parser.parse_args()


ARGS = parse_args()
import tensorflow as tf  # noqa: E402  (threads must be set before TensorFlow starts)

if ARGS.threads:
    tf.config.threading.set_intra_op_parallelism_threads(ARGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(ARGS.threads)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import reference_vae  # noqa: E402
import vae_keras as vk  # noqa: E402
from vae_keras import performance  # noqa: E402


def matmul_peak_gflops(size=2048, repeats=20):
    """Best float32 matmul rate over a few runs: this machine's practical ceiling."""
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


class Runner:
    """One implementation: a model and a way to run one epoch of fit on the images."""

    def __init__(self, name, images, batch_size):
        self.name, self.images, self.batch_size = name, images, batch_size
        self.seconds, self.losses = [], []
        keras.utils.set_random_seed(0)
        if name == "reference":
            self.model = reference_vae.build_reference()
            self.data, self.fit_kwargs = images, {"batch_size": batch_size, "shuffle": True}
            return
        if name == "package_bf16":  # layers take the policy in force when they are built
            vk.performance.set_precision("mixed")
        self.model = reference_vae.build_package_model()
        vk.performance.set_precision("float32")
        compile_kwargs = {}
        if name == "package_xla":
            compile_kwargs["jit_compile"] = True
        if name == "package_spe1":
            compile_kwargs["steps_per_execution"] = 1
        self.model.compile(optimizer=keras.optimizers.Adam(), **compile_kwargs)
        if name == "package_numpy":
            self.data, self.fit_kwargs = images, {"batch_size": batch_size, "shuffle": True}
        else:
            self.data = vk.make_dataset(images, batch_size, seed=0)
            self.fit_kwargs = {}

    def epoch(self, timed=True):
        start = time.perf_counter()
        history = self.model.fit(self.data, epochs=1, verbose=0, **self.fit_kwargs)
        elapsed = time.perf_counter() - start
        if timed:
            self.seconds.append(elapsed)
        self.losses.append(history.history["loss"][-1])

    def images_per_second(self):
        return len(self.images) / statistics.median(self.seconds)


def pipeline_only(images, batch_size):
    """Images per second of the input pipeline alone (no training)."""
    dataset = vk.make_dataset(images, batch_size, seed=0)
    for _ in dataset:
        pass
    start = time.perf_counter()
    for _ in dataset:
        pass
    return len(images) / (time.perf_counter() - start)


def step_only(model, images, batch_size, steps=60):
    """Images per second of the package's compiled train step on one fixed batch."""
    batch = tf.constant(images[:batch_size])
    train_function = tf.function(model.train_step)
    train_function(batch)
    start = time.perf_counter()
    for _ in range(steps):
        logs = train_function(batch)
    float(logs["loss"])
    return steps * batch_size / (time.perf_counter() - start)


def main():
    (x_train, _), _ = vk.load_mnist(ARGS.data_dir)
    images = x_train[:ARGS.images]
    names = {"default": ["reference", "package"],
             "all": ["reference", "package", "package_numpy", "package_spe1", "package_xla",
                     "package_bf16"]}
    names = names.get(ARGS.variants, ARGS.variants.split(","))
    flops = reference_vae.training_flops_per_image()
    peak = matmul_peak_gflops()
    runners = [Runner(name, images, ARGS.batch_size) for name in names]
    settings = performance.describe_defaults()
    for runner in runners:  # warm-up epoch: tracing and first-touch costs
        runner.epoch(timed=False)
    for _ in range(ARGS.epochs):
        for runner in runners:
            runner.epoch()

    reference = next((r for r in runners if r.name == "reference"), None)
    print(f"\nTraining throughput, {len(images)} MNIST images, batch {ARGS.batch_size}, "
          f"{ARGS.epochs} timed epochs each (alternating), after 1 warm-up epoch")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"threads {'default' if not ARGS.threads else ARGS.threads}; "
          f"package defaults here: {settings}")
    print(f"training cost: {flops / 1e6:.1f} MFLOP per image; float32 matmul peak "
          f"{peak:.0f} GFLOP/s\n")
    header = (f"| implementation | images/s (median) | min-max | vs reference | GFLOP/s | "
              f"% of matmul peak | loss per epoch |")
    print(header)
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for runner in runners:
        rate = runner.images_per_second()
        rates = sorted(len(images) / s for s in runner.seconds)
        ratio = f"{rate / reference.images_per_second():.2f}x" if reference else "-"
        gflops = rate * flops / 1e9
        losses = ", ".join(f"{loss:.1f}" for loss in runner.losses)
        print(f"| {runner.name} | {rate:,.0f} | {rates[0]:,.0f}-{rates[-1]:,.0f} | {ratio} | "
              f"{gflops:.1f} | {100 * gflops / peak:.0f}% | {losses} |")
    package = next((r for r in runners if r.name == "package"), None)
    if package is not None:
        print(f"\nwhere the time goes (package): input pipeline alone "
              f"{pipeline_only(images, ARGS.batch_size):,.0f} images/s; compiled train step on "
              f"a fixed batch {step_only(package.model, images, ARGS.batch_size):,.0f} images/s")


if __name__ == "__main__":
    main()
