"""Safe loading of Keras models (.keras, .h5, SavedModel, .tflite, in-memory).

Model files can carry code (Lambda bytecode, configs naming arbitrary module
functions, SavedModel graphs). The config JSON is scanned before tf_keras sees
it; anything that could run code is refused unless `trust_model=True`
(`--trust-model`).

Example:
    >>> from exporter.model_io import load_model
    >>> loaded = load_model("model.keras")
    >>> loaded.kind
    'keras'
"""
from __future__ import annotations

import builtins
import json
import os
import sys
import zipfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from exporter import tf as tfmod
from exporter.errors import ExporterError, ModelFileError, UnsafeModelError, UsageError

_SUFFIXES = {".keras": "keras", ".h5": "h5", ".hdf5": "h5", ".tflite": "tflite"}
_MAX_CONFIG_BYTES = 64 * 1024 * 1024
_TRUST_HINT = ("If you trust the source of this model, pass --trust-model "
               "(trust_model=True) to lift this check.")
_KERAS3_HINT = (
    "TF-MOT needs tf_keras (Keras 2) models. Build or load the model with "
    "`import tf_keras as keras` (or set TF_USE_LEGACY_KERAS=1 before importing "
    "TensorFlow so that tf.keras is tf_keras), copy the weights over if needed "
    "(model.get_weights() / set_weights()), then re-save it with model.save().")
# Strings that have no business in a model config, matched case-insensitively.
_DANGEROUS_TEXT = (
    "enable_unsafe_deserialization", "os.system", "os.popen", "os.exec",
    "os.spawn", "posix.system", "subprocess", "builtins.exec", "builtins.eval",
    "builtins.compile", "builtins.open", "__import__", "__builtins__",
    "importlib", "func_load", "pickle.loads", "marshal.loads")
# Dotted-name components that must not appear in a function/class/op path.
_DANGEROUS_PARTS = frozenset({
    "os", "posix", "nt", "sys", "subprocess", "builtins", "importlib", "shutil",
    "pickle", "marshal", "ctypes", "socket", "runpy", "pty", "code", "io",
    "gfile", "file_io", "io_ops", "gen_io_ops", "write_file", "read_file",
    "script_ops", "py_func", "py_function", "eager_py_func", "numpy_function",
    "logging_ops", "print", "print_v2", "load_library", "load_op_library",
    "saved_model", "summary", "func_load", "saving", "saving_lib",
    "serialization_lib", "pickle_utils", "system", "exec", "eval", "popen",
    "open", "__import__", "enable_unsafe_deserialization"})
# Extra TF namespaces a TFOpLambda may not call (they touch files or runtime).
_TF_OP_DENY = _DANGEROUS_PARTS | {
    "data", "debugging", "train", "config", "distribute", "tpu", "lite",
    "autograph", "raw_ops", "sysconfig", "queue", "profiler"}
_SAFE_MODULE_ROOTS = ("keras", "tf_keras", "tensorflow")


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


def load_model(source, *, trust_model: bool = False) -> LoadedModel:
    """Load a model from a path or accept an in-memory tf_keras model.

    Args:
        source: A `str` or path-like to a `.keras`, `.h5`/`.hdf5` or
            `.tflite` file or a SavedModel directory; or a `tf_keras.Model`.
        trust_model: Allow models whose loading can run code (Lambda layers,
            SavedModels, custom classes). Only for models from trusted sources.

    Returns:
        A `LoadedModel`.

    Raises:
        ModelFileError: The file is missing, empty, corrupt, of the wrong
            kind, a Keras 3 model, or needs custom code (exit code 2).
        UnsafeModelError: Loading would run code from the file and
            `trust_model` is False (exit code 3).
        UsageError: `source` is neither a path nor a tf_keras model.
    """
    if isinstance(source, (str, os.PathLike)):
        return _load_path(Path(source).expanduser(), trust_model)
    check_is_tf_keras(source)
    tf_keras = sys.modules.get("tf_keras")  # a tf_keras model implies it is imported
    if tf_keras is not None and isinstance(source, tfmod.keras().Model):
        return LoadedModel(source, None, "object")
    raise UsageError(
        f"expected a model path or a tf_keras.Model, got {type(source).__name__}")


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
            raise ModelFileError(
                f"this model is a Keras 3 object ({type(model).__module__}."
                f"{type(model).__qualname__}). {_KERAS3_HINT}")


def scan_config(config: dict, *, origin: str) -> None:
    """Refuse a model config that would run code or need custom code.

    The JSON is walked recursively (iteratively, so deep nesting is fine),
    including inside Sequential/Functional models and wrapper layers.

    Args:
        config: The parsed model config (a .keras `config.json` or an .h5
            `model_config` attribute).
        origin: Where the config came from, for messages (e.g. the path).

    Raises:
        UnsafeModelError: A Lambda layer, serialized Python lambda, non-Keras
            function, dangerous TF op or dangerous name was found.
        ModelFileError: A custom (non-Keras) class was found.
    """
    unsafe, custom = _findings(config)
    _raise_unsafe(unsafe, origin)
    _raise_custom(custom, origin)


def _findings(config) -> tuple[list[str], list[str]]:
    unsafe: list[str] = []
    custom: list[str] = []
    todo = deque([(config, "$")])
    while todo:
        node, where = todo.popleft()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and _dangerous_text(key):
                    unsafe.append(f"key {key[:80]!r} at {where}")
                todo.append((value, _at(where, f".{key}")))
            _check_object(node, where, unsafe, custom)
        elif isinstance(node, list):
            todo.extend((v, _at(where, f"[{i}]")) for i, v in enumerate(node))
        elif isinstance(node, str) and _dangerous_text(node):
            unsafe.append(f"{node[:80]!r} ({_dangerous_text(node)}) at {where}")
    return unsafe, custom


def _check_object(d: dict, where: str, unsafe: list, custom: list) -> None:
    cls, module = d.get("class_name"), d.get("module")
    inner = d.get("config")
    name = inner.get("name") if isinstance(inner, dict) else None
    lambda_keys = [k for k, v in d.items() if str(k).endswith("_type") and v == "lambda"]
    if cls == "Lambda":
        unsafe.append(f"Lambda layer {name!r} at {where} (holds Python code)")
    elif cls == "__lambda__" or lambda_keys:
        unsafe.append(f"serialized Python lambda at {where}")
    if not isinstance(cls, str):
        return
    if cls == "TFOpLambda":
        fn = str(inner.get("function", "")) if isinstance(inner, dict) else ""
        if _bad_parts(fn.split("."), _TF_OP_DENY):
            unsafe.append(f"TFOpLambda calling tf.{fn[:80]} at {where}")
    elif cls == "function":
        fn = str(inner)
        if module == "builtins":
            if hasattr(builtins, fn):
                unsafe.append(f"Python builtin function {fn!r} at {where}")
        elif not _safe_module(module) or _bad_parts(
                f"{module}.{fn}".split("."), _DANGEROUS_PARTS):
            unsafe.append(f"Python function '{module}.{fn}' at {where} "
                          "(loading imports and runs code from that module)")
    elif isinstance(module, str):
        safe = _safe_module(module)
        parts = f"{module}.{cls}".split(".") if safe else module.split(".")[:1]
        if _bad_parts(parts, _DANGEROUS_PARTS):
            unsafe.append(f"class '{module}.{cls}' at {where}")
        elif not safe:
            custom.append(f"'{cls}' from module '{module}' at {where}")
    elif module is None and ">" in cls and not cls.startswith("Custom>"):
        custom.append(f"registered class '{cls}' at {where}")


def _at(where: str, step: str) -> str:
    path = where + step  # JSON path for messages, kept short for deep configs
    return path if len(path) <= 240 else "$..." + path[-200:]


def _dangerous_text(text: str) -> str | None:
    low = text.lower()
    return next((bad for bad in _DANGEROUS_TEXT if bad in low), None)


def _bad_parts(parts, deny) -> bool:
    return any(p.lower() in deny for p in parts)


def _safe_module(module) -> bool:
    return isinstance(module, str) and module.split(".")[0] in _SAFE_MODULE_ROOTS


def _raise_unsafe(unsafe: list[str], origin: str) -> None:
    if unsafe:
        shown = "; ".join(unsafe[:5]) + (f"; and {len(unsafe) - 5} more" if len(unsafe) > 5 else "")
        raise UnsafeModelError(
            f"refusing to load {origin}: its config could run code when loaded: "
            f"{shown}. {_TRUST_HINT}")


def _raise_custom(custom: list[str], origin: str) -> None:
    if custom:
        raise ModelFileError(
            f"cannot load {origin}: it uses custom classes that are not part of "
            f"tf_keras ({'; '.join(custom[:5])}). Custom layers need their Python "
            "code, which edgex does not import: not supported without --trust-model "
            "(trust_model=True), and then only if that code is importable.")


def _load_path(path: Path, trust: bool) -> LoadedModel:
    if not path.exists():
        raise ModelFileError(f"no such model file: {path}")
    if path.is_dir():
        return _load_savedmodel(path, trust)
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ModelFileError(
            f"unsupported model file type '{path.suffix}': expected .keras, .h5, "
            f".tflite or a SavedModel directory ({path})")
    if not path.is_file():
        raise ModelFileError(f"not a regular file: {path}")
    if path.stat().st_size == 0:
        raise ModelFileError(f"model file is empty: {path}")
    try:
        if kind == "tflite":
            return _load_tflite(path)
        config, version = (_read_keras_archive if kind == "keras" else _read_h5)(path)
    except OSError as e:
        raise ModelFileError(f"cannot read {path}: {e}") from e
    unsafe, custom = ([], []) if trust else _findings(config)
    _raise_unsafe(unsafe, str(path))  # unsafe first, then Keras 3, then custom
    _check_version(version, path)
    _raise_custom(custom, str(path))
    keras = tfmod.keras()
    kwargs = {"safe_mode": not trust} if kind == "keras" else {}
    model = _guarded_load(path, trust, lambda: keras.models.load_model(
        str(path), compile=False, **kwargs))
    return LoadedModel(model, path, kind)


def _read_keras_archive(path: Path):
    """Return (config dict without top-level compile_config, keras_version)."""
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not a valid .keras archive (not a zip file)")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "config.json" not in names:
                raise ModelFileError(f"{path} is not a valid .keras archive (no config.json)")
            if zf.getinfo("config.json").file_size > _MAX_CONFIG_BYTES:
                raise ModelFileError(f"{path}: config.json is larger than 64 MiB")
            raw = zf.read("config.json")
            meta = zf.read("metadata.json") if "metadata.json" in names else b"{}"
    except (zipfile.BadZipFile, EOFError, ValueError, RuntimeError,
            NotImplementedError) as e:
        raise ModelFileError(f"{path} is not a valid .keras archive ({e})") from e
    config = _parse_json(raw, f"{path}: config.json")
    meta = _parse_json(meta, f"{path}: metadata.json")
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: config.json is not a JSON object")
    # compile=False makes tf_keras drop the top-level compile_config unread.
    config = {k: v for k, v in config.items() if k != "compile_config"}
    return config, meta.get("keras_version") if isinstance(meta, dict) else None


def _read_h5(path: Path):
    """Return (model_config dict, keras_version) from an HDF5 model file."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            version = f.attrs.get("keras_version")
    except OSError as e:
        raise ModelFileError(f"{path} is not a valid HDF5 model file ({e})") from e
    if raw is None:
        raise ModelFileError(f"{path} has no model config (a weights-only .h5 file?)")
    config = _parse_json(raw, f"{path}: model_config")
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    return config, version


def _parse_json(raw, what: str):
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ModelFileError(f"{what} is not valid JSON ({e})") from e


def _check_version(version, path: Path) -> None:
    major = str(version or "").split(".")[0]
    if major.isdigit() and int(major) >= 3:
        raise ModelFileError(
            f"{path} was saved by Keras {version} (Keras 3). {_KERAS3_HINT}")


def _guarded_load(path: Path, trust: bool, load):
    """Run a tf_keras load with safe mode forced on (unless trusted) and restored."""
    from tf_keras.src.saving import serialization_lib as sl

    state = sl.SAFE_MODE.__dict__.copy()
    try:
        # The thread-local flag overrides load_model's safe_mode argument, so
        # set it explicitly; it also makes the legacy .h5 path refuse lambdas.
        with sl.SafeModeScope(not trust):
            return load()
    except ExporterError:
        raise
    except Exception as e:  # noqa: BLE001 - any loader failure is a file problem
        reason = " ".join(str(e).split())[:400] or type(e).__name__
        raise ModelFileError(f"could not load {path}: {reason}") from e
    finally:
        sl.SAFE_MODE.__dict__.clear()
        sl.SAFE_MODE.__dict__.update(state)


def _load_savedmodel(path: Path, trust: bool) -> LoadedModel:
    if not any((path / n).is_file() for n in ("saved_model.pb", "saved_model.pbtxt")):
        raise ModelFileError(
            f"{path} is a directory but not a SavedModel (no saved_model.pb)")
    if not trust:
        raise UnsafeModelError(
            f"refusing to load SavedModel {path}: a SavedModel contains TensorFlow "
            "graphs and restored objects that can run arbitrary operations (read "
            "or write files, ...) when loaded, and edgex cannot check them. "
            + _TRUST_HINT)
    keras = tfmod.keras()
    model = _guarded_load(path, True, lambda: keras.models.load_model(
        str(path), compile=False))
    if not isinstance(model, keras.Model):
        raise ModelFileError(
            f"{path} is not a Keras SavedModel (no tf_keras model inside: it was "
            "probably written by tf.saved_model.save, not model.save)")
    return LoadedModel(model, path, "savedmodel")


def _load_tflite(path: Path) -> LoadedModel:
    data = path.read_bytes()
    if not data:
        raise ModelFileError(f"model file is empty: {path}")
    try:
        interpreter = tfmod.litert_interpreter_class()(model_content=data)
        interpreter.allocate_tensors()
    except Exception as e:  # noqa: BLE001
        raise ModelFileError(f"not a valid TFLite model: {path}: {e}") from e
    return LoadedModel(None, path, "tflite", data)
