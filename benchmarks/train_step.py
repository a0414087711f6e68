"""Seconds per training step of 64 41x41 patches in float32 and bfloat16, against the matmul of each dtype.

    python benchmarks/train_step.py [--rounds=3] [--steps=3] [--precisions=float32,bfloat16] [--results_json=FILE]

A step costs 3x the forward FLOPs (forward, and backward for activations and
weights): 3 * 1.33 MFLOP * 41 * 41 * 64 = 429 GFLOP. Measures, in each
precision, the project's step (vdsr_tf.step.make_train_step: loss, weight
decay, clip and update) and the same step compiled with XLA. bfloat16 is the
mixed model as training builds it (conv1 float32, 18 layers bfloat16, float32
weights, loss and update).

The matmul rate of these machines drifts by 5-8% within minutes, so the
variants and the matmuls are measured in interleaved rounds; each round's
ratio uses the matmul of the variant's dtype measured just before it, and the
median round is reported.
"""

from functools import partial

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags
from peak import best_seconds, define_precisions_flag, describe_machine, interleaved_rounds, write_results

from vdsr_tf.model import TRAINING_FLOAT32_LEADING_LAYERS, build_vdsr
from vdsr_tf.step import clip_gradients, make_train_step, patch_loss

STEP_FLOP = 3 * 2 * 664_704 * 41 * 41 * 64
flags.DEFINE_integer(
    "rounds", 3, "Interleaved rounds of matmul and every variant (the median is reported).", lower_bound=1
)
flags.DEFINE_integer("steps", 3, "Timed steps per variant and round (the best is kept).", lower_bound=1)
flags.DEFINE_string("results_json", None, "Also write the rows to this JSON file.")
define_precisions_flag("Precisions to time (bfloat16 is emulated without bf16 units).")
FLAGS = flags.FLAGS


def fresh(precision: str):
    model = build_vdsr(seed=0, precision=precision, float32_leading_layers=TRAINING_FLOAT32_LEADING_LAYERS)
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def xla_step(model, optimizer):
    variables = model.trainable_variables
    kernels = [variable for variable in variables if len(variable.shape) == 4]

    @tf.function(jit_compile=True)
    def step(inputs, labels, learning_rate):
        with tf.GradientTape() as tape:
            loss = patch_loss(tf.cast(model(inputs, training=True), tf.float32), labels, 64)
            decayed = loss + 0.5e-4 * tf.add_n([tf.reduce_sum(tf.square(k)) for k in kernels])
        clipped, share = clip_gradients("value", tape.gradient(decayed, variables), 1e-3 / learning_rate)
        optimizer.apply(clipped, variables)
        return loss, share

    return step


def variants() -> dict:
    strategy = tf.distribute.get_strategy()
    steps = {}
    for precision in FLAGS.precisions:
        steps[("the project's step", precision)] = make_train_step(
            *fresh(precision), strategy, batch_size=64, weight_decay=1e-4, grad_clip=1e-3
        )
        steps[("the same step with XLA", precision)] = xla_step(*fresh(precision))
    return steps


def run_once(step, inputs, labels, learning_rate) -> None:
    step(inputs, labels, learning_rate)[0].numpy()


def main(argv):
    del argv
    print(describe_machine())
    generator = np.random.default_rng(0)
    inputs = tf.constant(generator.random((64, 41, 41, 1)), tf.float32)
    labels = tf.constant(generator.random((64, 41, 41, 1)), tf.float32)
    learning_rate = tf.constant(0.1)
    steps = variants()
    for step in steps.values():
        step(inputs, labels, learning_rate)[0].numpy()
    timers = {
        key: partial(best_seconds, partial(run_once, step, inputs, labels, learning_rate), FLAGS.steps)
        for key, step in steps.items()
    }
    rows = interleaved_rounds(timers, flop=STEP_FLOP, rounds=FLAGS.rounds)
    print("| step | precision | seconds per step | GFLOP/s | ratio to matmul of its dtype (median round) |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        row["seconds_per_step"] = row["seconds"]
        name, precision, elapsed = row["variant"], row["precision"], row["seconds"]
        print(f"| {name} | {precision} | {elapsed:.3f} | {row['gflops']:.0f} | {row['ratio_to_matmul']:.2f} |")
    write_results(FLAGS.results_json, rows)


if __name__ == "__main__":
    app.run(main)
