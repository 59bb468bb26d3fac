"""The named steps of one export: resolve → load → check data → prove bridge → build → assess → package.

`exporter.api.export` runs them in this order. Each step takes the small dataclasses the steps
before it returned and returns its own, so a step can be read (and tested) alone:

    ExportArgs ─resolve─► ExportRequest ─load─► Inputs ─check_data─► Inputs (with data)
      ─prove_bridge─► Inputs (a Keras 3 model: its tf_keras translation proved on the data)
      ─build─► Built ─describe─► Built (TFLite metadata, for android and linux: exporter/tflite_metadata/step.py)
      ─assess─► Assessment ─make_report─► Report ─package─► the bundle

`resolve` and its dataclasses are in exporter/request.py, `load` and `check_data` in
exporter/inputs.py; this module has the rest and gathers all of them. Every problem a user can
fix (bad arguments, data that does not fit the model, a mode the profile refuses) is found
before `build` starts converting. Nothing heavy is imported at module level.

Example:
    >>> request = resolve(ExportArgs(sources=Sources(demo=True), output=Output(out="build/android")))
    >>> inputs = check_data(request, load(request))
    >>> built = build(request, inputs)
    >>> assessment = assess(request, inputs, built)
    >>> report = make_report(request, inputs, built, assessment)
    >>> report.passed, built.mode, [c.name for c in assessment.checks]
    (True, 'int8', ['model_size', 'ram', 'latency', 'accuracy_drop', 'agreement'])
    >>> package(request, inputs, built, assessment, report).name
    'android'
"""
from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from exporter import __version__
from exporter import progress as progress_mod
from exporter.errors import UsageError
from exporter.inputs import Inputs, check_data, load
from exporter.option_names import option
from exporter.request import ExportArgs, ExportRequest, Output, Sources, resolve

if TYPE_CHECKING:
    from exporter.analysis.graph import Graph
    from exporter.checks import Check
    from exporter.report import Report
    from targets.base import Artifacts, Measured

__all__ = ["Assessment", "Built", "ExportArgs", "ExportRequest", "Inputs", "Output", "Sources", "assess", "build",
           "check_data", "library_versions", "load", "make_report", "package", "prove_bridge", "resolve",
           "skipped_note"]

_LIBRARIES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "numpy")


@dataclass(frozen=True)
class Built:
    """The .tflite to measure and bundle, its graph and mode, per-stage records and notes."""

    tflite: bytes
    graph: Graph
    mode: str
    records: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    converted_from: object = None    # the last stage's Keras model (None: the input model was converted)
    input_shapes: dict | None = None  # input name -> the shape LiteRT resizes to (dynamic dims); None: as stored
    metadata: dict | None = None      # what the model's TFLite metadata holds (exporter/tflite_metadata/); None: none
    config: object = None             # the ConvertConfig the model was converted with (None: a given .tflite)
    sparse: object = None             # the sparse-encoding step's SparseEncoding (exporter/sparse/step.py); None: none


@dataclass(frozen=True)
class Assessment:
    """What the target found: its pre-flight notes, the measured figures and the checks."""

    artifacts: Artifacts
    measured: Measured
    checks: list[Check]
    notes: list[str] = field(default_factory=list)


def library_versions() -> dict:
    """Versions of edgex, Python and the libraries that shape a bundle (None for one not installed)."""
    out = {"edgex": __version__, "python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _detect_mode(graph) -> str:
    """The conversion mode a given .tflite was made with, read from its ops and constants."""
    computed = {op.compute_dtype for op in graph.ops if op.macs}
    if computed <= {"int8", "uint8"} or computed == {"int16"}:
        return "int16x8" if computed == {"int16"} else "int8"
    if any(op.compute_dtype == "hybrid" for op in graph.ops):
        return "dynamic"
    if any(t.dtype == "float16" and t.is_constant for t in graph.tensors):
        return "float16"
    return "float32"


def _pass_through(request: ExportRequest, inputs: Inputs) -> Built:
    """A given .tflite, bundled as it is once its mode is one the profile allows."""
    from exporter.analysis.graph import Graph
    from exporter.input_shapes import graph_at, notes

    tflite = inputs.loaded.tflite_bytes
    graph = graph_at(tflite, inputs.input_shapes, Graph.from_bytes(tflite))
    mode = _detect_mode(graph)
    policy = request.policy
    if mode not in policy.allowed:
        raise UsageError(f"the given .tflite is {mode}, which profile {request.profile.name} does not allow "
                         f"(allowed: {', '.join(policy.allowed)})")
    return Built(tflite, graph, mode, notes=[f"input was a .tflite ({mode}); it is measured and bundled as it is",
                                             *notes(graph, request.sources.input_shapes is not None)],
                 input_shapes=inputs.input_shapes)


def _run_stages(request: ExportRequest, inputs: Inputs, config, calib_x) -> tuple:
    """Run the recipe's stages, converting after each; (last Keras model, its .tflite, stage records, notes)."""
    from exporter.pipeline import run_stages
    from exporter.stages.base import StageContext

    recipe = request.recipe
    progress_mod.status(f"measuring the original model (converted to TFLite, {config.mode})")
    ctx = StageContext(train=inputs.train, eval=inputs.eval, training=recipe.training, profile=request.profile,
                       mode=inputs.mode, skip_layers=recipe.skip_layers, teacher=inputs.loaded.model,
                       io=inputs.signature)
    final, tflite, records = run_stages(inputs.loaded.model, request.stages, ctx, config, calib_x)
    notes = [skipped_note(s["stage"], s["skipped"]) for s in records if s["skipped"]]
    notes += [n for s in records for n in s["notes"] if n.startswith(f"{s['stage']}: ")]  # console
    return final, tflite, records, notes


def skipped_note(stage: str, skipped: list[dict], *, shown: int = 3) -> str:
    """One line for the layers a stage left alone; the report lists every one of them.

    Args:
        stage: the stage's name.
        skipped: its `StageResult.skipped` entries ({"layer", "class", "reason"}).
        shown: how many layers are named (a few) or layer classes counted (many) before "…".

    Returns:
        The note, e.g. "prune: skipped 69 layers (BatchNormalization ×35, …); --skip-layer to choose"
        (from the `edgex` command; called from Python it names the recipe's skip_layers instead).

    Example:
        >>> skipped_note("prune", [{"layer": f"bn{i}", "class": "BatchNormalization"} for i in range(5)])
        "prune: skipped 5 layers (BatchNormalization ×5); the recipe's skip_layers to choose"
        >>> from exporter.option_names import calling
        >>> with calling("cli"):
        ...     skipped_note("prune", [{"layer": "conv2d", "class": "Conv2D", "reason": "RGB input"}])
        'prune: skipped 1 layer (conv2d: Conv2D, RGB input); --skip-layer to choose'
    """
    from collections import Counter

    if len(skipped) <= 1:
        parts = [f"{k['layer']}: {k['class']}" + (f", {k['reason']}" if k.get("reason") else "") for k in skipped]
    elif len(skipped) <= shown:
        parts = [f"{k['layer']}: {k['class']}" for k in skipped]
    else:
        counts = Counter(k["class"] for k in skipped).most_common()
        parts = [f"{name} ×{n}" for name, n in counts[:shown]] + (["…"] if len(counts) > shown else [])
    noun = "layer" if len(skipped) == 1 else "layers"
    return f"{stage}: skipped {len(skipped)} {noun} ({', '.join(parts)}); {option('skip_layers')} to choose"


def prove_bridge(inputs: Inputs) -> Inputs:
    """A Keras 3 model's proof: it and its tf_keras translation run on the same samples (exporter/keras3/proof.py).

    Args:
        inputs: the loaded model and its checked data (the eval samples are used, else the calibration ones).

    Returns:
        `inputs` with `bridge_proof` (the `bridge_max_abs_error` figure) for a bridged model, else as given.

    Raises:
        ConversionError: the outputs differ by more than 1e-4; names the first layer whose outputs differ.
        UsageError: a Keras 3 model with several inputs or outputs (the proof takes one of each).
    """
    bridge = inputs.loaded.bridge
    if bridge is None:
        return inputs
    from exporter.keras3.proof import prove

    if len(inputs.loaded.model.inputs) > 1 or len(inputs.loaded.model.outputs) > 1:
        raise UsageError("the Keras 3 bridge proves models with one input and one output only; this one has "
                         f"{len(inputs.loaded.model.inputs)} inputs and {len(inputs.loaded.model.outputs)} outputs: "
                         "save it with tf_keras (`import tf_keras as keras`), or convert it to .tflite and pass that")
    data, role = (inputs.eval, "eval") if inputs.eval is not None else (inputs.calib, "calibration")
    progress_mod.status("proving the Keras 3 bridge: both models on the same samples")
    figure = prove(bridge, inputs.loaded.model, None if data is None else data.x, role,
                   str(inputs.loaded.path or "<in-memory model>"))
    return replace(inputs, bridge_proof=figure)


def build(request: ExportRequest, inputs: Inputs) -> Built:
    """Make the .tflite: a given .tflite as it is, a plain conversion, or the recipe's stages.

    Args:
        request: the resolved export.
        inputs: the loaded model and its checked data.

    Returns:
        Built: the .tflite bytes, its graph and mode, the stage records and notes.

    Raises:
        UsageError: a given .tflite whose mode the profile does not allow.
        ConversionError: conversion or a compression stage failed.
    """
    if inputs.is_tflite:
        return _pass_through(request, inputs)
    from exporter.analysis.graph import Graph
    from exporter.input_shapes import converted_notes
    from exporter.inputs import fixed_shapes
    from exporter.stages.convert import ConvertConfig, convert
    from exporter.stages.float_layers import float_notes

    policy, mode, sig = request.policy, inputs.mode, inputs.signature      # names: the signature's (io_names.py)
    config = ConvertConfig(mode=mode, io_dtype=policy.io_dtype(mode),
                           min_calibration_samples=policy.min_calibration_samples,
                           input_shape=inputs.shape if inputs.input_shapes else None,   # dynamic dims fixed
                           input_shapes=fixed_shapes(inputs), input_names=sig.input_names,
                           output_names=sig.output_names, float_layers=request.recipe.float_layers)
    calib_x = None if inputs.calib is None else inputs.calib.x
    records, notes, converted = [], [], None
    if request.stages:
        converted, tflite, records, notes = _run_stages(request, inputs, config, calib_x)
    else:
        progress_mod.status(f"converting to TFLite ({mode}) for {request.profile.name}")
        tflite = convert(inputs.loaded.model, config, calib=calib_x)
    notes += converted_notes(inputs.loaded, inputs.input_shapes) + float_notes(tflite, config)
    return Built(tflite, Graph.from_bytes(tflite), mode, records, notes, converted, config=config)


def assess(request: ExportRequest, inputs: Inputs, built: Built) -> Assessment:
    """Pre-flight the graph on the target, measure it, and check the figures against the limits.

    Args:
        request: the resolved export.
        inputs: the loaded model and its checked data.
        built: the .tflite to assess.

    Returns:
        Assessment: pre-flight notes, the target's Measured and the checks (limits, then the target's own).

    Raises:
        PreflightError: ops, tensors or I/O the device cannot run.
    """
    from exporter.checks import run_checks
    from exporter.data_summary import ROLES, data_ranges, preprocessing_record, with_range_hints
    from targets.base import Artifacts

    target, profile = request.target, request.profile
    notes = target.preflight(built.graph, profile, built.mode, tflite=built.tflite)
    progress_mod.status("measuring with LiteRT on this machine")
    artifacts = Artifacts(tflite=built.tflite, graph=built.graph, profile=profile, mode=built.mode, sparse=built.sparse,
                          keras_model=inputs.loaded.model, eval_ds=inputs.eval, calib=inputs.calib, labels=inputs.labels,
                          source=str(inputs.loaded.path) if inputs.loaded.path else None, options=request.options,
                          converted_from=built.converted_from, input_shapes=built.input_shapes, io=inputs.signature,
                          preprocessing=preprocessing_record(dict(zip(ROLES, (inputs.calib, inputs.eval, inputs.train)))))
    measured = target.measure(artifacts)
    no_reference = ("no original model to compare with (the input is a .tflite)" if inputs.is_tflite
                    else f"no evaluation data ({option('eval')})" if inputs.eval is None else None)
    skipped = {"accuracy_drop": "no original model to compare with" if inputs.is_tflite and inputs.eval is not None
               else f"no evaluation data ({option('eval')})"}
    if no_reference:
        skipped |= {"agreement": no_reference, "fidelity": no_reference}
    elif "top1_agreement" not in measured.figures:
        skipped["agreement"] = "the model's output is not one score per class, so it has no top-1"
    checks = run_checks(profile.limits, measured.figures, skipped) + target.extra_checks(artifacts, measured)
    checks = with_range_hints(checks, data_ranges(inputs.calib, inputs.eval, inputs.train))   # the likely cause
    return Assessment(artifacts, measured, checks, list(notes))


def make_report(request: ExportRequest, inputs: Inputs, built: Built, assessment: Assessment) -> Report:
    """The Report of the export: figures, checks, graph, notes, stages, the resolved recipe, versions.

    Args:
        request: the resolved export (target, profile, recipe and stages).
        inputs: the loaded model (its path names the report's model).
        built: the .tflite, its graph, mode, stage records and notes.
        assessment: the measured figures, checks and pre-flight notes.

    Returns:
        The Report (`report.bundle` is set by `package`).
    """
    from exporter.data_summary import summarize
    from exporter.io_names import io_record
    from exporter.report import Report

    profile, mode = request.profile, built.mode
    data = summarize(inputs.calib, inputs.eval, inputs.train)      # ranges, warnings, image preprocessing
    io_dtype = built.graph.input_details()[0].dtype if inputs.is_tflite else request.policy.io_dtype(mode)
    recipe = {**request.recipe.to_dict(), "stages": [s.to_spec() for s in request.stages], "quantize": mode,
              **({"sparse_encoding": built.sparse.setting} if built.sparse else {})}
    bridge, proof = inputs.loaded.bridge, inputs.bridge_proof        # a Keras 3 model (exporter/keras3/)
    figures = {**assessment.measured.figures, **({proof.name: proof} if proof else {})}
    bridged = None if bridge is None else {**bridge.record(), "max_abs_error": proof.value if proof else None}
    return Report(
        model=str(inputs.loaded.path or "<in-memory model>"), target=request.target.name, profile=profile.name,
        device=profile.device, mode=mode, io_dtype=io_dtype, measurements=figures, bridge=bridged,
        checks=assessment.checks, graph=built.graph.to_dict(),
        io=io_record(built.tflite, built.graph, inputs.signature),
        notes=([bridge.note()] if bridge else []) + data.notes + built.notes + assessment.notes,
        data=[r.to_dict() for r in data.ranges], warnings=data.warnings, preprocessing=data.preprocessing,
        versions=library_versions(), stages=built.records, recipe=recipe, metadata=built.metadata,
        compression=assessment.measured.weight_compression(), sparse_encoding=built.sparse and built.sparse.to_dict(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def package(request: ExportRequest, inputs: Inputs, built: Built, assessment: Assessment, report: Report) -> Path:
    """Write the bundle at `request.output.out`: model, reports, labels, target and agent files, manifest.

    Args:
        request: the resolved export; its `output.out` must not be None.
        inputs: the loaded model and its checked data (labels, eval samples for the agent).
        built: the .tflite to bundle.
        assessment: what the target measured (its `package` receives it).
        report: the export's Report; its `bundle` is set to the output path.

    Returns:
        The bundle path.

    Raises:
        UsageError: the bundle cannot be written (a full or read-only disk); an earlier one is untouched.
    """
    from exporter.bundle import write_bundle
    from exporter.bundle_samples import samples_note
    from exporter.hil.agent_files import bundle_agent_files
    from exporter.manifest import manifest_for
    from exporter.report_html import render_html

    output = request.output
    target_files = request.target.package(assessment.artifacts, assessment.measured)
    agent_files, report.bundle_samples = bundle_agent_files(inputs.eval, inputs.loaded.model, io=inputs.signature,
                                                            count=output.bundle_samples)
    report.notes += [n for n in [samples_note(report.bundle_samples)] if n]
    extra = {**target_files, **agent_files}
    report.bundle = str(Path(output.out))
    files = {"model.tflite": built.tflite, "report.md": report.to_markdown().encode("utf-8"),
             "report.html": render_html(report).encode("utf-8"), **extra}
    if inputs.labels is not None:
        files["labels.txt"] = ("\n".join(inputs.labels) + "\n").encode("utf-8")
    manifest = manifest_for(report, request.profile, output.provenance)
    progress_mod.status(f"writing bundle {output.out}")
    return write_bundle(Path(output.out), files, manifest, make_zip=output.make_zip, force=output.force)
