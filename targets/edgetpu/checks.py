"""The Edge TPU's per-op limitations as check functions, and the model facts they read.

Each check takes the op, the graph, the `ModelFacts` of the flatbuffer (or None) and the
target runtime version, and returns the reason the op cannot be mapped, or None. The
limitations restate Coral's supported-operations table (see targets/edgetpu/ops.py,
whose `EDGETPU_OPS` names a check per op).

Example:
    >>> graph = Graph.from_bytes(tiny_tflite)
    >>> op = graph.ops[-1]                                       # SOFTMAX over 10 classes
    >>> op.name, softmax(op, graph, ModelFacts(tiny_tflite), 14)
    ('SOFTMAX', None)
    >>> ModelFacts(tiny_tflite).options(0).StrideW()            # the CONV_2D's builtin options
    1
"""
from __future__ import annotations

import math

import numpy as np
import tflite

from exporter.analysis.graph import Graph, OpInfo

_OPTION_CLASSES = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_") and k != "NONE"}
_ACTIVATIONS = {v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")}
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


# --- check helpers: each returns a reason the op is not mapped, or None -------------------------

def _shape(graph: Graph, index: int) -> tuple[int, ...]:
    return graph.tensors[index].shape if index >= 0 else ()


def _only_innermost(shape: tuple[int, ...], n: int = 1) -> bool:
    return all(d == 1 for d in shape[: max(len(shape) - n, 0)])


def fmt_shape(shape) -> str:
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


def no_fused_activation(op, graph, facts, runtime) -> str | None:
    opts = facts.options(op.index) if facts else None
    act = getattr(opts, "FusedActivationFunction", lambda: 0)() if opts is not None else 0
    return f"has a fused {_ACTIVATIONS.get(act, act)} activation (Coral: no fused activation)" if act else None


def same_dilation(op, graph, facts, runtime) -> str | None:
    opts = facts.options(op.index) if facts else None
    if opts is None:
        return None
    h, w = opts.DilationHFactor(), opts.DilationWFactor()
    if op.name == "DEPTHWISE_CONV_2D" and runtime <= 12 and (h > 1 or w > 1):
        return f"dilation {h}x{w}: runtime {runtime} maps no dilated depthwise kernels (13+ does)"
    return f"dilation {h} (y) != {w} (x): the same dilation is needed in x and y" if h != w else None


def concatenation(op, graph, facts, runtime) -> str | None:
    reason = no_fused_activation(op, graph, facts, runtime)
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


def fully_connected(op, graph, facts, runtime) -> str | None:
    opts = facts.options(op.index) if facts else None
    if opts is not None and opts.WeightsFormat() != tflite.FullyConnectedOptionsWeightsFormat.DEFAULT:
        return "weights in a shuffled format: only the default format is mapped"
    out = _shape(graph, op.outputs[0]) if op.outputs else ()
    return None if _only_innermost(out) else f"output {fmt_shape(out)} is not one-dimensional"


def reduce_no_batch(op, graph, facts, runtime) -> str | None:
    axes = _axes(op, graph, facts)
    return f"reduces over the batch dimension (axes {axes})" if axes and 0 in axes else None


def mean(op, graph, facts, runtime) -> str | None:
    reason = reduce_no_batch(op, graph, facts, runtime)
    axes = _axes(op, graph, facts)
    shape = _shape(graph, op.inputs[0])
    if reason or not axes or len(shape) != 4:
        return reason
    if runtime <= 12 and not set(axes) <= {1, 2}:
        return f"reduces axes {axes}: runtime {runtime} maps x/y reductions only (13+ also z)"
    if 3 in axes and shape[3] % 4:
        return f"reduces the z dimension of size {shape[3]}: it must be a multiple of 4"
    return None


def pack(op, graph, facts, runtime) -> str | None:
    opts = facts.options(op.index) if facts else None
    return "packs along the batch dimension" if opts is not None and opts.Axis() == 0 else None


def pad(op, graph, facts, runtime) -> str | None:
    pads = facts.const(op.inputs[1]) if facts and len(op.inputs) > 1 else None
    if pads is None or pads.ndim != 2:
        return None
    padded = [i for i, row in enumerate(pads) if np.any(row != 0)]
    if 0 in padded:
        return "pads the batch dimension"
    if runtime <= 12 and len(pads) == 4 and 3 in padded:
        return f"pads the z dimension: runtime {runtime} maps x/y padding only (13+ also z)"
    return None


def prelu(op, graph, facts, runtime) -> str | None:
    alpha = _shape(graph, op.inputs[1]) if len(op.inputs) > 1 else ()
    return None if _only_innermost(alpha) else (
        f"alpha {fmt_shape(alpha)} is not 1-dimensional (Keras PReLU needs shared_axes=[1, 2])")


def softmax(op, graph, facts, runtime) -> str | None:
    shape = _shape(graph, op.inputs[0])
    if not _only_innermost(shape):
        return f"input {fmt_shape(shape)} is not a 1-D tensor"
    n = shape[-1] if shape else 1
    return f"{n:,} elements: at most 16,000 are mapped" if n > 16000 else None


def split(op, graph, facts, runtime) -> str | None:
    axes = _axes(op, graph, facts, position=0)
    return "splits the batch dimension" if axes and 0 in axes else None


def squeeze(op, graph, facts, runtime) -> str | None:
    if runtime > 12:
        return None
    shape = _shape(graph, op.inputs[0])
    inner = [d for d in shape if d != 1]
    leading = list(shape[len(shape) - len(inner):]) == inner
    return None if leading else f"input {fmt_shape(shape)} needs a relayout: runtime {runtime} squeezes leading 1s only"


def strided_slice(op, graph, facts, runtime) -> str | None:
    opts = facts.options(op.index) if facts else None
    if opts is not None and (opts.EllipsisMask() or opts.NewAxisMask()):
        return "ellipsis or new-axis mask set: only masks of 0 are mapped"
    strides = facts.const(op.inputs[3]) if facts and len(op.inputs) > 3 else None
    if strides is not None and np.any(strides != 1):
        return f"strides {np.ravel(strides).tolist()}: only strides of 1 are mapped"
    return None


def resize(op, graph, facts, runtime) -> str | None:
    return None  # 3-D I/O holds with batch 1; the precision-driven refusals are the compiler's call
