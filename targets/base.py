"""The Target contract and registry.

A target knows a kind of device: the profile sections it reads (`sections`, one
pydantic model per top-level YAML key), the options an export may give it
(`Options`), which quantization modes and I/O dtypes its profiles may ask for (a
`QuantizationPolicy`), which ops it can run (`preflight`), how to measure or
estimate a model on it (`measure`, returning a typed `Measured`) and which files
go into its bundle (`package`, which receives that result). Targets register by
name through the `edgex.targets` entry-point group and are imported only when named
(a duplicate name is refused). Target modules import nothing heavy at module level.

Example:
    >>> from exporter.analysis.graph import Graph
    >>> from exporter.profile import load_profile
    >>> target = get_target("android")
    >>> profile = load_profile(target.default_profile)
    >>> profile.name, target.policy(profile).resolve(None)        # None: the profile's preferred mode
    ('android-arm64-midrange', 'int8')
    >>> artifacts = Artifacts(tflite=tiny_tflite, graph=Graph.from_bytes(tiny_tflite), profile=profile, mode="int8")
    >>> measured = target.measure(artifacts)
    >>> measured.figures["model_size"].source, measured.figures["latency"].source
    ('measured', 'estimated')
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from exporter.errors import ConfigError, PreflightError, UsageError
from exporter.option_names import option
from exporter.registry import Registry
from exporter.validation import validation_lines

if TYPE_CHECKING:
    from exporter.checks import Check, Measurement

TARGETS = Registry("target", key="name", group="edgex.targets", base="targets.base:Target", error=UsageError)
"""Targets by name: the `edgex.targets` entry points (imported when named) and classes registered in code."""
register = TARGETS.register


def all_targets() -> list["Target"]:
    """One instance of every target, sorted by name (imports every target module).

    Returns:
        The targets.

    Raises:
        UsageError: an entry point that does not load or names a class of another name.
    """
    return [cls() for cls in TARGETS.classes()]


def get_target(name: str) -> "Target":
    """The target called `name`, importing only its module.

    Args:
        name: a target name (`edgex targets`).

    Returns:
        An instance of its Target class.

    Raises:
        UsageError: unknown name (the nearest match and the known ones), or a broken entry point.
    """
    return TARGETS.get(name)()


@dataclass(frozen=True)
class QuantizationPolicy:
    """What a profile allows: conversion modes, the default, and int8 I/O dtype."""

    allowed: tuple[str, ...]
    preferred: str
    int8_io: str
    min_calibration_samples: int
    weight_bits: tuple[int, ...] = (8, 4, 2, 1)

    @classmethod
    def from_profile(cls, profile) -> "QuantizationPolicy":
        q = profile.quantization
        return cls(tuple(q.allowed), q.preferred, q.int8_io, q.min_calibration_samples, tuple(q.weight_bits))

    def check_stage(self, stage, profile_name: str) -> None:
        """Refuse a stage whose weight bit-width the device gains nothing from.

        Raises:
            UsageError: naming the bits, the profile and the widths it takes.
        """
        bits = getattr(stage.config, "bits", None)
        if bits is not None and bits not in self.weight_bits:
            raise UsageError(f"stage {stage.name!r}: {bits}-bit weights make no sense on profile {profile_name} "
                             f"(weight bit-widths it takes: {', '.join(map(str, self.weight_bits))})")

    def resolve(self, requested: str | None) -> str:
        """Return the mode to use: the request if allowed, else the preferred one.

        Raises:
            UsageError: the request is not allowed on this profile (never silently replaced).
        """
        if requested is None:
            return self.preferred
        if requested not in self.allowed:
            raise UsageError(f"{option('quantize', requested)} is not allowed on this profile: its runtime takes only "
                             f"{', '.join(self.allowed)} models (allowed: {', '.join(self.allowed)}; "
                             f"preferred: {self.preferred})")
        return requested

    def io_dtype(self, mode: str) -> str:
        """The I/O dtype a model converted in `mode` must have."""
        return self.int8_io if mode == "int8" else "float32"


class TargetOptions(BaseModel):
    """Options of one export for a target, beyond its profile; the base target takes none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class Artifacts:
    """What a target gets to measure and package: the model and its context.

    `options` is the target's validated `Options` (`Target.parse_options`); None means its defaults.
    """

    tflite: bytes
    graph: object
    profile: object
    mode: str
    keras_model: object = None
    eval_ds: object = None
    labels: list[str] | None = None
    source: str | None = None
    options: TargetOptions | None = None
    converted_from: object = None   # the Keras model converted, when stages changed it (None: keras_model)
    input_shapes: dict | None = None  # input name -> shape LiteRT resizes to (dynamic input dims); None: as stored
    io: object = None               # the model's IOSignature (exporter/io_names.py); None: keras_model's or the .tflite's
    preprocessing: dict | None = None  # how image folders became inputs (manifest.json `preprocessing`); None: arrays
    calib: object = None            # the calibration Dataset (targets that run more samples than eval's); None: none
    sparse: object = None           # the sparse-encoding record (exporter/sparse/step.py): the dense model to compare

    def host_figures(self) -> dict:
        """What LiteRT measures on this machine (with the profile's `threads`): size, host latency, accuracy,
        agreement and fidelity.

        Returns:
            Measurements keyed by name (`exporter.measure.measure_host`).
        """
        from exporter.measure import measure_host

        return measure_host(self.tflite, self.keras_model, self.eval_ds, converted_from=self.converted_from,
                            input_shapes=self.input_shapes, io=self.io, threads=self.profile.threads)


@dataclass
class Measured:
    """What `Target.measure` found: the figures of the report, keyed by name (limit names feed the checks).

    Targets that package what they measured (C sources, a compiler's output) subclass it with typed fields.
    """

    figures: dict[str, Measurement]

    def weight_compression(self) -> dict | None:
        """The report's `compression` entry: what weight compression did to the model the device stores; None
        where the target stores the model as converted (targets/microcontroller/compression.py has one)."""
        return None


class Target(ABC):
    """A kind of device. Subclasses set the class attributes and implement `measure`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    default_profile: ClassVar[str]
    runtime: ClassVar[str]
    ram_source: ClassVar[str] = "mixed (weights + estimated activations + profile runtime)"
    latency_source: ClassVar[str] = "estimated"
    sections: ClassVar[dict[str, type[BaseModel]]] = {}
    """Profile sections this target reads: top-level YAML key -> its pydantic model (extra="forbid")."""
    Options: ClassVar[type[TargetOptions]] = TargetOptions
    """The options an export may give this target (`exporter.export(..., target_options={...})`)."""
    tflite_metadata: ClassVar[bool] = False
    """Whether the bundle's model.tflite carries TFLite metadata (exporter/tflite_metadata/): True for targets whose
    apps read it through LiteRT (targets/cpu.py); False where the model goes to flash or to a compiler."""
    sparse_tensors: ClassVar[bool] = False
    """Whether the device's runtime reads TFLite sparse tensors, so an export may store pruned weights sparse
    (exporter/sparse/): True for LiteRT on a CPU (targets/cpu.py)."""
    float_layers: ClassVar[bool] = False
    """Whether the device's runtime runs an int8 model with some layers left in float (the recipe's float_layers,
    exporter/stages/float_layers.py): True for LiteRT on a CPU (targets/cpu.py); False where the int8 model runs
    whole on int8 kernels (TFLM on a microcontroller, Vela's NPU program, the Edge TPU)."""
    static_shapes: ClassVar[str | None] = None
    """Why the device's runtime needs static input shapes (a .tflite with dynamic input dims is refused); None: it
    resizes inputs, as LiteRT does."""

    def check_static(self, dynamic: list, profile) -> None:
        """Refuse inputs with dynamic dims when the runtime needs static shapes (`static_shapes`).

        Args:
            dynamic: (name, shape signature) of each input with dynamic dims beyond the batch.
            profile: the device profile (named in the message).

        Raises:
            PreflightError: naming each input, its signature and why, and what to do instead.
        """
        if not self.static_shapes or not dynamic:
            return
        inputs = "; ".join(f"input {name!r} has dynamic dims (shape signature {list(sig)})" for name, sig in dynamic)
        raise PreflightError(f"pre-flight for {self.name} ({profile.name}) failed: {inputs}: {self.static_shapes}. "
                             f"{option('input_shapes')} only sets the shape LiteRT measures at: re-export the model "
                             "with a static input shape (no -1 in its signature)")

    def parse_options(self, options: dict | TargetOptions | None) -> TargetOptions:
        """Validate export options for this target.

        Args:
            options: a mapping (e.g. `{"require_compiled": True}`), an `Options` instance, or None for defaults.

        Returns:
            The target's `Options`.

        Raises:
            UsageError: an option the target does not take, or a wrong value, naming it.
        """
        if type(options) is self.Options:
            return options
        if isinstance(options, TargetOptions):     # another target's options: checked as this target's
            options = options.model_dump()
        try:
            return self.Options.model_validate(options or {})
        except ValidationError as exc:
            takes = ", ".join(self.Options.model_fields) or "none"
            raise UsageError(f"invalid options for target {self.name} (it takes: {takes})\n  "
                             + "\n  ".join(validation_lines(exc, f"target {self.name}"))) from None

    def latency_threads(self, profile) -> int:
        """Threads the latency estimate divides the CPU's MAC time by (exporter/analysis/cost_model.py).

        1 here: the model runs on one core (TFLM on a microcontroller). Targets whose CPU ops run in
        LiteRT's thread pool (targets/cpu.py, the Edge TPU's CPU fallback) return the profile's `threads`.
        """
        return 1

    def options(self, artifacts: Artifacts) -> TargetOptions:
        """The export's options for this target: `artifacts.options`, or the defaults."""
        return self.parse_options(artifacts.options)

    def policy(self, profile) -> QuantizationPolicy:
        """The quantization policy of `profile` on this target."""
        if profile.target != self.name:
            raise ConfigError(f"profile {profile.name!r} is for target {profile.target!r}, not {self.name!r}")
        return QuantizationPolicy.from_profile(profile)

    def preflight(self, graph, profile, mode: str, tflite: bytes | None = None) -> list[str]:
        """Check the graph can run on the device; return notes, raise on blockers.

        Args:
            graph: the parsed model; tflite: its bytes, for checks the Graph summary lacks.

        Raises:
            PreflightError: listing every op or tensor the device cannot run.
        """
        problems = []
        if graph.custom_ops():
            problems.append("custom ops the runtime lacks: " + ", ".join(sorted(set(graph.custom_ops()))))
        want = self.policy(profile).io_dtype(mode)
        for kind, tensors in (("input", graph.input_details()), ("output", graph.output_details())):
            for t in tensors:
                if mode == "int8" and t.dtype != want:
                    problems.append(f"{kind} {t.name!r} is {t.dtype}; profile {profile.name} requires {want}")
                if any(d != 1 for d in t.shape[:1]):
                    problems.append(f"{kind} {t.name!r} has batch {t.shape[0]}; the device runs batch 1")
        if problems:
            raise PreflightError(f"pre-flight for {self.name} ({profile.name}) failed:\n  " + "\n  ".join(problems))
        return []

    @abstractmethod
    def measure(self, artifacts: Artifacts) -> Measured:
        """Measure or estimate the model on the device; `Measured.figures` feed the checks and report."""

    def extra_checks(self, artifacts: Artifacts, measured: Measured) -> list[Check]:
        """Checks beyond the profile's limits, e.g. a runtime that cannot run the model at all."""
        return []

    def default_recipe(self):
        """The recipe used when the user gives none: post-training quantization only."""
        from exporter.recipe import Recipe

        return Recipe()

    def package(self, artifacts: Artifacts, measured: Measured) -> dict[str, bytes]:
        """Return the target-specific files of the bundle (beyond model, labels, report)."""
        return {}

    def supports(self) -> dict:
        """One row of the `edgex targets` table."""
        from exporter.profile import list_profiles

        profiles = [p for p in list_profiles() if p.target == self.name]
        modes = sorted({m for p in profiles for m in p.quantization.allowed})
        return {"target": self.name, "summary": self.summary, "runtime": self.runtime,
                "default_profile": self.default_profile, "profiles": [p.name for p in profiles],
                "quantization": modes, "ram": self.ram_source, "latency": self.latency_source}
