"""How fast can the convolutional decoder's layers run here, forward, at evaluation's batch size?

The test-set bound decodes 10^7 codes, forward only, thousands at a time, so its
speed is the decoder layers' forward speed at a large batch. This script times
each layer of the package's default convolutional decoder (filters 32-64) three
ways and prints GFLOP/s and the share of the float32 matmul peak:

- ``kernel``: TensorFlow's own transposed convolution (what Keras runs);
- ``9 taps``: one matmul of every input pixel with all 9 kernel taps,
  ``(B h w, C_in) @ (C_in, 9 C_out)``, then shifted adds into the output grid.
  It is the same function (checked against the kernel to 1e-5 relative), and
  its matmul alone is timed too;
- ``phases``: the bare matmuls of the layer as four output phases (a stride-2
  3x3 transposed convolution gives each 2x2 output block 4, 2, 2 and 1 taps),
  ``(B h w, taps C_in) @ (taps C_in, C_out)``, as if the input were already
  gathered: no data movement counted at all.

The bare-matmul rows are the ceilings of the two ways to write these layers as
matmuls; the kernel cannot beat the better of them by much.

    python benchmarks/conv_ceiling.py [--batch-size 512] [--repeats 7]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from flops import matmul_peak_gflops  # noqa: E402
from layer_costs import transposed_conv  # noqa: E402

from vae_keras.evaluation import nine_tap_transposed_conv  # noqa: E402

# The default conv decoder after its dense layer: (input grid, C_in, C_out, stride).
LAYERS = [((7, 7), 64, 64, 2), ((14, 14), 64, 32, 2), ((28, 28), 32, 1, 1)]
STRIDE_2_PHASE_TAPS = (4, 2, 2, 1)  # taps per output phase of a 3x3, stride-2 transposed conv


def _shifted(tensor, axis):
    """``tensor[m - 1]`` at position ``m`` along ``axis``, zeros at ``m = 0``."""
    paddings = [[0, 0]] * len(tensor.shape)
    paddings[axis] = [1, 0]
    kept = [slice(None)] * len(tensor.shape)
    kept[axis] = slice(0, -1)
    return tf.pad(tensor[tuple(kept)], paddings)


def transposed_conv_by_taps(x, kernel, stride):
    """The same layer as one matmul to all 9 taps, then shifted adds.

    With TensorFlow's "same" padding a transposed convolution adds
    ``x[m] w[t]`` into output ``stride * m + t - pad`` for taps ``t = 0, 1, 2``
    in each direction (``pad`` 0 for stride 2, 1 for stride 1).
    """
    if stride == 1:  # the form evaluation runs for a one-channel output layer
        return nine_tap_transposed_conv(x, kernel)
    batch, height, width, c_in = tf.shape(x)[0], x.shape[1], x.shape[2], x.shape[3]
    c_out = kernel.shape[2]
    weights = tf.reshape(tf.transpose(kernel, [3, 0, 1, 2]), [c_in, 9 * c_out])
    taps = tf.reshape(tf.matmul(tf.reshape(x, [-1, c_in]), weights),
                      [batch, height, width, 3, 3, c_out])
    # Stride 2: output 2m gets x[m] w0 + x[m - 1] w2, output 2m + 1 gets x[m] w1.
    rows_even = taps[:, :, :, 0] + _shifted(taps[:, :, :, 2], 1)
    rows_odd = taps[:, :, :, 1]

    def columns(rows):
        return rows[:, :, :, 0] + _shifted(rows[:, :, :, 2], 2), rows[:, :, :, 1]

    even_even, even_odd = columns(rows_even)
    odd_even, odd_odd = columns(rows_odd)
    blocks = tf.stack([tf.stack([even_even, even_odd], 3), tf.stack([odd_even, odd_odd], 3)], 2)
    return tf.reshape(blocks, [batch, 2 * height, 2 * width, c_out])


def best_seconds(function, args, repeats):
    """Fastest of ``repeats`` calls, after two warm-up calls."""
    for _ in range(2):
        function(*args).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args).numpy()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    matmul = tf.function(tf.matmul)
    rows = []
    for (height, width), c_in, c_out, stride in LAYERS:
        name = f"{c_in}->{c_out}, stride {stride}, {height}x{width} input"
        x = tf.constant(rng.normal(size=(args.batch_size, height, width, c_in)), tf.float32)
        kernel = tf.constant(0.1 * rng.normal(size=(3, 3, c_out, c_in)), tf.float32)
        kernel_layer = tf.function(lambda x, k, s=stride: transposed_conv(x, k, s))
        taps_layer = tf.function(lambda x, k, s=stride: transposed_conv_by_taps(x, k, s))
        want, got = kernel_layer(x, kernel), taps_layer(x, kernel)
        error = float(tf.reduce_max(tf.abs(got - want)) / tf.reduce_max(tf.abs(want)))
        assert error < 1e-5, f"the 9-tap form of {name} differs from the kernel: {error:.1e}"
        flops = 2 * args.batch_size * height * width * 9 * c_in * c_out
        pixels = args.batch_size * height * width
        rows.append((name, "kernel", flops, best_seconds(kernel_layer, (x, kernel), args.repeats)))
        rows.append((name, "9 taps, whole layer", flops,
                     best_seconds(taps_layer, (x, kernel), args.repeats)))
        inputs = tf.constant(rng.normal(size=(pixels, c_in)), tf.float32)
        weights = tf.constant(rng.normal(size=(c_in, 9 * c_out)), tf.float32)
        rows.append((name, "9 taps, matmul alone", flops,
                     best_seconds(matmul, (inputs, weights), args.repeats)))
        phase_taps = STRIDE_2_PHASE_TAPS if stride == 2 else (9,)
        seconds = 0.0
        for taps in phase_taps:  # one matmul row per input pixel and phase
            gathered = tf.constant(rng.normal(size=(pixels, taps * c_in)), tf.float32)
            weights = tf.constant(rng.normal(size=(taps * c_in, c_out)), tf.float32)
            seconds += best_seconds(matmul, (gathered, weights), args.repeats)
        rows.append((name, "phases, matmuls alone", flops, seconds))
    peak = matmul_peak_gflops()
    print(f"\nConv decoder layers, forward, batch {args.batch_size}, float32, TensorFlow "
          f"{tf.__version__}, {os.cpu_count()} cores; matmul peak {peak:.0f} GFLOP/s\n")
    print("| layer | computed as | ms | GFLOP/s | share of peak |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, how, flops, seconds in rows:
        rate = flops / seconds / 1e9
        print(f"| {name} | {how} | {1e3 * seconds:.1f} | {rate:.0f} | {rate / peak:.0%} |")


if __name__ == "__main__":
    main()
