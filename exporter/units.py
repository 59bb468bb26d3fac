"""Parsing and printing of the quantities in profiles and `--limit` overrides.

Sizes accept B, KB/MB/GB (powers of 1000) and KiB/MiB/GiB (powers of 1024);
times accept us, ms and s; percentages accept % and pt; bare numbers are taken in the
limit's own unit (bytes, milliseconds, points, percent, or a plain number such as a cosine).

Example:
    >>> parse_quantity("256KiB", "bytes")
    262144.0
    >>> parse_quantity("12ms", "ms")
    12.0
"""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, Field

_SIZE = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_TIME = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_POINTS = {"pt": 1.0, "pts": 1.0, "points": 1.0}
_UNITS = {"bytes": _SIZE, "ms": _TIME, "points": _POINTS, "%": {"%": 1.0, **_POINTS}, "": {}}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Z]*|%)\s*$")


def parse_quantity(text: str | float | int, unit: str) -> float:
    """Parse `text` into a number in `unit` ("bytes", "ms", "points", "%" or "" for a plain number).

    Args:
        text: "1KB", "256KiB", "12ms", "0.5", or a plain number.
        unit: the canonical unit of the quantity ("%" for percentages, "" for plain numbers).

    Returns:
        The value in `unit`.

    Raises:
        ValueError: the text is not a non-negative number with a suffix valid for `unit`.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"{text} is negative")
        return float(text)
    match = _PATTERN.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a non-negative number with an optional unit")
    number, suffix = float(match.group(1)), match.group(2).lower()
    if not suffix:
        return number
    table = _UNITS[unit]
    if suffix not in table:
        if not table:
            raise ValueError(f"{text!r} takes no unit: give a plain number")
        raise ValueError(f"unit {match.group(2)!r} does not fit {unit}; use one of {', '.join(table)}")
    return number * table[suffix]


def format_bytes(n: float) -> str:
    """Format a byte count as B, KiB or MiB with one decimal."""
    if n < 1024:
        return f"{n:.0f} B"
    if n < 1024**2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024**2:.2f} MiB"


def format_value(value: float | None, unit: str) -> str:
    """Format a figure in its unit for tables and reports."""
    if value is None:
        return "n/a"
    if unit == "bytes":
        return format_bytes(value)
    if unit == "ms":
        return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "points":
        return f"{value:.2f} pt"
    return f"{value:g} {unit}" if unit else f"{value:g}"


def format_quantity(value: float | None, unit: str) -> str:
    """Format a configured quantity exactly, in the unit it reads best in: text `parse_quantity` reads back.

    Sizes take the largest of KiB/MiB/GiB or KB/MB/GB that divides them exactly (else bytes);
    other units print the number without trailing zeros.

    Example:
        >>> format_quantity(50e6, "bytes"), format_quantity(256 * 1024**2, "bytes"), format_quantity(33.0, "ms")
        ('50 MB', '256 MiB', '33 ms')
    """
    if value is None:
        return "n/a"
    if unit == "bytes":
        for name, size in (("GiB", 1024**3), ("GB", 1e9), ("MiB", 1024**2), ("MB", 1e6), ("KiB", 1024), ("KB", 1e3)):
            if value >= size and value % size == 0:
                return f"{value / size:g} {name}"
        return f"{value:g} B"
    return f"{value:g} {unit}".rstrip()


def _bytes(value):
    return parse_quantity(value, "bytes")


ByteSize = Annotated[float, BeforeValidator(_bytes), Field(ge=0, allow_inf_nan=False)]
"""A pydantic field type for a size in bytes: a number, or text with a unit ("256KiB", "4MB")."""

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A float that is neither NaN nor +-Inf (manifests must stay valid JSON); every float config field uses it."""
