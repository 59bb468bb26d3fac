"""Safe loading of Keras models (.keras, .h5, SavedModel, .tflite, in-memory).

Model files can carry code (Lambda bytecode, configs naming arbitrary module functions or TF
ops, SavedModel graphs) and archives can be zip bombs. A `.keras` archive is checked member by
member and re-written into a private temp dir with size-bounded reads; its config (and an .h5
`model_config`) is scanned against allow-lists (exporter/config_scan.py) before tf_keras sees
it; anything that could run code is refused unless `trust_model=True` (`--trust-model`). A Keras 3
model (file or object) is scanned the same way, then bridged into tf_keras (exporter/keras3/).

Example:
    >>> loaded = load_model(demo.model_path)          # the demo's model.keras
    >>> loaded.kind, loaded.model.name
    ('keras', 'digits_cnn')
    >>> _ = Path("model.tflite").write_bytes(tiny_tflite)
    >>> load_model("model.tflite").kind                   # bundled as it is, never run by Python
    'tflite'
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from exporter import tf as tfmod
from exporter.config_scan import find_problems, raise_custom, raise_unsafe, scan_config, trust_hint
from exporter.errors import ExporterError, ModelFileError, UnsafeModelError, UsageError
from exporter.keras_archive import checked_copy, open_regular, show

__all__ = ["LoadedModel", "load_model", "scan_config"]

_SUFFIXES = {".keras": "keras", ".h5": "h5", ".hdf5": "h5", ".tflite": "tflite"}
_MAX_TFLITE_BYTES = 2 << 30          # the FlatBuffer format's own limit


@dataclass(frozen=True)
class LoadedModel:
    """A model that passed the safety checks.

    Attributes:
        model: The `tf_keras.Model`, or `None` for a `.tflite` input.
        path: Where it was loaded from, or `None` for an in-memory model.
        kind: One of `"keras"`, `"h5"`, `"savedmodel"`, `"tflite"`, `"object"`.
        tflite_bytes: The flatbuffer when `kind == "tflite"`, else `None`.
        bridge: For a Keras 3 model, its `exporter.keras3.Bridge` (the Keras 3 model, what was
            translated); `model` is then the tf_keras translation. Else `None`.
    """

    model: object
    path: Path | None
    kind: str
    tflite_bytes: bytes | None = None
    bridge: object = None


def load_model(source, *, trust_model: bool = False, hint: str | None = None) -> LoadedModel:
    """Load a model from a path or accept an in-memory tf_keras model; Keras 3 models are bridged.

    Args:
        source: A `str` or path-like to a `.keras`, `.h5`/`.hdf5` or `.tflite` file (any
            letter case) or a SavedModel directory; or a `tf_keras.Model` or Keras 3 model.
        trust_model: Allow models whose loading can run code (Lambda layers, SavedModels,
            custom classes). Only for models from trusted sources. Default False.
        hint: What a refusal tells the user to do. Default: how to trust the model (`trust_hint()`).

    Returns:
        A `LoadedModel`.

    Raises:
        ModelFileError: The file is missing, unreadable, not a regular file, empty, corrupt,
            of the wrong kind, needs custom code, or a Keras 3 model outside the bridge's table (exit code 2).
        UnsafeModelError: Loading would run code from the file and `trust_model` is False,
            or the `.keras` archive is a zip bomb or has unexpected members (exit code 3).
        ConversionError: A Keras 3 model whose tf_keras translation does not build or take its weights (4).
        UsageError: `source` is neither a path nor a tf_keras or Keras 3 model.
    """
    if isinstance(source, (str, os.PathLike)):
        try:
            path = Path(source).expanduser()
        except (RuntimeError, ValueError, TypeError) as e:
            raise ModelFileError(f"bad model path {show(source)}: {e}") from e
        return _load_path(path, trust_model, hint)
    from exporter.keras3 import bridge_object, is_keras3_object

    if is_keras3_object(source):
        model, bridge = bridge_object(source)
        return LoadedModel(model, None, "object", bridge=bridge)
    tf_keras = sys.modules.get("tf_keras")  # a tf_keras model implies it is imported
    if tf_keras is not None and isinstance(source, tfmod.keras().Model):
        return LoadedModel(source, None, "object")
    raise UsageError(f"expected a model path or a tf_keras or Keras 3 model, got {type(source).__name__}")


def _load_path(path: Path, trust: bool, hint: str | None) -> LoadedModel:
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise ModelFileError(f"no such model file: {show(path)}") from None
    except (OSError, ValueError) as e:  # ENAMETOOLONG, ELOOP, EACCES, embedded NUL
        raise ModelFileError(f"cannot open model file {show(path)}: "
                             f"{getattr(e, 'strerror', None) or e}") from None
    if stat.S_ISDIR(mode):
        return _load_savedmodel(path, trust, hint)
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ModelFileError(f"unsupported model file type '{path.suffix[:40]}': expected .keras, .h5, "
                             f".tflite or a SavedModel directory ({show(path)})")
    if kind == "tflite":
        return _load_tflite(path)
    if kind == "keras":
        return _load_keras(path, trust, hint)
    open_regular(path).close()  # refuses FIFOs, devices and empty files before h5py opens it
    config, version = _read_h5(path)
    if _scan(config, version, path, trust, hint):
        return _bridge(config, version, path, path, kind, trust)
    model = _guarded_load(path, trust, lambda: tfmod.keras().models.load_model(str(path), compile=False))
    return LoadedModel(model, path, kind)


def _scan(config, version, path: Path, trust: bool, hint: str | None) -> bool:
    """Unsafe findings first (exit 3), then custom classes (2); True for a Keras 3 model (to bridge)."""
    from exporter.keras3 import is_keras3_version

    found = None if trust else find_problems(config)
    if found is not None:
        raise_unsafe(found.unsafe, show(path), hint)
        raise_custom(found.custom, show(path), hint)
    return is_keras3_version(version)


def _bridge(record, version, copy: Path, path: Path, kind: str, trust: bool) -> LoadedModel:
    """A scanned Keras 3 file translated into tf_keras (exporter/keras3/)."""
    from exporter.keras3 import bridge_file

    model, bridge = bridge_file(record, version, copy, show(path), trust=trust)
    return LoadedModel(model, path, kind, bridge=bridge)


def _load_keras(path: Path, trust: bool, hint: str | None) -> LoadedModel:
    workdir = tempfile.mkdtemp(prefix="edgex-model-")
    try:
        copy = Path(workdir) / "model.keras"   # a lowercase suffix, as tf_keras insists
        raw_config, raw_meta = checked_copy(path, copy)
        config = _parse_json(raw_config, f"{show(path)}: config.json")
        meta = _parse_json(raw_meta, f"{show(path)}: metadata.json")
        if not isinstance(config, dict):
            raise ModelFileError(f"{show(path)}: config.json is not a JSON object")
        # compile=False makes tf_keras drop the top-level compile_config unread.
        config = {k: v for k, v in config.items() if k != "compile_config"}
        version = meta.get("keras_version") if isinstance(meta, dict) else None
        if _scan(config, version, path, trust, hint):
            return _bridge(config, version, copy, path, "keras", trust)   # before the copy is removed
        model = _guarded_load(path, trust, lambda: tfmod.keras().models.load_model(
            str(copy), compile=False, safe_mode=not trust))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return LoadedModel(model, path, "keras")


def _read_h5(path: Path):
    """Return (model_config, keras_version) from an HDF5 model file."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            version = f.attrs.get("keras_version")
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{show(path)} is not a valid HDF5 model file ({e})") from e
    if raw is None:
        raise ModelFileError(f"{show(path)} has no model config (a weights-only .h5 file?)")
    version = version.decode("utf-8", "replace") if isinstance(version, bytes) else version
    return _parse_json(raw, f"{show(path)}: model_config"), version


def _parse_json(raw, what: str):
    try:
        return json.loads(raw)
    except (ValueError, TypeError, RecursionError) as e:
        raise ModelFileError(f"{what} is not valid JSON ({e})") from e


def _guarded_load(path: Path, trust: bool, load):
    """Run a tf_keras load with safe mode forced on (unless trusted) and restored."""
    from tf_keras.src.saving import serialization_lib as sl

    state = sl.SAFE_MODE.__dict__.copy()
    try:
        # The thread-local flag overrides safe_mode=; it also makes the legacy .h5 path refuse lambdas.
        with sl.SafeModeScope(not trust):
            model = load()
    except ExporterError:
        raise
    except Exception as e:  # noqa: BLE001 - any loader failure is a file problem
        reason = " ".join(str(e).split())[:400] or type(e).__name__
        raise ModelFileError(f"could not load {show(path)}: {reason}") from e
    finally:
        sl.SAFE_MODE.__dict__.clear()
        sl.SAFE_MODE.__dict__.update(state)
    if not isinstance(model, tfmod.keras().Model):     # e.g. tf.saved_model.save output, or a bare config
        raise ModelFileError(f"{show(path)} does not hold a tf_keras model (loading it gave a "
                             f"{type(model).__name__}; save the model with model.save)")
    if not model.inputs or not model.outputs:
        raise ModelFileError(f"{show(path)} holds a model with no defined inputs or outputs (never built): "
                             "give it an Input layer, then save it again")
    return model


def _load_savedmodel(path: Path, trust: bool, hint: str | None) -> LoadedModel:
    if not any((path / n).is_file() for n in ("saved_model.pb", "saved_model.pbtxt")):
        raise ModelFileError(f"{show(path)} is a directory but not a SavedModel (no saved_model.pb)")
    if not trust:
        raise UnsafeModelError(
            f"refusing to load SavedModel {show(path)}: a SavedModel contains TensorFlow graphs and "
            "restored objects that can run arbitrary operations (read or write files, ...) when "
            f"loaded, and edgex cannot check them. {hint or trust_hint()}")
    model = _guarded_load(path, True, lambda: tfmod.keras().models.load_model(str(path), compile=False))
    return LoadedModel(model, path, "savedmodel")


def _load_tflite(path: Path) -> LoadedModel:
    from exporter.analysis.graph import free_dims

    with open_regular(path) as fh:
        data = fh.read(_MAX_TFLITE_BYTES + 1)
    if len(data) > _MAX_TFLITE_BYTES:
        raise ModelFileError(f"{show(path)} is larger than 2 GiB, the TFLite (FlatBuffer) limit")
    from ai_edge_litert.interpreter import OpResolverType

    try:    # the builtin kernels: a model only the XNNPACK delegate refuses is valid (exporter/xnnpack.py)
        interpreter = tfmod.litert_interpreter_class()(
            model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        # Dynamic input dims (-1 beyond the batch): prepared later, at the shape given for them.
        if not any(free_dims(d.get("shape_signature", ())) for d in interpreter.get_input_details()):
            interpreter.allocate_tensors()
    except Exception as e:  # noqa: BLE001
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        raise ModelFileError(f"not a valid TFLite model: {show(path)}: {reason}") from e
    return LoadedModel(None, path, "tflite", data)
