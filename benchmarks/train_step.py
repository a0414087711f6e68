"""Seconds per training step of 64 41x41 patches, against this machine's matmul rate.

    python benchmarks/train_step.py [--rounds=3] [--steps=3]

A step costs 3x the forward FLOPs (forward, and backward for activations and
weights): 3 * 1.33 MFLOP * 41 * 41 * 64 = 429 GFLOP. Measures the project's own
step (vdsr_tf.train.make_train_step), the same loss and update compiled with
XLA, and the forward and backward passes alone (the convolution work every
step must do, without weight decay, clipping or the update).

The matmul rate of these machines drifts by 5-8% within minutes, so the
variants and the matmul are measured in interleaved rounds; each round's ratio
uses the matmul measured just before it, and the median round is reported.
"""

import os
import statistics
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
from vdsr_tf.step import adjustable_clip, make_train_step, patch_loss  # noqa: E402

STEP_FLOP = 3 * 2 * 664_704 * 41 * 41 * 64
flags.DEFINE_integer("rounds", 3, "Interleaved rounds of matmul and every variant (the median is reported).")
flags.DEFINE_integer("steps", 3, "Timed steps per variant and round (the best is kept).")
FLAGS = flags.FLAGS


def data_loss(model, inputs, labels):
    return patch_loss(model(inputs, training=True), labels, 64)


def xla_step(model, optimizer):
    variables = model.trainable_variables

    @tf.function(jit_compile=True)
    def step(inputs, labels, learning_rate):
        with tf.GradientTape() as tape:
            loss = data_loss(model, inputs, labels)
        clipped, fraction = adjustable_clip(tape.gradient(loss, variables), 1e-3 / learning_rate)
        optimizer.apply(clipped, variables)
        return loss, fraction

    return step


def forward_backward(model):
    @tf.function
    def step(inputs, labels, learning_rate):
        with tf.GradientTape() as tape:
            loss = data_loss(model, inputs, labels)
        return loss, tape.gradient(loss, model.trainable_variables)

    return step


def variants():
    def fresh():
        model = build_vdsr(seed=0)
        optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
        optimizer.build(model.trainable_variables)
        return model, optimizer

    strategy = tf.distribute.get_strategy()
    return {
        "the project's step": make_train_step(*fresh(), strategy, batch_size=64, weight_decay=1e-4, grad_clip=1e-3),
        "the same loss and update with XLA": xla_step(*fresh()),
        "forward and backward only": forward_backward(fresh()[0]),
    }


def best_seconds(step, inputs, labels, learning_rate) -> float:
    best = float("inf")
    for _ in range(FLAGS.steps):
        started = time.perf_counter()
        step(inputs, labels, learning_rate)[0].numpy()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv):
    del argv
    generator = np.random.default_rng(0)
    inputs = tf.constant(generator.random((64, 41, 41, 1)), tf.float32)
    labels = tf.constant(generator.random((64, 41, 41, 1)), tf.float32)
    learning_rate = tf.constant(0.1)
    steps = variants()
    for step in steps.values():
        step(inputs, labels, learning_rate)[0].numpy()
    seconds = {name: [] for name in steps}
    ratios = {name: [] for name in steps}
    peaks = []
    for _ in range(FLAGS.rounds):
        peaks.append(matmul_gflops())
        for name, step in steps.items():
            seconds[name].append(best_seconds(step, inputs, labels, learning_rate))
            ratios[name].append(STEP_FLOP / seconds[name][-1] / 1e9 / peaks[-1])
    print(f"matmul 2048x2048 float32 per round: {', '.join(f'{peak:.0f}' for peak in peaks)} GFLOP/s")
    print("| step | seconds per step | GFLOP/s | ratio to matmul (median round) | ratios per round |")
    print("| --- | --- | --- | --- | --- |")
    for name in steps:
        median_seconds = statistics.median(seconds[name])
        per_round = ", ".join(f"{ratio:.2f}" for ratio in ratios[name])
        print(
            f"| {name} | {median_seconds:.2f} | {STEP_FLOP / median_seconds / 1e9:.0f} | "
            f"{statistics.median(ratios[name]):.2f} | {per_round} |"
        )


if __name__ == "__main__":
    app.run(main)
