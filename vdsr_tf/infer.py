"""Enlarging a user's own pictures with VDSR.

Colour pictures go to YCbCr (MATLAB `rgb2ycbcr` on floats); VDSR enlarges Y,
the project's MATLAB bicubic `imresize` enlarges Cb, Cr and any alpha channel,
and the result goes back to RGB. Grayscale stays grayscale and 16-bit PNGs
keep 16 bits. The output is ceil(height * scale) x ceil(width * scale), as
MATLAB's `imresize` makes it.
"""

import glob
import math
import os

import numpy as np
import png
from absl import logging
from PIL import Image
from tqdm import tqdm

from vdsr_tf.atomic import atomic_path
from vdsr_tf.color import rgb2ycbcr, ycbcr2rgb
from vdsr_tf.images import Picture, list_images, matlab_cast, read_picture
from vdsr_tf.imresize import imresize

MAX_SCALE = 8.0
FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP", "bmp": "BMP", "tiff": "TIFF"}
_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}


def check_scale(scale: float) -> float:
    """VDSR enlarges by any real factor above 1; beyond MAX_SCALE (8) it has nothing left to add."""
    if not math.isfinite(scale) or not 1 < scale <= MAX_SCALE:
        raise ValueError(f"--scale must lie in (1, {MAX_SCALE:g}], got {scale}")
    return scale


def predict_tiled(predict, image: np.ndarray, *, tile: int, margin: int) -> np.ndarray:
    """Runs `predict` over `tile` x `tile` blocks of an HxW float32 image, each with `margin` context.

    A 3x3 convolution looks one pixel further each layer, so with `margin` equal
    to the network depth every kept pixel sees exactly what whole-image
    inference would show it, zero padding at the image border included: the
    result equals whole-image inference up to float rounding.
    """
    height, width = image.shape
    out = np.empty((height, width), np.float32)
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            context_top, context_left = max(top - margin, 0), max(left - margin, 0)
            block = image[context_top : min(bottom + margin, height), context_left : min(right + margin, width)]
            result = predict(block)
            out[top:bottom, left:right] = result[
                top - context_top : bottom - context_top, left - context_left : right - context_left
            ]
    return out


def enlarge(pixels: np.ndarray, scale: float, predict, *, tile: int, margin: int) -> np.ndarray:
    """Enlarges a picture's pixels (see `Picture`) by `scale`; same channels and dtype out."""
    peak = np.iinfo(pixels.dtype).max
    values = pixels.astype(np.float64) / peak
    if values.ndim == 2:
        values = values[:, :, None]
    channels = values.shape[2]
    colour, alpha = (
        values[:, :, : 3 if channels >= 3 else 1],
        values[:, :, channels - 1 :] if channels in (2, 4) else None,
    )
    out_shape = (math.ceil(values.shape[0] * scale), math.ceil(values.shape[1] * scale))
    # Y, Cb, Cr for colour pictures; Y alone for grayscale ones. VDSR enlarges Y, bicubic the rest.
    planes = imresize(rgb2ycbcr(colour) if colour.shape[2] == 3 else colour, output_shape=out_shape)
    planes[:, :, 0] = predict_tiled(predict, planes[:, :, 0].astype(np.float32), tile=tile, margin=margin)
    result = ycbcr2rgb(planes) if colour.shape[2] == 3 else planes
    if alpha is not None:
        result = np.concatenate([result, imresize(alpha, output_shape=out_shape)], axis=2)
    result = matlab_cast(result * peak, pixels.dtype)
    return result[:, :, 0] if pixels.ndim == 2 else result


def expand_inputs(pattern: str) -> list[str]:
    """A file, every image of a folder, or the files a glob matches, sorted.

    Raises:
      ValueError: naming the path, if nothing matches.
    """
    if os.path.isdir(pattern):
        paths = list_images(pattern)
    elif os.path.isfile(pattern):
        paths = [pattern]
    else:
        paths = sorted(path for path in glob.glob(pattern) if os.path.isfile(path))
    if not paths:
        raise ValueError(
            f"--input: nothing at {pattern}" if not glob.has_magic(pattern) else f"--input: no file matches {pattern}"
        )
    return paths


def output_path(path: str, out_dir: str, scale: float, file_format: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.join(out_dir, f"{stem}_x{scale:g}.{_EXTENSIONS[file_format]}")


def output_format(picture: Picture, requested: str | None) -> str:
    if requested:
        return FORMATS[requested]
    if picture.pixels.dtype == np.uint16 or picture.format not in _EXTENSIONS:
        return "PNG"
    return picture.format


def write_picture(pixels: np.ndarray, path: str, file_format: str) -> None:
    """Writes atomically. 16-bit pixels are kept in PNG and cut to 8 bits in other formats."""
    if pixels.dtype == np.uint16 and file_format != "PNG":
        pixels = (pixels // 257).astype(np.uint8)
    if file_format == "JPEG" and pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        raise ValueError(f"{path}: JPEG cannot store the alpha channel; use --format=png")
    with atomic_path(path, suffix=os.path.splitext(path)[1]) as temporary:
        if pixels.dtype == np.uint16 and pixels.ndim == 3:
            height, width, planes = pixels.shape
            writer = png.Writer(width, height, greyscale=planes == 2, alpha=planes in (2, 4), bitdepth=16)
            with open(temporary, "wb") as file:
                writer.write(file, pixels.reshape(height, width * planes))
        else:
            options = {"quality": 95} if file_format in ("JPEG", "WEBP") else {}
            Image.fromarray(pixels).save(temporary, format=file_format, **options)


def enlarge_files(
    paths: list[str],
    *,
    out_dir: str,
    scale: float,
    predict,
    tile: int,
    margin: int,
    requested_format: str | None = None,
    overwrite: bool = False,
) -> list[tuple[str, str]]:
    """Enlarges every file; returns (path, error) for those that failed. The others are written."""
    failures = []
    for path in tqdm(paths, desc=f"x{scale:g}", unit="img", disable=len(paths) < 2):
        try:
            picture = read_picture(path)
            file_format = output_format(picture, requested_format)
            destination = output_path(path, out_dir, scale, file_format)
            if os.path.exists(destination) and not overwrite:
                raise ValueError(f"{destination}: exists (use --overwrite to replace it)")
            write_picture(enlarge(picture.pixels, scale, predict, tile=tile, margin=margin), destination, file_format)
            logging.info("wrote %s", destination)
        except ValueError as error:
            logging.error("%s", error)
            failures.append((path, str(error)))
    return failures
