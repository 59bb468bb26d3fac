"""Linux single-board computers (Raspberry Pi class) running tflite-runtime on the CPU."""
from __future__ import annotations

from targets.base import register
from targets.cpu import CpuTarget


@register
class LinuxTarget(CpuTarget):
    """An arm64 Linux board; tflite-runtime on the CPU. `edgex hil run --device ssh://...`."""

    name = "linux"
    summary = "Linux boards (Raspberry Pi class), tflite-runtime on the CPU"
    default_profile = "raspberry-pi-4"
    runtime = "tflite-runtime 2.14 (device) / LiteRT (host)"
