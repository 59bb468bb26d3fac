"""The `microcontroller:` section of a device profile: the core, its compiler, flash and arena extras.

Example:
    >>> MicrocontrollerSettings(cpu="cortex-m4", fpu="fpv4-sp-d16", runtime_flash_bytes="160KiB").runtime_flash_bytes
    163840.0
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from exporter.units import ByteSize, FiniteFloat


class MicrocontrollerSettings(BaseModel):
    """What building for a microcontroller needs: the core for the compiler, flash and arena extras."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: str = Field(..., description="the core; with the arm-none-eabi toolchain, its -mcpu value (cortex-m4)")
    toolchain: Literal["arm-none-eabi"] | None = Field(
        "arm-none-eabi", description="compiler that checks the generated C; null where none can be installed")
    fpu: str | None = Field(None, description="arm-none-eabi-gcc -mfpu value, e.g. fpv4-sp-d16; none: soft float")
    runtime_flash_bytes: ByteSize = Field(..., description="flash taken by TFLM, its kernels and the app")
    arena_margin: FiniteFloat = Field(0.1, ge=0, le=1, description="share added to the measured arena in the header")
    # False unless a profile says so: an older TFLM (e.g. the Arduino_TensorFlowLite library of 2023) has no
    # DECODE kernel, and a compressed model would not even get its op resolver compiled there.
    tflm_compression: bool = Field(
        False, description="the device's TFLM has the DECODE op (tensorflow/lite/micro/kernels/decode.cc, tflite-micro "
                           "since late 2025), so edgex stores weights compressed (b-bit indices + value tables); "
                           "ignored by the ethos-u target")
