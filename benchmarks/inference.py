"""VDSR inference throughput in float32 and bfloat16, each against this machine's matmul of its dtype.

    python benchmarks/inference.py [--size=512] [--rounds=3] [--precisions=float32,bfloat16] [--results_json=FILE]

One forward pass costs 1.33 MFLOP per output pixel (664,704 multiply-adds).
Variants per precision: one trace for every input shape (what evaluation and
enlarging use), and XLA per shape. bfloat16 is the mixed model of
`vdsr_tf.model.build_vdsr` (17 middle layers bfloat16). The matmul rate drifts
by several per cent within minutes, so matmuls and variants run in
interleaved rounds and each round's ratio uses the matmul just before it; the
median round is reported.
"""

from functools import partial

import numpy as np
import tensorflow as tf
from absl import app, flags
from peak import best_seconds, define_precisions_flag, describe_machine, interleaved_rounds, write_results

from vdsr_tf.model import build_vdsr

FLOP_PER_PIXEL = 2 * 664_704
flags.DEFINE_integer("size", 512, "Side of the square test image.", lower_bound=1)
flags.DEFINE_integer("rounds", 3, "Interleaved rounds (the median is reported).", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Timed runs per variant and round (the best is kept).", lower_bound=1)
flags.DEFINE_string("results_json", None, "Also write the rows to this JSON file.")
define_precisions_flag("Precisions to time (bfloat16 is emulated, slowly, without bf16 units).")
FLAGS = flags.FLAGS


def variants(precision: str) -> dict:
    model = build_vdsr(seed=0, precision=precision)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])
    def any_shape(x):
        return model(x, training=False)

    @tf.function(jit_compile=True)
    def xla(x):
        return model(x, training=False)

    return {"one trace, any shape": any_shape, "XLA per shape": xla}


def run_once(function, image) -> None:
    function(image).numpy()


def main(argv):
    del argv
    print(describe_machine())
    image = tf.constant(np.random.default_rng(0).random((1, FLAGS.size, FLAGS.size, 1)), tf.float32)
    functions = {precision: variants(precision) for precision in FLAGS.precisions}
    for by_name in functions.values():
        for function in by_name.values():
            function(image).numpy()
    timers = {
        (name, precision): partial(best_seconds, partial(run_once, function, image), FLAGS.repeats)
        for precision, by_name in functions.items()
        for name, function in by_name.items()
    }
    rows = interleaved_rounds(timers, flop=FLAGS.size**2 * FLOP_PER_PIXEL, rounds=FLAGS.rounds)
    print(f"| variant ({FLAGS.size}x{FLAGS.size}) | precision | seconds | MPix/s | GFLOP/s | ratio to its matmul |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        row["mpix_per_s"] = FLAGS.size**2 / row["seconds"] / 1e6
        name, precision, elapsed = row["variant"], row["precision"], row["seconds"]
        print(
            f"| {name} | {precision} | {elapsed:.3f} | {row['mpix_per_s']:.3f} | {row['gflops']:.0f} | "
            f"{row['ratio_to_matmul']:.2f} |"
        )
    write_results(FLAGS.results_json, rows)


if __name__ == "__main__":
    app.run(main)
