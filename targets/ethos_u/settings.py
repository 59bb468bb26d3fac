"""The `ethos_u:` section of a device profile: the Arm Ethos-U NPU as Vela sees it.

Example:
    >>> EthosUSettings(accelerator_config="ethos-u55-128", system_config="Ethos_U55_High_End_Embedded",
    ...                memory_mode="Shared_Sram", npu_clock_mhz=500).npu_clock_mhz
    500.0
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from exporter.units import FiniteFloat


class EthosUSettings(BaseModel):
    """The Arm Ethos-U NPU as Vela sees it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accelerator_config: Literal["ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256",
                                "ethos-u65-256", "ethos-u65-512"] = Field(..., description="vela --accelerator-config")
    system_config: str = Field(..., description="vela --system-config (a section of the vela.ini)")
    memory_mode: str = Field(..., description="vela --memory-mode (a section of the vela.ini)")
    npu_clock_mhz: FiniteFloat = Field(..., gt=0, description="NPU clock, to turn Vela's cycles into time")
