"""The machine's practical matmul ceiling, which the benchmarks report shares of."""

import time

import tensorflow as tf


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
