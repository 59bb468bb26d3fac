"""The `edgetpu:` section of a device profile: the Edge TPU, its runtime and compiler, and the host link.

Example:
    >>> from exporter.profile import load_profile
    >>> settings = load_profile("coral-usb").section("edgetpu")
    >>> settings.runtime_version, settings.bandwidth_bytes_per_s
    (14, 320000000.0)
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from exporter.units import ByteSize, FiniteFloat


class EdgeTpuSettings(BaseModel):
    """The Edge TPU, its runtime and compiler, and the host link."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    interface: str = Field(..., min_length=1, description="host link of the Edge TPU, e.g. 'USB 3.0'")
    parameter_cache_bytes: ByteSize = Field(..., gt=0, description="on-chip SRAM that caches model parameters")
    runtime_version: int = Field(..., ge=10, description="Edge TPU runtime version on the device; "
                                                         "edgetpu_compiler -m (min runtime version)")
    compiler_version: str = Field(..., pattern=r"^\d+\.\d+$",
                                  description="edgetpu_compiler major.minor the op tables are for, e.g. '16.0'")
    tpu_peak_gmacs: FiniteFloat = Field(..., gt=0, description="peak int8 GMAC/s of the Edge TPU (TOPS / 2 x 1000)")
    tpu_int8_gmacs: FiniteFloat = Field(..., gt=0, description="effective int8 GMAC/s of mapped ops, from benchmarks")
    host_bandwidth_mb_per_s: FiniteFloat = Field(..., gt=0, description="MB/s (10^6 B) between host and Edge TPU, "
                                                                        "for streamed parameters and I/O")
    invoke_overhead_us: FiniteFloat = Field(0, ge=0, description="fixed cost of one Edge TPU invoke, microseconds")

    @model_validator(mode="after")
    def _effective_below_peak(self):
        if self.tpu_int8_gmacs > self.tpu_peak_gmacs:
            raise ValueError(f"tpu_int8_gmacs {self.tpu_int8_gmacs:g} exceeds tpu_peak_gmacs {self.tpu_peak_gmacs:g}")
        return self

    @property
    def bandwidth_bytes_per_s(self) -> float:
        """The host link in bytes per second."""
        return self.host_bandwidth_mb_per_s * 1e6
