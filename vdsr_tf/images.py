"""Image files, crops and the one bicubic degradation used everywhere."""

import os

import numpy as np
from PIL import Image, ImageOps

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


def read_image(path: str) -> np.ndarray:
    """Reads an 8-bit image as uint8 HxWx3 RGB, or HxW for grayscale files.

    EXIF orientation is applied. Palette and other modes become RGB.

    Raises:
      ImageReadError: naming the file, if it is missing, truncated or not an image.
    """
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode not in ("L", "RGB"):
                image = image.convert("RGB")
            array = np.asarray(image)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageReadError(f"{path}: not a readable image ({error})") from None
    if array.size == 0:
        raise ImageReadError(f"{path}: image has zero size")
    return array


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
