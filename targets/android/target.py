"""Android phones running LiteRT on the CPU (see targets/cpu.py for what is measured).

The bundle gets `android/`: the model's Kotlin class on LiteRT's CompiledModel API, a Gradle snippet and
a README (targets/android/app_files.py), made from the model's I/O contract (exporter/io_contract.py).
"""
from __future__ import annotations

from targets.base import Artifacts, Measured, register
from targets.cpu import CpuTarget


@register
class AndroidTarget(CpuTarget):
    """An arm64 Android phone; LiteRT on the CPU (XNNPACK). `edgex hil run --device adb://...`."""

    name = "android"
    summary = "Android phones, LiteRT on the CPU"
    default_profile = "android-arm64-midrange"

    def package(self, artifacts: Artifacts, measured: Measured) -> dict[str, bytes]:
        """The app code: `android/<Name>.kt`, `android/build.gradle.kts.snippet`, `android/README.md`."""
        from targets.android.app_files import app_files

        return app_files(artifacts)
