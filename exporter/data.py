"""Calibration and evaluation data: safe loading and checks before any work.

Data sets are `.npz` files with an array `x` (or one per model input: exporter/input_arrays.py) and an
optional `y` (class labels, or one-hot rows), or `.npy` files holding `x` alone. Only regular files are
opened (a FIFO or `/dev/zero` is refused at once). Each array's header is read first: object dtypes (which
need pickle) are refused with UnsafeDataError, and a header declaring more than `MAX_ARRAY_BYTES` (8 GiB)
or more bytes than the file holds is refused before anything is allocated; arrays are read with
`allow_pickle=False`. Labels files: at most `MAX_LABELS_BYTES` (1 MiB). Image folders: exporter/image_folder.py.

Example:
    >>> np.savez("eval.npz", x=np.zeros((4, 8, 8, 1)), y=np.array([0, 1, 2, 1]))
    >>> ds = load_dataset("eval.npz", role="evaluation")
    >>> len(ds), ds.x.dtype, ds.y.tolist()
    (4, dtype('float64'), [0, 1, 2, 1])
    >>> check_input(ds, shape=(None, 8, 8, 1), dtype="float32").x.dtype    # float64 cast losslessly
    dtype('float32')
    >>> check_input(ds, shape=(None, 28, 28, 1), dtype="float32", role="evaluation")
    Traceback (most recent call last):
    ...
    exporter.errors.DataError: eval.npz: evaluation samples have shape (4, 8, 8, 1); the model expects (N, 28, 28, 1)
"""
from __future__ import annotations

import io
import math
import os
import struct
import unicodedata
import zipfile
import zlib
import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npformat

from exporter.errors import DataError, UnsafeDataError
from exporter.safe_read import open_regular, read_bounded

MAX_ARRAY_BYTES = 8 * 1024**3       # all arrays of one data file together; checked from the headers
MAX_LABELS_BYTES = 1024**2          # a labels file: 1 MiB is ~50,000 class names
_HEADER_PEEK = 16 * 1024            # magic + header length + numpy's 10,000-character header limit


@dataclass(frozen=True)
class Dataset:
    """Samples `x`, optional integer labels `y`, and where they came from.

    Data read from an image folder (exporter/image_folder.py) also carry the class folder names
    (`classes`, sorted; None for a flat folder or arrays), the `preprocessing` record that made `x`
    from the pixels (None for arrays: edgex applied none) and `notes` for the report. Several inputs: `x`
    is a tuple of arrays with their `names` (None: the model's order) and per-output labels `raw_labels`
    (`y0`, ...) until checked against the model (exporter/input_arrays.py).
    """

    x: np.ndarray | tuple[np.ndarray, ...]
    y: np.ndarray | None
    origin: str
    classes: tuple[str, ...] | None = None
    preprocessing: dict | None = None
    notes: tuple[str, ...] = ()
    names: tuple[str, ...] | None = None
    raw_labels: dict | None = None

    def __len__(self) -> int:
        return int(self.inputs[0].shape[0])

    @property
    def inputs(self) -> tuple[np.ndarray, ...]:
        """The samples of every input, as a tuple (one array for a single-input model)."""
        return self.x if isinstance(self.x, tuple) else (self.x,)

    @property
    def keras_x(self):
        """`x` as Keras' fit and predict take it: the array, or a list of arrays (a tuple would be (x, y))."""
        return list(self.x) if isinstance(self.x, tuple) else self.x

    def take(self, index) -> Dataset:
        """The samples at `index` (a slice or indices) of every input, with their labels.

        >>> Dataset((np.zeros((3, 2)), np.arange(3)), np.array([0, 1, 0]), "a").take(slice(1, None)).x[1].tolist()
        [1, 2]
        """
        x = tuple(a[index] for a in self.x) if isinstance(self.x, tuple) else self.x[index]
        return dataclasses.replace(self, x=x, y=None if self.y is None else self.y[index])

    @cached_property
    def value_range(self) -> dict:
        """min, max and mean of every value of `x`, and the 0.1st/99.9th percentiles (`low`, `high`).

        The percentiles are taken on at most 1,000,000 evenly spaced values, so one stray value
        does not stretch the range and a large data set is summed once.

        Example:
            >>> ds = Dataset(np.arange(1001, dtype=np.float32), None, "a")
            >>> {k: round(v, 1) for k, v in ds.value_range.items()}
            {'min': 0.0, 'max': 1000.0, 'mean': 500.0, 'low': 1.0, 'high': 999.0}
        """
        parts = [a.reshape(-1).astype(np.uint8) if a.dtype == np.bool_ else a.reshape(-1) for a in self.inputs]
        flat = parts[0] if len(parts) == 1 else np.concatenate([p.astype(np.float64) for p in parts])
        step = max(1, flat.size // 1_000_000)
        low, high = np.percentile(flat[::step], (0.1, 99.9))
        return {"min": float(flat.min()), "max": float(flat.max()), "mean": float(flat.mean(dtype=np.float64)),
                "low": float(low), "high": float(high)}


def load_dataset(path: str | Path, *, role: str, inputs: int = 1) -> Dataset:
    """Load a data set from `.npz` (x, optional y) or `.npy` (x only).

    Headers are checked before any array is allocated: object dtypes, sizes over `MAX_ARRAY_BYTES`, and
    headers declaring more bytes than the file holds are refused.

    Args:
        path: the file (a regular file: FIFOs, devices and directories are refused).
        role: "calibration", "evaluation" or "training", used in messages.
        inputs: the model's number of inputs: with several, one array per input (exporter/input_arrays.py).

    Returns:
        The data set, one-hot labels turned into class indices.

    Raises:
        DataError: missing, unreadable or oversized file, not a numpy file, wrong keys, empty,
            non-finite or non-numeric data, labels that are not class indices or one-hot rows.
        UnsafeDataError: object arrays, which would need pickle.
    """
    path = Path(path)
    if path.suffix not in (".npy", ".npz"):
        raise DataError(f"{path}: {role} data must be .npz (x, y) or .npy (x), not '{path.suffix}'")
    if not os.path.lexists(path):
        raise DataError(f"no such {role} data file: {path}")
    with open_regular(path, what=f"{role} data file", error=DataError) as f:
        try:
            if path.suffix == ".npy":
                arrays = {"x": _read_npy(f, os.fstat(f.fileno()).st_size, path, MAX_ARRAY_BYTES)}
            else:
                arrays = _read_npz(f, path, role, inputs)
        except _READ_ERRORS as exc:
            raise DataError(f"{path}: not a readable numpy file: {exc}") from None
    from exporter.input_arrays import from_members

    return from_members(arrays, str(path), role, inputs=inputs)


_READ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError,
                struct.error, MemoryError, OverflowError)


def _read_npy(f: BinaryIO, size: int, origin, budget: int) -> np.ndarray:
    """Check a `.npy` stream's header against the bytes it has and the budget, then read it."""
    head = io.BytesIO(f.read(_HEADER_PEEK))
    version = npformat.read_magic(head)
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    reader = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
    shape, _, dtype = reader(head)
    if dtype.hasobject:
        raise UnsafeDataError(f"{origin}: holds object arrays, which need pickle to load; refused")
    if any(d < 0 for d in shape):
        raise DataError(f"{origin}: not a readable numpy file: the header declares shape {shape}")
    declared, available = math.prod(shape) * dtype.itemsize, size - head.tell()
    if declared > budget:
        raise DataError(f"{origin}: the header declares an array of shape {shape} ({declared:,} bytes), over the "
                        f"{MAX_ARRAY_BYTES:,}-byte limit for data sets; refused before loading")
    if declared > available:
        raise DataError(f"{origin}: the header declares {declared:,} bytes of array data but the file holds "
                        f"{max(available, 0):,}; truncated or corrupt")
    f.seek(0)
    return npformat.read_array(f, allow_pickle=False)


def _read_npz(f: BinaryIO, path: Path, role: str, inputs: int) -> dict[str, np.ndarray]:
    """Read the arrays of an `.npz`, its names checked (exporter/input_arrays.py) and each header before it is read."""
    from exporter.input_arrays import check_names

    with zipfile.ZipFile(f) as archive:
        members = {}
        for info in archive.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if key in members:
                raise DataError(f"{path}: array {key!r} appears twice in the archive")
            members[key] = info
        check_names(list(members), path, role, inputs=inputs)
        arrays, budget = {}, MAX_ARRAY_BYTES
        for key, info in sorted(members.items()):
            with archive.open(info) as member:
                arrays[key] = _read_npy(member, info.file_size, f"{path}: {key}", budget)
            budget -= arrays[key].nbytes
    return {key: arrays[key] for key in members}         # in the archive's order


def dataset_from_arrays(x, y=None, *, origin: str = "<arrays>", role: str = "evaluation") -> Dataset:
    """Wrap in-memory arrays as a checked Dataset (the Python API's path).

    Args:
        x: samples, anything `numpy.asarray` takes.
        y: optional labels: class indices (N,) or one-hot rows (N, classes).
        origin: where the arrays came from, for messages.
        role: "calibration", "evaluation" or "training", used in messages.

    Returns:
        The checked data set.

    Raises:
        DataError: ragged, empty, non-numeric or non-finite data; labels that are not class indices.
        UnsafeDataError: object arrays.
    """
    try:
        x, y = np.asarray(x), None if y is None else np.asarray(y)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{origin}: the {role} arrays are not rectangular numeric arrays: {exc}") from None
    return _validated(x, y, origin, role)


def check_samples(x: np.ndarray, origin: str, role: str, name: str = "x") -> None:
    """Refuse samples that are object arrays, a single value, empty, not real numbers, NaN or Inf.

    Raises:
        DataError, UnsafeDataError: naming `origin` and the array `name`.
    """
    if x.dtype.hasobject:
        raise UnsafeDataError(f"{origin}: holds object arrays; refused")
    if x.ndim == 0:
        raise DataError(f"{origin}: {name} is a single value; the {role} set must be an array of samples (N, ...)")
    if x.shape[0] == 0 or x.size == 0:
        raise DataError(f"{origin}: the {role} set is empty")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating) or x.dtype == np.bool_):
        raise DataError(f"{origin}: {name} has dtype {x.dtype}; expected real numbers (float, int or bool)")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
        raise DataError(f"{origin}: {name} holds NaN or Inf in {bad} of {len(x)} samples")


def _validated(x: np.ndarray, y: np.ndarray | None, origin: str, role: str) -> Dataset:
    if y is not None and y.dtype.hasobject:
        raise UnsafeDataError(f"{origin}: holds object arrays; refused")
    check_samples(x, origin, role)
    if y is not None:
        y = _labels(y, len(x), origin)
    return Dataset(x=x, y=y, origin=origin)


_LABEL_FORMS = "class indices (N,) or one-hot rows (N, classes)"


def _labels(y: np.ndarray, n: int, origin: str) -> np.ndarray:
    """Class indices from y: integer or whole-float indices (N,) or (N, 1), or one-hot rows."""
    if y.ndim == 0:
        raise DataError(f"{origin}: y is a single value; expected {_LABEL_FORMS}")
    if y.dtype == np.bool_ or not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise DataError(f"{origin}: y has dtype {y.dtype}; expected integer {_LABEL_FORMS}")
    if y.shape[0] != n:
        raise DataError(f"{origin}: x has {n} samples but y has {y.shape[0]} labels")
    if y.ndim == 2 and y.shape[1] >= 2:
        one_hot = np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()
        if not one_hot:
            raise DataError(f"{origin}: y has shape {y.shape} but its rows are not one-hot (a single 1, the rest "
                            f"0); give {_LABEL_FORMS}")
        y = y.argmax(axis=1)
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{origin}: y must be {_LABEL_FORMS}, got shape {y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or not np.equal(np.mod(y, 1), 0).all():
            raise DataError(f"{origin}: y must hold whole class indices, not fractions, NaN or Inf")
    if y.size and (y.min() < -2**31 or y.max() >= 2**31):
        raise DataError(f"{origin}: y holds class indices out of range ({y.min()}..{y.max()})")
    return y.astype(np.int64)


def check_input(ds: Dataset, *, shape: tuple, dtype: str, role: str = "data") -> Dataset:
    """Check that samples fit a model input; cast lossless float64 to float32.

    Args:
        ds: the data set.
        shape: the model input shape, batch first (None or -1 for free dims).
        dtype: the model input dtype ("float32", "int8", ...).
        role: used in messages.

    Returns:
        The data set with x in the model's dtype.

    Raises:
        DataError: shape or dtype mismatch, showing expected vs got.
    """
    want = tuple(None if (d is None or d == -1) else int(d) for d in shape[1:])
    got = tuple(ds.x.shape[1:])
    if len(want) != len(got) or any(w is not None and w != g for w, g in zip(want, got)):
        pretty = "(N, " + ", ".join("?" if w is None else str(w) for w in want) + ")"
        raise DataError(f"{ds.origin}: {role} samples have shape {ds.x.shape}; the model expects {pretty}")
    if np.dtype(dtype).kind == "f":
        if ds.x.dtype.kind != "f":
            raise DataError(
                f"{ds.origin}: {role} x has dtype {ds.x.dtype}; the model input is {dtype}. "
                "Preprocess it exactly as in training (e.g. scale to float) and save again")
        x = ds.x.astype(np.float32, copy=False)
    else:
        x = ds.x
    return dataclasses.replace(ds, x=x)


def check_labels(ds: Dataset, num_classes: int) -> None:
    """Refuse labels outside `[0, num_classes)`.

    Raises:
        DataError: naming the offending range.
    """
    if ds.y is None:
        return
    low, high = int(ds.y.min()), int(ds.y.max())
    if low < 0 or high >= num_classes:
        raise DataError(f"{ds.origin}: labels range {low}..{high}, but the model has {num_classes} classes (0..{num_classes - 1})")


def load_labels(path: str | Path) -> list[str]:
    """Read class names, one per line (blank trailing lines ignored).

    Args:
        path: a UTF-8 text file (a regular file of at most 1 MiB; a leading BOM is allowed).

    Returns:
        The class names, in order.

    Raises:
        DataError: missing, unreadable, not a regular file, over 1 MiB, not UTF-8, empty, or with an
            empty, duplicate or control-character name (naming the line).
    """
    raw = read_bounded(path, limit=MAX_LABELS_BYTES, what="labels file", error=DataError)
    try:
        names = raw.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: labels file is not UTF-8 text") from None
    while names and not names[-1].strip():
        names.pop()
    if not names:
        raise DataError(f"{path}: labels file is empty")
    first: dict[str, int] = {}
    for number, name in enumerate(names, 1):
        if not name.strip():
            raise DataError(f"{path}, line {number}: empty class name")
        if any(unicodedata.category(c) == "Cc" and c != "\t" for c in name):
            raise DataError(f"{path}, line {number}: class name holds a control character")
        if name in first:
            raise DataError(f"{path}, line {number}: class name {name!r} repeats line {first[name]}")
        first[name] = number
    return names
