"""What one export will do, resolved from its arguments: the first step of an export.

`exporter.export(...)` collects its arguments into an `ExportArgs` (the model and data as given in
`Sources`, where the bundle goes in `Output`); `resolve` checks the output, then looks up the
target, its options, the profile (with limit overrides) and the recipe, and returns an
`ExportRequest` for the steps that follow (exporter/inputs.py, exporter/steps.py).

Example:
    >>> request = resolve(ExportArgs(sources=Sources(model="model.keras"), limits=["latency=12ms"]))
    >>> request.target.name, request.profile.name, request.profile.limits.latency, request.stages
    ('android', 'android-arm64-midrange', 12.0, [])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.errors import UsageError
from exporter.option_names import option
from exporter.tflite_metadata.info import ModelInfo, for_target

if TYPE_CHECKING:
    from exporter.profile import DeviceProfile
    from exporter.recipe import Recipe
    from targets.base import QuantizationPolicy, Target, TargetOptions

__all__ = ["ExportArgs", "ExportRequest", "Output", "Sources", "resolve"]


@dataclass(frozen=True)
class Sources:
    """The model and data as the caller gave them (paths, arrays, a model object), nothing loaded yet.

    Attributes:
        model: a .keras/.h5/SavedModel/.tflite path or a tf_keras model; None with `demo`.
        calib, eval, train: data as paths, arrays, (x, y) tuples or Datasets; None when not given.
        labels: a labels.txt path or a list of class names; None when not given.
        trust_model: allow models whose loading can run code. Default False.
        demo: use the built-in digits CNN and whichever of its data was not given. Default False.
        normalize: how image folders' pixels become inputs (exporter/normalization.py); None: "unit".
        input_shapes: the shape to measure a model with dynamic input dims at: one shape, or
            {input name: shape} (exporter/input_shapes.py); None: the model's own shapes.
        label_output: the output the labels are for (exporter/io_names.py); None: the first.
    """

    model: object = None
    calib: object = None
    eval: object = None
    labels: object = None
    train: object = None
    trust_model: bool = False
    demo: bool = False
    normalize: str | None = None
    input_shapes: object = None
    label_output: str | None = None


@dataclass(frozen=True)
class Output:
    """Where the bundle goes: `out` (None writes no bundle), also `<out>.zip`, keep added files.

    `bundle_samples`: how many labelled eval samples the bundle keeps for device runs; None: as many
    as fit in 1 MB (exporter/bundle_samples.py).
    """

    out: str | Path | None = None
    make_zip: bool = False
    force: bool = False
    bundle_samples: int | None = None
    provenance: dict | None = None      # where the export came from, for the manifest (exporter/manifest.py)


@dataclass(frozen=True)
class ExportArgs:
    """The arguments of `exporter.export` as given, before anything is looked up or loaded."""

    sources: Sources = field(default_factory=Sources)
    output: Output = field(default_factory=Output)
    target: str = "android"
    profile: object = None
    quantize: str | None = None
    limits: object = None
    recipe: object = None
    target_options: dict | None = None
    model_info: ModelInfo | None = None     # name, version, ... for the TFLite metadata (exporter/tflite_metadata/)
    sparse_encoding: str | None = None      # auto | on | off (exporter/sparse/); None: the recipe's, else auto


@dataclass(frozen=True)
class ExportRequest:
    """What the export will do: the target, its options, the profile (limits applied), the recipe.

    `sources` has the demo's model and data filled in when `demo` was asked for.
    """

    target: Target
    options: TargetOptions
    profile: DeviceProfile
    policy: QuantizationPolicy
    recipe: Recipe
    stages: list
    quantize: str | None
    sources: Sources
    output: Output
    model_info: ModelInfo = field(default_factory=ModelInfo)   # checked; defaults are filled in when written
    sparse_encoding: str | None = None     # as given; exporter/sparse/decision.py `setting` resolves it


def _recipe(recipe, target):
    from exporter.recipe import Recipe, _validate, load_recipe

    if recipe is None:
        return target.default_recipe()
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return _validate(recipe, "recipe")
    return load_recipe(recipe)


def _with_demo(sources: Sources) -> Sources:
    """`sources` with the demo's model, and its data where none was given, when `demo` is set."""
    if not sources.demo:
        return sources
    if sources.model is not None:
        raise UsageError(f"give either a model or {option('demo')}, not both")
    from exporter.demo import load_demo

    d = load_demo()
    return Sources(model=d.model_path, calib=_or(sources.calib, d.calib), eval=_or(sources.eval, d.eval),
                   labels=_or(sources.labels, d.labels), train=_or(sources.train, d.train),
                   trust_model=sources.trust_model, demo=True, normalize=sources.normalize,
                   input_shapes=sources.input_shapes, label_output=sources.label_output)


def _or(given, default):
    """`given` unless it is None (not `or`: a NumPy array has no truth value)."""
    return default if given is None else given


def resolve(args: ExportArgs) -> ExportRequest:
    """Look up the target, its options, the profile and the recipe; check the output first.

    Args:
        args: the export's arguments as given.

    Returns:
        The ExportRequest: target, options, profile with `args.limits` applied, quantization
        policy, recipe and its stages, and the sources (the demo's filled in).

    Raises:
        UsageError: the output cannot be written (before any work), a bad `bundle_samples`, an unknown
            target, bad target options or limits, a model and `demo` both given, no model at all, or
            metadata options (`model_info`) that do not check out or that the target does not take.
        ConfigError: a profile or recipe that is not valid.
    """
    from exporter.profile import load_profile, parse_limit_overrides
    from targets.base import get_target

    if args.output.out is not None:
        from exporter.output import check_output

        check_output(args.output.out, args.output.make_zip, args.output.force)   # exit 2 before any work
    count = args.output.bundle_samples
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise UsageError(f"{option('bundle_samples', count)}: give a whole number of samples, 0 or more")
    target = get_target(args.target)
    options = target.parse_options(args.target_options)
    model_info = for_target(args.model_info, target)
    profile = load_profile(args.profile or target.default_profile)
    policy = target.policy(profile)
    if args.limits:
        profile = profile.with_limits(parse_limit_overrides(args.limits))
    sources = _with_demo(args.sources)
    if sources.model is None:
        raise UsageError(f"no model given: pass {option('model')} (.keras, .h5, SavedModel dir or .tflite) or "
                         f"{option('demo')}")
    recipe = _recipe(args.recipe, target)
    return ExportRequest(target=target, options=options, profile=profile, policy=policy, recipe=recipe,
                         stages=recipe.build(), quantize=args.quantize, sources=sources, output=args.output,
                         model_info=model_info, sparse_encoding=args.sparse_encoding)
