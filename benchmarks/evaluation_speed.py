"""How fast the test-set likelihood is computed, against the machine's matmul peak.

The importance-weighted bound decodes K codes per test image: 10,000 images x
K = 1000 is 10^7 decoder passes, so the decoder's arithmetic sets the floor.
This script counts the decoder's FLOPs per pass (dense layers 2 x inputs x
outputs; convolutions and transposed convolutions 2 x k x k x C_in x C_out per
position of their input grid, the smaller grid for a transposed one), measures
the float32 matmul peak here, times
:func:`vae_keras.evaluation.importance_weighted_log_likelihood` on the
dynamically binarized MNIST test images, and prints seconds, GFLOP/s and the
share of peak, with the estimate itself.

    python benchmarks/evaluation_speed.py                                 # dense and conv, untrained
    python benchmarks/evaluation_speed.py --models runs/a/dense.keras runs/b/conv.keras
    python benchmarks/evaluation_speed.py --images 1000 --precisions float32 bfloat16

Untrained models cost the same arithmetic as trained ones; pass trained models
to print an NLL worth reading.
"""

import argparse
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import vae_keras as vk  # noqa: E402
from flops import decoder_flops, matmul_peak_gflops  # noqa: E402

BUILT = {
    "dense": dict(latent_dim=32, architecture="dense", hidden_units=(512, 256)),
    "conv": dict(latent_dim=32, architecture="conv", filters=(32, 64), hidden_units=(256,)),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(BUILT),
                        help="'dense', 'conv' (built untrained) or paths to .keras files")
    parser.add_argument("--samples", type=int, default=1000, help="K")
    parser.add_argument("--images", type=int, default=10000, help="test images evaluated")
    parser.add_argument("--precisions", nargs="+", default=["float32"],
                        choices=list(vk.evaluation.PRECISIONS),
                        help="decoder precisions to time, e.g. float32 bfloat16")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    _, (x_test, _) = vk.load_mnist(args.data_dir)
    test = vk.data.binarize(x_test[:args.images], seed=0)
    # The peak is measured again after every timed evaluation and the best is kept: on a
    # shared machine one measurement can land in a slow moment and flatter the shares.
    peaks = [matmul_peak_gflops()]
    bfloat16_peak = matmul_peak_gflops(dtype=tf.bfloat16)
    print(f"matmul peak: float32 {peaks[0]:.0f} GFLOP/s, bfloat16 {bfloat16_peak:.0f} GFLOP/s; "
          f"{len(test):,} test images, K={args.samples}; {vk.performance.describe_defaults()}",
          flush=True)
    rows = []
    for name in args.models:
        if name in BUILT:
            keras.utils.set_random_seed(0)
            model = vk.VAE(**BUILT[name])
        else:
            model = keras.saving.load_model(name)
        flops = decoder_flops(model.decoder)
        for precision in args.precisions:
            # Trace (and for bfloat16 copy the decoder) outside the timed call.
            vk.evaluation.importance_weighted_log_likelihood(model, test[:100], args.samples,
                                                             seed=0, precision=precision)
            started = time.perf_counter()
            log_likelihood = vk.evaluation.importance_weighted_log_likelihood(
                model, test, num_samples=args.samples, seed=0, precision=precision)
            seconds = time.perf_counter() - started
            gflops = flops * args.samples * len(test) / seconds / 1e9
            rows.append((os.path.basename(name), precision, flops, seconds, gflops,
                         -float(np.mean(log_likelihood))))
            print(f"{name}, {precision}: {seconds:.1f} s, {gflops:.0f} GFLOP/s, "
                  f"NLL {rows[-1][-1]:.3f}", flush=True)
            peaks.append(matmul_peak_gflops())

    peak = max(peaks)
    print(f"\nfloat32 matmul peak, best of {len(peaks)} measurements: {peak:.0f} GFLOP/s "
          f"(lowest {min(peaks):.0f})")
    print(f"| model | decoder | MFLOP per pass | seconds | GFLOP/s | share of float32 peak | "
          f"test NLL |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, precision, flops, seconds, gflops, nll in rows:
        print(f"| {name} | {precision} | {flops / 1e6:.2f} | {seconds:.1f} | {gflops:.0f} | "
              f"{100 * gflops / peak:.0f}% | {nll:.3f} |")


if __name__ == "__main__":
    main()
