r"""What a device run returns, validated strictly before edgex believes any of it.

Agents (the Python agent on phones and boards, the firmware on microcontrollers) send
one JSON object. It is read with a size bound, must carry this protocol version, and
every figure must be finite and in range; anything else is a DeviceError (exit 5).

Example:
    >>> answer = json.dumps({"protocol": 1, "ok": True, "runtime": "tflite_runtime", "runtime_version": "2.14.0",
    ...                      "model_sha256": "ab" * 32,
    ...                      "latency_ms": {"p50": 4.1, "p90": 4.4, "mean": 4.2, "runs": 50}})
    >>> result = parse_agent_output(b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n" + answer.encode())
    >>> result.ok, result.latency_ms.p50, result.latency_ms.runs
    (True, 4.1, 50)
    >>> parse_agent_output(answer.replace('"p50": 4.1', '"p50": -1').encode())
    Traceback (most recent call last):
    ...
    exporter.errors.DeviceError: device agent output has an impossible value:
      agent output: latency_ms.p50: Input should be greater than or equal to 0
"""
from __future__ import annotations

import json
import math

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exporter.errors import DeviceError
from exporter.validation import validation_lines

PROTOCOL_VERSION = 1
MAX_OUTPUT_BYTES = 1 << 20   # an agent's answer is a few KB; more is refused


class LatencyStats(BaseModel):
    """Latency of the timed invokes, in milliseconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p50: float = Field(..., ge=0, le=3.6e6, description="median")
    p90: float = Field(..., ge=0, le=3.6e6, description="90th percentile")
    mean: float = Field(..., ge=0, le=3.6e6, description="mean")
    runs: int = Field(..., ge=1, le=1_000_000, description="timed invokes")


class AgentResult(BaseModel):
    """One device run, as reported by the agent or firmware."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: int = Field(..., description="agent protocol version; must equal PROTOCOL_VERSION")
    ok: bool = Field(..., description="False when the agent could not run the model")
    error: str | None = Field(None, max_length=4000, description="why, when ok is False")
    runtime: str = Field(..., max_length=200, description="runtime name, e.g. tflite_runtime, TFLM")
    runtime_version: str = Field(..., max_length=100, description="runtime version")
    model_sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$", description="sha256 of the model that ran")
    latency_ms: LatencyStats | None = Field(None, description="timed invokes")
    peak_rss_bytes: int | None = Field(None, ge=0, le=1 << 44, description="peak resident memory of the process")
    arena_bytes: int | None = Field(None, ge=0, le=1 << 32, description="TFLM arena used (microcontrollers)")
    cycles: int | None = Field(None, ge=0, le=1 << 62, description="latency in cycles (microcontrollers)")
    output_digest: str | None = Field(None, max_length=128, description="sha256 of the outputs of the first sample")
    accuracy: float | None = Field(None, ge=0, le=100, description="top-1 % on the bundle's eval samples")
    eval_samples: int | None = Field(None, ge=0, description="eval samples run")
    device: dict = Field(default_factory=dict, description="what the agent knows of its device")

    @field_validator("device")
    @classmethod
    def _small(cls, value):
        if len(json.dumps(value)) > 4000:
            raise ValueError("device description is too large")
        return value


def parse_agent_output(data: bytes) -> AgentResult:
    """Parse and validate an agent's answer (the last JSON line of its output).

    Raises:
        DeviceError: oversized, not JSON, another protocol version, or impossible values.
    """
    if len(data) > MAX_OUTPUT_BYTES:
        raise DeviceError(f"device agent output is {len(data):,} bytes; refusing more than {MAX_OUTPUT_BYTES:,}")
    lines = [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    if not lines:
        raise DeviceError("device agent printed nothing")
    try:
        raw = json.loads(lines[-1], parse_constant=lambda c: math.nan)
    except ValueError:
        raise DeviceError(f"device agent output is not JSON: {lines[-1][:200]!r}") from None
    if not isinstance(raw, dict):
        raise DeviceError("device agent output is not a JSON object")
    if raw.get("protocol") != PROTOCOL_VERSION:
        raise DeviceError(f"device agent speaks protocol {raw.get('protocol')!r}; edgex expects {PROTOCOL_VERSION}")
    try:
        return AgentResult.model_validate(raw)
    except ValidationError as exc:
        lines = validation_lines(exc, "agent output")
        raise DeviceError("device agent output has an impossible value:\n  " + "\n  ".join(lines)) from None
