"""Calibration and evaluation data: safe loading and checks before any work.

Data sets are `.npz` files with an array `x` and an optional `y` (integer class
labels, or one-hot rows), or `.npy` files holding `x` alone. They are loaded
with `allow_pickle=False`, so object arrays are refused.

Example:
    >>> ds = load_dataset("eval.npz", role="evaluation")
    >>> check_input(ds, shape=(None, 8, 8, 1), dtype="float32")
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exporter.errors import DataError, UnsafeDataError


@dataclass(frozen=True)
class Dataset:
    """Samples `x`, optional integer labels `y`, and where they came from."""

    x: np.ndarray
    y: np.ndarray | None
    origin: str

    def __len__(self) -> int:
        return int(self.x.shape[0])


def load_dataset(path: str | Path, *, role: str) -> Dataset:
    """Load a data set from `.npz` (x, optional y) or `.npy` (x only).

    Args:
        path: the file.
        role: "calibration", "evaluation" or "training", used in messages.

    Returns:
        The data set, with one-hot labels turned into class indices.

    Raises:
        DataError: missing or unreadable file, wrong keys, empty or non-finite data.
        UnsafeDataError: object arrays, which would need pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such {role} data file: {path}")
    try:
        if path.suffix == ".npy":
            x, y = np.load(path, allow_pickle=False), None
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                keys = set(archive.files)
                if "x" not in keys:
                    raise DataError(f"{path}: {role} .npz needs an array named 'x' (found: {sorted(keys) or 'none'})")
                extra = keys - {"x", "y"}
                if extra:
                    raise DataError(f"{path}: unexpected arrays {sorted(extra)}; a data set holds 'x' and optional 'y'")
                x = archive["x"]
                y = archive["y"] if "y" in keys else None
        else:
            raise DataError(f"{path}: {role} data must be .npz (x, y) or .npy (x), not '{path.suffix}'")
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise UnsafeDataError(f"{path}: holds object arrays, which need pickle to load; refused") from None
        raise DataError(f"{path}: not a readable numpy file: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable numpy file: {exc}") from None
    return _validated(x, y, str(path), role)


def dataset_from_arrays(x, y=None, *, origin: str = "<arrays>", role: str = "evaluation") -> Dataset:
    """Wrap in-memory arrays as a checked Dataset (the Python API's path)."""
    return _validated(np.asarray(x), None if y is None else np.asarray(y), origin, role)


def _validated(x: np.ndarray, y: np.ndarray | None, origin: str, role: str) -> Dataset:
    if x.dtype == object or (y is not None and y.dtype == object):
        raise UnsafeDataError(f"{origin}: holds object arrays; refused")
    if x.ndim == 0 or x.shape[0] == 0:
        raise DataError(f"{origin}: the {role} set is empty")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise DataError(f"{origin}: x has non-numeric dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
        raise DataError(f"{origin}: x holds NaN or Inf in {bad} of {len(x)} samples")
    if y is not None:
        y = _labels(y, len(x), origin)
    return Dataset(x=x, y=y, origin=origin)


def _labels(y: np.ndarray, n: int, origin: str) -> np.ndarray:
    if y.shape[0] != n:
        raise DataError(f"{origin}: x has {n} samples but y has {y.shape[0]} labels")
    if y.ndim == 2 and y.shape[1] > 1:
        if not np.isfinite(y).all():
            raise DataError(f"{origin}: y holds NaN or Inf")
        y = y.argmax(axis=1)
    elif y.ndim == 2:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{origin}: y must be class indices (N,) or one-hot (N, classes), got shape {y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or not np.equal(np.mod(y, 1), 0).all():
            raise DataError(f"{origin}: y must hold whole class indices")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{origin}: y has dtype {y.dtype}; expected integer class indices")
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
    return Dataset(x=x, y=ds.y, origin=ds.origin)


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

    Raises:
        DataError: missing, unreadable or empty file.
    """
    path = Path(path)
    try:
        names = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"cannot read labels file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: labels file is not UTF-8 text") from None
    while names and not names[-1].strip():
        names.pop()
    if not names:
        raise DataError(f"{path}: labels file is empty")
    return names
