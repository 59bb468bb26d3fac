"""The export step that puts TFLite metadata into the model, between `build` and `assess`.

`describe(request, inputs, built)` returns `built` with the model that carries metadata (for a
target whose `tflite_metadata` is set: the LiteRT CPU targets, targets/cpu.py) and `built.metadata`,
the record that goes into the manifest and report; other targets get `built` as it is. The model
with metadata is what is measured and bundled, so `model_size` counts it (and a sparse model's dense
alternative, exporter/sparse/step.py, gets the same metadata, for `model_size_dense`). An export to several
targets shares one conversion and runs this step per target (exporter/multi_target.py).

A given .tflite that already carries TFLITE_METADATA keeps it, byte for byte (its own author knew
better); giving metadata options for it is refused. One whose metadata cannot be read gets edgex's.

Example:
    >>> from exporter import steps
    >>> request = steps.resolve(steps.ExportArgs(sources=steps.Sources(demo=True)))
    >>> inputs = steps.check_data(request, steps.load(request))
    >>> built = describe(request, inputs, steps.build(request, inputs))
    >>> built.metadata["name"], built.metadata["inputs"][0]["normalization"]["std"], built.metadata["associated_files"]
    ('edgex demo', [255.0], ['labels.txt'])
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from exporter.errors import ModelFileError, UsageError
from exporter.option_names import option
from exporter.tflite_metadata.info import DEMO_NAME

_ROLES = (("calibration", "calib"), ("evaluation", "eval"), ("training", "train"))


def _name(request, inputs) -> str:
    """The default model name: "edgex demo", the model file's (or SavedModel folder's) stem, or the Keras name."""
    if request.sources.demo:
        return DEMO_NAME
    if inputs.loaded.path:
        return Path(inputs.loaded.path).stem or "model"
    return str(getattr(inputs.loaded.model, "name", "") or "model")


def _description(request, built, name: str) -> str:
    profile = request.profile
    io_dtype = built.graph.tensors[built.graph.inputs[0]].dtype if built.graph.inputs else built.mode
    return (f"{name}, exported by edgex for target {request.target.name} (profile {profile.name}: {profile.device}); "
            f"{built.mode} conversion, {io_dtype} inputs.")


def _normalizations(request, inputs, io: dict) -> dict:
    """input name -> InputNormalization, where edgex knows how the input was made from pixels."""
    from exporter.data_summary import preprocessing_record
    from exporter.normalization import MODES
    from exporter.tflite_metadata.content import UNIT_GRAY, InputNormalization

    if len(io["inputs"]) != 1:
        return {}
    port = io["inputs"][0]
    pre = preprocessing_record({role: getattr(inputs, attr) for role, attr in _ROLES})
    if pre is not None:
        n = pre["normalize"]
        roles = ", ".join(a["role"] for a in pre["applies_to"])
        return {port["name"]: InputNormalization(tuple(n["mean"]), tuple(n["std"]),
                                                 f"image folders ({roles} data), {option('normalize', n['mode'])}: "
                                                 f"{MODES[n['mode']].reads}")}
    if request.sources.demo and port["shape"][-1:] == [1]:
        return {port["name"]: UNIT_GRAY}
    return {}


def _ranges(inputs) -> dict:
    """input name -> (min, max, which data) over the first data set given: calibration, evaluation, training."""
    for role, attr in _ROLES:
        ds = getattr(inputs, attr)
        if ds is not None:
            return {name: (float(a.min()), float(a.max()), f"the {role} data ({ds.origin})")
                    for name, a in zip(inputs.signature.input_names, ds.inputs) if a.size}
    return {}


def _kept(request, built) -> tuple:
    """For a given .tflite: (`built` recording its readable TFLITE_METADATA as kept, or None; a note, or None)."""
    from exporter.tflite_metadata.content import note, record
    from exporter.tflite_metadata.model_file import read

    try:
        existing = read(built.tflite)
    except ModelFileError as exc:
        return None, f"the given .tflite's TFLite metadata is not readable ({exc}): edgex wrote its own"
    if existing is None:
        return None, None
    given = request.model_info.given()
    if given:
        raise UsageError(f"the given .tflite already carries TFLite metadata (name {existing['metadata'].get('name')!r}), "
                         f"which edgex keeps as it is: leave out {', '.join(option(o) for o in given)}")
    rec = record(existing["metadata"], existing["associated_files"], source="the input .tflite")
    return dataclasses.replace(built, metadata=rec, notes=[*built.notes, note(rec)]), None


def describe(request, inputs, built):
    """`built` with TFLite metadata in its model, when the target takes it (see the module docstring).

    Args:
        request: the resolved export (target, profile, model info from the export options).
        inputs: the loaded model and its checked data (labels, image preprocessing, value ranges).
        built: the converted model.

    Returns:
        A new Built whose `tflite` carries the metadata and the associated files and whose `metadata` is the
        record for the manifest; `built` itself for a target that writes no metadata.

    Raises:
        UsageError: metadata options for a given .tflite that carries its own.
        DataError: labels whose count is not the label output's number of scores.
        ConversionError: a model keeping buffers outside its flatbuffer (over 2 GB).
        ModelFileError: a given .tflite the schema's object API cannot unpack.
    """
    if not request.target.tflite_metadata:
        return built
    from exporter import progress
    from exporter.io_names import io_record
    from exporter.tflite_metadata.content import Facts, model_metadata, note, record
    from exporter.tflite_metadata.flatbuf import pack
    from exporter.tflite_metadata.model_file import insert

    kept, replaced = _kept(request, built) if inputs.is_tflite else (None, None)
    if kept is not None:
        return kept
    progress.status("writing TFLite metadata into the model")
    io = io_record(built.tflite, built.graph, inputs.signature)
    name = request.model_info.name or _name(request, inputs)
    facts = Facts(info=request.model_info.resolved(name, _description(request, built, name)), io=io,
                  graph=built.graph, labels=inputs.labels, normalization=_normalizations(request, inputs, io),
                  ranges=_ranges(inputs))
    meta, files = model_metadata(facts)
    rec = record(meta, files, facts.normalization)
    sparse = built.sparse       # its model without sparse encoding gets the same metadata: sizes compare like with like
    if sparse is not None and sparse.dense_tflite is not None:
        sparse = dataclasses.replace(sparse, dense_tflite=insert(sparse.dense_tflite, pack(meta), files))
    return dataclasses.replace(built, tflite=insert(built.tflite, pack(meta), files), metadata=rec, sparse=sparse,
                               notes=[*built.notes, *([replaced] if replaced else []), note(rec)])
