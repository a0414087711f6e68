"""MATLAB-exact bicubic `imresize`.

Reproduces MATLAB's `imresize(img, scale, 'bicubic')` (Image Processing
Toolbox), which every VDSR number depends on: the training patches, the
evaluation inputs and the images users enlarge all go through this one function.
MATLAB's quirks, all reproduced here:
  * cubic convolution kernel with a = -0.5 (Keys 1981);
  * when shrinking, the kernel is stretched by 1/scale (antialiasing);
  * output size is ceil(input_size * scale) when a scale is given;
  * out-of-range taps mirror the image symmetrically (edge pixel repeated);
  * the dimension with the smaller scale is resized first (rows first on a tie).
"""

import math

import numpy as np

KERNEL_WIDTH = 4.0


def _cubic(x: np.ndarray) -> np.ndarray:
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    return (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1) + (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * (
        (absx > 1) & (absx <= 2)
    )


def contributions(in_length: int, out_length: int, scale: float):
    """Weights and 0-based source indices, each of shape (out_length, taps).

    Mirrors MATLAB's private `contributions` function, including the removal of
    tap columns whose weights are all zero.
    """
    kernel_width = KERNEL_WIDTH
    if scale < 1:
        kernel_width = KERNEL_WIDTH / scale
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    distance = u[:, None] - indices
    if scale < 1:
        weights = scale * _cubic(scale * distance)
    else:
        weights = _cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


def weighted_taps(values: np.ndarray, weights: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Output row i = sum over taps t of weights[i, t] * values[indices[i, t]], along the first axis.

    One tap at a time: memory stays at two output-sized arrays instead of `taps` of them.
    """
    weights = weights.reshape(weights.shape + (1,) * (values.ndim - 1))
    out = weights[:, 0] * values[indices[:, 0]]
    for tap in range(1, indices.shape[1]):
        out += weights[:, tap] * values[indices[:, tap]]
    return out


def _resize_along(img: np.ndarray, axis: int, out_length: int, scale: float) -> np.ndarray:
    weights, indices = contributions(img.shape[axis], out_length, scale)
    return np.moveaxis(weighted_taps(np.moveaxis(img, axis, 0), weights, indices), 0, axis)


def imresize(img: np.ndarray, scale: float | None = None, output_shape=None) -> np.ndarray:
    """Resizes like MATLAB `imresize(img, scale, 'bicubic')`.

    Args:
      img: float array, HxW or HxWxC (channels are resized independently).
        Integer input is rejected: MATLAB would round the result, callers here
        convert to float first so that rounding is explicit.
      scale: resize factor applied to both height and width. The output size is
        ceil(H * scale) x ceil(W * scale), and the kernel uses `scale` itself,
        as MATLAB does.
      output_shape: (height, width) instead of `scale`; the per-dimension scale
        is then output / input.

    Returns:
      float64 array of the new size, not rounded or clipped.

    Raises:
      ValueError: on a bad dtype, rank, scale or shape.
    """
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize: expected an HxW or HxWxC array, got shape {img.shape}")
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"imresize: expected a float array, got {img.dtype}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"imresize: empty image of shape {img.shape}")
    if (scale is None) == (output_shape is None):
        raise ValueError("imresize: give exactly one of scale and output_shape")
    if scale is not None:
        if not scale > 0 or not math.isfinite(scale):
            raise ValueError(f"imresize: scale must be a positive number, got {scale}")
        scales = (float(scale), float(scale))
        out_shape = tuple(int(math.ceil(n * scale)) for n in img.shape[:2])
    else:
        out_shape = tuple(int(n) for n in output_shape)
        if len(out_shape) != 2 or min(out_shape) < 1:
            raise ValueError(f"imresize: output_shape must be two positive sizes, got {output_shape}")
        scales = (out_shape[0] / img.shape[0], out_shape[1] / img.shape[1])
    out = img.astype(np.float64)
    for axis in sorted((0, 1), key=lambda a: scales[a]):
        out = _resize_along(out, axis, out_shape[axis], scales[axis])
    return out
