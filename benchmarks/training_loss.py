"""Training loss over bicubic's, per scale, on a fixed sample of training patches.

    python benchmarks/training_loss.py --train_h5=data/train.h5 checkpoints/vdsr.h5 [other.h5 ...]

How checkpoints and settings are compared in this project without a test set:
the summed squared error of each network's output over that of its bicubic
input (1 = no better than bicubic) on the same `--count` patches, drawn with
`--seed` from the training file. The README's figures use the defaults.
"""

import sys

import numpy as np
from absl import app, flags

from vdsr_tf.data import TrainingPatches
from vdsr_tf.metrics import loss_over_bicubic
from vdsr_tf.model import load_vdsr

flags.DEFINE_string("train_h5", "data/train.h5", "Patch file written by data/generate_dataset/generate_train.py.")
flags.DEFINE_integer("count", 2048, "Patches in the sample.", lower_bound=1)
flags.DEFINE_integer("seed", 2026, "Seed that draws the sample.")
FLAGS = flags.FLAGS


def main(argv):
    weights_paths = argv[1:]
    if not weights_paths:
        raise app.UsageError("give one or more weights files (.h5) to measure")
    try:
        patches = TrainingPatches(FLAGS.train_h5)
        if patches.scales is None:
            raise ValueError(f"{FLAGS.train_h5}: no 'scale' dataset, so no per-scale figures")
        if not 0 < FLAGS.count <= patches.count:
            raise ValueError(f"--count={FLAGS.count}: must be between 1 and the file's {patches.count} patches")
        generator = np.random.default_rng(FLAGS.seed)
        indices = np.sort(generator.choice(patches.count, FLAGS.count, replace=False))
        inputs, labels, scales = patches.inputs[indices], patches.labels[indices], patches.scales[indices]
        patches.close()
        print(f"{FLAGS.count} patches of {FLAGS.train_h5} (seed {FLAGS.seed}); loss over bicubic's\n")
        columns = ["all"] + [f"x{scale}" for scale in np.unique(scales)]
        print("| weights | step | " + " | ".join(columns) + " |")
        print("| --- | --- | " + " | ".join("---" for _ in columns) + " |")
        for path in weights_paths:
            model, attributes = load_vdsr(path)
            outputs = np.concatenate(
                [model(inputs[start : start + 128]).numpy() for start in range(0, len(inputs), 128)]
            )
            ratios = loss_over_bicubic(outputs, inputs, labels, scales)
            figures = " | ".join(f"{ratio:.4f}" for ratio in ratios.values())
            print(f"| {path} | {attributes.get('step', '-')} | {figures} |")
    except ValueError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    app.run(main)
