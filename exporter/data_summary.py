"""The export's data side by side: value ranges, a warning when they differ, hints on failed checks.

int8 is calibrated on the calibration data and measured on the evaluation data; when the two were
preprocessed differently (say calibration in 0..255 and evaluation in 0..1) the int8 model is
mis-scaled and its accuracy collapses while nothing else looks wrong. So the value range of every
data set given (calibration, evaluation, training) is compared with the others. Two ranges differ
when, on their robust spans (0.1st to 99.9th percentile, so a stray value does not count), one span
is more than `SPAN_RATIO` (4) times the other, or they overlap on at most `MIN_OVERLAP` (half) of
the span they cover together. Then the report and the console carry a warning showing every range,
and a failed `accuracy_drop`, `agreement` or `fidelity` check names the ranges as the likely cause.

Example:
    >>> calib = Dataset(np.linspace(0, 255, 640, dtype=np.float32).reshape(10, 8, 8), None, "calib.npz")
    >>> eval_ = Dataset(np.linspace(0, 1, 640, dtype=np.float32).reshape(10, 8, 8), None, "eval.npz")
    >>> ranges = data_ranges(calib, eval_, None)
    >>> print(range_warning(ranges))
    the data live on different ranges (calibration vs evaluation): calibration (calib.npz) 0..255, mean 127; evaluation (eval.npz) 0..1, mean 0.5; preprocess every data set the same way (int8 calibrated on one range mis-scales another)
    >>> range_warning(data_ranges(eval_, eval_, None)) is None
    True
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from exporter.data import Dataset

if TYPE_CHECKING:
    from exporter.checks import Check

SPAN_RATIO = 4.0        # one robust span more than 4x the other: different ranges
MIN_OVERLAP = 0.5       # overlapping on at most half of the span both cover together: different ranges
HINTED = ("accuracy_drop", "agreement", "fidelity")     # failed checks that name the ranges
ROLES = ("calibration", "evaluation", "training")


@dataclass(frozen=True)
class DataRange:
    """The values of one data set: min, max, mean, and the robust range (0.1st..99.9th percentile)."""

    role: str
    origin: str
    samples: int
    labelled: bool
    min: float
    max: float
    mean: float
    low: float
    high: float

    def text(self) -> str:
        """e.g. "calibration (calib.npz) 0..255, mean 84.2"."""
        return f"{self.role} ({self.origin}) {self.min:.3g}..{self.max:.3g}, mean {self.mean:.3g}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def data_ranges(calib: Dataset | None, eval_: Dataset | None, train: Dataset | None) -> list[DataRange]:
    """The range of each data set given, in the order calibration, evaluation, training."""
    return [DataRange(role, ds.origin, len(ds), ds.y is not None, **ds.value_range)
            for role, ds in zip(ROLES, (calib, eval_, train)) if ds is not None]


def ranges_differ(a: DataRange, b: DataRange) -> bool:
    """True when two data sets live on different ranges (see the module docstring for the rule).

    Example:
        >>> r = lambda low, high: DataRange("r", "-", 1, False, low, high, (low + high) / 2, low, high)
        >>> [ranges_differ(r(0, 1), other) for other in (r(0, 1), r(0.1, 0.9), r(0, 255), r(-1, 1), r(2, 3))]
        [False, False, True, True, True]
    """
    span_a, span_b = a.high - a.low, b.high - b.low
    if max(span_a, span_b) <= 0:
        return a.low != b.low
    if min(span_a, span_b) <= 0 or max(span_a, span_b) > SPAN_RATIO * min(span_a, span_b):
        return True
    overlap = min(a.high, b.high) - max(a.low, b.low)
    return overlap <= MIN_OVERLAP * (max(a.high, b.high) - min(a.low, b.low))


def differing(ranges: list[DataRange]) -> list[tuple[DataRange, DataRange]]:
    """Every pair of data sets whose ranges differ."""
    return [(a, b) for i, a in enumerate(ranges) for b in ranges[i + 1:] if ranges_differ(a, b)]


def range_warning(ranges: list[DataRange]) -> str | None:
    """The warning for data sets on different ranges (every range shown), or None when they agree."""
    pairs = differing(ranges)
    if not pairs:
        return None
    which = ", ".join(f"{a.role} vs {b.role}" for a, b in pairs)
    return (f"the data live on different ranges ({which}): {'; '.join(r.text() for r in ranges)}; "
            "preprocess every data set the same way (int8 calibrated on one range mis-scales another)")


def with_range_hints(checks: list[Check], ranges: list[DataRange]) -> list[Check]:
    """`checks` with the data ranges as the hint of a failed accuracy_drop, agreement or fidelity check.

    Only with two data sets or more; the hint says whether their ranges differ (the likely cause) or agree.
    """
    if len(ranges) < 2:
        return checks
    shown = " vs ".join(r.text() for r in ranges)
    hint = (f"likely cause: the data live on different ranges ({shown}): preprocess every data set the same way"
            if differing(ranges) else f"data ranges agree ({shown})")
    return [dataclasses.replace(c, hint=hint) if c.status == "fail" and c.name in HINTED else c for c in checks]


@dataclass(frozen=True)
class DataSummary:
    """What the report records about the data: ranges, warnings, the image preprocessing, notes."""

    ranges: list[DataRange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    preprocessing: dict | None = None
    notes: list[str] = field(default_factory=list)


def preprocessing_record(sets: dict[str, Dataset]) -> dict | None:
    """The preprocessing edgex applied to the data read from image folders (None: all were arrays).

    One record (the same size, color and normalization for every folder), with `applies_to`
    naming each data set it made: its role, folder and layout (flat or class folders).
    """
    made = {role: ds for role, ds in sets.items() if ds is not None and ds.preprocessing}
    if not made:
        return None
    record = {k: v for k, v in next(iter(made.values())).preprocessing.items() if k != "layout"}
    record["applies_to"] = [{"role": role, "origin": ds.origin, "layout": ds.preprocessing["layout"]}
                            for role, ds in made.items()]
    return record


def summarize(calib: Dataset | None, eval_: Dataset | None, train: Dataset | None) -> DataSummary:
    """The DataSummary of an export's data sets (each None when not given)."""
    sets = dict(zip(ROLES, (calib, eval_, train)))
    ranges = data_ranges(calib, eval_, train)
    warning = range_warning(ranges)
    return DataSummary(ranges=ranges, warnings=[warning] if warning else [], preprocessing=preprocessing_record(sets),
                       notes=[n for ds in sets.values() if ds is not None for n in ds.notes])
