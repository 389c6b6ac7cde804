"""The package's VAE on each Keras 3 backend, side by side in one run, as ratios to TensorFlow.

Each backend runs in its own process (Keras picks its backend at import), in rounds
that alternate between the backends (tensorflow, jax, torch, tensorflow, ...) so that
slow spells of a shared machine hit all of them alike. In each round a process
trains ``vk.VAE`` the way its users do, one ``fit`` call of several epochs on
``vk.make_dataset`` (the first epoch is warm-up: tracing and compilation, not
timed), then computes the test-set importance-weighted bound on test images.
Each backend starts from its own random weights (their generators differ), so the
NLLs differ by training noise; tests/test_backends.py shows that the same weights
give the same bound on every backend. Reported: training images per second and bound seconds, the
median over rounds, and the median over rounds of each round's ratio to
TensorFlow's.

    python benchmarks/backends.py                           # dense and conv, 3 rounds
    python benchmarks/backends.py --architectures dense --rounds 5 --images 20000
"""

import argparse
import importlib.util
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

ROUND = """
import json, time
import numpy as np
import vae_keras as vk
vk.course._gpu_names()  # TensorFlow loads quietly first (its input pipeline serves every backend)
import keras
keras.utils.set_random_seed(0)
(x_train, _), (x_test, _) = vk.load_mnist({data_dir!r})
x_train = x_train[:{images}]
test = vk.data.binarize(x_test[:{test_images}], seed=0)
options = {{"hidden_units": (512, 256)}} if {architecture!r} == "dense" else {{}}
vae = vk.VAE(latent_dim=16, architecture={architecture!r}, **options)
vae.compile(optimizer=keras.optimizers.Adam(1e-3))
dataset = vk.make_dataset(x_train, {batch_size}, binarize=True, seed=0)
times = []
class Clock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        times.append(time.perf_counter() - self.start)
history = vae.fit(dataset, epochs={epochs} + 1, verbose=0, callbacks=[Clock()])
start = time.perf_counter()
nll = vae.nll(test, num_samples={samples}, seed=0)
bound_seconds = time.perf_counter() - start
print("REPORT" + json.dumps({{"images_per_second": {images} * {epochs} / sum(times[1:]),
                             "bound_seconds": bound_seconds, "nll": nll,
                             "loss": history.history["loss"][-1],
                             "defaults": vk.performance.describe_defaults()}}))
"""


def run_round(backend, args, architecture):
    """One training-and-bound round of ``architecture`` on ``backend``, in a fresh process."""
    script = ROUND.format(data_dir=args.data_dir, images=args.images, test_images=args.test_images,
                          architecture=architecture, batch_size=args.batch_size,
                          epochs=args.epochs, samples=args.samples)
    environment = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=environment, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"{backend} ({architecture}) failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.split("REPORT", 1)[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architectures", nargs="+", default=["dense", "conv"],
                        choices=["dense", "conv"])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=10_000, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per round")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--test-images", type=int, default=500)
    parser.add_argument("--samples", type=int, default=1000, help="K of the bound")
    parser.add_argument("--data-dir", default=os.environ.get("VAE_KERAS_DATA"))
    args = parser.parse_args()
    missing = [b for b in args.backends
               if importlib.util.find_spec(b) is None]
    if missing:
        parser.error(f"not installed: {missing} (make test-backends installs jax and torch)")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}; {args.images:,} images x {args.epochs} timed epochs, "
          f"batch {args.batch_size}; bound: K = {args.samples} on {args.test_images} test images; "
          f"{args.rounds} rounds, backends alternating", flush=True)
    for architecture in args.architectures:
        rows = {backend: [] for backend in args.backends}
        for round_index in range(args.rounds):
            for backend in args.backends:
                rows[backend].append(run_round(backend, args, architecture))
                print(f"  {architecture} round {round_index + 1} {backend}: "
                      f"{rows[backend][-1]['images_per_second']:,.0f} images/s, bound "
                      f"{rows[backend][-1]['bound_seconds']:.1f} s", flush=True)
        reference = rows[args.backends[0]]
        print(f"\n{architecture} VAE (latent 16)")
        print("| backend | training images/s | ratio | bound seconds | ratio (speed) | test NLL | "
              f"defaults |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
        for backend, runs in rows.items():
            speed = statistics.median(r["images_per_second"] for r in runs)
            bound = statistics.median(r["bound_seconds"] for r in runs)
            speed_ratio = statistics.median(
                r["images_per_second"] / ref["images_per_second"] for r, ref in zip(runs, reference))
            bound_ratio = statistics.median(
                ref["bound_seconds"] / r["bound_seconds"] for r, ref in zip(runs, reference))
            print(f"| {backend} | {speed:,.0f} | {speed_ratio:.2f}x | {bound:.1f} | "
                  f"{bound_ratio:.2f}x | {runs[0]['nll']:.3f} | {runs[0]['defaults']} |")


if __name__ == "__main__":
    main()
