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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.errors import DataError, UsageError
from exporter.option_names import option

if TYPE_CHECKING:
    from exporter.data import Dataset
    from exporter.model_io import LoadedModel
    from exporter.request import ExportRequest, Sources


@dataclass(frozen=True)
class Inputs:
    """The loaded model with its I/O signature and conversion mode, and (after `check_data`) its data.

    Attributes:
        loaded: the LoadedModel (a tf_keras model, or the bytes of a given .tflite).
        mode: the conversion mode; None for a given .tflite (`build` reads it from the graph).
        shape, dtype, classes: the model's input shape and dtype and its number of classes.
        calib, eval, train: checked Datasets, or None when not given.
        labels: class names, or None when not given.
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

    @property
    def is_tflite(self) -> bool:
        """True when the model was given as a .tflite (bundled as it is)."""
        return self.loaded.model is None


def _dataset(value, role):
    from exporter.data import Dataset, dataset_from_arrays, load_dataset

    if value is None or isinstance(value, Dataset):
        return value
    if isinstance(value, (str, Path)):
        return load_dataset(value, role=role)
    if isinstance(value, tuple) and len(value) == 2:
        return dataset_from_arrays(*value, role=role)
    return dataset_from_arrays(value, role=role)


def _label_names(labels):
    from exporter.data import load_labels

    if labels is None or isinstance(labels, list):
        return labels
    return load_labels(labels)


def _io_signature(loaded):
    """(input shape, input dtype, number of classes) of a loaded model."""
    if loaded.model is None:
        from exporter.analysis.graph import Graph

        graph = Graph.from_bytes(loaded.tflite_bytes)
        inp, out = graph.input_details(), graph.output_details()
        if len(inp) != 1 or len(out) != 1:
            raise UsageError(f"the model has {len(inp)} inputs and {len(out)} outputs; edgex supports one of each")
        return inp[0].shape, "float32", out[0].shape[-1]
    model = loaded.model
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UsageError(f"the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                         "edgex supports one of each")
    shape = tuple(model.inputs[0].shape)
    return shape, model.inputs[0].dtype.name, model.outputs[0].shape[-1]


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
            profile or mode cannot take, or a model with more than one input or output.
    """
    from exporter.model_io import load_model

    if loaded is None:
        loaded = load_model(request.sources.model, trust_model=request.sources.trust_model)
    is_tflite, policy = loaded.model is None, request.policy
    if is_tflite and (request.quantize or request.recipe.quantize):
        raise UsageError(f"a .tflite model is bundled as it is; {option('quantize')} applies only to Keras models")
    if is_tflite and request.stages:
        raise UsageError("compression stages need a Keras model; a .tflite is bundled as it is")
    mode = None if is_tflite else policy.resolve(request.quantize or request.recipe.quantize)
    previous = []
    for stage in request.stages:
        stage.check_profile(request.profile, mode, previous)
        policy.check_stage(stage, request.profile.name)
        previous.append(stage.name)
    shape, dtype, classes = _io_signature(loaded)
    return Inputs(loaded=loaded, mode=mode, shape=shape, dtype=dtype, classes=classes)


def read_data(sources: Sources) -> tuple:
    """(calib, eval, train) Datasets and the label names, read from what was given (not yet checked)."""
    calib = _dataset(sources.calib, "calibration")
    eval_ = _dataset(sources.eval, "evaluation")
    names = _label_names(sources.labels)          # read in this order: the first problem is the one named
    return calib, eval_, _dataset(sources.train, "training"), names


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
        DataError: data of the wrong shape, dtype or values, labels out of range, a label list of
            the wrong length, no labelled training data for a stage that fine-tunes, or too few
            calibration samples for int8.
        UnsafeDataError: data that must not be read (object arrays, FIFOs).
    """
    from exporter.data import check_input, check_labels

    calib, eval_, train, names = read_data(request.sources) if data is None else data
    stages, policy, classes = request.stages, request.policy, inputs.classes
    if any(s.needs_training for s in stages) and (train is None or train.y is None):
        raise DataError(f"stage {next(s.name for s in stages if s.needs_training)!r} fine-tunes the model: "
                        f"give labelled training data ({option('train', 'train.npz')}) with arrays x and y")
    signature = {"shape": inputs.shape, "dtype": inputs.dtype}
    if train is not None:
        train = check_input(train, **signature, role="training")
        check_labels(train, int(classes))
    if calib is not None:
        calib = check_input(calib, **signature, role="calibration")
    if eval_ is not None:
        eval_ = check_input(eval_, **signature, role="evaluation")
        if eval_.y is not None:
            check_labels(eval_, int(classes))
    if names is not None and classes and len(names) != classes:
        raise DataError(f"labels file has {len(names)} names but the model has {classes} classes")
    if inputs.mode == "int8" and (calib is None or len(calib) < policy.min_calibration_samples):
        got = 0 if calib is None else len(calib)
        others = [mode for mode in policy.allowed if mode != "int8"]
        instead = f", or choose another mode with {option('quantize')} ({', '.join(others)})" if others else ""
        raise DataError(f"int8 needs at least {policy.min_calibration_samples} calibration samples but got {got}: "
                        f"give them with {option('calib')}{instead}")
    return dataclasses.replace(inputs, calib=calib, eval=eval_, train=train, labels=names)
