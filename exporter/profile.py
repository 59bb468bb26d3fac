"""Device profiles: what a device can hold and run, loaded from strict YAML.

A profile names its target kind and device, its limits (`model_size`, `flash`, `ram`,
`latency`, `accuracy_drop`: maximums; `agreement`, `fidelity`: minimums), the quantization modes it allows and prefers, the
I/O dtypes it requires and the coefficients of its latency cost model. Every other
top-level key is a section its target declares (`Target.sections`, e.g.
`microcontroller:`), validated with the target's own model: this module names no
target section, so a new target brings its section without a change here.
`profile.section(name)` returns one, typed. The YAML is read with
`exporter.safe_read.load_yaml_file` (a regular file of at most 1 MiB; no
anchors/aliases, python tags or duplicate keys). Unknown keys, unknown targets,
wrong types and NaN/infinite numbers are errors that name the file and field path.

Example:
    >>> p = load_profile("android-arm64-midrange")
    >>> p.limits.latency
    33.0
    >>> load_profile("coral-usb").section("edgetpu").runtime_version
    14
"""
from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from exporter.errors import ConfigError
from exporter.option_names import option
from exporter.quant_modes import QUANT_MODES
from exporter.safe_read import load_yaml_file
from exporter.limits import LIMIT_UNITS, LIMITS, LimitSpec, Limits, parse_limit_overrides  # noqa: F401 (re-exported)
from exporter.units import ByteSize, FiniteFloat
from exporter.validation import validation_lines

PROFILE_DIR = Path(__file__).resolve().parent.parent / "device_profiles"
QuantMode = Literal[QUANT_MODES]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quantization(_Strict):
    """Which conversion modes the device allows, prefers, and its I/O dtype for int8."""

    allowed: tuple[QuantMode, ...] = Field(..., min_length=1, description="modes the device can run")
    preferred: QuantMode = Field(..., description="the default mode")
    int8_io: Literal["int8", "uint8", "float32"] = Field(
        "int8", description="input/output dtype of full-integer models")
    min_calibration_samples: int = Field(32, ge=1, description="fewest calibration samples accepted for int8 "
                                         "and int16x8")
    weight_bits: tuple[Literal[8, 4, 2, 1], ...] = Field(
        (8, 4, 2, 1), min_length=1, description="weight bit-widths worth training for on this device")

    @field_validator("preferred")
    @classmethod
    def _preferred_allowed(cls, value, info):
        if value not in info.data.get("allowed", ()):
            raise ValueError(f"preferred mode {value!r} is not in allowed")
        return value


class CostModel(_Strict):
    """Latency cost model: MAC throughput per compute type plus per-op overhead.

    Throughput is given either as effective GMAC/s (phones, hosts) or as cycles per MAC at a
    clock (microcontrollers), never both.
    """

    int8_gmacs: FiniteFloat | None = Field(None, gt=0, description="effective int8 GMAC/s")
    float_gmacs: FiniteFloat | None = Field(None, gt=0, description="effective float32 GMAC/s")
    clock_mhz: FiniteFloat | None = Field(None, gt=0, description="core clock, with the cycles-per-MAC figures")
    int8_cycles_per_mac: FiniteFloat | None = Field(None, gt=0, description="cycles per int8 MAC of optimised kernels")
    float_cycles_per_mac: FiniteFloat | None = Field(None, gt=0, description="cycles per float32 MAC")
    int16_gmacs: FiniteFloat | None = Field(None, gt=0, description="effective GMAC/s of int16x8 ops (int16 "
                                            "activations); needed when the profile allows int16x8")
    int16_cycles_per_mac: FiniteFloat | None = Field(None, gt=0, description="cycles per int16x8 MAC, the same "
                                                     "for clock-based cost models")
    per_op_overhead_us: FiniteFloat = Field(..., ge=0, description="fixed cost of dispatching one op, microseconds")
    runtime_ram_bytes: ByteSize = Field(0, description="memory the runtime itself needs")
    thread_efficiency: FiniteFloat = Field(
        0.65, gt=0, le=1, description="speed-up of the MAC-bound work per thread added beyond the first "
        "(1 = linear); the default and its source: exporter/analysis/cost_model.py")

    @model_validator(mode="after")
    def _one_throughput(self):
        rates = self.int8_gmacs is not None and self.float_gmacs is not None
        cycles = None not in (self.clock_mhz, self.int8_cycles_per_mac, self.float_cycles_per_mac)
        if rates == cycles:
            raise ValueError("give either int8_gmacs and float_gmacs, or clock_mhz with int8_cycles_per_mac "
                             "and float_cycles_per_mac")
        if (self.int16_cycles_per_mac if rates else self.int16_gmacs) is not None:
            raise ValueError("give the int16 rate like the others: int16_gmacs beside int8_gmacs, "
                             "int16_cycles_per_mac beside clock_mhz")
        return self

    @property
    def has_int16_rate(self) -> bool:
        """Whether int16x8 ops have a rate of their own (else they are estimated at the int8 rate)."""
        return self.int16_gmacs is not None or self.int16_cycles_per_mac is not None

    def macs_per_second(self, kind: str) -> float:
        """Effective MAC/s of ops of compute class `kind`: "int8", "int16" or "float".

        int16 ops use the int8 rate when the cost model has no int16 rate.
        """
        kind = kind if kind != "int16" or self.has_int16_rate else "int8"
        if self.int8_gmacs is not None:
            return {"int8": self.int8_gmacs, "int16": self.int16_gmacs, "float": self.float_gmacs}[kind] * 1e9
        cycles = {"int8": self.int8_cycles_per_mac, "int16": self.int16_cycles_per_mac,
                  "float": self.float_cycles_per_mac}[kind]
        return self.clock_mhz * 1e6 / cycles


class DeviceProfile(_Strict):
    """One device: what it is, what it allows, and what it can hold.

    These core fields are the same for every target. A profile's other top-level keys are the
    sections its target declares (`Target.sections`): `DeviceProfile.model_validate` validates
    a mapping as `profile_class(target)`, the subclass that adds those sections as optional
    fields, so `model_dump(mode="json")` gives the YAML shape back. `section(name)` returns one.
    """

    sections: ClassVar[dict[str, type[BaseModel]]] = {}
    """Section key -> its model, for the profile's target (none on the base class)."""

    name: str = Field(..., description="unique profile name; the file name without .yaml")
    target: str = Field(..., description="target kind, e.g. android (`edgex targets`)")
    device: str = Field(..., description="human description of the device")
    limits: Limits = Field(..., description="the budgets a model must fit")
    quantization: Quantization = Field(..., description="conversion modes the device allows and prefers")
    cost_model: CostModel = Field(..., description="coefficients of the latency estimate")
    threads: int = Field(1, ge=1, le=64, description="threads the runtime uses on the device; also LiteRT's num_threads "
                                              "on this host and the cost model's thread count")
    delegate: Literal["cpu", "xnnpack", "gpu", "nnapi"] = Field(
        "xnnpack", description="LiteRT delegate of device runs: xnnpack (LiteRT's default CPU delegate), cpu "
        "(its builtin kernels, XNNPACK off), gpu or nnapi (benchmark_model's --use_xnnpack/--use_gpu/--use_nnapi)")
    notes: str = Field("", description="free text")

    @model_validator(mode="after")
    def _int16_rate(self):
        if "int16x8" in self.quantization.allowed and not self.cost_model.has_int16_rate:
            raise ValueError("quantization.allowed has int16x8 but the cost model has no int16 rate "
                             "(cost_model.int16_gmacs or int16_cycles_per_mac)")
        return self

    @field_validator("target")
    @classmethod
    def _registered_target(cls, value: str) -> str:
        known = target_names()
        if value not in known:
            near = difflib.get_close_matches(value, known, n=1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise ValueError(f"unknown target {value!r}.{hint} Known targets: {', '.join(known)}")
        return value

    @classmethod
    def model_validate(cls, obj, *args, **kwargs) -> "DeviceProfile":
        """Validate a mapping as the profile class of its `target` (core fields plus its sections).

        Raises:
            ValidationError: as pydantic's, naming each field path (an unknown section is an unknown key).
        """
        if cls is DeviceProfile and isinstance(obj, dict):
            cls = profile_class(obj.get("target"))
            # Manifests written before sections moved to their targets list every section, null
            # where absent: a null section of another registered target means "no such section".
            obj = {k: v for k, v in obj.items() if not (v is None and k in _all_sections() and k not in cls.sections)}
        return super(DeviceProfile, cls).model_validate(obj, *args, **kwargs)

    def __reduce__(self):
        # Profile classes are made per target at run time: pickle the data, not the class.
        return DeviceProfile.model_validate, (self.model_dump(),)

    def section(self, name: str) -> BaseModel:
        """The typed section `name` of this profile, e.g. `profile.section("microcontroller")`.

        Raises:
            ConfigError: the profile's target takes no such section, or the profile lacks it.
        """
        model = self.sections.get(name)
        if model is None:
            raise ConfigError(f"profile {self.name} is for target {self.target!r}, which takes no {name!r} "
                              f"section (its sections: {', '.join(self.sections) or 'none'})")
        value = getattr(self, name)
        if value is None:
            raise ConfigError(f"profile {self.name} has no {name!r} section ({', '.join(model.model_fields)})")
        return value

    def with_limits(self, overrides: dict[str, float]) -> "DeviceProfile":
        """Return a copy with some limits replaced, validated as the profile's own limits.

        Args:
            overrides: limit name to value in canonical units (see `parse_limit_overrides`).

        Returns:
            The new profile.

        Raises:
            ConfigError: an unknown limit, or a value out of range, NaN or infinite.
        """
        try:
            limits = Limits.model_validate({**self.limits.model_dump(), **overrides})
        except ValidationError as exc:
            raise ConfigError("invalid profile\n  " + "\n  ".join(
                validation_lines(exc, option("limits"), prefix="limits"))) from None
        return self.model_copy(update={"limits": limits})


def target_names() -> list[str]:
    """Every registered target name (imports the target modules, which are light)."""
    from targets.base import TARGETS

    return TARGETS.names()


def profile_class(target) -> type[DeviceProfile]:
    """The profile model for `target`: `DeviceProfile` plus the sections the target declares.

    An unknown or invalid `target` gives `DeviceProfile` itself (its `target` check names the problem).
    """
    if not isinstance(target, str) or target not in target_names():
        return DeviceProfile
    return _profile_class(target)


@functools.cache
def _all_sections() -> frozenset[str]:
    from targets.base import get_target

    return frozenset(key for name in target_names() for key in get_target(name).sections)


@functools.cache
def _profile_class(target: str) -> type[DeviceProfile]:
    from targets.base import get_target

    sections = dict(get_target(target).sections)
    if not sections:
        return DeviceProfile
    clash = sorted(set(sections) & set(DeviceProfile.model_fields))
    if clash:
        raise ValueError(f"target {target!r} declares sections named like profile keys: {', '.join(clash)}")
    fields = {key: (model | None, Field(None, description=f"the `{key}:` section: "
                                        + (model.__doc__ or model.__name__).strip().splitlines()[0]))
              for key, model in sections.items()}
    name = "".join(part.capitalize() for part in target.replace("-", "_").split("_")) + "Profile"
    cls = create_model(name, __base__=DeviceProfile, __module__=__name__, **fields)
    cls.sections = sections
    return cls


def _invalid(exc: ValidationError, origin: str, target) -> str:
    """The ConfigError text for an invalid profile; an unknown top-level key names the target's sections."""
    lines = validation_lines(exc, origin)
    if isinstance(target, str) and target in target_names():
        sections = profile_class(target).sections
        for i, err in enumerate(exc.errors()):
            if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
                lines[i] += (f" (not a profile key, nor a section of target {target!r}; its sections: "
                             f"{', '.join(sections) or 'none'})")
    return "invalid profile\n  " + "\n  ".join(lines)


def profile_from_yaml(path: Path) -> DeviceProfile:
    """Load and validate one profile file.

    Args:
        path: a YAML file (a regular file of at most 1 MiB).

    Returns:
        The validated profile.

    Raises:
        ConfigError: unreadable or oversized file, not a regular file, invalid YAML, python tags,
            anchors/aliases, unknown keys, wrong types; naming the file and the line or field path.
    """
    data = load_yaml_file(path, what="profile")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a profile must be a mapping of keys to values")
    data.setdefault("name", Path(path).stem)
    name = data["name"] if isinstance(data["name"], str) else Path(path).stem
    try:
        return DeviceProfile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_invalid(exc, f"{path}: profile {name}", data.get("target"))) from None


def list_profiles() -> list[DeviceProfile]:
    """Return every shipped profile, sorted by target then name."""
    profiles = [profile_from_yaml(p) for p in sorted(PROFILE_DIR.glob("*.yaml"))]
    return sorted(profiles, key=lambda p: (p.target, p.name))


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """Load a shipped profile by name, or a profile file by path.

    Raises:
        ConfigError: unknown name (listing the known ones, nearest first) or invalid file.
    """
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise ConfigError(f"no such profile file: {path}")
        return profile_from_yaml(path)     # refuses FIFOs, devices and directories
    candidate = PROFILE_DIR / f"{text}.yaml"
    if candidate.is_file():
        return profile_from_yaml(candidate)
    known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
    near = difflib.get_close_matches(text, known, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise ConfigError(f"unknown profile {text!r}.{hint} Known profiles: {', '.join(known)}")
