"""VDSR inference throughput against this machine's matmul rate.

    python benchmarks/inference.py [--size=512] [--repeats=5]

One forward pass costs 1.33 MFLOP per output pixel (664,704 multiply-adds).
Variants: one trace for every input shape (what evaluation used first), one
trace per shape, and XLA per shape. Best of `repeats` runs each.
"""

import os
import sys
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peak import matmul_gflops  # noqa: E402

from vdsr_tf.model import build_vdsr  # noqa: E402

FLOP_PER_PIXEL = 2 * 664_704
flags.DEFINE_integer("size", 512, "Side of the square test image.")
flags.DEFINE_integer("repeats", 5, "Timed runs per variant (the best is reported).")
FLAGS = flags.FLAGS


def variants(model):
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])
    def any_shape(x):
        return model(x, training=False)

    @tf.function
    def per_shape(x):
        return model(x, training=False)

    @tf.function(jit_compile=True)
    def xla(x):
        return model(x, training=False)

    return {"one trace, any shape": any_shape, "one trace per shape": per_shape, "XLA per shape": xla}


def main(argv):
    del argv
    model = build_vdsr(seed=0)
    image = tf.constant(np.random.default_rng(0).random((1, FLAGS.size, FLAGS.size, 1)), tf.float32)
    peak = matmul_gflops()
    print(f"matmul 2048x2048 float32: {peak:.1f} GFLOP/s")
    print(f"| variant | MPix/s | GFLOP/s | ratio to matmul |  ({FLAGS.size}x{FLAGS.size} input)")
    for name, function in variants(model).items():
        function(image).numpy()
        best = float("inf")
        for _ in range(FLAGS.repeats):
            started = time.perf_counter()
            function(image).numpy()
            best = min(best, time.perf_counter() - started)
        pixels = FLAGS.size**2
        gflops = pixels * FLOP_PER_PIXEL / best / 1e9
        print(f"| {name} | {pixels / best / 1e6:.3f} | {gflops:.1f} | {gflops / peak:.2f} |")
    print(f"matmul 2048x2048 float32 again: {matmul_gflops():.1f} GFLOP/s")


if __name__ == "__main__":
    app.run(main)
