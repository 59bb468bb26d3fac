"""Decoding a scanned image folder (exporter/image_folder.py) into a Dataset for a model's input.

Images are decoded one at a time with Pillow (PNG, JPEG and BMP decoders only), converted to the
model's color (1 channel: Pillow "L", ITU-R 601-2 luma; 3: "RGB"; alpha dropped, 16-bit grayscale
scaled to 8 bits, EXIF orientation ignored as `tf.io.decode_image` ignores it), resized to its
height and width with Pillow's bilinear filter (which widens when it shrinks, i.e. antialiased), and
normalized (exporter/normalization.py) straight into one preallocated float32 array: no decoded
full-size image is kept. A progress bar (exporter/progress.py) counts the images.

Example:
    >>> from PIL import Image
    >>> Image.new("RGB", (32, 24), (255, 0, 0)).save("red.png")
    >>> decode(Path("red.png").read_bytes(), "L", (8, 8)).shape, decode(Path("red.png").read_bytes(), "L", (8, 8))[0, 0]
    ((8, 8, 1), array([76], dtype=uint8))
    >>> input_size((None, 224, 224, 4), "images/")
    Traceback (most recent call last):
    ...
    exporter.errors.DataError: images/: the model takes 4 channels; images give 1 (grayscale) or 3 (RGB)
"""
from __future__ import annotations

import io
import warnings

import numpy as np

from exporter.data import MAX_ARRAY_BYTES, Dataset
from exporter.errors import DataError
from exporter.image_folder import (COLORS, FORMATS, MAX_UNREADABLE, WIDE_GRAY, ImageFolder, listing, open_image_bytes,
                                   read_error, shown)
from exporter.normalization import normalization
from exporter.option_names import option
from exporter.progress import progress

RESIZE = {"method": "bilinear", "library": "Pillow", "filter": "PIL.Image.Resampling.BILINEAR",
          "antialias": True, "note": "Pillow widens the bilinear filter when shrinking"}
COLOR_NAMES = {"L": "grayscale", "RGB": "RGB"}
_BATCH = 64                       # images per progress step


def input_size(shape: tuple, where: str) -> tuple[int, int, int]:
    """(height, width, channels) of a model input that images can fill.

    Raises:
        DataError: not (N, H, W, C), a free height or width, or a channel count other than 1 or 3.
    """
    dims = tuple(None if d is None or d == -1 else int(d) for d in tuple(shape)[1:])
    pretty = "(N, " + ", ".join("?" if d is None else str(d) for d in dims) + ")"
    if len(dims) != 3:
        raise DataError(f"{where}: image folders need a model input of shape (N, height, width, channels); "
                        f"this model takes {pretty}")
    height, width, channels = dims
    if height is None or width is None:
        raise DataError(f"{where}: the model's input {pretty} has a free height or width; images are resized to a "
                        "fixed size, so give the model a fixed input size")
    if channels not in COLORS:
        raise DataError(f"{where}: the model takes {channels} channels; images give 1 (grayscale) or 3 (RGB)")
    return height, width, channels


def decode(data: bytes, color: str, size: tuple[int, int]) -> np.ndarray:
    """One image's bytes as uint8 (height, width, channels): decoded, converted to `color`, resized to `size` (W, H).

    Raises:
        Exception: whatever Pillow raises for bytes it cannot decode; `DecompressionBombWarning`
            (an image over Pillow's MAX_IMAGE_PIXELS) is raised as an error too.
    """
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data), formats=FORMATS) as img:
            if img.mode in WIDE_GRAY:
                img = Image.fromarray((np.clip(np.asarray(img, np.int64), 0, 65535) >> 8).astype(np.uint8))
            small = img.convert(color).resize(size, Image.Resampling.BILINEAR)
    pixels = np.asarray(small, np.uint8)
    return pixels.reshape(size[1], size[0], -1)


def _labels(folder: ImageFolder, order: list[str] | None) -> np.ndarray | None:
    if folder.classes is None:
        return None
    index = list(range(len(folder.classes))) if order is None else [order.index(name) for name in folder.classes]
    return np.array([index[c] for _, c in folder.files], np.int64)


def _check_unreadable(folder: ImageFolder, bad: list[str], total: int) -> str | None:
    """The note for skipped unreadable images, or DataError when they are more than MAX_UNREADABLE."""
    if not bad:
        return None
    if len(bad) > MAX_UNREADABLE * total:
        raise DataError(f"{folder.name}: {len(bad)} of {total} {folder.role} images are unreadable (more than "
                        f"{MAX_UNREADABLE:.0%}): {listing(bad)}; fix or remove them")
    return f"{folder.name}: skipped {len(bad)} unreadable image{'s' if len(bad) > 1 else ''} of {total}: {listing(bad)}"


def _compact(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """The rows of `x` where `ok`, moved down in place (no second copy of the array)."""
    keep = np.flatnonzero(ok)
    for j, i in enumerate(keep):
        if i != j:
            x[j] = x[i]
    return x[:len(keep)]


def _fill(folder: ImageFolder, x: np.ndarray, norm, color: str) -> tuple[np.ndarray, list[str]]:
    """Decode every image into `x`; (a mask of the images read, "name (why)" of the others)."""
    n, (height, width) = len(folder.files), x.shape[1:3]
    ok, bad = np.ones(n, bool), []
    with progress(f"reading {n:,} {folder.role} images from {folder.name}", total=n) as advance:
        for start in range(0, n, _BATCH):
            for i in range(start, min(start + _BATCH, n)):
                name = folder.files[i][0]
                try:
                    pixels = decode(open_image_bytes(folder.root / name), color, (width, height))
                    x[i] = norm.apply(pixels)
                except Exception as exc:  # noqa: BLE001 - any failure to decode outside bytes makes it unreadable
                    ok[i] = False
                    bad.append(f"{shown(name)} ({read_error(exc)})")
            advance(min(_BATCH, n - start))
    return ok, bad


def read_images(folder: ImageFolder, shape: tuple, normalize: str | None, order: list[str] | None) -> Dataset:
    """Decode `folder` for a model input of `shape` (see `ImageFolder.dataset`)."""
    import PIL

    height, width, channels = input_size(shape, folder.name)
    norm, color, n = normalization(normalize, channels=channels), COLORS[channels], len(folder.files)
    if n * height * width * channels * 4 > MAX_ARRAY_BYTES:
        raise DataError(f"{folder.name}: {n:,} images of {height}x{width}x{channels} take more than "
                        f"{MAX_ARRAY_BYTES:,} bytes as float32; give a subset")
    x = np.empty((n, height, width, channels), np.float32)
    ok, bad = _fill(folder, x, norm, color)
    skipped = _check_unreadable(folder, bad, n)
    y = _labels(folder, order)
    x, y = (x, y) if not bad else (_compact(x, ok), None if y is None else y[ok])
    classes = "" if folder.classes is None else f" in {len(folder.classes)} class folders"
    default = f" (the default; {option('normalize')} to change)" if normalize is None else ""
    notes = [f"{folder.role} data {folder.name}: {len(x):,} images{classes}, {COLOR_NAMES[color]}, resized to "
             f"{height}x{width} (Pillow bilinear), normalized {norm.describe()}{default}"]
    if folder.ignored:
        notes.append(f"{folder.name}: left out {len(folder.ignored)} entr{'ies' if len(folder.ignored) > 1 else 'y'}: "
                     f"{listing(folder.ignored)}")
    notes += [skipped] if skipped else []
    record = {"source": "image folder", "layout": "flat" if folder.classes is None else "class folders",
              "decode": f"Pillow {PIL.__version__} ({', '.join(FORMATS)}); EXIF orientation ignored, alpha dropped, "
                        "16-bit grayscale scaled to 8 bits",
              "color": COLOR_NAMES[color], "resize": {**RESIZE, "size": [height, width]}, "normalize": norm.to_dict()}
    return Dataset(x=x, y=y, origin=folder.name, classes=folder.classes, preprocessing=record, notes=tuple(notes))

