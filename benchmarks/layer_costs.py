"""Where a training step's time goes, layer by layer, against each layer's FLOPs.

``profile_step.py`` sums the profiler's op time by op *type*; this script times
each layer of the benchmark architecture (benchmarks/reference_vae.py) on its
own, at batch 128: the forward pass, then forward plus backward (gradients for
the weights, and for the input except at the first layer, as in training). It
prints each layer's share of the summed time next to its share of the FLOPs and
the GFLOP/s its kernels reach, so a layer that costs far more than its
arithmetic stands out. Only the layers' kernels are timed (no bias, activation
or loss), so the sum is below a real step's time.

The last rows time two other ways to compute the decoder's output layer (a 3x3,
stride-1 transposed convolution to one channel), both the same function with
the same weights, checked against it to 1e-5: as a depthwise convolution summed
over channels, and as a matmul to the 9 kernel taps followed by a fixed one-hot
depthwise convolution that shifts each tap into place.

    python benchmarks/layer_costs.py [--batch-size 128] [--repeats 7]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def transposed_conv(x, kernel, stride):
    """Keras's Conv2DTranspose with "same" padding: kernel (3, 3, out, in)."""
    height, width = x.shape[1] * stride, x.shape[2] * stride
    output_shape = tf.stack([tf.shape(x)[0], height, width, kernel.shape[2]])
    return tf.nn.conv2d_transpose(x, kernel, output_shape, stride, "SAME")


def output_layer_depthwise(x, kernel):
    """The output layer as a depthwise convolution summed over input channels."""
    flipped = tf.reverse(kernel, [0, 1])[:, :, 0, :, None]  # transposed = flipped correlation
    return tf.reduce_sum(tf.nn.depthwise_conv2d(x, flipped, [1, 1, 1, 1], "SAME"), -1,
                         keepdims=True)


ONE_HOT_SHIFTS = np.eye(9, dtype=np.float32).reshape(3, 3, 9, 1)  # tap t -> its 3x3 position


def output_layer_taps(x, kernel):
    """The output layer as a matmul to the 9 taps, then a fixed shift of each tap."""
    taps = tf.reshape(tf.reverse(kernel, [0, 1])[:, :, 0, :], [9, x.shape[-1]])
    per_tap = tf.matmul(x, taps, transpose_b=True)  # (batch, h, w, 9)
    shifted = tf.nn.depthwise_conv2d(per_tap, ONE_HOT_SHIFTS, [1, 1, 1, 1], "SAME")
    return tf.reduce_sum(shifted, -1, keepdims=True)


def dense(x, kernel):
    return tf.matmul(x, kernel)


def conv(x, kernel, stride):
    return tf.nn.conv2d(x, kernel, stride, "SAME")


def conv_flops(height, width, k, c_in, c_out):
    return 2 * height * width * k * k * c_in * c_out


# name, function, input shape (without batch), kernel shape, forward FLOPs per image,
# whether training needs the input's gradient
LAYERS = [
    ("encoder Conv2D 1->32, stride 2", lambda x, k: conv(x, k, 2), (28, 28, 1), (3, 3, 1, 32),
     conv_flops(14, 14, 3, 1, 32), False),
    ("encoder Conv2D 32->64, stride 2", lambda x, k: conv(x, k, 2), (14, 14, 32), (3, 3, 32, 64),
     conv_flops(7, 7, 3, 32, 64), True),
    ("encoder Dense 3136->16", dense, (3136,), (3136, 16), 2 * 3136 * 16, True),
    ("decoder Dense 2->3136", dense, (2,), (2, 3136), 2 * 2 * 3136, True),
    ("decoder Conv2DTranspose 64->64, stride 2", lambda x, k: transposed_conv(x, k, 2),
     (7, 7, 64), (3, 3, 64, 64), conv_flops(7, 7, 3, 64, 64), True),
    ("decoder Conv2DTranspose 64->32, stride 2", lambda x, k: transposed_conv(x, k, 2),
     (14, 14, 64), (3, 3, 32, 64), conv_flops(14, 14, 3, 64, 32), True),
    ("decoder Conv2DTranspose 32->1 (output)", lambda x, k: transposed_conv(x, k, 1),
     (28, 28, 32), (3, 3, 1, 32), conv_flops(28, 28, 3, 32, 1), True),
]
ALTERNATIVES = [
    ("  same output layer as depthwise + sum", output_layer_depthwise),
    ("  same output layer as 9-tap matmul + shift", output_layer_taps),
]


def best_milliseconds(function, args, repeats, calls=20):
    """Fastest mean time per call over ``repeats`` runs of ``calls`` calls."""
    for _ in range(5):
        function(*args)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            result = function(*args)
        float(tf.reduce_sum(result[0]))
        best = min(best, (time.perf_counter() - start) / calls)
    return 1e3 * best


def layer_functions(layer, needs_input_gradient):
    """Compiled forward, and forward plus backward, of ``layer(x, kernel)``."""
    @tf.function
    def forward(x, kernel):
        return [tf.reduce_sum(layer(x, kernel))]

    @tf.function
    def forward_backward(x, kernel):
        with tf.GradientTape() as tape:
            tape.watch(kernel)
            if needs_input_gradient:
                tape.watch(x)
            y = layer(x, kernel)
            loss = tf.reduce_sum(y * y)  # a non-constant upstream gradient
        sources = [x, kernel] if needs_input_gradient else [kernel]
        return [loss] + tape.gradient(loss, sources)

    return forward, forward_backward


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    output_inputs = None
    for name, layer, shape, kernel_shape, flops, needs_input_gradient in LAYERS:
        x = tf.constant(rng.normal(size=(args.batch_size,) + shape), tf.float32)
        kernel = tf.constant(0.1 * rng.normal(size=kernel_shape), tf.float32)
        forward, forward_backward = layer_functions(layer, needs_input_gradient)
        rows.append((name, flops, best_milliseconds(forward, (x, kernel), args.repeats),
                     best_milliseconds(forward_backward, (x, kernel), args.repeats)))
        output_inputs = (layer, x, kernel, flops)

    total_ms = sum(row[3] for row in rows)
    total_flops = sum(row[1] for row in rows)
    print(f"\nPer-layer cost of one training step, batch {args.batch_size}, float32, "
          f"TensorFlow {tf.__version__}, {os.cpu_count()} cores (best of {args.repeats})\n")
    print("| layer | forward ms | forward+backward ms | share of time | share of FLOPs | GFLOP/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, flops, forward_ms, step_ms in rows:
        gflops = 3 * flops * args.batch_size / (step_ms * 1e-3) / 1e9
        print(f"| {name} | {forward_ms:.2f} | {step_ms:.2f} | {100 * step_ms / total_ms:.0f}% | "
              f"{100 * flops / total_flops:.1f}% | {gflops:.0f} |")
    print(f"| sum of layers | | {total_ms:.2f} | | | "
          f"{3 * total_flops * args.batch_size / (total_ms * 1e-3) / 1e9:.0f} |")

    layer, x, kernel, flops = output_inputs
    expected_forward_backward = layer_functions(layer, True)[1](x, kernel)
    for name, alternative in ALTERNATIVES:
        forward, forward_backward = layer_functions(alternative, True)
        for got, want in zip(forward_backward(x, kernel), expected_forward_backward):
            scale = float(tf.reduce_max(tf.abs(want)))
            error = float(tf.reduce_max(tf.abs(got - want))) / scale
            assert error < 1e-5, f"{name} differs from the layer it replaces: {error:.1e}"
        forward_ms = best_milliseconds(forward, (x, kernel), args.repeats)
        step_ms = best_milliseconds(forward_backward, (x, kernel), args.repeats)
        gflops = 3 * flops * args.batch_size / (step_ms * 1e-3) / 1e9
        print(f"| {name} | {forward_ms:.2f} | {step_ms:.2f} | | | {gflops:.0f} |")
    print("\nThe alternatives compute the output layer's function with its weights "
          "(checked to 1e-5); the package does not use them yet.")


if __name__ == "__main__":
    main()
