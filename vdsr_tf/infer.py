"""Enlarging a user's own pictures with VDSR.

Colour pictures go to YCbCr (MATLAB `rgb2ycbcr` on floats); VDSR enlarges Y,
the project's MATLAB bicubic `imresize` enlarges Cb, Cr and any alpha channel,
and the result goes back to RGB. Grayscale stays grayscale and 16-bit PNGs
keep 16 bits. The output is ceil(height * scale) x ceil(width * scale), as
MATLAB's `imresize` makes it.

A picture is enlarged in bands of `tile` output rows, so that the float
working memory grows with tile x output width rather than with the output;
each band equals the same rows of whole-image processing exactly.
"""

import glob
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np
from absl import logging
from tqdm import tqdm

from vdsr_tf.atomic import remove_leftovers
from vdsr_tf.color import rgb2ycbcr, ycbcr2rgb
from vdsr_tf.images import (
    OPAQUE_FORMATS,
    check_storable,
    list_images,
    matlab_cast,
    probe_picture,
    read_picture,
    write_picture,
)
from vdsr_tf.imresize import contributions, imresize, weighted_taps

MAX_SCALE = 8.0
FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP", "bmp": "BMP", "tiff": "TIFF", "tif": "TIFF"}
_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}
_COMMON_EXTENSIONS = ".png, .jpg, .jpeg, .webp, .tif, .tiff, .bmp, .gif"


def check_scale(scale: float) -> float:
    """VDSR enlarges by any real factor above 1; beyond MAX_SCALE (8) it has nothing left to add."""
    if not math.isfinite(scale) or not 1 < scale <= MAX_SCALE:
        raise ValueError(f"--scale must lie in (1, {MAX_SCALE:g}], got {scale}")
    return scale


def _predict_band(predict, band: np.ndarray, first: int, rows: int, *, tile: int, margin: int, on_tile=None):
    """The network output for rows first..first+rows of a float32 band, `tile` columns at a time."""
    width = band.shape[1]
    out = np.empty((rows, width), np.float32)
    for left in range(0, width, tile):
        right = min(left + tile, width)
        context_left = max(left - margin, 0)
        result = predict(band[:, context_left : min(right + margin, width)])
        out[:, left:right] = result[first : first + rows, left - context_left : right - context_left]
        if on_tile is not None:
            on_tile()
    return out


def _bands(height: int, *, tile: int, margin: int):
    """(top, bottom, context_top, context_bottom) of each band of `tile` rows, with `margin` rows of context."""
    for top in range(0, height, tile):
        bottom = min(top + tile, height)
        yield top, bottom, max(top - margin, 0), min(bottom + margin, height)


def _band_resizer(in_shape: tuple[int, int], out_shape: tuple[int, int]):
    """resize(read_rows, top, bottom): rows top..bottom of `imresize(x, output_shape=out_shape)`.

    `read_rows(first, last)` gives rows first..last of the HxWxC float input x;
    only the rows the band needs are read. The result equals the whole-image
    resize bit for bit: each output value is the same weighted sum of the same
    inputs in the same order, with MATLAB's order of the two passes (the axis
    of smaller scale first, rows on a tie). The column pass is `imresize` with
    the rows kept, an exact identity along them (one tap of weight 1).
    """
    weights, indices = contributions(in_shape[0], out_shape[0], out_shape[0] / in_shape[0])
    rows_first = out_shape[0] / in_shape[0] <= out_shape[1] / in_shape[1]

    def resize(read_rows, top: int, bottom: int) -> np.ndarray:
        first, last = int(indices[top:bottom].min()), int(indices[top:bottom].max()) + 1
        values = read_rows(first, last)
        band_weights, band_indices = weights[top:bottom], indices[top:bottom] - first
        if rows_first:
            values = weighted_taps(values, band_weights, band_indices)
        values = imresize(values, output_shape=(values.shape[0], out_shape[1]))
        return values if rows_first else weighted_taps(values, band_weights, band_indices)

    return resize


def _to_planes(pixels: np.ndarray) -> np.ndarray:
    """uint8/uint16 pixels -> float64 HxWxC planes in [0, 1]: Y, Cb, Cr (or Y alone for gray), then any alpha."""
    values = pixels.astype(np.float64) / np.iinfo(pixels.dtype).max
    if values.ndim == 2:
        return values[:, :, None]
    if values.shape[2] in (3, 4):
        return np.concatenate([rgb2ycbcr(values[:, :, :3]), values[:, :, 3:]], axis=2)
    return values


def _to_pixels(planes: np.ndarray, like: np.ndarray) -> np.ndarray:
    """The inverse of `_to_planes`, rounded as MATLAB casts, in the dtype and channels of `like`."""
    if like.ndim == 3 and like.shape[2] in (3, 4):
        planes = np.concatenate([ycbcr2rgb(planes[:, :, :3]), planes[:, :, 3:]], axis=2)
    result = matlab_cast(planes * np.iinfo(like.dtype).max, like.dtype)
    return result[:, :, 0] if like.ndim == 2 else result


def output_shape(height: int, width: int, scale: float) -> tuple[int, int]:
    """The enlarged (height, width): MATLAB's `imresize` size for a scale factor."""
    return math.ceil(height * scale), math.ceil(width * scale)


def tile_count(out_shape: tuple[int, int], tile: int) -> int:
    """How many network passes `enlarge` makes for an output of `out_shape`."""
    return math.ceil(out_shape[0] / tile) * math.ceil(out_shape[1] / tile)


def enlarge(
    pixels: np.ndarray, scale: float, predict, *, tile: int, margin: int, progress: str | None = None
) -> np.ndarray:
    """Enlarges a picture's pixels (see `Picture`) by `scale`; same channels and dtype out.

    VDSR enlarges Y, bicubic the rest, in bands and tiles of `tile` pixels with `margin` pixels of
    context. A 3x3 convolution looks one pixel further each layer, so with `margin` equal to the
    network depth every kept pixel sees exactly what whole-image inference would show it (zero
    padding at the image border included). `progress` labels a progress bar over the tiles,
    shown when there are several.
    """
    height, width = pixels.shape[:2]
    out_shape = output_shape(height, width, scale)
    out = np.empty(out_shape + pixels.shape[2:], pixels.dtype)
    resize = _band_resizer((height, width), out_shape)
    tiles = tile_count(out_shape, tile)

    def read_rows(first: int, last: int) -> np.ndarray:
        return _to_planes(pixels[first:last])

    with tqdm(total=tiles, desc=progress, unit="tile", leave=False, disable=progress is None or tiles < 2) as bar:
        for top, bottom, context_top, context_bottom in _bands(out_shape[0], tile=tile, margin=margin):
            planes = resize(read_rows, context_top, context_bottom)
            luminance = planes[:, :, 0].astype(np.float32)
            planes = planes[top - context_top : bottom - context_top]
            planes[:, :, 0] = _predict_band(
                predict, luminance, top - context_top, bottom - top, tile=tile, margin=margin, on_tile=bar.update
            )
            out[top:bottom] = _to_pixels(planes, pixels)
    return out


def expand_inputs(pattern: str) -> list[str]:
    """A file, every image of a folder, or the files a glob matches, sorted.

    Raises:
      ValueError: naming the path, if nothing matches.
    """
    if os.path.isdir(pattern):
        paths = list_images(pattern)
        if not paths:
            raise ValueError(f"--input: {pattern} holds no image files (looked for {_COMMON_EXTENSIONS}, ...)")
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
    return os.path.join(out_dir, f"{stem}_x{scale_name(scale)}.{_EXTENSIONS[file_format]}")


def scale_name(scale: float) -> str:
    """The scale in its shortest exact decimals, as output names and the page show it: 2, 2.5, 2.000001."""
    return np.format_float_positional(float(scale), trim="-")


_OUTPUT_NAME = re.compile(rf"(.+)_x\d+(?:\.\d+)?\.(?:{'|'.join(_EXTENSIONS.values())})", re.IGNORECASE)


def _outputs_of_others(paths: list[str], out_dir: str) -> dict[str, str]:
    """{input: the input it was enlarged from}: the inputs in `out_dir` named <another input's stem>_x<scale>,
    which a rerun into the input folder, at any scale, would otherwise enlarge again."""
    if not os.path.isdir(out_dir):
        return {}
    out_folder = _file_id(out_dir)
    folders = {path: _file_id(os.path.dirname(path) or ".") for path in paths}
    stems = {(folders[path], os.path.splitext(os.path.basename(path))[0]): path for path in reversed(paths)}
    found = {}
    for path in paths:
        match = _OUTPUT_NAME.fullmatch(os.path.basename(path))
        if match and folders[path] == out_folder and (out_folder, match[1]) in stems:
            found[path] = stems[out_folder, match[1]]
    return found


def output_format(input_format: str, deep: bool, requested: str | None, *, alpha: bool) -> tuple[str, str | None]:
    """(the format to write, why it is not the input's or what it loses where that is worth a line in
    the log, or None).

    Args:
      input_format: Pillow's name of the input's format, e.g. "GIF".
      deep: whether the input has 16-bit pixels.
      requested: --format, or None for the input's own where the project writes it.
      alpha: whether the input has an alpha channel.
    """
    if requested:
        file_format = FORMATS[requested]
        lost = [f"8 bits: {file_format} holds no more"] * (deep and file_format != "PNG")
        lost += [f"transparency put onto white: {file_format} holds none"] * (alpha and file_format in OPAQUE_FORMATS)
        return file_format, "; ".join(lost) or None
    if input_format not in _EXTENSIONS:
        return "PNG", f"{input_format} is not an output format"
    if deep and input_format != "PNG":
        return "PNG", "PNG keeps the 16 bits"
    if alpha and input_format in OPAQUE_FORMATS:
        return "PNG", "PNG keeps the transparency"
    return input_format, None


@dataclass
class Tally:
    """What a run over files did so far: the outputs written, the inputs skipped and the (input, error) failed."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.written)} written, {len(self.skipped)} skipped, {len(self.failed)} failed"


def _file_id(path: str) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_dev, status.st_ino


def _claim_output(claimed: dict, destination: str, path: str) -> None:
    """Refuses a second input whose output is the first one's: the same name, or another name for the same
    file (on macOS and Windows, one that differs only in case), known by the identity of the file there."""
    keys = [destination, _file_id(destination)] if os.path.exists(destination) else [destination]
    for key in keys:
        if claimed.setdefault(key, path) != path:
            raise ValueError(f"{path}: its output {destination} is that of {claimed[key]} too; rename one of them")


def enlarge_files(
    paths: list[str],
    *,
    out_dir: str,
    scale: float,
    predict,
    tile: int,
    margin: int,
    requested_format: str | None = None,
    quality: int = 95,
    overwrite: bool = False,
    tally: Tally | None = None,
) -> Tally:
    """Enlarges every file into `out_dir`, skipping those whose output exists unless `overwrite`.

    Temporary files that a killed earlier run left in `out_dir` are removed
    first. Returns `tally` (a new one if None), filled file by file, so that
    what was written is known even if a KeyboardInterrupt ends the run.
    """
    tally = Tally() if tally is None else tally
    for leftover in remove_leftovers(out_dir):
        logging.info("removed %s, left by an interrupted run", leftover)
    claimed = {}  # destination, and the file identity of what was written, -> the input it is for
    outputs_of_others = _outputs_of_others(paths, out_dir)
    for path in tqdm(paths, desc=f"x{scale_name(scale)}", unit="img", disable=len(paths) < 2):
        if path in outputs_of_others:
            logging.info("%s: skipped, an output of %s", path, outputs_of_others[path])
            tally.skipped.append(path)
            continue
        try:
            input_format, deep, alpha = probe_picture(path)
            file_format, why = output_format(input_format, deep, requested_format, alpha=alpha)
            destination = output_path(path, out_dir, scale, file_format)
            _claim_output(claimed, destination, path)
            if os.path.exists(destination) and not overwrite:
                logging.info("%s: skipped, %s exists (--overwrite replaces it)", path, destination)
                tally.skipped.append(path)
                continue
            picture = read_picture(path)
            check_storable(destination, file_format, output_shape(*picture.pixels.shape[:2], scale))
            if picture.cut_to_8_bits:
                logging.warning("%s: read at 8 bits, as Pillow decodes a 16-bit colour TIFF", path)
            if picture.frames > 1:
                logging.warning("%s: %d frames; enlarging the first alone", path, picture.frames)
            if why:
                logging.warning("%s: written as %s (%s)", path, file_format, why)
            pixels = enlarge(picture.pixels, scale, predict, tile=tile, margin=margin, progress=os.path.basename(path))
            write_picture(
                pixels, destination, file_format, quality=quality, lossless=picture.lossless, metadata=picture.metadata
            )
            claimed[_file_id(destination)] = path
            logging.info("wrote %s", destination)
            tally.written.append(destination)
        except (ValueError, MemoryError) as error:
            message = str(error) if isinstance(error, ValueError) else f"{path}: not enough memory to enlarge it"
            logging.error("%s", message)
            tally.failed.append((path, message))
    return tally
