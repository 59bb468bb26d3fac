"""The export's inputs: the loaded model, its I/O signature and mode, and data checked against it.

Two steps of an export (exporter/steps.py runs them after `resolve`): `load` reads the model safely and settles the
conversion mode and the stages against the profile; `check_data` loads the calibration,
evaluation and training data and the labels and checks each against the model's input and
classes. Both run before any conversion, so every problem with what was given is found first.

Example:
    >>> from exporter.request import ExportArgs, Sources, resolve
    >>> request = resolve(ExportArgs(sources=Sources(demo=True)))
    >>> inputs = check_data(request, load(request))
    >>> inputs.mode, inputs.shape, inputs.classes, inputs.labels[:3]
    ('int8', (None, 8, 8, 1), 10, ['0', '1', '2'])
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.errors import DataError, UsageError
from exporter.option_names import option
from exporter.quant_modes import FULL_INTEGER

if TYPE_CHECKING:
    from exporter.checks import Measurement
    from exporter.data import Dataset
    from exporter.io_names import IOSignature
    from exporter.model_io import LoadedModel
    from exporter.request import ExportRequest, Sources


@dataclass(frozen=True)
class Inputs:
    """The loaded model with its I/O signature and conversion mode, and (after `check_data`) its data.

    Attributes:
        loaded: the LoadedModel (a tf_keras model, or the bytes of a given .tflite).
        mode: the conversion mode; None for a given .tflite (`build` reads it from the graph).
        shape, dtype, classes: the (first) input's shape and dtype and the label output's number of classes.
        calib, eval, train: checked Datasets, or None when not given.
        labels: class names, or None when not given.
        input_shapes: input name -> the shape a model with dynamic input dims is measured (a .tflite)
            or converted (a Keras model) at (exporter/input_shapes.py); None for a static model.
        bridge_proof: for a Keras 3 model, the `bridge_max_abs_error` figure `steps.prove_bridge` measured.
        signature: every input and output by name, in the model's order, and the label output
            (exporter/io_names.py); the data are checked against it.
    """

    loaded: LoadedModel
    mode: str | None
    shape: tuple
    dtype: str
    classes: int
    calib: Dataset | None = None
    eval: Dataset | None = None
    train: Dataset | None = None
    labels: list[str] | None = None
    input_shapes: dict | None = None
    bridge_proof: Measurement | None = None
    signature: IOSignature | None = None

    @property
    def is_tflite(self) -> bool:
        """True when the model was given as a .tflite (bundled as it is)."""
        return self.loaded.model is None


def _dataset(value, role, count=1):
    from exporter.data import Dataset, dataset_from_arrays, load_dataset

    if value is None or isinstance(value, Dataset):
        return value
    if isinstance(value, (str, Path)) and os.path.isdir(value):      # a folder of images, decoded in check_data
        from exporter.image_folder import scan

        if count > 1:
            raise DataError(f"{value}: a folder of images feeds a single-input model; this one has {count} inputs: "
                            "give .npz data with one array per input, named after it (or x0, x1, …)")
        return scan(value, role=role)
    if isinstance(value, (str, Path)):
        return load_dataset(value, role=role, inputs=count)
    if count > 1:                                                   # several inputs: exporter/input_arrays.py
        from exporter.input_arrays import from_value

        return from_value(value, role, count)
    if isinstance(value, tuple) and len(value) == 2:
        return dataset_from_arrays(*value, role=role)
    return dataset_from_arrays(value, role=role)


def _label_names(labels):
    from exporter.data import load_labels

    if labels is None or isinstance(labels, list):
        return labels
    return load_labels(labels)


def _io_signature(loaded, label_output: str | None):
    """The IOSignature of a loaded model (exporter/io_names.py), with its label output."""
    from exporter.io_names import IOSignature

    if loaded.model is None:
        return IOSignature.from_tflite(loaded.tflite_bytes).with_label(label_output)
    return IOSignature.from_keras(loaded.model).with_label(label_output)


def input_count(loaded) -> int:
    """How many inputs a loaded model has (what `read_data` needs to know)."""
    return len(_io_signature(loaded, None).inputs)


def _check_stages(stages, signature) -> None:
    """Refuse stages that fine-tune a model with several outputs, and distillation of one with several inputs."""
    names = ", ".join(map(repr, signature.output_names))
    tuning = [s.name for s in stages if s.needs_training]
    if tuning and len(signature.outputs) > 1:
        raise UsageError(f"stage {tuning[0]!r} fine-tunes the model, and edgex fine-tunes on the labels of one output "
                         f"only; this model has {len(signature.outputs)} outputs ({names}): export it without "
                         "compression stages")
    if "distill" in tuning and len(signature.inputs) > 1:
        raise UsageError(f"stage 'distill' needs a single-input classifier; this model has {len(signature.inputs)} "
                         f"inputs ({', '.join(map(repr, signature.input_names))})")


def load(request: ExportRequest, loaded: LoadedModel | None = None) -> Inputs:
    """Load the model safely, settle the conversion mode and check the stages against the profile.

    Args:
        request: the resolved export (its sources name the model).
        loaded: the model already loaded from `request.sources` (an export to several targets loads
            it once); None loads it.

    Returns:
        Inputs with the model, its signature and mode, and no data yet.

    Raises:
        ModelFileError, UnsafeModelError: a model that cannot or must not be loaded.
        UsageError: `quantize` or stages with a .tflite, a mode the profile refuses, a stage the
            profile or mode cannot take (or that fine-tunes a model with several outputs), an unknown
            `label_output`, dynamic input dims without a fitting `input_shapes` (exporter/input_shapes.py), or
            `sparse_encoding="on"` where it cannot apply (exporter/sparse/decision.py), or the recipe's
            `float_layers` where they cannot apply (exporter/stages/float_layers.py `check_request`), or
            `strip_names` with a .tflite.
        ConfigError: a name in the recipe's `float_layers` that no layer of the model has.
        PreflightError: a .tflite with dynamic input dims for a target that needs static shapes.
    """
    from exporter.input_shapes import for_export
    from exporter.model_io import load_model
    from exporter.sparse.decision import check as sparse_check
    from exporter.stages.float_layers import check_request as float_check

    if loaded is None:
        loaded = load_model(request.sources.model, trust_model=request.sources.trust_model)
    is_tflite, policy = loaded.model is None, request.policy
    if is_tflite and (request.quantize or request.recipe.quantize):
        raise UsageError(f"a .tflite model is bundled as it is; {option('quantize')} applies only to Keras models")
    if is_tflite and request.stages:
        raise UsageError("compression stages need a Keras model; a .tflite is bundled as it is")
    if is_tflite and request.recipe.strip_names:
        raise UsageError(f"a .tflite model is bundled as it is; {option('strip_names')} applies only to Keras models")
    mode = None if is_tflite else policy.resolve(request.quantize or request.recipe.quantize)
    sparse_check(request, mode, is_tflite)            # sparse encoding `on` where it cannot apply (exporter/sparse/)
    float_check(request, mode, loaded.model)          # float_layers where they cannot apply (stages/float_layers.py)
    previous = []
    for stage in request.stages:
        stage.check_profile(request.profile, mode, previous)
        policy.check_stage(stage, request.profile.name)
        previous.append(stage.name)
    signature = _io_signature(loaded, request.sources.label_output)
    _check_stages(request.stages, signature)
    shapes = for_export(loaded, request.sources.input_shapes, request.target, request.profile)
    first = signature.inputs[0]
    shape = next(iter(shapes.values())) if shapes else first.shape     # data are checked against the shape used
    return Inputs(loaded=loaded, mode=mode, shape=shape, dtype=first.dtype, classes=signature.classes,
                  input_shapes=shapes, signature=signature)


def read_data(sources: Sources, inputs: int = 1) -> tuple:
    """(calib, eval, train) and the label names, read from what was given (not yet checked).

    Each data set is a Dataset, or for a folder a scanned ImageFolder (exporter/image_folder.py)
    that `check_data` decodes for the model's input size. `inputs`: how many inputs the model has
    (what arrays given in Python mean: exporter/input_arrays.py `from_value`).
    """
    calib = _dataset(sources.calib, "calibration", inputs)
    eval_ = _dataset(sources.eval, "evaluation", inputs)
    names = _label_names(sources.labels)          # read in this order: the first problem is the one named
    return calib, eval_, _dataset(sources.train, "training", inputs), names


def _data_shapes(inputs: Inputs) -> list:
    """Each input's shape the data must fit: the shape a model with dynamic dims runs at, else its own."""
    from exporter.input_shapes import signatures

    shapes = inputs.input_shapes or {}
    names = [name for name, _ in signatures(inputs.loaded)] if shapes else []
    return [shapes.get(n, p.shape) for n, p in zip(names, inputs.signature.inputs)] if shapes else \
        [p.shape for p in inputs.signature.inputs]


def fixed_shapes(inputs: Inputs) -> tuple | None:
    """For a Keras model with several inputs and dynamic dims: each input's static shape to convert at; else None."""
    if not inputs.input_shapes or len(inputs.signature.inputs) == 1:
        return None
    return tuple(tuple(1 if d is None else int(d) for d in shape) for shape in _data_shapes(inputs))


def _labels_fit(ds, signature) -> None:
    """Refuse labels outside the label output's classes (naming the output when the model has several)."""
    from exporter.data import check_labels

    if ds.y is None or len(signature.outputs) == 1:
        return check_labels(ds, int(signature.classes))
    low, high, classes = int(ds.y.min()), int(ds.y.max()), int(signature.classes)
    if low < 0 or high >= classes:
        raise DataError(f"{ds.origin}: labels range {low}..{high}, but the label output {signature.label_name!r} "
                        f"has {classes} classes (0..{classes - 1}); {option('label_output')} names the output "
                        "the labels are for")


def check_data(request: ExportRequest, inputs: Inputs, data: tuple | None = None) -> Inputs:
    """Load the data and labels and check each against the model's input and classes.

    Args:
        request: the resolved export (its sources name the data; its stages and policy say what is needed).
        inputs: what `load` returned.
        data: what `read_data(request.sources)` returned (an export to several targets reads the
            data once); None reads it.

    Returns:
        `inputs` with calib, eval, train and labels filled in.

    Raises:
        DataError: image folders that cannot be read (see exporter/image_folder.py), or whose
            class folders differ from each other, the labels or the model's classes; data of the
            wrong shape, dtype or values, labels out of range, a label list of
            the wrong length, no labelled training data for a stage that fine-tunes, or too few
            calibration samples for int8.
        UnsafeDataError: data that must not be read (object arrays, FIFOs).
    """
    from exporter.image_folder import folder_datasets
    from exporter.input_arrays import resolve

    signature = inputs.signature
    data = read_data(request.sources, len(signature.inputs)) if data is None else data
    calib, eval_, train, names = folder_datasets(data, shape=inputs.shape, classes=inputs.classes,
                                                 normalize=request.sources.normalize)
    stages, policy, classes = request.stages, request.policy, inputs.classes
    unlabelled = train is None or (train.y is None and not train.raw_labels)
    if any(s.needs_training for s in stages) and unlabelled:
        raise DataError(f"stage {next(s.name for s in stages if s.needs_training)!r} fine-tunes the model: "
                        f"give labelled training data ({option('train', 'train.npz')}) with arrays x and y, or a "
                        "folder of images with one sub-folder per class")
    shapes = _data_shapes(inputs)
    if train is not None:
        train = resolve(train, signature, "training", shapes)
        _labels_fit(train, signature)
    if calib is not None:
        calib = resolve(calib, signature, "calibration", shapes)
    if eval_ is not None:
        eval_ = resolve(eval_, signature, "evaluation", shapes)
        _labels_fit(eval_, signature)
    if names is not None and classes and len(names) != classes:
        raise DataError(f"labels file has {len(names)} names but the model has {classes} classes")
    if inputs.mode in FULL_INTEGER and (calib is None or len(calib) < policy.min_calibration_samples):
        got = 0 if calib is None else len(calib)
        others = [mode for mode in policy.allowed if mode not in FULL_INTEGER]
        instead = f", or choose another mode with {option('quantize')} ({', '.join(others)})" if others else ""
        raise DataError(f"{inputs.mode} needs at least {policy.min_calibration_samples} calibration samples but got "
                        f"{got}: give them with {option('calib')}{instead}")
    return dataclasses.replace(inputs, calib=calib, eval=eval_, train=train, labels=names)
