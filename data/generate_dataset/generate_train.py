"""Writes the VDSR training patches (the public MATLAB generate_train.m recipe) to an HDF5 file.

python data/generate_dataset/generate_train.py --data_dir=../shared/datasets --output=data/train.h5
"""

import os
import sys
import time

from absl import app, flags, logging

from vdsr_tf.atomic import remove_leftovers
from vdsr_tf.config import require_folder
from vdsr_tf.data import PatchSettings, generate_training_h5
from vdsr_tf.images import list_images
from vdsr_tf.paths import default_data_dir

flags.DEFINE_string(
    "data_dir",
    None,
    "Folder holding train/T91 and train/BSD200 (default: ../shared/datasets if present, else data/datasets).",
)
flags.DEFINE_list("train_sets", ["T91", "BSD200"], "Subfolders of <data_dir>/train to read (the paper's 291 images).")
flags.DEFINE_string("output", "data/train.h5", "HDF5 file to write (the default is where training looks, --train_h5).")
flags.DEFINE_list("scales", ["2", "3", "4"], "Scales to generate patches for.")
flags.DEFINE_list("rotations", ["0", "90"], "Rotations in degrees, multiples of 90.")
flags.DEFINE_list("flips", ["none", "lr"], "Flips: none, lr (left-right), ud (up-down).")
flags.DEFINE_list("downsizes", ["1"], "Shrink factors applied first (twtygqyy/pytorch-vdsr uses 1,0.7,0.5).")
flags.DEFINE_integer("patch_size", 41, "Patch side in pixels (paper: 41, the receptive field of 20 layers).")
flags.DEFINE_integer("stride", 41, "Stride between patches.")
flags.DEFINE_integer("seed", 123, "Seed of the patch shuffle.")
flags.DEFINE_integer("max_images", 0, "Use only the first N images (0: all), for quick runs.")
flags.DEFINE_integer("workers", 2, "Worker processes.")
flags.DEFINE_bool(
    "overwrite", False, "Replace an existing --output (a training run's patches: resuming needs the same)."
)
FLAGS = flags.FLAGS


def _numbers(flag: str, kind: type) -> tuple:
    try:
        return tuple(kind(value) for value in FLAGS[flag].value)
    except ValueError:
        what = "whole numbers" if kind is int else "numbers"
        raise ValueError(f"--{flag} must be {what}, got {','.join(FLAGS[flag].value)}") from None


def _check_run_flags() -> None:
    """Everything that would fail only after the generation's minutes is checked first."""
    for flag, least in (("workers", 1), ("seed", 0), ("max_images", 0)):
        if FLAGS[flag].value < least:
            raise ValueError(f"--{flag} must be at least {least}, got {FLAGS[flag].value}")
    if FLAGS.seed >= 2**63:  # stored as a 64-bit attribute of the file
        raise ValueError(f"--seed must be under 2**63, got {FLAGS.seed}")
    if not FLAGS.output:
        raise ValueError("--output: give a file name; it is empty")
    if os.path.isdir(FLAGS.output):
        raise ValueError(f"--output: {FLAGS.output} is a folder; give a file name, say {FLAGS.output}/train.h5")
    if os.path.exists(FLAGS.output) and not FLAGS.overwrite:
        raise ValueError(f"--output: {FLAGS.output} exists (use --overwrite to replace it)")
    require_folder("output", os.path.dirname(os.path.abspath(FLAGS.output)))


def main(argv):
    del argv
    data_dir = FLAGS.data_dir or default_data_dir()
    try:
        _check_run_flags()
        settings = PatchSettings(
            scales=_numbers("scales", int),
            rotations=_numbers("rotations", int),
            flips=tuple(FLAGS.flips),
            downsizes=_numbers("downsizes", float),
            patch_size=FLAGS.patch_size,
            stride=FLAGS.stride,
        )
    except ValueError as error:
        sys.exit(f"error: {error}")
    paths = []
    for name in FLAGS.train_sets:
        folder = os.path.join(data_dir, "train", name)
        if not os.path.isdir(folder):
            sys.exit(f"error: --data_dir: no training folder {folder}")
        paths.extend(list_images(folder))
    if FLAGS.max_images:
        paths = paths[: FLAGS.max_images]
    if not paths:
        sys.exit(f"error: --data_dir: no images in {', '.join(FLAGS.train_sets)} under {data_dir}/train")
    for leftover in remove_leftovers(os.path.dirname(os.path.abspath(FLAGS.output))):
        logging.info("removed %s, left by an interrupted run", leftover)
    started = time.time()
    try:
        summary = generate_training_h5(paths, FLAGS.output, settings=settings, seed=FLAGS.seed, workers=FLAGS.workers)
    except (ValueError, OSError) as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        sys.stderr.write(f"interrupted; {FLAGS.output} was not written\n")
        sys.exit(130)
    logging.info(
        "wrote %d patches from %d images to %s in %.1f s (%d unreadable skipped)",
        summary["patches"],
        summary["images"],
        FLAGS.output,
        time.time() - started,
        len(summary["skipped"]),
    )


if __name__ == "__main__":
    app.run(main)
