"""Training throughput: vae_keras against the tutorial-style reference, in one run.

Both train the same convolutional architecture (benchmarks/reference_vae.py) at
the same batch size on the same MNIST images, each the way its users run it: one
``fit`` call of several epochs (the reference on NumPy arrays with Keras's
defaults, the package on ``vk.make_dataset``). Rounds alternate between the
implementations (reference, package, reference, ...) so that machine noise hits
both alike; a first, one-epoch round of each is warm-up (tracing) and is not
timed. The table reports images per second (median over rounds), the ratio to
the reference, the achieved GFLOP/s next to this machine's measured float32
matmul peak, and the loss of each epoch.

The ratio is the median over rounds of (reference round time / this round's
time), the two rounds run back to back, so slow spells of the shared machine
hit both sides of each ratio.

Ablation variants isolate where time goes:
- ``package_keras_fit``: the package's model through Keras's plain ``fit``, which
  builds new dataset iterators every epoch (what ``VAE.fit`` avoids);
- ``package_numpy``: the package's model fed NumPy arrays, as the reference is;
- ``package_xla``, ``package_spe8``: XLA, 8 steps per execution;
- ``package_bf16``: mixed bfloat16.
The input pipeline alone and a compiled step on a fixed batch are timed after;
``--step-only`` compares the compiled steps of all variants on a fixed batch,
interleaved, which isolates the arithmetic (precision, kernels) from the loop.

    python benchmarks/throughput.py                       # reference vs package defaults
    python benchmarks/throughput.py --variants all        # plus the ablation rows
    python benchmarks/throughput.py --images 10000 --epochs-per-round 3 --rounds 6
    python benchmarks/throughput.py --step-only --variants reference,package,package_bf16
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
    parser.add_argument("--images", type=int, default=60000, help="training images per epoch")
    parser.add_argument("--rounds", type=int, default=4, help="timed rounds per implementation")
    parser.add_argument("--epochs-per-round", type=int, default=2,
                        help="epochs of the one fit call that makes a round")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0,
                        help="intra-op threads (0: TensorFlow's default)")
    parser.add_argument("--variants", default="default",
                        help="'default' (reference vs package), 'all', or a comma list of "
                             "reference,package,package_keras_fit,package_numpy,package_xla,"
                             "package_spe8,package_bf16")
    parser.add_argument("--step-only", action="store_true",
                        help="only the interleaved compiled-step comparison on a fixed batch")
    parser.add_argument("--data-dir", default=None)
    return parser.parse_args()


ARGS = parse_args()
import tensorflow as tf  # noqa: E402  (threads must be set before TensorFlow starts)

if ARGS.threads:
    tf.config.threading.set_intra_op_parallelism_threads(ARGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(ARGS.threads)

import keras  # noqa: E402

import reference_vae  # noqa: E402
from flops import matmul_peak_gflops  # noqa: E402
import vae_keras as vk  # noqa: E402
from vae_keras import performance  # noqa: E402


class Runner:
    """One implementation: a model, its data, and a timed round of ``fit`` on them."""

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
        if name == "package_spe8":
            compile_kwargs["steps_per_execution"] = 8
        self.model.compile(optimizer=keras.optimizers.Adam(), **compile_kwargs)
        if name == "package_numpy":
            self.data, self.fit_kwargs = images, {"batch_size": batch_size, "shuffle": True}
        else:
            self.data = vk.make_dataset(images, batch_size, seed=0)
            self.fit_kwargs = {}

    def round(self, epochs, timed=True):
        """One ``fit`` call of ``epochs`` epochs."""
        fit = keras.Model.fit if self.name == "package_keras_fit" else type(self.model).fit
        start = time.perf_counter()
        history = fit(self.model, self.data, epochs=epochs, verbose=0, **self.fit_kwargs)
        elapsed = time.perf_counter() - start
        if timed:
            self.seconds.append(elapsed)
            self.losses += history.history["loss"]

    def images_per_second(self, epochs_per_round):
        return epochs_per_round * len(self.images) / statistics.median(self.seconds)

    def paired_ratio(self, reference):
        """Median over rounds of the reference's round time over this one's."""
        return statistics.median(r / s for r, s in zip(reference.seconds, self.seconds))


def pipeline_only(images, batch_size):
    """Images per second of the input pipeline alone (no training)."""
    dataset = vk.make_dataset(images, batch_size, seed=0)
    for _ in dataset:
        pass
    start = time.perf_counter()
    for _ in dataset:
        pass
    return len(images) / (time.perf_counter() - start)


def interleaved_steps(runners, images, batch_size, rounds=30, steps=15):
    """Compiled train steps on one fixed batch, implementations interleaved.

    No input pipeline and no ``fit`` loop: the arithmetic alone, for comparing
    precisions and kernels. Returns {name: (median images/s, median paired ratio
    to the first runner)}.
    """
    batch = tf.constant(images[:batch_size])
    functions = {}
    for runner in runners:
        jit = runner.name == "package_xla"
        functions[runner.name] = tf.function(runner.model.train_step, jit_compile=jit)
        for _ in range(5):
            functions[runner.name](batch)
    rates = {runner.name: [] for runner in runners}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            for _ in range(steps):
                logs = function(batch)
            float(logs["loss"])
            rates[name].append(steps * batch_size / (time.perf_counter() - start))
    first = rates[runners[0].name]
    return {name: (statistics.median(r), statistics.median(a / b for a, b in zip(r, first)))
            for name, r in rates.items()}


def print_interleaved_steps(runners, images):
    results = interleaved_steps(runners, images, ARGS.batch_size)
    print(f"\nCompiled train step on a fixed batch of {ARGS.batch_size}, implementations "
          f"interleaved (30 rounds of 15 steps; ratio: median of paired ratios to "
          f"{runners[0].name})\n")
    print("| implementation | images/s (median) | ratio |")
    print("| --- | ---: | ---: |")
    for name, (rate, ratio) in results.items():
        print(f"| {name} | {rate:,.0f} | {ratio:.2f}x |")


def main():
    (x_train, _), _ = vk.load_mnist(ARGS.data_dir)
    images = x_train[:ARGS.images]
    names = {"default": ["reference", "package"],
             "all": ["reference", "package", "package_keras_fit", "package_numpy",
                     "package_spe8", "package_xla", "package_bf16"]}
    names = names.get(ARGS.variants, ARGS.variants.split(","))
    flops = reference_vae.training_flops_per_image()
    peak = matmul_peak_gflops()
    runners = [Runner(name, images, ARGS.batch_size) for name in names]
    settings = performance.describe_defaults()
    if ARGS.step_only:
        for runner in runners:  # variables and optimizer slots, as fit would build them
            runner.model.optimizer.build(runner.model.trainable_variables)
        print_interleaved_steps(runners, images)
        return
    for runner in runners:  # warm-up: tracing and first-touch costs
        runner.round(1, timed=False)
    for _ in range(ARGS.rounds):
        for runner in runners:
            runner.round(ARGS.epochs_per_round)

    reference = next((r for r in runners if r.name == "reference"), None)
    print(f"\nTraining throughput, {len(images)} MNIST images, batch {ARGS.batch_size}, "
          f"{ARGS.rounds} timed rounds of {ARGS.epochs_per_round} epochs each (one fit call "
          f"per round, implementations alternating), after a 1-epoch warm-up")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"threads {'default' if not ARGS.threads else ARGS.threads}; "
          f"package defaults here: {settings}")
    print(f"training cost: {flops / 1e6:.1f} MFLOP per image; float32 matmul peak "
          f"{peak:.0f} GFLOP/s\n")
    header = (f"| implementation | images/s (median) | min-max | vs reference (paired) | GFLOP/s | "
              f"% of matmul peak | loss per epoch |")
    print(header)
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for runner in runners:
        rate = runner.images_per_second(ARGS.epochs_per_round)
        rates = sorted(ARGS.epochs_per_round * len(images) / s for s in runner.seconds)
        ratio = f"{runner.paired_ratio(reference):.2f}x" if reference else "-"
        gflops = rate * flops / 1e9
        losses = ", ".join(f"{loss:.1f}" for loss in runner.losses)
        print(f"| {runner.name} | {rate:,.0f} | {rates[0]:,.0f}-{rates[-1]:,.0f} | {ratio} | "
              f"{gflops:.1f} | {100 * gflops / peak:.0f}% | {losses} |")
    package = next((r for r in runners if r.name == "package"), None)
    if package is not None:
        step_rate, _ = interleaved_steps([package], images, ARGS.batch_size, rounds=4)["package"]
        print(f"\nwhere the time goes (package): input pipeline alone "
              f"{pipeline_only(images, ARGS.batch_size):,.0f} images/s; compiled train step on "
              f"a fixed batch {step_rate:,.0f} images/s")


if __name__ == "__main__":
    main()
