"""Folders of images as data sets: scanned safely, decoded one image at a time, resized and normalized.

A folder given as `--calib`, `--eval` or `--train` (or `calib=`, `eval=`, `train=`) holds PNG, JPEG
or BMP images (read with Pillow, whatever their extension among `.png .jpg .jpeg .bmp`), either

- flat: the images directly in it (no labels), or
- one sub-folder per class: the labels are the sub-folder names, sorted as
  `keras.utils.image_dataset_from_directory` sorts them; the class index is the position in that
  list. Images may sit in nested folders inside a class folder.

`scan` lists the folder without opening any file: hidden entries (`.name`) and other extensions
are ignored, symlinks leading out of the folder or to a folder, FIFOs, sockets and devices are
skipped (all of them named in one note). `ImageFolder.dataset` then decodes the images one at a
time into one preallocated array (at most `MAX_ARRAY_BYTES`): each is converted to RGB or
grayscale for the model's channel count (1 or 3), resized to its height and width (Pillow
bilinear) and normalized (exporter/normalization.py). An image that cannot be read (corrupt,
truncated, another format, over Pillow's `MAX_IMAGE_PIXELS`: a decompression bomb) is skipped and
listed; more than 1 % of them is an error.

Example:
    >>> from PIL import Image
    >>> for name, value in (("cat/a.png", 0), ("cat/b.png", 255), ("dog/c.png", 128), ("dog/.hidden.png", 1)):
    ...     Path(name).parent.mkdir(exist_ok=True)
    ...     Image.new("L", (16, 16), value).save(name)
    >>> folder = scan("./", role="evaluation")
    >>> folder.classes, len(folder.files), folder.ignored
    (('cat', 'dog'), 3, ['dog/.hidden.png (hidden)'])
    >>> ds = folder.dataset(shape=(None, 8, 8, 3), normalize="unit")
    >>> ds.x.shape, ds.y.tolist(), float(ds.x.max())
    ((3, 8, 8, 3), [0, 0, 1], 1.0)
    >>> ds.preprocessing["resize"]["size"], ds.preprocessing["color"], ds.preprocessing["normalize"]["mode"]
    ([8, 8], 'RGB', 'unit')
"""
from __future__ import annotations

import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from exporter.data import MAX_ARRAY_BYTES, Dataset
from exporter.errors import DataError, ExporterError, UsageError
from exporter.option_names import option
from exporter.safe_read import open_regular

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
FORMATS = ("PNG", "JPEG", "BMP")          # the only Pillow decoders ever used
MAX_IMAGES = 100_000                      # images in one folder
MAX_ENTRIES = 1_000_000                   # entries looked at while scanning (images or not)
MAX_DEPTH = 16                            # folder nesting inside a class folder
MAX_IMAGE_BYTES = 64 * 1024**2            # one image file
MAX_UNREADABLE = 0.01                     # more than 1 % unreadable images is an error
SHOWN = 5                                 # names listed in one message before "and N more"
COLORS = {1: "L", 3: "RGB"}               # model channels -> Pillow mode
WIDE_GRAY = ("I;16", "I;16B", "I;16L", "I")   # 16-bit grayscale PNG: scaled to 8 bits (Pillow would clip)


def shown(name: str) -> str:
    """A file name made printable whatever bytes it holds (undecodable bytes as \\x escapes)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def listing(items: list[str]) -> str:
    """The first SHOWN items joined, and how many more."""
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


@dataclass
class ImageFolder:
    """A scanned folder: its image files (relative paths), their class folders, what was left out.

    Attributes:
        root: the folder.
        role: "calibration", "evaluation" or "training", used in messages.
        classes: the class folder names, sorted; None for a flat folder.
        files: (relative path, index into `classes` or None) of every image, in sorted order.
        ignored: entries left out, each "name (why)".
    """

    root: Path
    role: str
    classes: tuple[str, ...] | None
    files: list[tuple[str, int | None]]
    ignored: list[str] = field(default_factory=list)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        """The folder as given, with a trailing slash: how messages name it."""
        return shown(str(self.root).rstrip("/") + "/")

    def dataset(self, *, shape: tuple, normalize: str | None, order: list[str] | None = None) -> Dataset:
        """Decode the images for a model input of `shape` (N, H, W, C); cached per shape, mode and order.

        Args:
            shape: the model's input shape, batch first; H and W fixed, C 1 (grayscale) or 3 (RGB).
            normalize: a mode of exporter/normalization.py; None is its default ("unit").
            order: class names in the order of the model's outputs (their set is `classes`);
                None keeps the sorted order.

        Returns:
            A Dataset of float32 images, labels for class folders, the preprocessing record and notes.

        Raises:
            DataError: a shape images cannot take, too many pixels in all, or more than 1 % unreadable images.
        """
        key = (tuple(shape), normalize, tuple(order or ()))
        if key not in self._cache:
            from exporter.image_reader import read_images

            self._cache[key] = read_images(self, shape, normalize, order)
        return self._cache[key]


def _class_name_problem(name: str) -> str | None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if any(unicodedata.category(c) == "Cc" for c in name) or not name.strip():
        return "holds a control character or only spaces"
    return None


def _kind(entry: os.DirEntry, real_root: str) -> tuple[str, str]:
    """('image' | 'folder' | 'ignored', why) for one entry, without opening it."""
    if entry.name.startswith("."):
        return "ignored", "hidden"
    try:
        if entry.is_symlink():
            target = os.path.realpath(entry.path)
            if os.path.commonpath([real_root, target]) != real_root:
                return "ignored", "a link out of the folder"
            if os.path.isdir(target):
                return "ignored", "a link to a folder, not followed"
        mode = os.stat(entry.path).st_mode
    except (OSError, ValueError):
        return "ignored", "unreadable or a broken link"
    if stat.S_ISDIR(mode):
        return "folder", ""
    if not stat.S_ISREG(mode):
        return "ignored", "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
    if not entry.name.lower().endswith(IMAGE_SUFFIXES):
        return "ignored", "not " + "/".join(IMAGE_SUFFIXES)
    return "image", ""


class _Scan:
    """The state of one scan: entries seen, images found, entries left out."""

    def __init__(self, root: Path, role: str):
        self.root, self.role, self.real_root = root, role, os.path.realpath(root)
        self.seen, self.ignored = 0, []
        self.name = shown(str(root).rstrip("/") + "/")

    def entries(self, folder: str) -> tuple[list[str], list[str]]:
        """(image paths, sub-folder paths) directly in `folder` (relative to the root), sorted."""
        images, folders = [], []
        try:
            with os.scandir(self.root / folder) as found:
                entries = sorted(found, key=lambda e: e.name)
        except OSError as exc:
            raise DataError(f"{self.name}: cannot read {self.role} folder {shown(folder) or '.'}: "
                            f"{exc.strerror or exc}") from None
        for entry in entries:
            self.seen += 1
            if self.seen > MAX_ENTRIES:
                raise DataError(f"{self.name}: more than {MAX_ENTRIES:,} entries; give a folder of at most "
                                f"{MAX_IMAGES:,} images")
            kind, why = _kind(entry, self.real_root)
            relative = os.path.join(folder, entry.name) if folder else entry.name
            if kind == "ignored":
                self.ignored.append(f"{shown(relative)} ({why})")
            else:
                (images if kind == "image" else folders).append(relative)
        return images, folders

    def walk(self, folder: str, depth: int = 0) -> list[str]:
        """Every image under `folder`, depth first in sorted order."""
        if depth > MAX_DEPTH:
            raise DataError(f"{self.name}: folders nested deeper than {MAX_DEPTH} levels at {shown(folder)}")
        images, folders = self.entries(folder)
        for sub in folders:
            images += self.walk(sub, depth + 1)
        if len(images) > MAX_IMAGES:
            raise DataError(f"{self.name}: more than {MAX_IMAGES:,} images; give a subset")
        return images


def scan(path: str | Path, *, role: str) -> ImageFolder:
    """List a folder's images and classes without opening any file.

    Args:
        path: the folder.
        role: "calibration", "evaluation" or "training", used in messages.

    Returns:
        The ImageFolder (nothing decoded yet).

    Raises:
        DataError: no images, a class folder without images, images beside class folders, a class
            folder name that cannot be a label, or more than MAX_IMAGES images.
    """
    state = _Scan(Path(path), role)
    top, folders = state.entries("")
    if top and folders:
        raise DataError(f"{state.name}: holds both images ({listing([shown(t) for t in top])}) and sub-folders "
                        f"({listing([shown(f) for f in folders])}); put every image in a class folder, or none")
    files: list[tuple[str, int | None]] = [(name, None) for name in top]
    for index, name in enumerate(folders):
        problem = _class_name_problem(name)
        if problem:
            raise DataError(f"{state.name}: class folder '{shown(name)}' {problem}; it cannot be a class name")
        images = state.walk(name, 1)
        if not images:
            raise DataError(f"{state.name}: class folder {shown(name)}/ holds no images "
                            f"({', '.join(IMAGE_SUFFIXES)}); add some or remove it")
        files += [(image, index) for image in images]
        if len(files) > MAX_IMAGES:
            raise DataError(f"{state.name}: more than {MAX_IMAGES:,} images; give a subset")
    if not files:
        left = f" (left out: {listing(state.ignored)})" if state.ignored else ""
        raise DataError(f"{state.name}: the {role} folder holds no images ({', '.join(IMAGE_SUFFIXES)}){left}")
    return ImageFolder(Path(path), role, tuple(folders) if folders else None, files, state.ignored)


def read_error(exc: BaseException) -> str:
    """Why an image could not be read, in a few words."""
    if isinstance(exc, ExporterError):
        return str(exc).split(": ", 1)[-1]
    text = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(exc).split(", could be")[0])
    text = text or type(exc).__name__
    if "DecompressionBomb" in type(exc).__name__:
        text = f"a decompression bomb: {text[0].lower()}{text[1:]} (Pillow's MAX_IMAGE_PIXELS)"
    return text if len(text) <= 120 else text[:117] + "..."


def open_image_bytes(path: Path) -> bytes:
    """The bytes of one image file: a regular file (opened without blocking) of at most MAX_IMAGE_BYTES.

    Raises:
        DataError: not a regular file (say, replaced by a FIFO since the scan), unreadable, or too large.
    """
    with open_regular(path, what="image", error=DataError) as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_IMAGE_BYTES:
            raise DataError(f"{path}: larger than {MAX_IMAGE_BYTES:,} bytes")
        return f.read(MAX_IMAGE_BYTES + 1)



def _difference(a: tuple[str, ...] | list[str], b, name_a: str, name_b: str) -> str:
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    parts = [f"only in {name}: {listing([shown(c) for c in only])}" for name, only in ((name_a, only_a), (name_b, only_b))
             if only]
    return "; ".join(parts)


def class_order(folders: list[ImageFolder], names: list[str] | None, classes: int | None) -> list[str] | None:
    """The class names of labelled folders, in the order of the model's outputs.

    The eval and train folders must have the same class folders; with `names` (from `--labels`)
    their set must be the folder names, and `names` sets the order (as `class_names` does in
    `keras.utils.image_dataset_from_directory`); else the sorted folder names are the labels.

    Args:
        folders: the evaluation and training ImageFolders that have class folders.
        names: the class names given with labels, or None.
        classes: the model's number of classes (None when unknown).

    Returns:
        The class names in output order; None when no folder has classes.

    Raises:
        DataError: folders that disagree with each other or with `names`, or a class count that is
            not the model's, naming the difference.
    """
    if not folders:
        return None
    first = folders[0]
    for other in folders[1:]:
        if other.classes != first.classes:
            raise DataError(f"the {first.role} and {other.role} folders have different class folders: "
                            f"{_difference(first.classes, other.classes, first.name, other.name)}")
    if names is not None and set(names) != set(first.classes):
        raise DataError(f"the class folders of {first.name} are not the names given with {option('labels')}: "
                        f"{_difference(first.classes, names, first.name, option('labels'))}. Folder names must be "
                        "the class names (the labels then set their order); rename the folders or leave out "
                        f"{option('labels')}")
    if classes and len(first.classes) != classes:
        raise DataError(f"{first.name}: {len(first.classes)} class folders ({listing([shown(c) for c in first.classes])})"
                        f" but the model has {classes} classes")
    return list(first.classes) if names is None else list(names)


def folder_datasets(data: tuple, *, shape: tuple, classes: int | None, normalize: str | None) -> tuple:
    """(calib, eval, train, names) with every ImageFolder decoded for the model; other entries as they are.

    Class folders of the evaluation and training data give the labels (`class_order`); names
    from them become the label names when none were given. Calibration folders give images only.

    Raises:
        UsageError: `normalize` given but no data set is an image folder.
        DataError: see `class_order` and `ImageFolder.dataset`.
    """
    calib, eval_, train, names = data
    if not any(isinstance(d, ImageFolder) for d in (calib, eval_, train)):
        if normalize is not None:
            raise UsageError(f"{option('normalize')} applies to image folders; the data given are arrays, which "
                             "are used as they are")
        return data
    labelled = [d for d in (eval_, train) if isinstance(d, ImageFolder) and d.classes is not None]
    order = class_order(labelled, names, classes)
    decoded = [d.dataset(shape=shape, normalize=normalize, order=order if any(d is f for f in labelled) else None)
               if isinstance(d, ImageFolder) else d for d in (calib, eval_, train)]
    return (*decoded, names if names is not None or order is None else order)
