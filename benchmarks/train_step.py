"""Seconds per training step of 64 41x41 patches, against this machine's matmul rate.

    python benchmarks/train_step.py [--steps=5]

A step costs 3x the forward FLOPs (forward, and backward for activations and
weights): 3 * 1.33 MFLOP * 41 * 41 * 64 = 429 GFLOP. Measures the project's own
step (vdsr_tf.train.make_train_step) and, for comparison, the same loss and
update compiled with XLA.
"""

import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peak import matmul_gflops  # noqa: E402

from vdsr_tf.model import build_vdsr  # noqa: E402
from vdsr_tf.train import adjustable_clip, make_train_step  # noqa: E402

STEP_FLOP = 3 * 2 * 664_704 * 41 * 41 * 64
flags.DEFINE_integer("steps", 5, "Timed steps per variant (the best is reported).")
FLAGS = flags.FLAGS


def xla_step(model, optimizer):
    variables = model.trainable_variables

    @tf.function(jit_compile=True)
    def step(inputs, labels, learning_rate):
        with tf.GradientTape() as tape:
            loss = 0.5 * tf.reduce_sum(tf.square(model(inputs, training=True) - labels)) / 64
        clipped, fraction = adjustable_clip(tape.gradient(loss, variables), 1e-3 / learning_rate)
        optimizer.apply(clipped, variables)
        return loss, fraction

    return step


def main(argv):
    del argv
    generator = np.random.default_rng(0)
    inputs = tf.constant(generator.random((64, 41, 41, 1)), tf.float32)
    labels = tf.constant(generator.random((64, 41, 41, 1)), tf.float32)
    learning_rate = tf.constant(0.1)
    peak = matmul_gflops()
    print(f"matmul 2048x2048 float32: {peak:.1f} GFLOP/s")
    print("| step | seconds per step | GFLOP/s | ratio to matmul |")
    for name in ("project step (tf.function)", "same step with XLA"):
        model = build_vdsr(seed=0)
        optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
        optimizer.build(model.trainable_variables)
        if name.startswith("project"):
            step = make_train_step(
                model, optimizer, tf.distribute.get_strategy(), batch_size=64, weight_decay=1e-4, grad_clip=1e-3
            )
        else:
            step = xla_step(model, optimizer)
        step(inputs, labels, learning_rate)[0].numpy()
        best = float("inf")
        for _ in range(FLAGS.steps):
            started = time.perf_counter()
            step(inputs, labels, learning_rate)[0].numpy()
            best = min(best, time.perf_counter() - started)
        gflops = STEP_FLOP / best / 1e9
        print(f"| {name} | {best:.2f} | {gflops:.1f} | {gflops / peak:.2f} |")
    print(f"matmul 2048x2048 float32 again: {matmul_gflops():.1f} GFLOP/s")


if __name__ == "__main__":
    app.run(main)
