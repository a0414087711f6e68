"""Evaluation as in the paper's Table 3 (Huang et al.'s protocol, see README).

For each image and scale: modcrop the ground truth, take Y, degrade it with
MATLAB bicubic (down by 1/scale, back up), run the network on the
interpolated Y, round and clip, and score PSNR and SSIM on Y with `scale`
pixels shaved from every border.
"""

import os
import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from vdsr_tf.color import rgb_to_y
from vdsr_tf.images import bicubic_degrade, dataset_paths, modcrop, read_image, write_picture
from vdsr_tf.metrics import psnr_y, ssim_y, to_uint8_range
from vdsr_tf.model import make_predictor


@dataclass(frozen=True)
class TestImage:
    name: str
    ground_truth: np.ndarray  # HxW uint8 Y, modcropped
    interpolated: np.ndarray  # HxW float32 in [0, 1]: bicubic down and up


def read_luminances(paths: list[str], scales: list[int]) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 HxW Y) of every image, each read once and checked at every scale before any work.

    Raises:
      ValueError: naming the file, for one that cannot be read, or is too small to score: SSIM's
        11x11 window must fit once `scale` pixels are shaved from every side.
    """
    luminances = []
    for path in paths:
        luminance = rgb_to_y(read_image(path))
        for scale in scales:
            height, width = modcrop(luminance, scale).shape
            if min(height, width) < 2 * scale + 11:
                raise ValueError(
                    f"{path}: {width}x{height} is too small to score at x{scale} (at least {2 * scale + 11} px a side)"
                )
        luminances.append((os.path.splitext(os.path.basename(path))[0], luminance))
    return luminances


def images_at_scale(luminances: list[tuple[str, np.ndarray]], scale: int) -> list[TestImage]:
    """Ground truth and network input for every image (the protocol's steps 1 to 3)."""
    images = []
    for name, luminance in luminances:
        ground_truth = modcrop(luminance, scale)
        images.append(TestImage(name, ground_truth, bicubic_degrade(ground_truth / 255.0, scale).astype(np.float32)))
    return images


def prepare_test_images(paths: list[str], scale: int) -> list[TestImage]:
    """`images_at_scale` of the files at `paths` at one scale."""
    return images_at_scale(read_luminances(paths, [scale]), scale)


def score(image: TestImage, output: np.ndarray, scale: int) -> tuple[float, float]:
    """(PSNR, SSIM) of a network or bicubic output against the image's ground truth."""
    restored = to_uint8_range(output)
    return psnr_y(image.ground_truth, restored, scale), ssim_y(image.ground_truth, restored, scale)


def evaluate_images(
    predict, images: list[TestImage], scale: int, *, save_dir: str | None = None, progress: str | None = None
):
    """Mean bicubic and network PSNR/SSIM over `images`, and mean seconds of network time per image."""
    rows, seconds = [], []
    for image in tqdm(images, desc=progress, unit="img", leave=False, disable=progress is None):
        started = time.perf_counter()
        output = predict(image.interpolated)
        seconds.append(time.perf_counter() - started)
        rows.append(score(image, image.interpolated, scale) + score(image, output, scale))
        if save_dir is not None:
            pixels = to_uint8_range(output).astype(np.uint8)
            write_picture(pixels, os.path.join(save_dir, f"{image.name}_x{scale}.png"), "PNG")
    psnr_bicubic, ssim_bicubic, psnr, ssim = np.mean(rows, axis=0)
    return {
        "images": len(images),
        "psnr_bicubic": float(psnr_bicubic),
        "ssim_bicubic": float(ssim_bicubic),
        "psnr": float(psnr),
        "ssim": float(ssim),
        "seconds": float(np.mean(seconds)),
    }


def _refuse_shared_names(dataset: str, luminances: list[tuple[str, np.ndarray]], paths: list[str]) -> None:
    """--save_images names each output after its image's stem: a.png and a.bmp would write one file."""
    first = {}
    for (name, _), path in zip(luminances, paths):
        if first.setdefault(name, path) != path:
            raise ValueError(f"{path}: its saved output would be {first[name]}'s too ({dataset}/{name}_x*.png)")


def evaluate(
    model, *, data_dir: str, datasets: list[str], scales: list[int], save_dir: str | None = None
) -> list[dict]:
    """One row per (dataset, scale), as `evaluate_images` returns, with the dataset and scale added.

    Raises:
      ValueError: if a dataset folder is missing or empty, or one of its images cannot be scored
        (all checked before the network runs, so that no finished row is lost to a later file).
    """
    paths = {dataset: dataset_paths(data_dir, dataset) for dataset in datasets}
    luminances = {dataset: read_luminances(paths[dataset], scales) for dataset in datasets}
    if save_dir:
        for dataset in datasets:
            _refuse_shared_names(dataset, luminances[dataset], paths[dataset])
    predict = make_predictor(model)
    rows = []
    for dataset in datasets:
        for scale in scales:
            images = images_at_scale(luminances[dataset], scale)
            folder = os.path.join(save_dir, dataset) if save_dir else None
            row = evaluate_images(predict, images, scale, save_dir=folder, progress=f"{dataset} x{scale}")
            rows.append({"dataset": dataset, "scale": scale, **row})
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as the paper's Table 3: bicubic and VDSR PSNR/SSIM, and seconds per image."""
    lines = [
        "| dataset | scale | images | bicubic PSNR / SSIM | VDSR PSNR / SSIM | seconds per image |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['dataset']} | x{row['scale']} | {row['images']} | "
            f"{row['psnr_bicubic']:.2f} / {row['ssim_bicubic']:.4f} | {row['psnr']:.2f} / {row['ssim']:.4f} | "
            f"{row['seconds']:.2f} |"
        )
    return "\n".join(lines)
