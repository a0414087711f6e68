"""Short runs of the paper's schedule from He initialisation, one per reading of the clip.

    python benchmarks/clip_trials.py --train_h5=data/train.h5 --steps=300 --out=runs/clip_trials
    python benchmarks/clip_trials.py --measure=runs/design_card,runs/design_card_bias01   # finished runs

Each variant trains `--steps` steps with the paper's settings (lr 0.1, SGD
momentum 0.9, weight decay 1e-4, batch 64) and theta = `--grad_clip`, in epochs
of 100 steps, and is then measured on a fixed batch of training patches: the
share of dead channels (a ReLU that is zero on every pixel of every patch)
per layer, the residual's standard deviation against the target residual's,
and the epoch loss over bicubic's from the training record. Validation PSNR
(Set5, recorded by training) is listed beside it, for the curve only; the
choice of the default rests on the training-data figures.
"""

import os
import sys

import keras
import numpy as np
from absl import app, flags

from vdsr_tf.atomic import write_json
from vdsr_tf.config import TrainConfig
from vdsr_tf.data import TrainingPatches, batch_indices
from vdsr_tf.images import dataset_paths
from vdsr_tf.model import conv_layers, load_vdsr
from vdsr_tf.paths import default_data_dir
from vdsr_tf.record import RECORD_NAME, read_record
from vdsr_tf.train import TrainingStopped, train

flags.DEFINE_string("train_h5", "data/train.h5", "Patch file.")
flags.DEFINE_string("out", "runs/clip_trials", "Folder of the runs (one subfolder per variant) and results.json.")
flags.DEFINE_integer("steps", 300, "Steps per variant.", lower_bound=1)
flags.DEFINE_float("grad_clip", 1e-3, "theta.")
flags.DEFINE_list("variants", ["value", "norm", "global_norm", "value:0.1"], "clip form[:bias_lr_scale] each.")
flags.DEFINE_string("precision", "bfloat16", "float32 or bfloat16.")
flags.DEFINE_list("measure", [], "Checkpoint folders of finished runs to measure instead of training the variants.")
FLAGS = flags.FLAGS


def dead_channels_and_residual(model, inputs, labels) -> tuple[list[float], float]:
    """Per hidden layer the share of channels zero everywhere on the batch; residual std over the target's."""
    layers = conv_layers(model)
    probe = keras.Model(model.inputs, [layer.output for layer in layers[:-1]] + [layers[-1].output])
    outputs = probe(inputs, training=False)
    dead = [float(np.mean(np.max(np.asarray(out, np.float32), axis=(0, 1, 2)) <= 0)) for out in outputs[:-1]]
    residual = np.asarray(outputs[-1], np.float32)
    return dead, float(np.std(residual) / np.std(labels - inputs))


def run_variant(name: str, validation_paths) -> dict:
    form, _, scale = name.partition(":")
    config = TrainConfig(
        train_h5=FLAGS.train_h5,
        checkpoint_dir=os.path.join(FLAGS.out, name.replace(":", "_bias")),
        log_dir=os.path.join(FLAGS.out, name.replace(":", "_bias"), "logs"),
        validation_paths=tuple(validation_paths),
        steps_per_epoch=100,
        max_steps=FLAGS.steps,
        grad_clip=FLAGS.grad_clip,
        clip=form,
        bias_lr_scale=float(scale or 1),
        precision=FLAGS.precision,
        save_every_minutes=60,
    )
    train(config)
    return measure_run(config.checkpoint_dir, name)


def measure_run(checkpoint_dir: str, name: str) -> dict:
    """The figures of one finished run: its vdsr.h5 on a fixed training batch, and its training record."""
    model, _ = load_vdsr(os.path.join(checkpoint_dir, "vdsr.h5"))
    record = read_record(os.path.join(checkpoint_dir, RECORD_NAME))
    patches = TrainingPatches(FLAGS.train_h5)
    inputs, labels = patches.batch(batch_indices(10**6, batch_size=64, count=patches.count, seed=7))
    patches.close()
    dead, residual_ratio = dead_channels_and_residual(model, inputs, labels)
    return {
        "variant": name,
        "loss_over_bicubic": {row["step"]: row["loss_over_bicubic"] for row in record["training_loss"]},
        "set5_psnr_x2": {row["step"]: row["psnr_x2"] for row in record["validation"]},
        "dead_share_per_layer": dead,
        "residual_std_over_target": residual_ratio,
    }


def main(argv):
    del argv
    try:
        validation_paths = dataset_paths(default_data_dir(), "Set5")
        if FLAGS.measure:
            results = [measure_run(folder, folder) for folder in FLAGS.measure]
        else:
            results = [run_variant(name, validation_paths) for name in FLAGS.variants]
    except ValueError as error:  # a missing Set5 or training file, a bad variant
        sys.exit(f"error: {error}")
    except TrainingStopped as stop:
        sys.exit(f"{stop}: the same command continues that variant")
    os.makedirs(FLAGS.out, exist_ok=True)
    write_json(os.path.join(FLAGS.out, "results.json"), results)
    print(
        "| variant | loss/bicubic per epoch | dead channels, layers 10-19 (mean) | max in any layer |"
        " residual std / target's | Set5 x2 at the end (step 0) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for row in results:
        losses = ", ".join(f"{value:.3f}" for value in row["loss_over_bicubic"].values())
        psnr = list(row["set5_psnr_x2"].values())
        print(
            f"| {row['variant']} | {losses} | {np.mean(row['dead_share_per_layer'][9:19]):.0%} | "
            f"{max(row['dead_share_per_layer']):.0%} | {row['residual_std_over_target']:.2f} | "
            f"{psnr[-1]:.2f} ({psnr[0]:.2f}) |"
        )


if __name__ == "__main__":
    app.run(main)
