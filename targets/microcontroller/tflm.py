"""TensorFlow Lite for Microcontrollers (TFLM): op coverage, op resolver, measured arena.

- `TFLM_OPS` maps each op TFLM has a kernel for to the `MicroMutableOpResolver`
  method that registers it. `unsupported_ops` lists a model's ops missing from
  it; `op_resolver_source` writes the C++ resolver registering exactly the ops
  a model uses.
- `measure_arena` runs the model on the real TFLM interpreter (pip package
  `tflite-micro`) and reports the tensor arena its `RecordingMicroAllocator`
  used: exactly what an application must allocate, without margin.

TFLM aborts the whole process on some models (a failed `TFLITE_CHECK` inside a
kernel's Prepare), so the interpreter runs in a child process
(`python -m targets.microcontroller.tflm_probe`) with a timeout; a crash, a hang or
an error becomes `ArenaResult(ok=False, finding=...)`, never an exception.
A known abort: an int8 SOFTMAX whose input scale is at most 2**-26 (TFLM's
softmax needs `beta * scale * 2**26 > 1`), as in an untrained Keras
MobileNetV2 with its classifier head; the finding names it when it applies.

The arena figure does not depend on the arena size handed to TFLM beyond
alignment: the demo CNN records 6,272 bytes with arenas of 6,272 B, 100 kB,
1 MB and 64 MiB, and 6,280 bytes with 7,000 B (TFLM aligns the head start and
tail end of the buffer to 16 bytes). An arena of exactly the recorded size
allocates and invokes. The figure is measured on a 64-bit host; 32-bit MCUs
store smaller structs (pointers), so it is an upper bound there.

Example:
    >>> r = measure_arena(tflite_bytes)
    >>> r.ok, r.arena_bytes, r.head_bytes, r.tail_bytes
    (True, 6272, 3072, 3200)
    >>> print(op_resolver_source(Graph.from_bytes(tflite_bytes)))
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from exporter.errors import PreflightError, UsageError

# Builtin ops of tensorflow/tflite-micro tensorflow/lite/micro/micro_mutable_op_resolver.h
# (Add* methods registering a builtin). Every one has a `Register_<OP>` kernel in the
# installed tflite_micro `_runtime.so` (checked by tests/targets/microcontroller/test_tflm.py).
_BUILTIN_METHODS = (
    "ABS:AddAbs ADD:AddAdd ADD_N:AddAddN ARG_MAX:AddArgMax ARG_MIN:AddArgMin "
    "ASSIGN_VARIABLE:AddAssignVariable AVERAGE_POOL_2D:AddAveragePool2D BATCH_MATMUL:AddBatchMatMul "
    "BATCH_TO_SPACE_ND:AddBatchToSpaceNd BROADCAST_ARGS:AddBroadcastArgs BROADCAST_TO:AddBroadcastTo "
    "CALL_ONCE:AddCallOnce CAST:AddCast CEIL:AddCeil CONCATENATION:AddConcatenation CONV_2D:AddConv2D "
    "COS:AddCos CUMSUM:AddCumSum DEPTH_TO_SPACE:AddDepthToSpace DEPTHWISE_CONV_2D:AddDepthwiseConv2D "
    "DEQUANTIZE:AddDequantize DIV:AddDiv DYNAMIC_UPDATE_SLICE:AddDynamicUpdateSlice "
    "EMBEDDING_LOOKUP:AddEmbeddingLookup ELU:AddElu EQUAL:AddEqual EXP:AddExp EXPAND_DIMS:AddExpandDims "
    "FILL:AddFill FLOOR:AddFloor FLOOR_DIV:AddFloorDiv FLOOR_MOD:AddFloorMod "
    "FULLY_CONNECTED:AddFullyConnected GATHER:AddGather GATHER_ND:AddGatherNd GREATER:AddGreater "
    "GREATER_EQUAL:AddGreaterEqual HARD_SWISH:AddHardSwish IF:AddIf L2_NORMALIZATION:AddL2Normalization "
    "L2_POOL_2D:AddL2Pool2D LEAKY_RELU:AddLeakyRelu LESS:AddLess LESS_EQUAL:AddLessEqual LOG:AddLog "
    "LOGICAL_AND:AddLogicalAnd LOGICAL_NOT:AddLogicalNot LOGICAL_OR:AddLogicalOr LOGISTIC:AddLogistic "
    "LOG_SOFTMAX:AddLogSoftmax MAXIMUM:AddMaximum MAX_POOL_2D:AddMaxPool2D MIRROR_PAD:AddMirrorPad "
    "MEAN:AddMean MINIMUM:AddMinimum MUL:AddMul NEG:AddNeg NOT_EQUAL:AddNotEqual PACK:AddPack PAD:AddPad "
    "PADV2:AddPadV2 PRELU:AddPrelu QUANTIZE:AddQuantize READ_VARIABLE:AddReadVariable "
    "REDUCE_ALL:AddReduceAll REDUCE_MAX:AddReduceMax REDUCE_MIN:AddReduceMin RELU:AddRelu RELU6:AddRelu6 "
    "RESHAPE:AddReshape RESIZE_BILINEAR:AddResizeBilinear RESIZE_NEAREST_NEIGHBOR:AddResizeNearestNeighbor "
    "REVERSE_V2:AddReverseV2 ROUND:AddRound RSQRT:AddRsqrt SELECT_V2:AddSelectV2 SHAPE:AddShape SIN:AddSin "
    "SLICE:AddSlice SOFTMAX:AddSoftmax SPACE_TO_BATCH_ND:AddSpaceToBatchNd SPACE_TO_DEPTH:AddSpaceToDepth "
    "SPLIT:AddSplit SPLIT_V:AddSplitV SQUEEZE:AddSqueeze SQRT:AddSqrt SQUARE:AddSquare "
    "SQUARED_DIFFERENCE:AddSquaredDifference STRIDED_SLICE:AddStridedSlice SUB:AddSub SUM:AddSum "
    "SVDF:AddSvdf TANH:AddTanh TRANSPOSE_CONV:AddTransposeConv TRANSPOSE:AddTranspose UNPACK:AddUnpack "
    "UNIDIRECTIONAL_SEQUENCE_LSTM:AddUnidirectionalSequenceLSTM VAR_HANDLE:AddVarHandle WHILE:AddWhile "
    "ZEROS_LIKE:AddZerosLike")
# Custom ops the same header registers with AddCustom, keyed as `Graph` names them
# ("CUSTOM:<custom_code>"; the codes are the strings in `_runtime.so`). `ethos-u` needs a TFLM
# built for an Ethos-U NPU (the host build's kernel is empty).
_CUSTOM_METHODS = (
    "CUSTOM:BasicClassifier:AddBasicClassifier CUSTOM:CIRCULAR_BUFFER:AddCircularBuffer "
    "CUSTOM:TFLM_DECODE:AddDecode CUSTOM:TFLite_Detection_PostProcess:AddDetectionPostprocess "
    "CUSTOM:ethos-u:AddEthosU CUSTOM:SignalDelay:AddDelay CUSTOM:SignalEnergy:AddEnergy "
    "CUSTOM:SignalFftAutoScale:AddFftAutoScale CUSTOM:SignalFilterBank:AddFilterBank "
    "CUSTOM:SignalFilterBankLog:AddFilterBankLog CUSTOM:SignalFilterBankSquareRoot:AddFilterBankSquareRoot "
    "CUSTOM:SignalFilterBankSpectralSubtraction:AddFilterBankSpectralSubtraction "
    "CUSTOM:SignalFramer:AddFramer CUSTOM:SignalIrfft:AddIrfft CUSTOM:SignalOverlapAdd:AddOverlapAdd "
    "CUSTOM:SignalPCAN:AddPCAN CUSTOM:SignalRfft:AddRfft CUSTOM:SignalStacker:AddStacker "
    "CUSTOM:SignalWindow:AddWindow")

TFLM_OPS: dict[str, str] = dict(pair.rsplit(":", 1) for pair in f"{_BUILTIN_METHODS} {_CUSTOM_METHODS}".split())
"""Op name as `Graph` gives it ("CONV_2D", "CUSTOM:ethos-u") -> MicroMutableOpResolver method."""

DEFAULT_ARENA = 16 << 20
LARGE_ARENA = 256 << 20  # the retry when TFLM reports the default arena too small
_TAIL_LINES = 30
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TOO_SMALL = ("missing:", "Failed to resize buffer", "Failed to allocate")


def unsupported_ops(graph) -> list[str]:
    """Return the ops of a model that TFLM has no kernel for.

    Only op names are checked (subgraph 0, as `Graph` reads it), not op
    versions or dtypes; custom ops other than TFLM's own are unsupported.

    Args:
        graph: A `Graph` of the model.

    Returns:
        The op names ("TOPK_V2", "CUSTOM:MyOp"), sorted and unique.
    """
    return sorted({op.name for op in graph.ops if op.name not in TFLM_OPS})


def op_resolver_source(graph, *, name: str = "OpResolver") -> str:
    """Write a C++ header registering exactly the distinct ops the model uses.

    Args:
        graph: A `Graph` of the model.
        name: The C++ name of the resolver type.

    Returns:
        The header text: `using <name> = tflite::MicroMutableOpResolver<N>;`
        (N = number of distinct ops) and `TfLiteStatus RegisterOps(<name>&)`.

    Raises:
        UsageError: `name` is not a C++ identifier.
        PreflightError: The model uses ops TFLM has no kernel for.
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise UsageError(f"op resolver name must be a C++ identifier, got {name!r}")
    missing = unsupported_ops(graph)
    if missing:
        raise PreflightError(f"cannot write a TFLM op resolver: TFLM has no kernel for {', '.join(missing)}")
    ops = sorted({op.name for op in graph.ops})
    lines = [
        "// Generated by edgex: registers exactly the ops of the model.",
        f"// Ops: {', '.join(ops) or '(none)'}",
        "#pragma once",
        "",
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"',
        "",
        f"using {name} = tflite::MicroMutableOpResolver<{max(len(ops), 1)}>;",
        "",
        f"inline TfLiteStatus RegisterOps({name}& resolver) {{",
        *(f"  if (resolver.{TFLM_OPS[op]}() != kTfLiteOk) return kTfLiteError;" for op in ops),
        "  return kTfLiteOk;",
        "}",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ArenaResult:
    """What the TFLM interpreter made of one model.

    `arena_bytes` is the RecordingMicroAllocator total (`head_bytes` +
    `tail_bytes`), None unless `ok`. `finding` says why not `ok`. `log` is
    TFLM's allocation report, or the tail of the probe's stderr on failure.
    """

    ok: bool
    arena_bytes: int | None
    head_bytes: int | None
    tail_bytes: int | None
    invoked: bool
    finding: str | None
    log: str


@dataclass(frozen=True)
class _Run:
    returncode: int | None  # None: killed at the timeout
    stage: str
    result: dict | None
    stderr: str


def _run_probe(path: Path, arena_size: int, timeout: float) -> _Run:
    """Run the probe child once and read its JSON lines."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    cmd = [sys.executable, "-m", "targets.microcontroller.tflm_probe", str(path), str(arena_size)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=max(timeout, 0.001), env=env,
                              stdin=subprocess.DEVNULL)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        code, out, err = None, e.stdout or b"", e.stderr or b""
    stage, result = "starting the TFLM probe", None
    for line in out.decode("utf-8", "replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            stage = obj.get("stage", stage)
            result = obj.get("result", result)
    return _Run(code, stage, result, err.decode("utf-8", "replace"))


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-_TAIL_LINES:])


def _graph(data: bytes):
    """Parse the model for a finding's details, or None (the probe said what it could)."""
    from exporter.analysis.graph import Graph

    try:
        return Graph.from_bytes(data)
    except Exception:
        return None


def _abort_hint(graph) -> str:
    """Name a known cause of TFLM aborts that the model shows, if any."""
    for op in graph.ops if graph is not None else ():
        t = graph.tensors[op.inputs[0]] if op.name == "SOFTMAX" and op.inputs else None
        if t is not None and t.dtype in ("int8", "uint8") and t.quantization:
            scale = t.quantization["scale"][0]
            if scale * 2 ** 26 <= 1:
                return (f"; likely cause: the input scale of SOFTMAX (op {op.index}) is {scale:.3g}, at most "
                        f"2**-26 = {2 ** -26:.3g}, which TFLM's int8 softmax cannot represent (its logits are "
                        "near zero: is the model untrained or degenerate?)")
    return ""


def _failure(run: _Run, data: bytes, timeout: float, arena_size: int) -> ArenaResult:
    """Turn a failed probe run into an ArenaResult with a finding."""
    invoked = bool(run.result and run.result.get("invoked"))
    if run.returncode is None:
        finding = (f"TFLM did not finish within {timeout:g} s while {run.stage} and was stopped; "
                   "the model could not be measured on TFLM")
    elif run.returncode < 0:
        try:
            sig = signal.Signals(-run.returncode).name
        except ValueError:
            sig = "unknown signal"
        finding = (f"TFLM aborted (signal {-run.returncode} {sig}) while {run.stage}; the model cannot run on "
                   "TFLM as built: the interpreter stops the whole process on a failed internal check "
                   f"instead of returning an error{_abort_hint(_graph(data))}")
    elif run.result is not None and run.result.get("stage") == "reading the model":
        finding = f"the model could not be read for TFLM: {run.result.get('error')}"
    elif run.result is not None:
        said = [ln.strip() for ln in run.stderr.splitlines() if ln.strip()][:3]
        finding = f"TFLM failed while {run.result.get('stage', run.stage)}: {run.result.get('error')}"
        if said:
            finding += f"; TFLM said: {' / '.join(said)}"
        if any(s in run.stderr for s in _TOO_SMALL):
            finding += f"; the arena of {arena_size:,} bytes is too small"
        missing = unsupported_ops(graph) if (graph := _graph(data)) is not None else []
        if missing:
            finding += f"; TFLM has no kernel for {', '.join(missing)}"
    else:
        finding = f"the TFLM probe exited with code {run.returncode} while {run.stage} without a result"
    return ArenaResult(False, None, None, None, invoked, finding, _tail(run.stderr))


def measure_arena(tflite_bytes: bytes, *, timeout: float = 120, arena_size: int | None = None) -> ArenaResult:
    """Measure the tensor arena a model needs on TFLM, in a child process.

    The model is written to a temp file (removed afterwards) and run once with
    zero inputs by `targets.microcontroller.tflm_probe`. Without `arena_size` the
    arena is 16 MiB, retried once with 256 MiB if TFLM reports it too small.

    Args:
        tflite_bytes: The `.tflite` model.
        timeout: Seconds the child may take in all, then it is killed.
        arena_size: The arena handed to TFLM, in bytes; None for the default.

    Returns:
        An `ArenaResult`: `ok` with the RecordingMicroAllocator figures, or
        not `ok` with a `finding` (abort, hang, unsupported op, too small an
        arena, invalid model). A crash of TFLM never reaches the caller.

    Raises:
        UsageError: `tflite_bytes` is not bytes, or `arena_size`/`timeout`
            is not positive.
    """
    if not isinstance(tflite_bytes, (bytes, bytearray, memoryview)):
        raise UsageError(f"measure_arena needs the .tflite bytes, got {type(tflite_bytes).__name__}")
    if arena_size is not None and (isinstance(arena_size, bool) or not isinstance(arena_size, int)
                                   or arena_size <= 0):
        raise UsageError(f"arena_size must be a positive number of bytes, got {arena_size!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise UsageError(f"timeout must be a positive number of seconds, got {timeout!r}")
    data = bytes(tflite_bytes)
    sizes = [arena_size] if arena_size is not None else [DEFAULT_ARENA, LARGE_ARENA]
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="edgex-tflm-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(data)
        for size in sizes:
            run = _run_probe(path, size, deadline - time.monotonic())
            too_small = (run.result is not None and not run.result.get("ok")
                         and run.result.get("stage", "").startswith("creating")
                         and any(s in run.stderr for s in _TOO_SMALL))
            if not too_small or time.monotonic() >= deadline:
                break
    res = run.result
    if run.returncode == 0 and res and res.get("ok"):
        return ArenaResult(True, int(res["arena_bytes"]), res.get("head_bytes"), res.get("tail_bytes"),
                           True, None, res.get("log", "").strip())
    return _failure(run, data, timeout, size)
