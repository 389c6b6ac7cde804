"""Peak memory of a training run and of the importance-weighted NLL evaluation.

Each measurement runs in a fresh process, so its peak resident set size
(``ru_maxrss``) is its own. The evaluation streams images in batches and
decodes at most ``max_decoded`` codes at a time, so its memory should not grow
with K; the table shows it for several K, with K = 5000 on the full 10,000-image
test set as the case the README promises stays under 4 GB.

    python benchmarks/memory.py                     # train 3 epochs, evaluate K=100,1000,5000
    python benchmarks/memory.py --samples 100 1000  # quicker
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
import keras, numpy as np
import vae_keras as vk
task = json.loads(sys.argv[1])
(x_train, _), (x_test, _) = vk.load_mnist()
start = time.perf_counter()
if task["kind"] == "train":
    keras.utils.set_random_seed(0)
    model = vk.VAE(latent_dim=16, architecture=task["architecture"])
    model.compile()
    model.fit(vk.make_dataset(x_train, 128, binarize=True, seed=0), epochs=task["epochs"], verbose=0)
    model.save(task["model"])
    result = {}
else:
    model = keras.models.load_model(task["model"])
    test = vk.data.binarize(x_test[:task["images"]], seed=0)
    result = vk.evaluation.negative_log_likelihood(model, test, num_samples=task["samples"], seed=0)
result["seconds"] = time.perf_counter() - start
result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
"""


def run(task):
    output = subprocess.run([sys.executable, "-c", CHILD, json.dumps(task)], cwd=ROOT,
                            capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if output.returncode != 0:
        raise SystemExit(output.stderr[-3000:])
    return json.loads(output.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="dense", choices=["dense", "conv"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=10000, help="test images evaluated")
    parser.add_argument("--samples", type=int, nargs="+", default=[100, 1000, 5000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = str(pathlib.Path(folder) / "model.keras")
        rows = [("train", f"{args.epochs} epochs, 60,000 images",
                 run({"kind": "train", "architecture": args.architecture,
                      "epochs": args.epochs, "model": model}))]
        for samples in args.samples:
            rows.append((f"NLL, K={samples}", f"{args.images:,} test images",
                         run({"kind": "evaluate", "model": model, "samples": samples,
                              "images": args.images})))
    print(f"\nPeak resident memory, {args.architecture} VAE (latent 16), one fresh process each\n")
    print("| task | data | peak RSS (MB) | seconds | NLL (nats) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for task, data, result in rows:
        nll = f"{result['nll_nats']:.2f}" if "nll_nats" in result else "-"
        print(f"| {task} | {data} | {result['peak_rss_mb']:,.0f} | {result['seconds']:.0f} | {nll} |")


if __name__ == "__main__":
    main()
