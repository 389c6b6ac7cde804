"""Arithmetic counts and the machine's practical matmul ceiling, for shares of peak."""

import time

import numpy as np
import tensorflow as tf
from keras import layers


def matmul_peak_gflops(size=2048, repeats=20, dtype=tf.float32):
    """Best rate of a ``size`` x ``size`` matmul over ``repeats`` runs, in GFLOP/s."""
    a = tf.cast(tf.random.normal((size, size)), dtype)
    b = tf.cast(tf.random.normal((size, size)), dtype)
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def decoder_flops(decoder):
    """Multiply-add FLOPs (x2) of one decoder pass, summed over its layers."""
    total = 0
    for layer in decoder.layers:
        if isinstance(layer, layers.Dense):
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
        elif isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose)):
            kernel_positions = int(np.prod(layer.kernel.shape))  # k x k x C_in x C_out
            grid = layer.input.shape if isinstance(layer, layers.Conv2DTranspose) else layer.output.shape
            total += 2 * grid[1] * grid[2] * kernel_positions
    return total
