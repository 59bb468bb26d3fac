"""Measurements and the checks of each profile limit against them.

Every figure is a `Measurement` that says whether it was measured, estimated, or mixed
(a sum of measured and estimated parts, listed in its note), and on what. A `Check`
compares one measurement with one limit. Most limits are maximums; `agreement` and
`fidelity` are minimums (`profile.LIMITS` says which), so they fail when the figure is below.

Example:
    >>> from exporter.profile import load_profile
    >>> limits = load_profile("android-arm64-midrange").limits
    >>> size = Measurement("model_size", 3264, "bytes", "measured", "model.tflite file")
    >>> latency = Measurement("latency", 41.5, "ms", "estimated", "cost model of android-arm64-midrange")
    >>> checks = run_checks(limits, {"model_size": size, "latency": latency}, {"ram": "no estimate"})
    >>> [(c.name, c.status) for c in checks]           # in the order of LIMIT_UNITS; unset limits absent
    [('model_size', 'pass'), ('ram', 'skip'), ('latency', 'fail'), ('accuracy_drop', 'skip'), ('agreement', 'skip')]
    >>> for check in checks:
    ...     print(check.summary())
    model_size: 3.2 KiB within limit 47.68 MiB (measured on model.tflite file)
    ram: skipped (no estimate)
    latency: 41.50 ms OVER limit 33.00 ms (estimated on cost model of android-arm64-midrange)
    accuracy_drop: skipped (no figure)
    agreement: skipped (no figure)
    >>> agree = Measurement("top1_agreement", 12.5, "%", "measured", "LiteRT on this host, 8 eval samples")
    >>> [c.summary() for c in run_checks(limits, {"top1_agreement": agree}) if c.name == "agreement"]
    ['agreement: 12.50 % BELOW limit 98.00 % (measured on LiteRT on this host, 8 eval samples)']
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from exporter.profile import LIMITS
from exporter.units import format_value

MEASURED, ESTIMATED = "measured", "estimated"
MIXED = "mixed"
"""A figure that adds measured and estimated parts (e.g. a measured arena + the profile's runtime RAM);
its note names each part and where it comes from."""


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
    """A limit against a figure: pass, fail, or skip (no figure to check).

    `bound` is "max" for a limit the figure must not exceed, "min" for one it must reach;
    `headroom` is the distance on the passing side (negative on a fail); `hint` says what may have
    caused a failure (exporter/data_summary.py puts the data ranges on a failed accuracy check).
    """

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
    bound: str = "max"
    hint: str = ""

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("extra")
        if not data["hint"]:
            data.pop("hint")
        return {**data, **self.extra}

    def summary(self) -> str:
        if self.status == "skip":
            return f"{self.name}: skipped ({self.note})"
        if self.value is None:
            return f"{self.name}: {self.note}"
        within, beyond = ("at or above", "BELOW") if self.bound == "min" else ("within", "OVER")
        word = within if self.status == "pass" else beyond
        hint = f"; {self.hint}" if self.hint else ""
        return (f"{self.name}: {format_value(self.value, self.unit)} {word} limit "
                f"{format_value(self.limit, self.unit)} ({self.source} on {self.on}){hint}")


def run_checks(limits, figures: dict[str, Measurement], skipped: dict[str, str] | None = None) -> list[Check]:
    """Check each set limit against its figure (`profile.LIMITS`: e.g. `agreement` reads `top1_agreement`).

    Args:
        limits: a `profile.Limits`.
        figures: measurements keyed by figure name.
        skipped: reasons, keyed by limit name, for limits that have no figure.

    Returns:
        One Check per limit that is set, in the canonical order; a maximum fails above its limit,
        a minimum below it.
    """
    skipped = skipped or {}
    checks = []
    for name, spec in LIMITS.items():
        limit = getattr(limits, name)
        if limit is None:
            continue
        bound = "min" if spec.minimum else "max"
        figure = figures.get(spec.figure)
        if figure is None or figure.value is None:
            checks.append(Check(name, "skip", None, limit, spec.unit, "", "", None, skipped.get(name, "no figure"),
                                bound=bound))
            continue
        status = "pass" if spec.passes(figure.value, limit) else "fail"
        checks.append(Check(name, status, figure.value, limit, spec.unit, figure.source, figure.on,
                            spec.headroom(figure.value, limit), figure.note, bound=bound))
    return checks
