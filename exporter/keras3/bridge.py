"""A Keras 3 model made into an equivalent tf_keras model: translate the config, load, copy the weights.

For a file the order is: the safety scan (exporter/config_scan.py, in exporter/model_io.py), then
the translation through the table (exit 2 for anything outside it), then Keras 3 loads the model
(safe_mode, compile=False, from model_io's size-checked private copy), tf_keras builds the
translation and the weights are copied by layer name. An in-memory Keras 3 model skips the load.
The `Bridge` travels with the tf_keras model (`LoadedModel.bridge`); the export proves it on data
(exporter/keras3/proof.py) and reports it.

Example:
    >>> bridge = Bridge(source=None, version="3.15.1", translation=translate(
    ...     {"class_name": "Sequential", "config": {"name": "s", "layers": [
    ...         {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "in"}},
    ...         {"class_name": "Dense", "config": {"name": "d", "units": 2}}]}}, "m.keras"))
    >>> bridge.note()
    'bridged from Keras 3.15.1: 2 layers translated to tf_keras'
    >>> bridge.record()
    {'from': 'keras 3.15.1', 'layers': 2, 'added_layers': []}
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from exporter import tf as tfmod
from exporter.errors import ConversionError, ExporterError, ModelFileError
from exporter.keras3.translate import Translation, translate
from exporter.keras3.weights import copy_weights

__all__ = ["Bridge", "bridge_file", "bridge_object", "is_keras3_object", "is_keras3_version"]


@dataclass
class Bridge:
    """A Keras 3 model and its tf_keras translation.

    Attributes:
        source: the Keras 3 model (what the proof compares against).
        version: the Keras version that saved it (the installed one for an in-memory model).
        translation: the translated config, rules and added layers.
        proofs: proofs made so far, by sample set (an export to several targets proves once).
    """

    source: object
    version: str
    translation: Translation
    proofs: dict = field(default_factory=dict)

    @property
    def layers(self) -> int:
        """How many Keras 3 layers (and operations) were translated."""
        return len(self.translation.classes)

    def note(self) -> str:
        """The report's line about the bridge."""
        added = self.translation.added
        extra = f" ({len(added)} tf_keras layers added for hard_sigmoid/hard_silu)" if added else ""
        return f"bridged from Keras {self.version}: {self.layers} layers translated to tf_keras{extra}"

    def record(self) -> dict:
        """What the manifest records about the bridge."""
        return {"from": f"keras {self.version}", "layers": self.layers, "added_layers": list(self.translation.added)}


def is_keras3_version(version) -> bool:
    """True for a `keras_version` of 3 or more (what Keras 3 writes in metadata.json and .h5 files).

    Example:
        >>> is_keras3_version("3.15.1"), is_keras3_version("2.21.0"), is_keras3_version(None)
        (True, False, False)
    """
    major = str(version or "").split(".")[0]
    return major.isdigit() and int(major) >= 3


def is_keras3_object(obj) -> bool:
    """True when `obj` is a Keras 3 object (its class comes from `keras.src`); Keras 3 is not imported.

    Example:
        >>> is_keras3_object(object())
        False
    """
    return any(getattr(k, "__module__", "").startswith("keras.src") for k in type(obj).__mro__)


def bridge_file(record: dict, version: str, copy: Path, origin: str, *, trust: bool = False):
    """Translate a scanned Keras 3 model file, load it with Keras 3, build and fill the tf_keras model.

    Args:
        record: the model's config record (config.json, or the .h5 `model_config`), already scanned.
        version: its `keras_version`.
        copy: the file Keras 3 loads (model_io's private copy of a .keras; the .h5 itself).
        origin: the user's path, for messages.
        trust: `--trust-model` (Keras 3 then loads without safe_mode).

    Returns:
        (the tf_keras model, its Bridge).

    Raises:
        ModelFileError: (exit 2) outside the table, or Keras 3 cannot load the file.
        ConversionError: (exit 4) the translation does not build or the weights do not fit it.
    """
    translation = translate(record, origin)           # refuses before anything is loaded
    keras = tfmod.keras3()
    try:
        source = keras.saving.load_model(str(copy), compile=False, safe_mode=not trust)
    except ExporterError:
        raise
    except Exception as e:  # noqa: BLE001 - any loader failure is a file problem
        reason = " ".join(str(e).split())[:400] or type(e).__name__
        raise ModelFileError(f"could not load {origin} with Keras {keras.__version__}: {reason}") from e
    return _build(source, translation, str(version)[:40], origin)


def bridge_object(model):
    """Translate an in-memory Keras 3 model (its serialized config) and copy its weights into tf_keras.

    Returns:
        (the tf_keras model, its Bridge).

    Raises:
        ModelFileError: (exit 2) outside the table (a subclassed model has no config to translate).
        ConversionError: (exit 4) the translation does not build or the weights do not fit it.
    """
    import json

    keras = tfmod.keras3()
    origin = f"<in-memory {type(model).__name__} {getattr(model, 'name', '')!r}>"
    try:
        record = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    except Exception as e:  # noqa: BLE001 - a subclassed model without get_config, a non-JSON value
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        raise ModelFileError(f"cannot bridge the Keras 3 model {origin} to tf_keras: its config cannot be "
                             f"serialized ({reason})") from e
    return _build(model, translate(record, origin), keras.__version__, origin)


def _build(source, translation: Translation, version: str, origin: str):
    """The tf_keras model of `translation` with the weights of `source`."""
    from tf_keras.src.saving import serialization_lib as sl

    state = sl.SAFE_MODE.__dict__.copy()
    try:
        with sl.SafeModeScope(True):
            model = tfmod.keras().Model.from_config(translation.config)
    except Exception as e:  # noqa: BLE001 - tf_keras raises many kinds on a config it cannot build
        reason = " ".join(str(e).split())[:400] or type(e).__name__
        raise ConversionError(f"the tf_keras translation of the Keras 3 model {origin} does not build: {reason}") from e
    finally:
        sl.SAFE_MODE.__dict__.clear()
        sl.SAFE_MODE.__dict__.update(state)
    if not source.inputs or not source.outputs:
        raise ModelFileError(f"{origin} holds a Keras 3 model with no defined inputs or outputs (never built)")
    copy_weights(source, model, translation.rules, origin)
    return model, Bridge(source, version, translation)
