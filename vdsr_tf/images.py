"""Image files, crops and the one bicubic degradation used everywhere."""

import os
from dataclasses import dataclass

import numpy as np
import png
from PIL import ExifTags, Image

from vdsr_tf.imresize import imresize


class ImageReadError(ValueError):
    """A file that is missing, unreadable or not an image."""


def list_images(folder: str) -> list[str]:
    """Files in `folder` with an image extension Pillow knows (.png, .webp, .jpg, ...), sorted by name.

    Files are listed by name, not opened: a corrupt image is listed, so that
    reading it reports it by name instead of it silently going missing.
    """
    extensions = set(Image.registered_extensions())
    return [
        os.path.join(folder, name)
        for name in sorted(os.listdir(folder))
        if os.path.splitext(name)[1].lower() in extensions and os.path.isfile(os.path.join(folder, name))
    ]


@dataclass(frozen=True)
class Picture:
    """Pixels as read: HxW (gray), HxWx2 (gray + alpha), HxWx3 (RGB) or HxWx4 (RGBA); uint8 or uint16."""

    pixels: np.ndarray
    format: str  # Pillow's name of the file format, e.g. "PNG"


# EXIF orientation tag -> the transform that shows the pixels upright (Pillow's exif_transpose).
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def _read_png16(path: str) -> np.ndarray:
    """16-bit colour PNG via pypng: Pillow would cut it to 8 bits."""
    width, height, rows, info = png.Reader(filename=path).asDirect()
    planes = info["planes"]
    return np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, planes)


def _is_png16(image: Image.Image, path: str) -> bool:
    if image.format != "PNG" or image.mode not in ("RGB", "RGBA", "LA"):
        return False
    reader = png.Reader(filename=path)
    reader.preamble()
    return reader.bitdepth == 16


def _pixels(image: Image.Image) -> np.ndarray:
    if image.mode.startswith("I;16") or image.mode == "I":
        return np.asarray(image).astype(np.uint16)
    if image.mode in ("L", "LA", "RGB", "RGBA"):
        return np.asarray(image)
    if image.mode in ("1", "P", "PA"):
        has_alpha = image.mode == "PA" or "transparency" in image.info
        return np.asarray(image.convert("RGBA" if has_alpha else "RGB"))
    return np.asarray(image.convert("RGB"))


def read_picture(path: str) -> Picture:
    """Reads any image Pillow opens, 16-bit colour PNGs at 16 bits, EXIF orientation applied.

    Raises:
      ImageReadError: naming the file, if it is missing, truncated, empty or not an image.
    """
    try:
        with Image.open(path) as image:
            pixels = _read_png16(path) if _is_png16(image, path) else _pixels(image)
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
            file_format = image.format
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except (OSError, SyntaxError, ValueError, png.Error, Image.DecompressionBombError) as error:
        raise ImageReadError(f"{path}: not a readable image ({error})") from None
    if pixels.size == 0:
        raise ImageReadError(f"{path}: image has zero size")
    if orientation in _UPRIGHT:
        pixels = np.ascontiguousarray(_UPRIGHT[orientation](pixels))
    return Picture(pixels, file_format)


def read_image(path: str) -> np.ndarray:
    """Reads a picture as evaluation and training use it: uint8 HxWx3 RGB, or HxW for grayscale.

    Alpha is dropped; 16-bit values become 8-bit as MATLAB's `im2uint8` makes them.

    Raises:
      ImageReadError: naming the file, if it is missing, truncated, empty or not an image.
    """
    pixels = read_picture(path).pixels
    if pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        pixels = pixels[:, :, :-1]
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.dtype == np.uint16:
        pixels = matlab_cast(pixels / 257.0)
    return pixels


def matlab_cast(values: np.ndarray, dtype=np.uint8) -> np.ndarray:
    """MATLAB's double-to-integer cast (`uint8(x)`, `uint16(x)`): round half away from zero, saturate."""
    values = np.asarray(values, dtype=np.float64)
    rounded = np.sign(values) * np.floor(np.abs(values) + 0.5)
    return np.clip(rounded, 0, np.iinfo(dtype).max).astype(dtype)


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crops the bottom and right so that height and width are multiples of `scale`."""
    height = img.shape[0] - img.shape[0] % scale
    width = img.shape[1] - img.shape[1] % scale
    return img[:height, :width]


def shave(img: np.ndarray, border: int) -> np.ndarray:
    """Removes `border` pixels from every side (the protocol shaves `scale` pixels)."""
    if border == 0:
        return img
    return img[border:-border, border:-border]


def bicubic_degrade(label: np.ndarray, scale: float) -> np.ndarray:
    """The VDSR input for a ground-truth image: MATLAB bicubic down by 1/scale and back up.

    Args:
      label: float HxW (or HxWxC) in [0, 1], already cropped with `modcrop`
        for integer scales.
      scale: the super-resolution factor.

    Returns:
      float64 array of the label's shape, not clipped: the interpolated low
      resolution image `ilr` of the evaluation protocol and of training.
    """
    low = imresize(label, scale=1.0 / scale)
    return imresize(low, output_shape=label.shape[:2])
