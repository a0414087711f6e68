"""This machine's practical FP32 peak: GFLOP/s of a 2048x2048 float32 matmul, measured now.

Machines here differ by about 2x in absolute speed, so benchmarks report their
figures as ratios to this number, measured in the same run.
"""

import time

import tensorflow as tf

SIZE = 2048


def matmul_gflops(repeats: int = 20) -> float:
    a = tf.random.normal((SIZE, SIZE))
    b = tf.random.normal((SIZE, SIZE))
    multiply = tf.function(tf.linalg.matmul)
    multiply(a, b).numpy()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            result = multiply(a, b)
        result.numpy()
        best = min(best, (time.perf_counter() - started) / repeats)
    return 2 * SIZE**3 / best / 1e9
