"""Image files, crops and the one bicubic degradation used everywhere."""

import contextlib
import os
import warnings
import zlib
from dataclasses import dataclass, field

import numpy as np
import png
from PIL import ExifTags, Image

from vdsr_tf.atomic import atomic_path
from vdsr_tf.imresize import imresize


class ImageReadError(ValueError):
    """A file that is missing, unreadable or not an image."""


# Formats Pillow registers but only writes (PDF, PALM), only recognises (HDF5, MPEG, ...) or reads with
# Ghostscript (EPS): documents and data, not photos.
_NOT_PICTURES = ("PDF", "PALM", "BUFR", "GRIB", "HDF5", "MPEG", "WMF", "EPS", "IPTC")
_UNREAD_EXTENSIONS = {".heic": "HEIC", ".heif": "HEIF"}


def allow_large_pictures() -> None:
    """Silences Pillow's warning for pictures over 89 megapixels, which a 108 MP phone makes: for the
    command's own files it is no attack (above 179 MP Pillow refuses them, and `_opened` says so in a line).
    For applications (the command, its page), not for library callers' processes."""
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def list_images(folder: str) -> list[str]:
    """Files in `folder` with an image extension Pillow reads (.png, .webp, .jpg, ...) or HEIC, sorted by name.

    Files are listed by name, not opened: a corrupt image is listed, so that
    reading it reports it by name instead of it silently going missing; so is
    a phone's HEIC, which Pillow does not read, so that the log says so.
    """
    extensions = {
        extension for extension, name in Image.registered_extensions().items() if name not in _NOT_PICTURES
    } | set(_UNREAD_EXTENSIONS)
    return [
        os.path.join(folder, name)
        for name in sorted(os.listdir(folder))
        if os.path.splitext(name)[1].lower() in extensions and os.path.isfile(os.path.join(folder, name))
    ]


def dataset_paths(data_dir: str, dataset: str, *, flag: str = "--test_datasets") -> list[str]:
    """The images of `<data_dir>/test/<dataset>`, sorted by name.

    Raises:
      ValueError: naming the folder, if it is missing or holds no image, or `dataset` is not a folder's
        name (an empty item of a comma list, a path, `..`).
    """
    if not dataset or dataset in (".", "..") or "/" in dataset or os.sep in dataset:
        raise ValueError(f"{flag}: name folders under {data_dir}/test, got '{dataset}'")
    folder = os.path.join(data_dir, "test", dataset)
    if not os.path.isdir(folder):
        raise ValueError(f"{flag}: no folder {folder} for dataset '{dataset}'")
    paths = list_images(folder)
    if not paths:
        raise ValueError(f"{flag}: {folder} holds no readable image")
    return paths


@dataclass(frozen=True)
class Metadata:
    """What should survive an enlargement: EXIF (camera, date), the ICC colour profile, dots per inch.

    The EXIF orientation is 1: the pixels were turned upright when read.
    """

    exif: bytes | None = None
    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None


@dataclass(frozen=True)
class Picture:
    """Pixels as read: HxW (gray), HxWx2 (gray + alpha), HxWx3 (RGB) or HxWx4 (RGBA); uint8 or uint16."""

    pixels: np.ndarray
    format: str  # Pillow's name of the file format, e.g. "PNG"
    metadata: Metadata = field(default_factory=Metadata)
    frames: int = 1  # an animation or multi-page file has several; `pixels` is the first
    lossless: bool = False  # a lossless (VP8L) WebP
    cut_to_8_bits: bool = False  # a 16-bit colour TIFF: Pillow decodes its pixels at 8 bits


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


def _has_alpha(image: Image.Image) -> bool:
    """Whether `_pixels` reads an alpha plane: the modes with one, and a palette with a transparent entry."""
    return image.mode in ("LA", "RGBA", "PA") or (image.mode in ("1", "P") and "transparency" in image.info)


def _pixels(image: Image.Image) -> np.ndarray:
    if image.mode == "F":
        raise ValueError("floating-point pixels; only 8- and 16-bit images are enlarged")
    if image.mode == "I":
        pixels = np.asarray(image)
        if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
            raise ValueError("pixels outside 0-65535 (signed or 32-bit); only 8- and 16-bit images are enlarged")
        return pixels.astype(np.uint16)
    if image.mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16)
    if image.mode in ("L", "LA", "RGB", "RGBA"):
        return np.asarray(image)
    if image.mode in ("1", "P", "PA"):
        return np.asarray(image.convert("RGBA" if _has_alpha(image) else "RGB"))
    return np.asarray(image.convert("RGB"))


@contextlib.contextmanager
def _opened(path: str):
    """Pillow's image of `path`; any failure to open or decode it inside the block is an ImageReadError."""
    try:
        with Image.open(path) as image:
            yield image
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except Image.DecompressionBombError:
        limit = 2 * Image.MAX_IMAGE_PIXELS / 1e6
        raise ImageReadError(f"{path}: too large to read, more than {limit:.3g} megapixels") from None
    except (OSError, SyntaxError, ValueError, png.Error) as error:
        unread = _UNREAD_EXTENSIONS.get(os.path.splitext(path)[1].lower())
        if unread and isinstance(error, Image.UnidentifiedImageError):
            raise ImageReadError(f"{path}: {unread} is not read here; save it as JPEG or PNG first") from None
        raise ImageReadError(f"{path}: not a readable image ({error})") from None


def _tiff_cut_to_8_bits(image: Image.Image) -> bool:
    bits = image.tag_v2.get(258, (8,)) if image.format == "TIFF" else (8,)  # BitsPerSample
    return image.mode in ("RGB", "RGBA", "LA", "CMYK") and max(bits, default=8) > 8


def _is_deep(image: Image.Image, path: str) -> bool:
    return image.mode.startswith("I;16") or image.mode == "I" or _is_png16(image, path)


def _format_and_frames(image: Image.Image) -> tuple[str, int]:
    """Pillow's format name and frame count. A JPEG with images appended (Pillow's MPO: a phone's gain
    or depth map, a camera's preview or second view) is the JPEG of its first image."""
    if image.format == "MPO":
        return "JPEG", 1
    return image.format, getattr(image, "n_frames", 1)


def probe_picture(path: str) -> tuple[str, bool, bool]:
    """(Pillow's format name, JPEG for its MPO; whether the pixels are 16-bit; whether they have alpha),
    from the file's header alone.

    Raises:
      ImageReadError: naming the file, if it is missing or not an image.
    """
    with _opened(path) as image:
        return _format_and_frames(image)[0], _is_deep(image, path), _has_alpha(image)


def upright_size(path: str) -> tuple[int, int]:
    """(width, height) of the picture as shown, from the header: EXIF orientations 5-8 turn it a quarter.

    For a PNG only EXIF before the pixels counts: Pillow would decode the whole file to look
    for it after them. A damaged file reads as stored here; reading its pixels reports it.
    """
    with _opened(path) as image:
        width, height = image.size
        try:
            exif = image.getexif() if image.format != "PNG" or "exif" in image.info else {}
            turned = exif.get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)
        except (OSError, SyntaxError, ValueError):
            turned = False
    return (height, width) if turned else (width, height)


# Tags of a TIFF's own layout, which Pillow's getexif() returns with the camera's: they describe the
# input file's strips and samples, not the picture, and the output gets its own.
_TIFF_LAYOUT_TAGS = (
    *(256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 282, 283, 284, 296, 317, 322, 323, 324, 325),
    *(338, 339, 347, 530, 532, 34675),  # ... extra samples, sample format, JPEG tables, YCbCr, ICC profile
)
_ICC_SPACES = {1: b"GRAY", 2: b"GRAY", 3: b"RGB ", 4: b"RGB "}  # channels -> ICC data colour space


def _metadata(image: Image.Image, channels: int) -> Metadata:
    exif = image.getexif()
    if ExifTags.Base.Orientation in exif:
        exif[ExifTags.Base.Orientation] = 1
    if image.format == "TIFF":
        for tag in _TIFF_LAYOUT_TAGS:
            exif.pop(tag, None)
    # A CMYK or Lab profile would misdescribe the RGB pixels that `_pixels` converted the picture to.
    icc = image.info.get("icc_profile")
    if not icc or icc[16:20] != _ICC_SPACES[channels]:
        icc = None
    dpi = image.info.get("dpi")
    if not dpi or len(dpi) != 2 or min(dpi) <= 0:
        dpi = None
    return Metadata(exif.tobytes() if len(exif) else None, icc, None if dpi is None else tuple(map(float, dpi)))


def _webp_lossless(path: str) -> bool:
    """Whether a WebP's (first) frame is VP8L, the lossless codec; Pillow does not say."""
    with open(path, "rb") as file:
        header = file.read(12)
        if header[:4] != b"RIFF" or header[8:] != b"WEBP":
            return False
        while len(chunk := file.read(8)) == 8:
            fourcc, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if fourcc in (b"VP8L", b"VP8 "):
                return fourcc == b"VP8L"
            if fourcc == b"ANMF":  # an animation frame: a 16-byte header, then the frame's own chunks
                file.seek(16, os.SEEK_CUR)
            else:
                file.seek(size + size % 2, os.SEEK_CUR)
    return False


def read_picture(path: str) -> Picture:
    """Reads any image Pillow opens, 16-bit colour PNGs at 16 bits, EXIF orientation applied.

    Of a multi-frame file (an animated GIF, WebP or PNG, a multi-page TIFF) the first frame is read.

    Raises:
      ImageReadError: naming the file, if it is missing, truncated, empty or not an image.
    """
    with _opened(path) as image:
        pixels = _read_png16(path) if _is_png16(image, path) else _pixels(image)
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        metadata = _metadata(image, 1 if pixels.ndim == 2 else pixels.shape[2])
        file_format, frames = _format_and_frames(image)
        lossless = file_format == "WEBP" and _webp_lossless(path)
        cut_to_8_bits = _tiff_cut_to_8_bits(image)
    if pixels.size == 0:
        raise ImageReadError(f"{path}: image has zero size")
    if orientation in _UPRIGHT:
        pixels = np.ascontiguousarray(_UPRIGHT[orientation](pixels))
    return Picture(pixels, file_format, metadata, frames, lossless, cut_to_8_bits)


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


# The metadata each output format can hold (WebP has no resolution field, BMP no EXIF or profile).
_CARRIED = {
    "PNG": ("exif", "icc_profile", "dpi"),
    "JPEG": ("exif", "icc_profile", "dpi"),
    "TIFF": ("exif", "icc_profile", "dpi"),
    "WEBP": ("exif", "icc_profile"),
    "BMP": ("dpi",),
}
_EXIF_HEADER = b"Exif\x00\x00"
_METRES_PER_INCH = 0.0254


class _PngWriter(png.Writer):
    """pypng's writer, with chunks of our own (iCCP, eXIf) after its header ones: it writes neither."""

    extra_chunks: tuple[tuple[bytes, bytes], ...] = ()

    def write_preamble(self, outfile):
        super().write_preamble(outfile)
        for tag, data in self.extra_chunks:
            png.write_chunk(outfile, tag, data)


def _write_png16(pixels: np.ndarray, path: str, metadata: Metadata) -> None:
    height, width, planes = pixels.shape
    resolution = {}
    if metadata.dpi is not None:
        x, y = (round(dpi / _METRES_PER_INCH) for dpi in metadata.dpi)
        resolution = {"x_pixels_per_unit": x, "y_pixels_per_unit": y, "unit_is_meter": True}
    writer = _PngWriter(width, height, greyscale=planes == 2, alpha=planes in (2, 4), bitdepth=16, **resolution)
    chunks = []
    if metadata.icc_profile:
        chunks.append((b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(metadata.icc_profile)))
    if metadata.exif:
        chunks.append((b"eXIf", metadata.exif.removeprefix(_EXIF_HEADER)))
    writer.extra_chunks = tuple(chunks)
    with open(path, "wb") as file:
        writer.write(file, pixels.reshape(height, width * planes))


# The largest side a format stores: JPEG's 16-bit size fields (libjpeg stops at 65,500), WebP's 14 bits.
_LARGEST_SIDE = {"JPEG": 65500, "WEBP": 16383}


OPAQUE_FORMATS = ("JPEG", "BMP")  # no transparency: `write_picture` puts such pixels onto white


def check_storable(path: str, file_format: str, shape: tuple[int, ...]) -> None:
    """Raises ValueError naming `path` if `file_format` cannot store a picture of `shape` (height, width, ...)."""
    height, width = shape[:2]
    largest = _LARGEST_SIDE.get(file_format)
    if largest and max(width, height) > largest:
        raise ValueError(
            f"{path}: {width}x{height} is too large for {file_format} (at most {largest} px a side); "
            "choose PNG or a smaller scale"
        )


def _onto_white(pixels: np.ndarray) -> np.ndarray:
    """uint8 gray + alpha or RGBA -> gray or RGB, each pixel blended with white by its alpha."""
    alpha = pixels[:, :, -1:].astype(np.float64) / 255
    blended = matlab_cast(pixels[:, :, :-1] * alpha + 255 * (1 - alpha))
    return blended[:, :, 0] if blended.shape[2] == 1 else blended


def write_picture(
    pixels: np.ndarray,
    path: str,
    file_format: str,
    *,
    quality: int = 95,
    lossless: bool = False,
    metadata: Metadata | None = None,
) -> None:
    """Writes `pixels` (see `Picture`) atomically, with the metadata the format can hold.

    16-bit pixels are kept in PNG and cut to 8 bits in other formats; in JPEG and BMP, which hold no
    transparency, pixels with alpha are put onto white, as image editors export them (Pillow refuses
    RGBA as JPEG and writes it as BMP with the alpha dropped). `quality` applies to JPEG and lossy
    WebP; `lossless` makes a lossless WebP.

    Raises:
      ValueError: naming the file, if the format cannot hold the pixels or the file cannot be written.
    """
    metadata = metadata or Metadata()
    check_storable(path, file_format, pixels.shape)
    if pixels.dtype == np.uint16 and file_format != "PNG":
        pixels = (pixels // 257).astype(np.uint8)
    if file_format in OPAQUE_FORMATS and pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        pixels = _onto_white(pixels)
    options = {key: getattr(metadata, key) for key in _CARRIED.get(file_format, ()) if getattr(metadata, key)}
    if file_format in ("JPEG", "WEBP"):
        options.update({"lossless": True} if file_format == "WEBP" and lossless else {"quality": quality})
    try:
        with atomic_path(path, suffix=os.path.splitext(path)[1]) as temporary:
            if pixels.dtype == np.uint16 and pixels.ndim == 3:
                _write_png16(pixels, temporary, metadata)
            else:
                Image.fromarray(pixels).save(temporary, format=file_format, **options)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot write it ({error})") from None


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
