"""Limits: the budgets of a device profile, their units and directions, and `--limit` overrides.

A maximum (`model_size`, `flash`, `ram`, `latency`, `accuracy_drop`) passes while its figure is at or
below it; a minimum (`agreement`, `fidelity`) while its figure is at or above it.

Example:
    >>> parse_limit_overrides(["model_size=1KB", "agreement=90"])
    {'model_size': 1000.0, 'agreement': 90.0}
    >>> LIMITS["agreement"].passes(97.5, 98.0)
    False
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from exporter.errors import ConfigError
from exporter.option_names import option
from exporter.units import FiniteFloat, parse_quantity


@dataclass(frozen=True)
class LimitSpec:
    """What a limit is: its unit, which figure it is checked against, and whether it is a maximum or a minimum.

    A maximum (`model_size`, `ram`, ...) passes while the figure is at or below it; a minimum
    (`agreement`, `fidelity`) passes while the figure is at or above it. Headroom is the distance
    on the passing side either way (negative when the check fails).
    """

    unit: str
    figure: str
    minimum: bool = False

    def passes(self, value: float, limit: float) -> bool:
        return value >= limit if self.minimum else value <= limit

    def headroom(self, value: float, limit: float) -> float:
        return value - limit if self.minimum else limit - value


LIMITS = {
    "model_size": LimitSpec("bytes", "model_size"),
    "flash": LimitSpec("bytes", "flash"),
    "ram": LimitSpec("bytes", "ram"),
    "latency": LimitSpec("ms", "latency"),
    "accuracy_drop": LimitSpec("points", "accuracy_drop"),
    "agreement": LimitSpec("%", "top1_agreement", minimum=True),
    "fidelity": LimitSpec("", "fidelity_cosine", minimum=True),
}
"""Every limit, in the order checks are listed: its unit, the figure it checks and its direction."""
LIMIT_UNITS = {name: spec.unit for name, spec in LIMITS.items()}

class Limits(BaseModel):
    """The budgets a model must fit; a missing limit is not checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_size: FiniteFloat | None = Field(None, ge=0, description="bytes of the model on the device's storage")
    flash: FiniteFloat | None = Field(None, ge=0, description="bytes of flash for the model plus the runtime's code")
    ram: FiniteFloat | None = Field(None, ge=0, description="peak runtime memory in bytes")
    latency: FiniteFloat | None = Field(None, ge=0, description="milliseconds per inference")
    accuracy_drop: FiniteFloat | None = Field(None, ge=0, le=100, description="points of top-1 lost vs the original")
    agreement: FiniteFloat | None = Field(
        None, ge=0, le=100, description="minimum % of eval samples whose top-1 class is that of the Keras model converted")
    fidelity: FiniteFloat | None = Field(
        None, ge=0, le=1, description="minimum mean cosine similarity of the outputs to those of the Keras model converted")

    @field_validator(*LIMITS, mode="before")
    @classmethod
    def _units(cls, value, info):
        if value is None:
            return None
        try:
            return parse_quantity(value, LIMIT_UNITS[info.field_name])
        except ValueError as exc:
            raise ValueError(str(exc)) from None


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
            raise ConfigError(f"unknown limit {name!r} in {option('limits')}; known: {', '.join(LIMIT_UNITS)}")
        try:
            out[name] = parse_quantity(value, LIMIT_UNITS[name])
        except (ValueError, TypeError, OverflowError) as exc:
            raise ConfigError(f"{option('limits', {name: value})}: {exc}") from None
        if not math.isfinite(out[name]):
            raise ConfigError(f"{option('limits', {name: value})}: {value!r} is not a finite number")
    return out


def _split(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ConfigError(f"{option('limits')} expects NAME=VALUE, got {item!r}")
    return name.strip(), value.strip()
