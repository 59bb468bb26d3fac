"""One export to several targets: convert once per distinct conversion, check and bundle per target.

`exporter.export(..., targets=[...])` and `edgex export --target A --target B` run the steps of
exporter/steps.py with these rules:

- every target's request is resolved (its output checked, its profile, policy and mode settled)
  and the data checked against each, before any conversion; the model and data are read once;
- targets that share the recipe, the conversion mode and the I/O dtype share one `build` (one
  conversion). With compression stages the profile is part of the key too: stage records carry a
  latency estimated with the profile's cost model. A given .tflite is checked per target;
- a target writing TFLite metadata (android, linux) gets its own copy of the shared model with it;
- sparse encoding (exporter/sparse/step.py) runs per target after the shared `build`: only android and
  linux may get a sparse model (`--sparse-encoding on` with any other target among them exits 2);
- every target is assessed (pre-flight, measure, checks) before any bundle is written, so an error
  stops the run with its exit code and nothing written;
- the bundles go to `<out>/<target name>`.

Example:
    >>> reports = export_targets(ExportArgs(sources=Sources(demo=True), output=Output(out="build")),
    ...                          ["android", "linux"])
    >>> [(r.target, r.mode, r.io_dtype, r.bundle) for r in reports]
    [('android', 'int8', 'int8', 'build/android'), ('linux', 'int8', 'int8', 'build/linux')]
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from exporter import progress as progress_mod
from exporter import steps
from exporter.errors import UsageError
from exporter.inputs import input_count, read_data
from exporter.option_names import option
from exporter.request import ExportArgs, Output, Sources

__all__ = ["ExportArgs", "Output", "Sources", "build_key", "export_targets", "target_args"]


def target_args(args: ExportArgs, targets: list[str]) -> list[ExportArgs]:
    """One ExportArgs per target: bundle at `<out>/<target>`, target options given to the targets that take them.

    Args:
        args: the export's arguments; `args.target` is ignored, `args.profile` must be None.
        targets: distinct target names.

    Returns:
        The per-target arguments, in the order of `targets`.

    Raises:
        UsageError: no target, a target named twice, a profile given (it belongs to one target), or
            target options or metadata options (`model_info`: given to the targets writing TFLite metadata)
            that none of the targets takes.
    """
    from targets.base import get_target

    if not targets:
        raise UsageError("no target given")
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise UsageError(f"target {', '.join(twice)} given more than once; each target gets one bundle")
    if args.profile is not None:
        raise UsageError(f"{option('profile')} names one device; with several targets each uses its default "
                         "profile (export to one target to choose its profile)")
    options = dict(args.target_options or {})
    takes = {t: set(options) <= set(get_target(t).Options.model_fields) for t in targets}
    if options and not any(takes.values()):
        raise UsageError(f"target options {', '.join(sorted(options))}: none of the targets "
                         f"{', '.join(targets)} takes them")
    if args.model_info is not None and not any(get_target(t).tflite_metadata for t in targets):
        from exporter.tflite_metadata.info import for_target

        for_target(args.model_info, get_target(targets[0]))      # refuses metadata options none of them takes
    out = args.output.out
    return [dataclasses.replace(
        args, target=t, target_options=options if options and takes[t] else None,
        model_info=args.model_info if get_target(t).tflite_metadata else None,
        output=dataclasses.replace(args.output, out=None if out is None else Path(out) / t)) for t in targets]


def build_key(request: steps.ExportRequest, inputs: steps.Inputs) -> tuple:
    """What decides the .tflite: (recipe, mode, I/O dtype); also the profile with stages, the target for a .tflite."""
    if inputs.is_tflite:
        return ("tflite", request.target.name)
    recipe = json.dumps({**request.recipe.to_dict(), "quantize": None}, sort_keys=True)
    per_profile = request.profile.name if request.stages else None
    return (recipe, inputs.mode, request.policy.io_dtype(inputs.mode), per_profile)


def export_targets(args: ExportArgs, targets: list[str]) -> list:
    """Export to each of `targets`, converting once per distinct build key.

    Args:
        args: the export's arguments (`args.output.out` is the folder the bundles go into; None writes none).
        targets: distinct registered target names.

    Returns:
        The Reports, in the order of `targets` (`report.passed` False when a limit is broken).

    Raises:
        ExporterError: the first error of any target, before any bundle is written.
    """
    from exporter.model_io import load_model
    from exporter.sparse.step import encode
    from exporter.tensor_names import step as strip_names
    from exporter.tflite_metadata.step import describe

    requests = [steps.resolve(a) for a in target_args(args, list(targets))]   # every output checked first
    sources = requests[0].sources
    loaded = load_model(sources.model, trust_model=sources.trust_model)
    data = read_data(sources, input_count(loaded))
    inputs = [steps.check_data(r, steps.load(r, loaded), data) for r in requests]
    inputs = [steps.prove_bridge(i) for i in inputs]       # a Keras 3 model: proved once (same samples), after every check
    built: dict[tuple, steps.Built] = {}
    for request, inp in zip(requests, inputs):
        key = build_key(request, inp)
        if key not in built:
            built[key] = steps.build(request, inp)
        elif not inp.is_tflite:
            progress_mod.status(f"{request.target.name}: sharing the {inp.mode} conversion made for an earlier target")
    parts = []
    for request, inp in zip(requests, inputs):
        b = encode(request, inp, built[build_key(request, inp)])                   # per target: sparse, names, metadata
        b = describe(request, inp, strip_names(request, b))
        assessment = steps.assess(request, inp, b)
        parts.append((request, inp, b, assessment, steps.make_report(request, inp, b, assessment)))
    for request, inp, b, assessment, report in parts:
        if request.output.out is not None:
            steps.package(request, inp, b, assessment, report)
    return [p[-1] for p in parts]
