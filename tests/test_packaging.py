"""pyproject.toml ships every package edgex has (a hand-kept list once left exporter.keras3 out of wheels)."""
from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_with_an_init_is_in_the_wheel():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found = set(find_packages(ROOT, include=config["tool"]["setuptools"]["packages"]["find"]["include"]))
    on_disk = {str(p.parent.relative_to(ROOT)).replace("/", ".")
               for top in ("exporter", "targets", "device_profiles") for p in (ROOT / top).rglob("__init__.py")}
    assert "exporter.keras3" in on_disk
    assert on_disk <= found, sorted(on_disk - found)
    assert not any(name.startswith("tests") for name in found)
