"""Training patches: generation into HDF5 (the public MATLAB `generate_train.m` scripts' recipe) and reading.

For every training image and augmentation (rotation, flip, optional downsize,
applied to the RGB image first), and for every scale: Y of MATLAB
`rgb2ycbcr` on uint8, `modcrop` by the scale, MATLAB bicubic down by 1/scale
and back up, then patch_size x patch_size patches with the given stride.
Inputs are the interpolated patches, labels the ground-truth patches, both
float32 in [0, 1].
"""

import multiprocessing
import os
import signal
from dataclasses import dataclass

import h5py
import numpy as np
from absl import logging
from tqdm import tqdm

from vdsr_tf.atomic import atomic_path
from vdsr_tf.color import rgb_to_y
from vdsr_tf.images import ImageReadError, bicubic_degrade, matlab_cast, modcrop, read_image
from vdsr_tf.imresize import imresize

DATA_FORMAT = "vdsr_tf.patches/1"
FLIPS = ("none", "lr", "ud")


@dataclass(frozen=True)
class PatchSettings:
    scales: tuple[int, ...] = (2, 3, 4)
    rotations: tuple[int, ...] = (0, 90)
    flips: tuple[str, ...] = ("none", "lr")
    downsizes: tuple[float, ...] = (1.0,)
    patch_size: int = 41
    stride: int = 41

    def __post_init__(self):
        if not self.scales or min(self.scales) < 2 or max(self.scales) > 255:  # stored as uint8
            raise ValueError(f"--scales must be integers from 2 to 255, got {self.scales}")
        if any(rotation % 90 for rotation in self.rotations) or not self.rotations:
            raise ValueError(f"--rotations must be multiples of 90 degrees, got {self.rotations}")
        if not self.flips or any(flip not in FLIPS for flip in self.flips):
            raise ValueError(f"--flips must be among {FLIPS}, got {self.flips}")
        if not self.downsizes or any(not 0 < size <= 1 for size in self.downsizes):
            raise ValueError(f"--downsizes must lie in (0, 1], got {self.downsizes}")
        if self.patch_size < 1:
            raise ValueError(f"--patch_size must be positive, got {self.patch_size}")
        if self.stride < 1:
            raise ValueError(f"--stride must be positive, got {self.stride}")


def augment(image: np.ndarray, *, rotation: int, flip: str) -> np.ndarray:
    """Flips, then rotates counter-clockwise by `rotation` degrees (MATLAB `imrotate` direction)."""
    if flip == "lr":
        image = image[:, ::-1]
    elif flip == "ud":
        image = image[::-1]
    return np.ascontiguousarray(np.rot90(image, k=(rotation // 90) % 4))


def patch_corners(height: int, width: int, *, patch_size: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners in MATLAB's order: `for x = 1:stride:hei-size+1, for y = ...`."""
    return [
        (top, left)
        for top in range(0, height - patch_size + 1, stride)
        for left in range(0, width - patch_size + 1, stride)
    ]


def _downsized(image: np.ndarray, size: float) -> np.ndarray:
    """MATLAB `imresize(uint8_image, size, 'bicubic')`, which rounds back to uint8."""
    if size == 1:
        return image
    return matlab_cast(imresize(image.astype(np.float64), scale=size))


def _variants(image: np.ndarray, settings: PatchSettings):
    for flip in settings.flips:
        for rotation in settings.rotations:
            for size in settings.downsizes:
                yield _downsized(augment(image, rotation=rotation, flip=flip), size)


def count_image_patches(height: int, width: int, settings: PatchSettings) -> int:
    """How many patches `image_patches` yields for an image of this size, without computing them."""
    total = 0
    for rotation in settings.rotations:
        rotated = (width, height) if rotation % 180 else (height, width)
        for size in settings.downsizes:
            shape = [int(np.ceil(n * size)) if size != 1 else n for n in rotated]
            for scale in settings.scales:
                total += len(
                    patch_corners(
                        shape[0] - shape[0] % scale,
                        shape[1] - shape[1] % scale,
                        patch_size=settings.patch_size,
                        stride=settings.stride,
                    )
                )
    return total * len(settings.flips)


def image_patches(image: np.ndarray, settings: PatchSettings):
    """All (input, label, scale) patches of one uint8 image (HxWx3 RGB or HxW gray).

    Returns:
      inputs, labels: float32 arrays (n, patch, patch, 1) in [0, 1]; scales: uint8 (n,).
    """
    size = settings.patch_size
    inputs, labels, scales = [], [], []
    for variant in _variants(image, settings):
        luminance = rgb_to_y(variant).astype(np.float64) / 255
        for scale in settings.scales:
            label = modcrop(luminance, scale)
            corners = patch_corners(*label.shape, patch_size=size, stride=settings.stride)
            if not corners:  # smaller than a patch (or than the scale, which would crop it to nothing)
                continue
            interpolated = bicubic_degrade(label, scale)
            for top, left in corners:
                inputs.append(interpolated[top : top + size, left : left + size])
                labels.append(label[top : top + size, left : left + size])
                scales.append(scale)
    shape = (len(inputs), size, size, 1)
    return (
        np.asarray(inputs, dtype=np.float32).reshape(shape),
        np.asarray(labels, dtype=np.float32).reshape(shape),
        np.asarray(scales, dtype=np.uint8),
    )


def _read_for_generation(path: str):
    try:
        return path, read_image(path)
    except ImageReadError as error:
        return path, error


def _patches_of_path(arguments):
    path, settings = arguments
    return image_patches(read_image(path), settings)


def _write_patches(file, pool, paths: list[str], counts: list[int], order: np.ndarray, settings: PatchSettings):
    """Streams each image's patches to their shuffled positions `order` in `file`'s datasets."""
    total, size = len(order), settings.patch_size
    shape, chunk = (total, size, size, 1), (1, size, size, 1)
    data = file.create_dataset("data", shape, dtype=np.float32, chunks=chunk)
    label = file.create_dataset("label", shape, dtype=np.float32, chunks=chunk)
    scales_out = np.zeros(total, dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    results = pool.imap(_patches_of_path, ((path, settings) for path in paths))
    for index, (inputs, labels, scales) in enumerate(tqdm(results, total=len(paths), desc="images", unit="img")):
        if len(inputs) != counts[index]:
            raise ValueError(f"{paths[index]}: changed while it was read ({counts[index]} patches, then {len(inputs)})")
        positions = order[offsets[index] : offsets[index + 1]]
        for position, input_patch, label_patch in zip(positions, inputs, labels):
            # One patch is one uncompressed chunk: writing its bytes directly
            # is ~60x faster than h5py's fancy-index writes.
            corner = (int(position), 0, 0, 0)
            data.id.write_direct_chunk(corner, input_patch.tobytes())
            label.id.write_direct_chunk(corner, label_patch.tobytes())
        scales_out[positions] = scales
    file.create_dataset("scale", data=scales_out)


def generate_training_h5(
    image_paths: list[str], output: str, *, settings: PatchSettings, seed: int, workers: int = 2
) -> dict:
    """Writes the shuffled patches of `image_paths` to `output` and returns a summary.

    The file holds `data` and `label` (N, patch, patch, 1) float32 and `scale`
    (N,) uint8, chunked one patch per chunk so that random batches read fast,
    plus the generation settings as attributes. Patches are streamed to their
    shuffled positions image by image, so memory holds one image's patches at a
    time per worker. The file is written under a temporary name and renamed
    when complete.

    Unreadable images are skipped, logged by name and counted in the summary.

    Raises:
      ValueError: if no image is readable or no image yields a patch.
    """
    readable, skipped, counts = [], [], []
    # The workers ignore SIGINT: Ctrl-C reaches this process, which stops them, without a traceback from each.
    with multiprocessing.Pool(workers, initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN)) as pool:
        for path, result in pool.imap(_read_for_generation, image_paths):
            if isinstance(result, ImageReadError):
                logging.warning("skipping %s", result)
                skipped.append(path)
                continue
            readable.append(path)
            counts.append(count_image_patches(result.shape[0], result.shape[1], settings))
        total = int(sum(counts))
        if total == 0:
            raise ValueError(f"no training patches: {len(readable)} readable images, none large enough")
        with atomic_path(output, suffix=".h5") as temporary:
            with h5py.File(temporary, "w") as file:
                _write_patches(file, pool, readable, counts, np.random.default_rng(seed).permutation(total), settings)
                file.attrs["format"] = DATA_FORMAT
                file.attrs["images"] = len(readable)
                file.attrs["skipped_images"] = len(skipped)
                file.attrs["seed"] = seed
                for key, value in vars(settings).items():
                    file.attrs[key] = value
    return {"images": len(readable), "skipped": skipped, "patches": total}


class TrainingPatches:
    """Random access to a patch file written by `generate_training_h5`.

    `inputs`, `labels` and `scales` (each patch's scale; None in files without
    one) are the file's datasets, read lazily.
    """

    def __init__(self, path: str):
        if not os.path.isfile(path):
            raise ValueError(f"{path}: no such training file (make one with data/generate_dataset/generate_train.py)")
        try:
            self._file = h5py.File(path, "r")
        except OSError as error:
            raise ValueError(f"{path}: not an HDF5 file ({error})") from None
        try:
            self.inputs, self.labels = self._file["data"], self._file["label"]
        except KeyError:
            self._file.close()
            raise ValueError(f"{path}: expected datasets 'data' and 'label'") from None
        shape, label_shape = self.inputs.shape, self.labels.shape
        dtypes = (self.inputs.dtype, self.labels.dtype)
        if len(shape) != 4 or shape[3] != 1 or shape[1] != shape[2] or label_shape != shape or shape[0] == 0:
            self._file.close()
            raise ValueError(
                f"{path}: 'data' and 'label' must both be (N, P, P, 1) with N > 0, got {shape} and {label_shape}"
            )
        if not all(np.issubdtype(dtype, np.floating) for dtype in dtypes):
            self._file.close()
            raise ValueError(f"{path}: 'data' and 'label' must hold floats in [0, 1], got {dtypes[0]} and {dtypes[1]}")
        self.count = shape[0]
        self.scales = self._file["scale"] if "scale" in self._file else None
        self.patch_size = shape[1]

    def batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, labels) at `indices`, each float32 (len(indices), P, P, 1), in the given order."""
        inputs = np.stack([self.inputs[index] for index in indices])
        labels = np.stack([self.labels[index] for index in indices])
        return inputs, labels

    def close(self):
        self._file.close()


def batch_indices(step: int, *, batch_size: int, count: int, seed: int) -> np.ndarray:
    """Indices of the patches in training step `step` (0-based).

    Batches walk through a shuffled order of all patches; each pass over the
    patches has its own permutation derived from (seed, pass). The order is thus
    a pure function of the step, which is what makes resuming exact.
    """
    start = step * batch_size
    indices = []
    while len(indices) < batch_size:
        pass_index, offset = divmod(start + len(indices), count)
        permutation = np.random.default_rng([seed, pass_index]).permutation(count)
        indices.extend(permutation[offset : offset + batch_size - len(indices)])
    return np.asarray(indices, dtype=np.int64)
