"""Device profiles: what a device can hold and run, loaded from strict YAML.

A profile names its target kind and device, its limits (`model_size`, `ram`,
`latency`, `accuracy_drop`), the quantization modes it allows and prefers, the
I/O dtypes it requires and the coefficients of its latency cost model, plus one
typed section per target that needs one (`microcontroller`, `ethos_u`, `edgetpu`).
The YAML is read with `exporter.safe_read.load_yaml_file` (a regular file of at
most 1 MiB; no anchors/aliases, python tags or duplicate keys). Unknown keys, wrong
types and NaN/infinite numbers are errors that name the file and field path.

Example:
    >>> p = load_profile("android-arm64-midrange")
    >>> p.limits.latency
    33.0
"""
from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exporter.errors import ConfigError
from exporter.safe_read import load_yaml_file
from exporter.units import parse_quantity

PROFILE_DIR = Path(__file__).resolve().parent.parent / "device_profiles"
QUANT_MODES = ("float32", "float16", "dynamic", "int8")
QuantMode = Literal["float32", "float16", "dynamic", "int8"]
LIMIT_UNITS = {"model_size": "bytes", "flash": "bytes", "ram": "bytes", "latency": "ms", "accuracy_drop": "points"}

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A float that is neither NaN nor +-Inf (manifests must stay valid JSON); every float field uses it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Strict):
    """The budgets a model must fit; a missing limit is not checked."""

    model_size: FiniteFloat | None = Field(None, ge=0, description="bytes of the model on the device's storage")
    flash: FiniteFloat | None = Field(None, ge=0, description="bytes of flash for the model plus the runtime's code")
    ram: FiniteFloat | None = Field(None, ge=0, description="peak runtime memory in bytes")
    latency: FiniteFloat | None = Field(None, ge=0, description="milliseconds per inference")
    accuracy_drop: FiniteFloat | None = Field(None, ge=0, le=100, description="points of top-1 lost vs the original")

    @field_validator("model_size", "flash", "ram", "latency", "accuracy_drop", mode="before")
    @classmethod
    def _units(cls, value, info):
        if value is None:
            return None
        try:
            return parse_quantity(value, LIMIT_UNITS[info.field_name])
        except ValueError as exc:
            raise ValueError(str(exc)) from None


class Quantization(_Strict):
    """Which conversion modes the device allows, prefers, and its I/O dtype for int8."""

    allowed: tuple[QuantMode, ...] = Field(..., min_length=1, description="modes the device can run")
    preferred: QuantMode = Field(..., description="the default mode")
    int8_io: Literal["int8", "uint8", "float32"] = Field(
        "int8", description="input/output dtype of full-integer models")
    min_calibration_samples: int = Field(32, ge=1, description="fewest calibration samples accepted for int8")
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
    per_op_overhead_us: FiniteFloat = Field(..., ge=0, description="fixed cost of dispatching one op, microseconds")
    runtime_ram_bytes: FiniteFloat = Field(0, ge=0, description="memory the runtime itself needs")

    @field_validator("runtime_ram_bytes", mode="before")
    @classmethod
    def _bytes(cls, value):
        return parse_quantity(value, "bytes")

    @model_validator(mode="after")
    def _one_throughput(self):
        rates = self.int8_gmacs is not None and self.float_gmacs is not None
        cycles = None not in (self.clock_mhz, self.int8_cycles_per_mac, self.float_cycles_per_mac)
        if rates == cycles:
            raise ValueError("give either int8_gmacs and float_gmacs, or clock_mhz with int8_cycles_per_mac "
                             "and float_cycles_per_mac")
        return self

    def macs_per_second(self, int8: bool) -> float:
        """Effective MAC/s for int8 or float ops."""
        if self.int8_gmacs is not None:
            return (self.int8_gmacs if int8 else self.float_gmacs) * 1e9
        cycles = self.int8_cycles_per_mac if int8 else self.float_cycles_per_mac
        return self.clock_mhz * 1e6 / cycles


class Microcontroller(_Strict):
    """What building for a microcontroller needs: the core for the compiler, flash and arena extras."""

    cpu: str = Field(..., description="the core; with the arm-none-eabi toolchain, its -mcpu value (cortex-m4)")
    toolchain: Literal["arm-none-eabi"] | None = Field(
        "arm-none-eabi", description="compiler that checks the generated C; null where none can be installed")
    fpu: str | None = Field(None, description="arm-none-eabi-gcc -mfpu value, e.g. fpv4-sp-d16; none: soft float")
    runtime_flash_bytes: FiniteFloat = Field(..., ge=0, description="flash taken by TFLM, its kernels and the app")
    arena_margin: FiniteFloat = Field(0.1, ge=0, le=1, description="share added to the measured arena in the header")

    @field_validator("runtime_flash_bytes", mode="before")
    @classmethod
    def _bytes(cls, value):
        return parse_quantity(value, "bytes")


class EthosU(_Strict):
    """The Arm Ethos-U NPU as Vela sees it."""

    accelerator_config: Literal["ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256",
                                "ethos-u65-256", "ethos-u65-512"] = Field(..., description="vela --accelerator-config")
    system_config: str = Field(..., description="vela --system-config (a section of the vela.ini)")
    memory_mode: str = Field(..., description="vela --memory-mode (a section of the vela.ini)")
    npu_clock_mhz: FiniteFloat = Field(..., gt=0, description="NPU clock, to turn Vela's cycles into time")


class EdgeTpu(_Strict):
    """The `edgetpu:` section: the Edge TPU, its runtime and compiler, and the host link."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    interface: str = Field(..., min_length=1, description="host link of the Edge TPU, e.g. 'USB 3.0'")
    parameter_cache_bytes: FiniteFloat = Field(..., gt=0, description="on-chip SRAM that caches model parameters")
    runtime_version: int = Field(..., ge=10, description="Edge TPU runtime version on the device; "
                                                         "edgetpu_compiler -m (min runtime version)")
    compiler_version: str = Field(..., pattern=r"^\d+\.\d+$",
                                  description="edgetpu_compiler major.minor the op tables are for, e.g. '16.0'")
    tpu_peak_gmacs: FiniteFloat = Field(..., gt=0, description="peak int8 GMAC/s of the Edge TPU (TOPS / 2 x 1000)")
    tpu_int8_gmacs: FiniteFloat = Field(..., gt=0, description="effective int8 GMAC/s of mapped ops, from benchmarks")
    host_bandwidth_mb_per_s: FiniteFloat = Field(..., gt=0, description="MB/s (10^6 B) between host and Edge TPU, "
                                                                        "for streamed parameters and I/O")
    invoke_overhead_us: FiniteFloat = Field(0, ge=0, description="fixed cost of one Edge TPU invoke, microseconds")

    @field_validator("parameter_cache_bytes", mode="before")
    @classmethod
    def _bytes(cls, value):
        return parse_quantity(value, "bytes")

    @model_validator(mode="after")
    def _effective_below_peak(self):
        if self.tpu_int8_gmacs > self.tpu_peak_gmacs:
            raise ValueError(f"tpu_int8_gmacs {self.tpu_int8_gmacs:g} exceeds tpu_peak_gmacs {self.tpu_peak_gmacs:g}")
        return self

    @property
    def bandwidth_bytes_per_s(self) -> float:
        """The host link in bytes per second."""
        return self.host_bandwidth_mb_per_s * 1e6


class DeviceProfile(_Strict):
    """One device: what it is, what it allows, and what it can hold."""

    name: str = Field(..., description="unique profile name; the file name without .yaml")
    target: str = Field(..., description="target kind, e.g. android")
    device: str = Field(..., description="human description of the device")
    limits: Limits = Field(..., description="the budgets a model must fit")
    quantization: Quantization = Field(..., description="conversion modes the device allows and prefers")
    cost_model: CostModel = Field(..., description="coefficients of the latency estimate")
    threads: int = Field(1, ge=1, description="threads the runtime uses on the device")
    microcontroller: Microcontroller | None = Field(None, description="for microcontroller and Ethos-U targets")
    ethos_u: EthosU | None = Field(None, description="for the Ethos-U target")
    edgetpu: EdgeTpu | None = Field(None, description="for the Edge TPU target")
    notes: str = Field("", description="free text")

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
            raise ConfigError(_format_validation(exc, "--limit", prefix="limits")) from None
        return self.model_copy(update={"limits": limits})


def _format_validation(exc: ValidationError, origin: str, prefix: str = "") -> str:
    """One line per error: where (file and profile), the field path and what is wrong."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "") or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{origin}: {path}: {msg}")
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
        raise ConfigError(_format_validation(exc, f"{path}: profile {name}")) from None


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


def parse_limit_overrides(items: list[str] | tuple[str, ...] | dict) -> dict[str, float]:
    """Parse `NAME=VALUE` overrides (or a dict) into canonical units.

    Args:
        items: `NAME=VALUE` strings (`--limit`), or a dict of name to value.

    Returns:
        Limit name to value in the limit's canonical unit.

    Raises:
        ConfigError: unknown limit name, a value that does not parse, or NaN/infinite (e.g. 1e400).
    """
    pairs = items.items() if isinstance(items, dict) else [_split(i) for i in items]
    out = {}
    for name, value in pairs:
        if name not in LIMIT_UNITS:
            raise ConfigError(f"unknown limit {name!r} in --limit; known: {', '.join(LIMIT_UNITS)}")
        try:
            out[name] = parse_quantity(value, LIMIT_UNITS[name])
        except (ValueError, TypeError, OverflowError) as exc:
            raise ConfigError(f"--limit {name}: {exc}") from None
        if not math.isfinite(out[name]):
            raise ConfigError(f"--limit {name}: {value!r} is not a finite number")
    return out


def _split(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ConfigError(f"--limit expects NAME=VALUE, got {item!r}")
    return name.strip(), value.strip()
