"""Table 3 in float32 and in bfloat16 (the mixed model), image by image on the same inputs, and the gap.

    python benchmarks/precision_table3.py --weights=runs/official/vdsr.h5 --datasets=Set5,Set14,B100,Urban100

Each cell is evaluated by the project's own evaluation (`vdsr_tf.evaluate`)
once per precision; the table gives both PSNR / SSIM, their differences and
the seconds per image of each. `--results_json` keeps the rows.
"""

import os
import sys

import numpy as np
from absl import app, flags

from vdsr_tf.atomic import write_json
from vdsr_tf.evaluate import evaluate_images, prepare_test_images
from vdsr_tf.images import dataset_paths
from vdsr_tf.model import load_vdsr, make_predictor
from vdsr_tf.paths import default_data_dir

flags.DEFINE_string("weights", "checkpoints/vdsr.h5", "Weights file.")
flags.DEFINE_string("data_dir", None, "Folder holding test/<dataset> (default: ../shared/datasets if present).")
flags.DEFINE_list("datasets", ["Set5", "Set14", "B100", "Urban100"], "Datasets.")
flags.DEFINE_list("scales", ["2", "3", "4"], "Scales.")
flags.DEFINE_string("results_json", None, "Also write the rows here.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        print_table()
    except ValueError as error:  # a missing weights file or dataset, a bad scale
        sys.exit(f"error: {error}")


def print_table():
    if FLAGS.results_json and (
        os.path.isdir(FLAGS.results_json) or not os.path.isdir(os.path.dirname(os.path.abspath(FLAGS.results_json)))
    ):
        raise ValueError(f"--results_json: cannot write {FLAGS.results_json} (a folder, or no folder to hold it)")
    predictors = {
        precision: make_predictor(load_vdsr(FLAGS.weights, precision=precision)[0])
        for precision in ("float32", "bfloat16")
    }
    for predict in predictors.values():  # the first call traces the graph: not the first cell's seconds
        predict(np.zeros((48, 48), np.float32))
    rows = []
    print(
        "| dataset | scale | float32 PSNR / SSIM | bfloat16 PSNR / SSIM | difference | seconds per image f32 / bf16 |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for dataset in FLAGS.datasets:
        paths = dataset_paths(FLAGS.data_dir or default_data_dir(), dataset)
        for scale in (int(value) for value in FLAGS.scales):
            images = prepare_test_images(paths, scale)
            cells = {precision: evaluate_images(predict, images, scale) for precision, predict in predictors.items()}
            f32, bf16 = cells["float32"], cells["bfloat16"]
            rows.append({"dataset": dataset, "scale": scale, **{p: cell for p, cell in cells.items()}})
            print(
                f"| {dataset} | x{scale} | {f32['psnr']:.3f} / {f32['ssim']:.4f} | {bf16['psnr']:.3f} / "
                f"{bf16['ssim']:.4f} | {bf16['psnr'] - f32['psnr']:+.3f} / {bf16['ssim'] - f32['ssim']:+.5f} | "
                f"{f32['seconds']:.2f} / {bf16['seconds']:.2f} |",
                flush=True,
            )
    if FLAGS.results_json:
        write_json(FLAGS.results_json, rows)


if __name__ == "__main__":
    app.run(main)
