"""Which TFLite ops the Coral Edge TPU runs, as data, and a static mapping of a graph onto it.

Source of `EDGETPU_OPS` (op names, minimum runtime versions, constraints):
Coral, "TensorFlow models on the Edge TPU", section "Supported operations", Table 1
(https://coral.ai/docs/edgetpu/models-intro/#supported-operations). The table gives each
operation the Edge TPU runtime version that first maps it ("All", or "13+", "14+") and its
known limitations; `constraints` below restates that column. The same page says what every
model must be: 8-bit quantized, tensor sizes and parameters constant at compile time, and
tensors of at most 3 dimensions that exceed 1 (only the 3 innermost may be > 1). It also says
why one unsupported op matters so much: the compiler partitions the graph only once, so the
first unsupported op and *everything after it* run on the CPU, even ops the TPU could run.

Notes on the table:
- "All" is stored as runtime 10, the oldest runtime the compiler's `-m` option targets.
- TRANSPOSE is mapped from compiler 16.0 / runtime 14 (answer in google-coral/edgetpu#193,
  August 2021); before, the compiler reported "Operation not supported".
- The live page could not be re-read when this table was written: the rows were checked against a
  copy of its limitations column (Axis' ARTPEC-7 "supported ops" page; ARTPEC-7's DLPU is an Edge
  TPU) and against compiler logs in google-coral/edgetpu issues. Check new rows against the page.
- DEQUANTIZE is not in Coral's table (the compiler reports it as "working on an unsupported data
  type"): float outputs always end on the CPU.
- Ops not in `EDGETPU_OPS` are treated as unsupported (e.g. LEAKY_RELU, HARD_SWISH, TOPK_V2,
  GATHER, ARG_MAX, CUMSUM, DEPTH_TO_SPACE, BATCH_MATMUL). Where edgex could not confirm an op on
  the page (e.g. RSQRT, SQUARED_DIFFERENCE) it leaves it out: the pre-flight then predicts a CPU
  fallback and the compiler's log, when the compiler runs, says otherwise.

`max_version` is *edgex's own* table, not Coral's: the highest TFLite op version that
edgetpu_compiler 16.0 (July 2021, built against TensorFlow Lite of the TF 2.5 era) can read.
It is derived from TFLite's tensorflow/lite/tools/versioning/runtime_version.cc: for each op,
the highest version whose minimum runtime is 2.5.0 or older. A newer version (e.g. CONV_2D v6,
TF 2.9) is what makes compiler 16 fail with "Didn't find op for builtin opcode 'CONV_2D'
version '6'", or map the op as "Operation version not supported". Likewise builtin op codes
above `COMPILER_MAX_BUILTIN_CODE` (139, HASHTABLE_SIZE, the last op of TF 2.5) make it fail
with "Op builtin_code out of range". These limits are an estimate: the compiler's own log is
authoritative, and edgex reads it whenever the compiler runs.

The check functions see the `OpInfo`, the `Graph` and, when the flatbuffer bytes are at hand,
`ModelFacts` (builtin options and small constant tensors read with the `tflite` package; the checks
are in targets/edgetpu/checks.py);
without facts the checks that need options or constants are skipped.

Example:
    >>> graph = Graph.from_bytes(tiny_tflite)             # int8: CONV_2D ... FULLY_CONNECTED, SOFTMAX
    >>> m = map_graph(graph, runtime_version=14, facts=ModelFacts(tiny_tflite))
    >>> m.cut_index, len(m.tpu_ops), len(m.cpu_ops)
    (None, 6, 0)
    >>> print(op_problem(graph.ops[0], graph, runtime_version=14))      # CONV_2D: no problem
    None
    >>> EDGETPU_OPS["SOFTMAX"].constraints, "LEAKY_RELU" in EDGETPU_OPS   # a LEAKY_RELU would be the cut
    ('1-D input of at most 16,000 elements.', False)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import tflite

from targets.edgetpu import checks
from targets.edgetpu.checks import ModelFacts
from exporter.analysis.graph import Graph, OpInfo

COMPILER_VERSION = "16.0"
COMPILER_MAX_BUILTIN_CODE = 139  # tflite.BuiltinOperator.HASHTABLE_SIZE, the last op TFLite 2.5 knows
SUPPORTS_PAGE = "https://coral.ai/docs/edgetpu/models-intro/#supported-operations"
ALL = 10  # "All" runtime versions in Coral's table
MAPPED = "Mapped to Edge TPU"
AFTER_CUT = "after the cut (compiler log: 'More than one subgraph is not supported')"
_INT8 = ("int8", "uint8")
_FLOAT = ("float32", "float16", "bfloat16", "float64")
_CODES = {k: v for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


@dataclass(frozen=True)
class OpSupport:
    """One row of Coral's supported-operations table, with edgex's version limit and check."""

    name: str                 # TFLite builtin name, as in the compiler log
    coral_name: str           # the name in Coral's table
    min_runtime: int          # first Edge TPU runtime that maps it (10 = "All")
    constraints: str          # Coral's known limitations, restated
    max_version: int          # edgex table: newest TFLite op version compiler 16.0 reads (see module doc)
    check: Callable | None = field(default=None, repr=False, compare=False)


def _row(name, coral, runtime, constraints, max_version, check=None) -> tuple[str, OpSupport]:
    return name, OpSupport(name, coral, runtime, constraints, max_version, check)


# Coral's Table 1 (SUPPORTS_PAGE), keyed by TFLite builtin name; max_version: edgex, see the module doc.
EDGETPU_OPS: dict[str, OpSupport] = dict([
    _row("ADD", "Add", ALL, "", 3),
    _row("AVERAGE_POOL_2D", "AveragePool2d", ALL, "No fused activation function.", 3, checks.no_fused_activation),
    _row("CONCATENATION", "Concatenation", ALL,
         "No fused activation function. A compile-time constant input is allowed only with exactly 2 inputs "
         "and an all-zeros constant (a zero-padding op).", 3, checks.concatenation),
    _row("CONV_2D", "Conv2d", ALL, "Same dilation in x and y.", 5, checks.same_dilation),
    _row("DEPTHWISE_CONV_2D", "DepthwiseConv2d", ALL,
         "Runtime <= 12: no dilated kernels; 13+: same dilation in x and y.", 6, checks.same_dilation),
    _row("EXPAND_DIMS", "ExpandDims", 13, "", 1),
    _row("FULLY_CONNECTED", "FullyConnected", ALL,
         "Only the default weights format. The output tensor is one-dimensional.", 9, checks.fully_connected),
    _row("L2_NORMALIZATION", "L2Normalization", ALL, "", 2),
    _row("LOGISTIC", "Logistic", ALL, "", 3),
    _row("LSTM", "LSTM", 14, "Unidirectional LSTM only.", 4),
    _row("UNIDIRECTIONAL_SEQUENCE_LSTM", "LSTM", 14, "Unidirectional LSTM only.", 3),
    _row("MAXIMUM", "Maximum", ALL, "", 4),
    _row("MAX_POOL_2D", "MaxPool2d", ALL, "No fused activation function.", 3, checks.no_fused_activation),
    _row("MEAN", "Mean", ALL,
         "No reduction over the batch dimension. Runtime <= 12: x/y reductions only; 13+: a z reduction "
         "needs z a multiple of 4.", 3, checks.mean),
    _row("MINIMUM", "Minimum", ALL, "", 4),
    _row("MUL", "Mul", ALL, "", 4),
    _row("PACK", "Pack", 13, "No packing in the batch dimension.", 3, checks.pack),
    _row("PAD", "Pad", ALL, "No padding of the batch dimension. Runtime <= 12: x/y padding only.", 3, checks.pad),
    _row("PRELU", "PReLU", 13,
         "Alpha is 1-dimensional (only the innermost dimension > 1); Keras PReLU on 4-D input needs "
         "shared_axes=[1, 2].", 1, checks.prelu),
    _row("QUANTIZE", "Quantize", 13, "", 2),
    _row("REDUCE_MAX", "ReduceMax", 14, "Not over the batch dimension.", 3, checks.reduce_no_batch),
    _row("REDUCE_MIN", "ReduceMin", 14, "Not over the batch dimension.", 3, checks.reduce_no_batch),
    _row("RELU", "ReLU", ALL, "", 3),
    _row("RELU6", "ReLU6", ALL, "", 3),
    _row("RELU_N1_TO_1", "ReLUN1To1", ALL, "", 1),
    _row("RESHAPE", "Reshape", ALL, "Certain reshapes of large tensors may not be mapped.", 1),
    _row("RESIZE_BILINEAR", "ResizeBilinear", ALL,
         "3-D input/output. Depending on the sizes the compiler may keep it on the CPU to avoid precision "
         "loss.", 4, checks.resize),
    _row("RESIZE_NEAREST_NEIGHBOR", "ResizeNearestNeighbor", ALL,
         "3-D input/output. Depending on the sizes the compiler may keep it on the CPU to avoid precision "
         "loss.", 4, checks.resize),
    _row("SLICE", "Slice", ALL, "", 5),
    _row("SOFTMAX", "Softmax", ALL, "1-D input of at most 16,000 elements.", 3, checks.softmax),
    _row("SPACE_TO_DEPTH", "SpaceToDepth", ALL, "", 2),
    _row("SPLIT", "Split", ALL, "No splitting of the batch dimension.", 4, checks.split),
    _row("SQUEEZE", "Squeeze", ALL, "Runtime <= 12: only leading 1s (no relayout); 13+: no limitation.", 2,
         checks.squeeze),
    _row("STRIDED_SLICE", "StridedSlice", ALL,
         "All strides 1 (effectively a slice); ellipsis mask and new-axis mask 0.", 5, checks.strided_slice),
    _row("SUB", "Sub", ALL, "", 5),
    _row("SUM", "Sum", 13, "Not over the batch dimension.", 2, checks.reduce_no_batch),
    _row("TANH", "Tanh", ALL, "", 3),
    _row("TRANSPOSE", "Transpose", 14, "Mapped from compiler 16.0 / runtime 14.", 5),
    _row("TRANSPOSE_CONV", "TransposeConv", 13, "", 3),
])

MAX_OP_VERSION: dict[str, int] = {name: row.max_version for name, row in EDGETPU_OPS.items()}


@dataclass(frozen=True)
class OpPlacement:
    """Where one op runs, and why."""

    index: int
    name: str
    version: int
    macs: int
    placement: str        # "tpu" or "cpu"
    status: str           # "Mapped to Edge TPU", or why not (compiler-log wording where it has one)
    unsupported: str | None = None   # the op's own reason, even after the cut


@dataclass(frozen=True)
class Mapping:
    """The static mapping of a graph onto the Edge TPU (edgex's estimate of the compiler's)."""

    runtime_version: int
    compiler_version: str
    ops: tuple[OpPlacement, ...]
    cut_index: int | None
    cut_reason: str | None

    @property
    def tpu_ops(self) -> list[OpPlacement]:
        return [o for o in self.ops if o.placement == "tpu"]

    @property
    def cpu_ops(self) -> list[OpPlacement]:
        return [o for o in self.ops if o.placement == "cpu"]

    @property
    def cut_op(self) -> str | None:
        return None if self.cut_index is None else self.ops[self.cut_index].name

    def summary(self) -> str:
        """One line: how many ops on each side, and where the cut is."""
        head = (f"Edge TPU mapping (edgex op table, runtime {self.runtime_version}, "
                f"compiler {self.compiler_version})")
        if self.cut_index is None:
            return f"{head}: all {len(self.ops)} ops on the Edge TPU ({_names(self.tpu_ops)}); no cut"
        tpu = (f"ops 0-{self.cut_index - 1} on the Edge TPU ({_names(self.tpu_ops)})" if self.tpu_ops
               else "no op on the Edge TPU")
        return (f"{head}: cut at op {self.cut_index} {self.cut_op} ({self.cut_reason}); {tpu}; "
                f"ops {self.cut_index}-{len(self.ops) - 1} fall back to the CPU ({_names(self.cpu_ops)})")

    def to_dict(self) -> dict:
        return {"runtime_version": self.runtime_version, "compiler_version": self.compiler_version,
                "source": f"edgex op table from Coral's supported operations ({SUPPORTS_PAGE}); the compiler's "
                          "log is authoritative",
                "cut_index": self.cut_index, "cut_op": self.cut_op, "cut_reason": self.cut_reason,
                "tpu_ops": len(self.tpu_ops), "cpu_ops": len(self.cpu_ops),
                "ops": [asdict(o) for o in self.ops]}


def _names(ops) -> str:
    counts: dict[str, int] = {}
    for o in ops:
        counts[o.name] = counts.get(o.name, 0) + 1
    return ", ".join(f"{n} x{c}" if c > 1 else n for n, c in counts.items()) or "none"


def _rank_problem(op: OpInfo, graph: Graph) -> str | None:
    for i in (*op.inputs, *op.outputs):
        if i < 0 or graph.tensors[i].is_constant:
            continue
        shape = graph.tensors[i].shape
        if len(shape) > 3 and any(d > 1 for d in shape[:-3]):
            return (f"tensor {graph.tensors[i].name!r} {checks.fmt_shape(shape)}: only the 3 innermost dimensions may "
                    "exceed 1 (compiler: 'Tensor has unsupported rank')")
    return None


def op_problem(op: OpInfo, graph: Graph, runtime_version: int, facts: ModelFacts | None = None) -> str | None:
    """Return why the Edge TPU would not run `op` (compiler-log wording where it has one), or None.

    Args:
        op: the op.
        graph: its graph.
        runtime_version: the Edge TPU runtime the model is compiled for (`-m`).
        facts: options and constants of the model, or None to skip the checks that need them.
    """
    if op.is_custom:
        return f"custom op {op.name.split(':', 1)[1]!r} (the compiler cannot read it)"
    code = _CODES.get(op.name)
    if code is None and op.name.startswith("BUILTIN_") and op.name[8:].isdigit():
        code = int(op.name[8:])  # a builtin the installed schema does not name: newer still
    if code is not None and code > COMPILER_MAX_BUILTIN_CODE:
        return (f"builtin op code {code} is newer than compiler {COMPILER_VERSION} knows; it rejects the whole "
                "model ('Op builtin_code out of range')")
    row = EDGETPU_OPS.get(op.name)
    if row is None:
        return "Operation not supported: not in Coral's supported operations"
    if runtime_version < row.min_runtime:
        return f"needs Edge TPU runtime {row.min_runtime}+ (the profile compiles for {runtime_version})"
    if op.version > row.max_version:
        return (f"Operation version not supported: v{op.version} is newer than compiler {COMPILER_VERSION} reads "
                f"(max v{row.max_version}, edgex table); the compiler may reject the whole model")
    if op.compute_dtype not in _INT8:
        return f"Operation is working on an unsupported data type ({op.compute_dtype})"
    reason = _rank_problem(op, graph)
    if reason is None and row.check is not None:
        reason = row.check(op, graph, facts, runtime_version)
    return reason


def map_graph(graph: Graph, runtime_version: int, facts: ModelFacts | None = None,
              compiler_version: str = COMPILER_VERSION) -> Mapping:
    """Map each op onto the Edge TPU or the CPU, in execution order, cutting at the first unsupported op.

    Args:
        graph: the int8 model's graph.
        runtime_version: the Edge TPU runtime version compiled for.
        facts: `ModelFacts` of the same model, or None (option/constant checks skipped).
        compiler_version: recorded in the mapping.

    Returns:
        The `Mapping`: every op with its placement and status, the cut index and its reason.
    """
    placements, cut, cut_reason = [], None, None
    for op in graph.ops:
        reason = op_problem(op, graph, runtime_version, facts)
        if cut is None and reason is not None:
            cut, cut_reason = op.index, reason
        if cut is None:
            placement, status = "tpu", MAPPED
        elif op.index == cut:
            placement, status = "cpu", reason
        else:
            placement, status = "cpu", reason or AFTER_CUT
        placements.append(OpPlacement(op.index, op.name, op.version, op.macs, placement, status, reason))
    return Mapping(runtime_version, compiler_version, tuple(placements), cut, cut_reason)
