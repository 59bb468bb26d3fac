"""Android phones running LiteRT on the CPU (see targets/cpu.py for what is measured)."""
from __future__ import annotations

from targets.base import register
from targets.cpu import CpuTarget


@register
class AndroidTarget(CpuTarget):
    """An arm64 Android phone; LiteRT on the CPU (XNNPACK). `edgex hil run --device adb://...`."""

    name = "android"
    summary = "Android phones, LiteRT on the CPU"
    default_profile = "android-arm64-midrange"
