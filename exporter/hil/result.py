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
    """Latency of the timed invokes, in milliseconds (the agent gives p90, benchmark_model p5/p95/min/max/std)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p50: float = Field(..., ge=0, le=3.6e6, description="median")
    p90: float | None = Field(None, ge=0, le=3.6e6, description="90th percentile")
    mean: float = Field(..., ge=0, le=3.6e6, description="mean")
    runs: int = Field(..., ge=1, le=1_000_000, description="timed invokes")
    p5: float | None = Field(None, ge=0, le=3.6e6, description="5th percentile")
    p95: float | None = Field(None, ge=0, le=3.6e6, description="95th percentile")
    min: float | None = Field(None, ge=0, le=3.6e6, description="fastest invoke")
    max: float | None = Field(None, ge=0, le=3.6e6, description="slowest invoke")
    std: float | None = Field(None, ge=0, le=3.6e6, description="standard deviation")


class OpTiming(BaseModel):
    """One row of benchmark_model's op profile ("Run Order" table of the regular runs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node_type: str = Field(..., max_length=200, description="op or delegate kernel, e.g. CONV_2D")
    name: str = Field(..., max_length=500, description="node name and index, e.g. [conv1/Relu]:0")
    first_ms: float = Field(..., ge=0, le=3.6e6, description="time of the first run")
    avg_ms: float = Field(..., ge=0, le=3.6e6, description="mean time per run")
    percent: float = Field(..., ge=0, le=100.01, description="share of the run's total time")
    cdf_percent: float = Field(..., ge=0, le=100.01, description="cumulative share in run order")
    mem_kb: float = Field(..., ge=0, description="memory the profiler attributes to the node")
    times_called: int = Field(..., ge=0, le=1 << 31, description="calls per run")


MEMORY_KINDS = {
    "rss_delta": "the model's own memory: resident memory after loading and invoking it minus the agent's "
                 "before loading it (the Python interpreter and the runtime library left out)",
    "footprint_delta": "the model's own memory: benchmark_model's peak memory footprint growth from the tool's "
                       "start (its max RSS, `overall`; the tool itself left out)",
}
"""What `model_memory_bytes` is, by `memory_kind`: the figure compared with the export's RAM estimate."""


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
    threads: int | None = Field(None, ge=1, le=1024, description="threads the runtime ran with")
    delegate: str | None = Field(None, max_length=40, description="delegate it ran with: cpu, xnnpack, gpu, nnapi")
    xnnpack_refusal: str | None = Field(None, max_length=400, description="why the XNNPACK delegate refused the "
                                        "model, which then ran on the builtin kernels (delegate cpu)")
    init_ms: float | None = Field(None, ge=0, le=3.6e6, description="time to load the model and prepare it")
    model_memory_bytes: int | None = Field(None, ge=0, le=1 << 44, description="the model's own memory")
    memory_kind: str | None = Field(None, pattern="^(" + "|".join(MEMORY_KINDS) + ")$",
                                    description="how model_memory_bytes was measured (MEMORY_KINDS)")
    rss_before_bytes: int | None = Field(None, ge=0, le=1 << 44, description="agent RSS before loading the model")
    ops: list[OpTiming] | None = Field(None, max_length=10_000, description="per-op profile (benchmark_model)")

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
