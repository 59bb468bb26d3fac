import pytest

from exporter.units import format_bytes, parse_quantity


@pytest.mark.parametrize("text,unit,expected", [
    ("1KB", "bytes", 1000), ("256KiB", "bytes", 262144), ("2MiB", "bytes", 2 * 1024**2), ("10", "bytes", 10),
    ("12ms", "ms", 12), ("0.5s", "ms", 500), ("250us", "ms", 0.25), ("0.5", "points", 0.5), (3, "ms", 3),
])
def test_parses_quantities(text, unit, expected):
    assert parse_quantity(text, unit) == pytest.approx(expected)


@pytest.mark.parametrize("text,unit", [("12ms", "bytes"), ("1KB", "ms"), ("-3", "ms"), ("abc", "bytes"), (-1, "ms")])
def test_refuses_bad_quantities(text, unit):
    with pytest.raises(ValueError):
        parse_quantity(text, unit)


def test_formats_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(2048) == "2.0 KiB"
    assert format_bytes(3 * 1024**2) == "3.00 MiB"
