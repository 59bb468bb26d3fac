"""Safe loading of Keras models (.keras, .h5, SavedModel, .tflite, in-memory).

Model files can carry code (Lambda bytecode, configs naming arbitrary module functions or TF
ops, SavedModel graphs) and archives can be zip bombs. A `.keras` archive is checked member by
member and re-written into a private temp dir with size-bounded reads; its config (and an .h5
`model_config`) is scanned against allow-lists (exporter/config_scan.py) before tf_keras sees
it; anything that could run code is refused unless `trust_model=True` (`--trust-model`).

Example:
    >>> from exporter.model_io import load_model
    >>> loaded = load_model("model.keras")
    >>> loaded.kind
    'keras'
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from exporter import tf as tfmod
from exporter.config_scan import TRUST_HINT, find_problems, raise_custom, raise_unsafe, scan_config
from exporter.errors import ExporterError, ModelFileError, UnsafeModelError, UsageError

__all__ = ["LoadedModel", "load_model", "check_is_tf_keras", "scan_config"]

_SUFFIXES = {".keras": "keras", ".h5": "h5", ".hdf5": "h5", ".tflite": "tflite"}
_MAX_CONFIG_BYTES = 64 << 20
_MAX_METADATA_BYTES = 1 << 20
_MAX_TFLITE_BYTES = 2 << 30          # the FlatBuffer format's own limit
_MAX_MEMBERS, _MAX_TOTAL_BYTES = 1000, 4 << 30
_MAX_RATIO, _RATIO_FROM = 200, 1 << 20     # expansion limit, checked for members above 1 MiB
_CHUNK = 1 << 20
_MEMBERS = ("config.json", "metadata.json", "model.weights.h5", "model.weights.npz")
# What zipfile and zlib raise on damaged archives (RuntimeError: encrypted; EOFError: truncated).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, RuntimeError, NotImplementedError,
               ValueError, KeyError, IndexError, OverflowError, struct.error, zlib.error)
_KERAS3_HINT = ("TF-MOT needs tf_keras (Keras 2) models. Build or load the model with `import tf_keras as "
                "keras` (or set TF_USE_LEGACY_KERAS=1 before importing TensorFlow so that tf.keras is "
                "tf_keras), copy the weights over if needed (model.get_weights() / set_weights()), then "
                "re-save it with model.save().")


@dataclass(frozen=True)
class LoadedModel:
    """A model that passed the safety checks.

    Attributes:
        model: The `tf_keras.Model`, or `None` for a `.tflite` input.
        path: Where it was loaded from, or `None` for an in-memory model.
        kind: One of `"keras"`, `"h5"`, `"savedmodel"`, `"tflite"`, `"object"`.
        tflite_bytes: The flatbuffer when `kind == "tflite"`, else `None`.
    """

    model: object
    path: Path | None
    kind: str
    tflite_bytes: bytes | None = None


def load_model(source, *, trust_model: bool = False, hint: str | None = None) -> LoadedModel:
    """Load a model from a path or accept an in-memory tf_keras model.

    Args:
        source: A `str` or path-like to a `.keras`, `.h5`/`.hdf5` or `.tflite` file (any
            letter case) or a SavedModel directory; or a `tf_keras.Model`.
        trust_model: Allow models whose loading can run code (Lambda layers, SavedModels,
            custom classes). Only for models from trusted sources. Default False.
        hint: What a refusal tells the user to do. Default: how to use --trust-model.

    Returns:
        A `LoadedModel`.

    Raises:
        ModelFileError: The file is missing, unreadable, not a regular file, empty, corrupt,
            of the wrong kind, a Keras 3 model, or needs custom code (exit code 2).
        UnsafeModelError: Loading would run code from the file and `trust_model` is False,
            or the `.keras` archive is a zip bomb or has unexpected members (exit code 3).
        UsageError: `source` is neither a path nor a tf_keras model.
    """
    if isinstance(source, (str, os.PathLike)):
        try:
            path = Path(source).expanduser()
        except (RuntimeError, ValueError, TypeError) as e:
            raise ModelFileError(f"bad model path {_show(source)}: {e}") from e
        return _load_path(path, trust_model, hint or TRUST_HINT)
    check_is_tf_keras(source)
    tf_keras = sys.modules.get("tf_keras")  # a tf_keras model implies it is imported
    if tf_keras is not None and isinstance(source, tfmod.keras().Model):
        return LoadedModel(source, None, "object")
    raise UsageError(f"expected a model path or a tf_keras.Model, got {type(source).__name__}")


def check_is_tf_keras(model) -> None:
    """Refuse Keras 3 model objects (TF-MOT only works on tf_keras models).

    Does not import Keras 3: the object's class hierarchy is inspected.

    Args:
        model: Any object.

    Raises:
        ModelFileError: `model` is a Keras 3 object.
    """
    for klass in type(model).__mro__:
        if getattr(klass, "__module__", "").startswith("keras.src"):
            raise ModelFileError(f"this model is a Keras 3 object ({type(model).__module__}."
                                 f"{type(model).__qualname__}). {_KERAS3_HINT}")


def _show(path) -> str:
    text = os.fspath(path)
    return text if len(text) <= 200 else f"{text[:100]}...{text[-60:]} ({len(text)} characters)"


def _load_path(path: Path, trust: bool, hint: str) -> LoadedModel:
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise ModelFileError(f"no such model file: {_show(path)}") from None
    except (OSError, ValueError) as e:  # ENAMETOOLONG, ELOOP, EACCES, embedded NUL
        raise ModelFileError(f"cannot open model file {_show(path)}: "
                             f"{getattr(e, 'strerror', None) or e}") from None
    if stat.S_ISDIR(mode):
        return _load_savedmodel(path, trust, hint)
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ModelFileError(f"unsupported model file type '{path.suffix[:40]}': expected .keras, .h5, "
                             f".tflite or a SavedModel directory ({_show(path)})")
    if kind == "tflite":
        return _load_tflite(path)
    if kind == "keras":
        return _load_keras(path, trust, hint)
    _open_regular(path).close()  # refuses FIFOs, devices and empty files before h5py opens it
    config, version = _read_h5(path)
    _scan(config, version, path, trust, hint)
    model = _guarded_load(path, trust, lambda: tfmod.keras().models.load_model(str(path), compile=False))
    return LoadedModel(model, path, kind)


def _open_regular(path: Path):
    """Open a regular, non-empty file for reading (never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ModelFileError(f"cannot open model file {_show(path)}: {e.strerror or e}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        os.close(fd)
        what = "model file is empty" if stat.S_ISREG(info.st_mode) else "not a regular file"
        raise ModelFileError(f"{what}: {_show(path)}")
    return os.fdopen(fd, "rb")


def _scan(config, version, path: Path, trust: bool, hint: str) -> None:
    """Unsafe findings first (exit 3), then Keras 3 (2), then custom classes (2)."""
    found = None if trust else find_problems(config)
    if found is not None:
        raise_unsafe(found.unsafe, _show(path), hint)
    _check_version(version, path)
    if found is not None:
        raise_custom(found.custom, _show(path), hint)


def _load_keras(path: Path, trust: bool, hint: str) -> LoadedModel:
    workdir = tempfile.mkdtemp(prefix="edgex-model-")
    try:
        copy = Path(workdir) / "model.keras"   # a lowercase suffix, as tf_keras insists
        raw_config, raw_meta = _checked_copy(path, copy)
        config = _parse_json(raw_config, f"{_show(path)}: config.json")
        meta = _parse_json(raw_meta, f"{_show(path)}: metadata.json")
        if not isinstance(config, dict):
            raise ModelFileError(f"{_show(path)}: config.json is not a JSON object")
        # compile=False makes tf_keras drop the top-level compile_config unread.
        config = {k: v for k, v in config.items() if k != "compile_config"}
        _scan(config, meta.get("keras_version") if isinstance(meta, dict) else None, path, trust, hint)
        model = _guarded_load(path, trust, lambda: tfmod.keras().models.load_model(
            str(copy), compile=False, safe_mode=not trust))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return LoadedModel(model, path, "keras")


def _checked_copy(path: Path, copy: Path) -> tuple[bytes, bytes]:
    """Check a .keras archive's members, copy them with bounded reads; return config, metadata."""
    kept = {"config.json": b"", "metadata.json": b"{}"}
    try:
        with _open_regular(path) as fh:
            if not zipfile.is_zipfile(fh):
                raise ModelFileError(f"{_show(path)} is not a valid .keras archive (not a zip file)")
            with zipfile.ZipFile(fh) as zin:
                members = _checked_members(zin, path)   # refuses before anything is written
                with zipfile.ZipFile(copy, "w") as zout:
                    kept.update({i.filename: _copy_member(zin, zout, i, path) for i in members})
    except _ZIP_ERRORS as e:
        raise ModelFileError(f"{_show(path)} is not a valid .keras archive ({e})") from e
    except OSError as e:
        raise ModelFileError(f"cannot read {_show(path)} or write its checked copy: {e.strerror or e}") from e
    return kept["config.json"], kept["metadata.json"]


def _checked_members(zin: zipfile.ZipFile, path: Path) -> list[zipfile.ZipInfo]:
    """The file members to copy, after refusing hostile names, types, sizes and ratios."""
    infos = zin.infolist()
    problems = [p for p in map(_member_problem, infos[:_MAX_MEMBERS + 1]) if p]
    names = [i.filename for i in infos]
    if len(infos) > _MAX_MEMBERS:
        problems.append(f"{len(infos)} members (limit {_MAX_MEMBERS})")
    if len(set(names)) != len(names):
        problems.append("duplicate member names")
    total = sum(i.file_size for i in infos)
    if total > _MAX_TOTAL_BYTES:
        problems.append(f"declares {total:,} bytes (limit {_MAX_TOTAL_BYTES:,})")
    if problems:
        raise UnsafeModelError(f"refusing to load {_show(path)}: unsafe .keras archive, nothing was "
                               f"extracted: {'; '.join(problems[:5])}")
    if "config.json" not in names:
        raise ModelFileError(f"{_show(path)} is not a valid .keras archive (no config.json)")
    limits = {"config.json": _MAX_CONFIG_BYTES, "metadata.json": _MAX_METADATA_BYTES}
    for info in infos:
        if info.file_size > limits.get(info.filename, _MAX_TOTAL_BYTES):
            raise ModelFileError(f"{_show(path)}: {info.filename} is larger than "
                                 f"{limits[info.filename] >> 20} MiB")
    return [i for i in infos if not i.is_dir()]


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name, kind = info.filename, stat.S_IFMT(info.external_attr >> 16)
    parts = name.split("/")
    in_assets = len(parts) > 1 and parts[0] == "assets" and all(p not in ("", ".", "..") for p in parts[1:-1])
    if name not in _MEMBERS and not (in_assets and parts[-1] not in (".", "..")):
        return (f"unexpected member {name[:80]!r} (a .keras holds only {', '.join(_MEMBERS)} "
                "and assets/...)")
    if "\\" in name or "\0" in name or (parts[-1] == "" and not info.is_dir()):
        return f"bad member name {name[:80]!r}"
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        return f"{name[:80]!r} is not a regular file (symlink or device)"
    if info.flag_bits & 0x1:
        return f"{name[:80]!r} is encrypted"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return f"{name[:80]!r} uses compression method {info.compress_type} (only stored and deflate)"
    if info.file_size > _RATIO_FROM and info.file_size > _MAX_RATIO * max(info.compress_size, 1):
        return (f"{name[:80]!r} expands {info.file_size / max(info.compress_size, 1):.0f}x "
                f"(limit {_MAX_RATIO}x): a zip bomb")
    return None


def _copy_member(zin: zipfile.ZipFile, zout: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytes:
    """Copy one member, never reading more than it declares; return it if it is a small JSON."""
    keep, left = info.filename in ("config.json", "metadata.json"), info.file_size
    kept = bytearray()
    with zin.open(info) as src, zout.open(zipfile.ZipInfo(info.filename), "w", force_zip64=True) as dst:
        while chunk := src.read(min(_CHUNK, left + 1)):
            left -= len(chunk)
            if left < 0:
                break
            dst.write(chunk)
            if keep:
                kept += chunk
    if left != 0:
        raise UnsafeModelError(f"refusing to load {_show(path)}: member {info.filename[:80]!r} does not "
                               "hold the size its header declares (a lying zip header)")
    return bytes(kept)


def _read_h5(path: Path):
    """Return (model_config, keras_version) from an HDF5 model file."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            version = f.attrs.get("keras_version")
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{_show(path)} is not a valid HDF5 model file ({e})") from e
    if raw is None:
        raise ModelFileError(f"{_show(path)} has no model config (a weights-only .h5 file?)")
    version = version.decode("utf-8", "replace") if isinstance(version, bytes) else version
    return _parse_json(raw, f"{_show(path)}: model_config"), version


def _parse_json(raw, what: str):
    try:
        return json.loads(raw)
    except (ValueError, TypeError, RecursionError) as e:
        raise ModelFileError(f"{what} is not valid JSON ({e})") from e


def _check_version(version, path: Path) -> None:
    major = str(version or "").split(".")[0]
    if major.isdigit() and int(major) >= 3:
        raise ModelFileError(f"{_show(path)} was saved by Keras {str(version)[:40]} (Keras 3). {_KERAS3_HINT}")


def _guarded_load(path: Path, trust: bool, load):
    """Run a tf_keras load with safe mode forced on (unless trusted) and restored."""
    from tf_keras.src.saving import serialization_lib as sl

    state = sl.SAFE_MODE.__dict__.copy()
    try:
        # The thread-local flag overrides safe_mode=; it also makes the legacy .h5 path refuse lambdas.
        with sl.SafeModeScope(not trust):
            return load()
    except ExporterError:
        raise
    except Exception as e:  # noqa: BLE001 - any loader failure is a file problem
        reason = " ".join(str(e).split())[:400] or type(e).__name__
        raise ModelFileError(f"could not load {_show(path)}: {reason}") from e
    finally:
        sl.SAFE_MODE.__dict__.clear()
        sl.SAFE_MODE.__dict__.update(state)


def _load_savedmodel(path: Path, trust: bool, hint: str) -> LoadedModel:
    if not any((path / n).is_file() for n in ("saved_model.pb", "saved_model.pbtxt")):
        raise ModelFileError(f"{_show(path)} is a directory but not a SavedModel (no saved_model.pb)")
    if not trust:
        raise UnsafeModelError(
            f"refusing to load SavedModel {_show(path)}: a SavedModel contains TensorFlow graphs and "
            "restored objects that can run arbitrary operations (read or write files, ...) when "
            f"loaded, and edgex cannot check them. {hint}")
    keras = tfmod.keras()
    model = _guarded_load(path, True, lambda: keras.models.load_model(str(path), compile=False))
    if not isinstance(model, keras.Model):
        raise ModelFileError(f"{_show(path)} is not a Keras SavedModel (no tf_keras model inside: it was "
                             "probably written by tf.saved_model.save, not model.save)")
    return LoadedModel(model, path, "savedmodel")


def _load_tflite(path: Path) -> LoadedModel:
    with _open_regular(path) as fh:
        data = fh.read(_MAX_TFLITE_BYTES + 1)
    if len(data) > _MAX_TFLITE_BYTES:
        raise ModelFileError(f"{_show(path)} is larger than 2 GiB, the TFLite (FlatBuffer) limit")
    try:
        interpreter = tfmod.litert_interpreter_class()(model_content=data)
        interpreter.allocate_tensors()
    except Exception as e:  # noqa: BLE001
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        raise ModelFileError(f"not a valid TFLite model: {_show(path)}: {reason}") from e
    return LoadedModel(None, path, "tflite", data)
