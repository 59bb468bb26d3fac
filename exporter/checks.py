"""Measurements and the checks of each profile limit against them.

Every figure is a `Measurement` that says whether it was measured or
estimated, and on what. A `Check` compares one measurement with one limit.

Example:
    >>> from exporter.profile import load_profile
    >>> limits = load_profile("android-arm64-midrange").limits
    >>> size = Measurement("model_size", 3264, "bytes", "measured", "model.tflite file")
    >>> latency = Measurement("latency", 41.5, "ms", "estimated", "cost model of android-arm64-midrange")
    >>> checks = run_checks(limits, {"model_size": size, "latency": latency}, {"ram": "no estimate"})
    >>> [(c.name, c.status) for c in checks]           # in the order of LIMIT_UNITS; unset limits absent
    [('model_size', 'pass'), ('ram', 'skip'), ('latency', 'fail'), ('accuracy_drop', 'skip')]
    >>> for check in checks:
    ...     print(check.summary())
    model_size: 3.2 KiB within limit 47.68 MiB (measured on model.tflite file)
    ram: skipped (no estimate)
    latency: 41.50 ms OVER limit 33.00 ms (estimated on cost model of android-arm64-midrange)
    accuracy_drop: skipped (no figure)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from exporter.profile import LIMIT_UNITS
from exporter.units import format_value

MEASURED, ESTIMATED = "measured", "estimated"


@dataclass(frozen=True)
class Measurement:
    """One figure: its value and unit, whether measured or estimated, and on what."""

    name: str
    value: float | None
    unit: str
    source: str
    on: str
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def pretty(self) -> str:
        return format_value(self.value, self.unit)


@dataclass(frozen=True)
class Check:
    """A limit against a figure: pass, fail, or skip (no figure to check)."""

    name: str
    status: str
    value: float | None
    limit: float
    unit: str
    source: str
    on: str
    headroom: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("extra")
        return {**data, **self.extra}

    def summary(self) -> str:
        if self.status == "skip":
            return f"{self.name}: skipped ({self.note})"
        if self.value is None:
            return f"{self.name}: {self.note}"
        word = "within" if self.status == "pass" else "OVER"
        return (f"{self.name}: {format_value(self.value, self.unit)} {word} limit "
                f"{format_value(self.limit, self.unit)} ({self.source} on {self.on})")


def run_checks(limits, figures: dict[str, Measurement], skipped: dict[str, str] | None = None) -> list[Check]:
    """Check each set limit against the figure of the same name.

    Args:
        limits: a `profile.Limits`.
        figures: measurements keyed by limit name.
        skipped: reasons for limits that have no figure.

    Returns:
        One Check per limit that is set, in the canonical order.
    """
    skipped = skipped or {}
    checks = []
    for name, unit in LIMIT_UNITS.items():
        limit = getattr(limits, name)
        if limit is None:
            continue
        figure = figures.get(name)
        if figure is None or figure.value is None:
            checks.append(Check(name, "skip", None, limit, unit, "", "", None, skipped.get(name, "no figure")))
            continue
        status = "pass" if figure.value <= limit else "fail"
        checks.append(Check(name, status, figure.value, limit, unit, figure.source, figure.on,
                            limit - figure.value, figure.note))
    return checks
