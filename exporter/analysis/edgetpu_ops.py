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
`ModelFacts` (builtin options and small constant tensors read with the `tflite` package);
without facts the checks that need options or constants are skipped.

Example:
    >>> m = map_graph(graph, runtime_version=14, facts=ModelFacts(tflite_bytes))
    >>> m.cut_index, [o.name for o in m.cpu_ops]
    (2, ['LEAKY_RELU', 'CONV_2D', 'MEAN', 'FULLY_CONNECTED', 'SOFTMAX', 'QUANTIZE'])
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import tflite

from exporter.analysis.graph import Graph, OpInfo

COMPILER_VERSION = "16.0"
COMPILER_MAX_BUILTIN_CODE = 139  # tflite.BuiltinOperator.HASHTABLE_SIZE, the last op TFLite 2.5 knows
SUPPORTS_PAGE = "https://coral.ai/docs/edgetpu/models-intro/#supported-operations"
ALL = 10  # "All" runtime versions in Coral's table
MAPPED = "Mapped to Edge TPU"
AFTER_CUT = "after the cut (compiler log: 'More than one subgraph is not supported')"
_INT8 = ("int8", "uint8")
_FLOAT = ("float32", "float16", "bfloat16", "float64")
_OPTION_CLASSES = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_") and k != "NONE"}
_ACTIVATIONS = {v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")}
_CODES = {k: v for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_NP = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
       "float32": np.float32}


class ModelFacts:
    """Builtin options, constant tensors and shape signatures of subgraph 0, read from the flatbuffer.

    Args:
        data: the `.tflite` bytes (already validated by `Graph.from_bytes`).
    """

    def __init__(self, data: bytes):
        self._data = bytes(data)
        model = tflite.Model.GetRootAs(self._data, 0)
        self._model = model
        self._sg = model.Subgraphs(0)
        self.shape_signatures: dict[int, tuple[int, ...]] = {}
        for i in range(self._sg.TensorsLength()):
            t = self._sg.Tensors(i)
            sig = t.ShapeSignatureAsNumpy() if t.ShapeSignatureLength() else t.ShapeAsNumpy()
            self.shape_signatures[i] = () if isinstance(sig, int) else tuple(int(d) for d in sig)

    def options(self, op_index: int):
        """Return the op's builtin options object (e.g. `tflite.Conv2DOptions`), or None."""
        op = self._sg.Operators(op_index)
        name = _OPTION_CLASSES.get(op.BuiltinOptionsType())
        table = op.BuiltinOptions()
        if name is None or table is None or not hasattr(tflite, name):
            return None
        opts = getattr(tflite, name)()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def const(self, tensor_index: int, max_elems: int = 4096) -> np.ndarray | None:
        """Return a constant tensor's values (small integer/float tensors only), or None."""
        if tensor_index < 0:
            return None
        t = self._sg.Tensors(tensor_index)
        buf = self._model.Buffers(t.Buffer())
        dtype = {v: k.lower() for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}.get(t.Type())
        if buf is None or dtype not in _NP:
            return None
        if buf.Offset() > 1:
            raw = self._data[buf.Offset(): buf.Offset() + buf.Size()]
        else:
            arr = buf.DataAsNumpy()
            if isinstance(arr, int):
                return None
            raw = arr.tobytes()
        values = np.frombuffer(raw, dtype=_NP[dtype])
        if values.size == 0 or values.size > max_elems:
            return None
        shape = tuple(int(d) for d in (t.ShapeAsNumpy() if t.ShapeLength() else ()))
        return values.reshape(shape) if math.prod(shape) == values.size else values

    def dynamic_tensors(self, graph: Graph) -> list[str]:
        """Names of tensors whose shape signature has a -1 (a dynamic size)."""
        return [f"{graph.tensors[i].name!r} {list(sig)}" for i, sig in self.shape_signatures.items()
                if any(d < 0 for d in sig)]


@dataclass(frozen=True)
class OpSupport:
    """One row of Coral's supported-operations table, with edgex's version limit and check."""

    name: str                 # TFLite builtin name, as in the compiler log
    coral_name: str           # the name in Coral's table
    min_runtime: int          # first Edge TPU runtime that maps it (10 = "All")
    constraints: str          # Coral's known limitations, restated
    max_version: int          # edgex table: newest TFLite op version compiler 16.0 reads (see module doc)
    check: Callable | None = field(default=None, repr=False, compare=False)


# --- check helpers: each returns a reason the op is not mapped, or None -------------------------

def _shape(graph: Graph, index: int) -> tuple[int, ...]:
    return graph.tensors[index].shape if index >= 0 else ()


def _only_innermost(shape: tuple[int, ...], n: int = 1) -> bool:
    return all(d == 1 for d in shape[: max(len(shape) - n, 0)])


def _fmt(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _axes(op: OpInfo, graph: Graph, facts, position: int = 1) -> list[int] | None:
    """The (non-negative) axes held in a constant input of the op, or None when unknown."""
    if facts is None or len(op.inputs) <= position:
        return None
    values = facts.const(op.inputs[position])
    if values is None:
        return None
    rank = len(_shape(graph, op.inputs[0]))
    return sorted({int(a) % rank if rank else int(a) for a in np.ravel(values)})


def _no_fused_activation(op, graph, facts, runtime) -> str | None:
    opts = facts.options(op.index) if facts else None
    act = getattr(opts, "FusedActivationFunction", lambda: 0)() if opts is not None else 0
    return f"has a fused {_ACTIVATIONS.get(act, act)} activation (Coral: no fused activation)" if act else None


def _same_dilation(op, graph, facts, runtime) -> str | None:
    opts = facts.options(op.index) if facts else None
    if opts is None:
        return None
    h, w = opts.DilationHFactor(), opts.DilationWFactor()
    if op.name == "DEPTHWISE_CONV_2D" and runtime <= 12 and (h > 1 or w > 1):
        return f"dilation {h}x{w}: runtime {runtime} maps no dilated depthwise kernels (13+ does)"
    return f"dilation {h} (y) != {w} (x): the same dilation is needed in x and y" if h != w else None


def _concatenation(op, graph, facts, runtime) -> str | None:
    reason = _no_fused_activation(op, graph, facts, runtime)
    if reason:
        return reason
    consts = [i for i in op.inputs if i >= 0 and graph.tensors[i].is_constant]
    if not consts:
        return None
    if len(op.inputs) != 2:
        return f"{len(op.inputs)} inputs with a constant one: only 2 inputs, the constant all zeros, are mapped"
    values = facts.const(consts[0], max_elems=1 << 20) if facts else None
    zero_points = (graph.tensors[consts[0]].quantization or {}).get("zero_point") or [0]
    if values is not None and np.any(values != zero_points[0]):
        return "a constant input that is not all zeros (only zero-padding concatenations are mapped)"
    return None


def _fully_connected(op, graph, facts, runtime) -> str | None:
    opts = facts.options(op.index) if facts else None
    if opts is not None and opts.WeightsFormat() != tflite.FullyConnectedOptionsWeightsFormat.DEFAULT:
        return "weights in a shuffled format: only the default format is mapped"
    out = _shape(graph, op.outputs[0]) if op.outputs else ()
    return None if _only_innermost(out) else f"output {_fmt(out)} is not one-dimensional"


def _reduce_no_batch(op, graph, facts, runtime) -> str | None:
    axes = _axes(op, graph, facts)
    return f"reduces over the batch dimension (axes {axes})" if axes and 0 in axes else None


def _mean(op, graph, facts, runtime) -> str | None:
    reason = _reduce_no_batch(op, graph, facts, runtime)
    axes = _axes(op, graph, facts)
    shape = _shape(graph, op.inputs[0])
    if reason or not axes or len(shape) != 4:
        return reason
    if runtime <= 12 and not set(axes) <= {1, 2}:
        return f"reduces axes {axes}: runtime {runtime} maps x/y reductions only (13+ also z)"
    if 3 in axes and shape[3] % 4:
        return f"reduces the z dimension of size {shape[3]}: it must be a multiple of 4"
    return None


def _pack(op, graph, facts, runtime) -> str | None:
    opts = facts.options(op.index) if facts else None
    return "packs along the batch dimension" if opts is not None and opts.Axis() == 0 else None


def _pad(op, graph, facts, runtime) -> str | None:
    pads = facts.const(op.inputs[1]) if facts and len(op.inputs) > 1 else None
    if pads is None or pads.ndim != 2:
        return None
    padded = [i for i, row in enumerate(pads) if np.any(row != 0)]
    if 0 in padded:
        return "pads the batch dimension"
    if runtime <= 12 and len(pads) == 4 and 3 in padded:
        return f"pads the z dimension: runtime {runtime} maps x/y padding only (13+ also z)"
    return None


def _prelu(op, graph, facts, runtime) -> str | None:
    alpha = _shape(graph, op.inputs[1]) if len(op.inputs) > 1 else ()
    return None if _only_innermost(alpha) else (
        f"alpha {_fmt(alpha)} is not 1-dimensional (Keras PReLU needs shared_axes=[1, 2])")


def _softmax(op, graph, facts, runtime) -> str | None:
    shape = _shape(graph, op.inputs[0])
    if not _only_innermost(shape):
        return f"input {_fmt(shape)} is not a 1-D tensor"
    n = shape[-1] if shape else 1
    return f"{n:,} elements: at most 16,000 are mapped" if n > 16000 else None


def _split(op, graph, facts, runtime) -> str | None:
    axes = _axes(op, graph, facts, position=0)
    return "splits the batch dimension" if axes and 0 in axes else None


def _squeeze(op, graph, facts, runtime) -> str | None:
    if runtime > 12:
        return None
    shape = _shape(graph, op.inputs[0])
    inner = [d for d in shape if d != 1]
    leading = list(shape[len(shape) - len(inner):]) == inner
    return None if leading else f"input {_fmt(shape)} needs a relayout: runtime {runtime} squeezes leading 1s only"


def _strided_slice(op, graph, facts, runtime) -> str | None:
    opts = facts.options(op.index) if facts else None
    if opts is not None and (opts.EllipsisMask() or opts.NewAxisMask()):
        return "ellipsis or new-axis mask set: only masks of 0 are mapped"
    strides = facts.const(op.inputs[3]) if facts and len(op.inputs) > 3 else None
    if strides is not None and np.any(strides != 1):
        return f"strides {np.ravel(strides).tolist()}: only strides of 1 are mapped"
    return None


def _resize(op, graph, facts, runtime) -> str | None:
    return None  # 3-D I/O holds with batch 1; the precision-driven refusals are the compiler's call


def _row(name, coral, runtime, constraints, max_version, check=None) -> tuple[str, OpSupport]:
    return name, OpSupport(name, coral, runtime, constraints, max_version, check)


# Coral's Table 1 (SUPPORTS_PAGE), keyed by TFLite builtin name; max_version: edgex, see the module doc.
EDGETPU_OPS: dict[str, OpSupport] = dict([
    _row("ADD", "Add", ALL, "", 3),
    _row("AVERAGE_POOL_2D", "AveragePool2d", ALL, "No fused activation function.", 3, _no_fused_activation),
    _row("CONCATENATION", "Concatenation", ALL,
         "No fused activation function. A compile-time constant input is allowed only with exactly 2 inputs "
         "and an all-zeros constant (a zero-padding op).", 3, _concatenation),
    _row("CONV_2D", "Conv2d", ALL, "Same dilation in x and y.", 5, _same_dilation),
    _row("DEPTHWISE_CONV_2D", "DepthwiseConv2d", ALL,
         "Runtime <= 12: no dilated kernels; 13+: same dilation in x and y.", 6, _same_dilation),
    _row("EXPAND_DIMS", "ExpandDims", 13, "", 1),
    _row("FULLY_CONNECTED", "FullyConnected", ALL,
         "Only the default weights format. The output tensor is one-dimensional.", 9, _fully_connected),
    _row("L2_NORMALIZATION", "L2Normalization", ALL, "", 2),
    _row("LOGISTIC", "Logistic", ALL, "", 3),
    _row("LSTM", "LSTM", 14, "Unidirectional LSTM only.", 4),
    _row("UNIDIRECTIONAL_SEQUENCE_LSTM", "LSTM", 14, "Unidirectional LSTM only.", 3),
    _row("MAXIMUM", "Maximum", ALL, "", 4),
    _row("MAX_POOL_2D", "MaxPool2d", ALL, "No fused activation function.", 3, _no_fused_activation),
    _row("MEAN", "Mean", ALL,
         "No reduction over the batch dimension. Runtime <= 12: x/y reductions only; 13+: a z reduction "
         "needs z a multiple of 4.", 3, _mean),
    _row("MINIMUM", "Minimum", ALL, "", 4),
    _row("MUL", "Mul", ALL, "", 4),
    _row("PACK", "Pack", 13, "No packing in the batch dimension.", 3, _pack),
    _row("PAD", "Pad", ALL, "No padding of the batch dimension. Runtime <= 12: x/y padding only.", 3, _pad),
    _row("PRELU", "PReLU", 13,
         "Alpha is 1-dimensional (only the innermost dimension > 1); Keras PReLU on 4-D input needs "
         "shared_axes=[1, 2].", 1, _prelu),
    _row("QUANTIZE", "Quantize", 13, "", 2),
    _row("REDUCE_MAX", "ReduceMax", 14, "Not over the batch dimension.", 3, _reduce_no_batch),
    _row("REDUCE_MIN", "ReduceMin", 14, "Not over the batch dimension.", 3, _reduce_no_batch),
    _row("RELU", "ReLU", ALL, "", 3),
    _row("RELU6", "ReLU6", ALL, "", 3),
    _row("RELU_N1_TO_1", "ReLUN1To1", ALL, "", 1),
    _row("RESHAPE", "Reshape", ALL, "Certain reshapes of large tensors may not be mapped.", 1),
    _row("RESIZE_BILINEAR", "ResizeBilinear", ALL,
         "3-D input/output. Depending on the sizes the compiler may keep it on the CPU to avoid precision "
         "loss.", 4, _resize),
    _row("RESIZE_NEAREST_NEIGHBOR", "ResizeNearestNeighbor", ALL,
         "3-D input/output. Depending on the sizes the compiler may keep it on the CPU to avoid precision "
         "loss.", 4, _resize),
    _row("SLICE", "Slice", ALL, "", 5),
    _row("SOFTMAX", "Softmax", ALL, "1-D input of at most 16,000 elements.", 3, _softmax),
    _row("SPACE_TO_DEPTH", "SpaceToDepth", ALL, "", 2),
    _row("SPLIT", "Split", ALL, "No splitting of the batch dimension.", 4, _split),
    _row("SQUEEZE", "Squeeze", ALL, "Runtime <= 12: only leading 1s (no relayout); 13+: no limitation.", 2,
         _squeeze),
    _row("STRIDED_SLICE", "StridedSlice", ALL,
         "All strides 1 (effectively a slice); ellipsis mask and new-axis mask 0.", 5, _strided_slice),
    _row("SUB", "Sub", ALL, "", 5),
    _row("SUM", "Sum", 13, "Not over the batch dimension.", 2, _reduce_no_batch),
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
            return (f"tensor {graph.tensors[i].name!r} {_fmt(shape)}: only the 3 innermost dimensions may "
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
