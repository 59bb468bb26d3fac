"""How long a search runs: `--trials N` (the finished trials the study should hold) and `--time 30m`.

`--trials` counts the study's finished trials, old and new, so re-running with a larger N only runs the
difference (12, then 14: 2 new trials). `--time` stops asking for new trials once that much wall-clock
time has passed; the trials running then still finish and are kept.

Example:
    >>> parse_duration("30m"), parse_duration("90s"), parse_duration("1.5h"), parse_duration(None)
    (1800.0, 90.0, 5400.0, None)
    >>> budget = Budget(trials=14, seconds=None)
    >>> budget.remaining(finished=12), budget.remaining(finished=15), budget.expired()
    (2, 0, False)
"""
from __future__ import annotations

import re
import time as _time
from dataclasses import dataclass, field

from exporter.errors import UsageError
from exporter.option_names import option

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
"""Duration suffix -> seconds."""
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh])\s*$")


def parse_duration(text) -> float | None:
    """Seconds of a duration such as "30m", "45s" or "2h" (None stays None).

    Args:
        text: a number with a unit (s, m or h), a number of seconds (int/float), or None.

    Returns:
        The seconds, or None when `text` is None.

    Raises:
        UsageError: not a positive duration with a known unit.
    """
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise UsageError(f"{option('time', text)}: give a duration such as 45s, 30m or 2h")
        seconds = float(match.group(1)) * UNITS[match.group(2)]
    if seconds <= 0:
        raise UsageError(f"{option('time', text)}: give a duration longer than 0")
    return seconds


def positive(name: str, value, *, allow_none: bool = False) -> int | None:
    """`value` checked to be a whole number >= 1 (the option `name`'s), or None when allowed.

    Raises:
        UsageError: naming the option as the caller spells it.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{option(name, value)}: give a whole number, 1 or more")
    return value


@dataclass
class Budget:
    """The search's budget: the study's finished trials to reach, and the wall time to stop asking at.

    Attributes:
        trials: the finished trials the study should hold (old ones count).
        seconds: stop asking new trials after this many seconds from `start`; None: no time bound.
        start: the `time.monotonic()` the budget started at.
    """

    trials: int
    seconds: float | None = None
    start: float = field(default_factory=_time.monotonic)

    def remaining(self, finished: int) -> int:
        """Trials still to run for the study to hold `trials` finished ones."""
        return max(0, self.trials - finished)

    def expired(self) -> bool:
        """True once the time bound has passed."""
        return self.seconds is not None and _time.monotonic() - self.start >= self.seconds
