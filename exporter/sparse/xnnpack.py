"""Whether XNNPACK's sparse inference can run a sparse model, assessed from its documented conditions.

XNNPACK (LiteRT's default CPU delegate on android and linux) has sparse kernels for the CNNs of "Fast Sparse
ConvNets" (arXiv:1911.09723). Its delegate's README ("Sparse Inference", google-ai-edge/LiteRT
tflite/delegates/xnnpack/README.md) restricts them to float subgraphs (FP32; FP16 on ARM) that

- store their weights sparse, behind DENSIFY operators;
- start with a 3x3 stride-2 CONV_2D with 3 input channels (padding 1 on each side, no dilation);
- end with a MEAN over the spatial axes or a DEPTH_TO_SPACE;
- contain 1x1 CONV_2D operators whose filters are, all together, at least 2/3 zeros (besides 3x3/5x5 depthwise
  convolutions, ADD, MUL, MEAN, RESIZE_BILINEAR and unary elementwise ops).

`assess` checks these on the .tflite. Which kernels LiteRT really ran is not observable from its Python API, so
the result is an assessment, and says so. Where it does not apply, LiteRT expands the weights when it prepares
the model (DENSIFY), runs the dense kernels and keeps the dense weights in memory: only the stored size shrinks.

Example:
    >>> result = assess(tiny_tflite, "int8")
    >>> result["applies"], [c["condition"] for c in result["conditions"] if not c["met"]][:2]
    (False, ['float model', 'weights stored sparse behind DENSIFY'])
"""
from __future__ import annotations

import numpy as np
import tflite

from exporter.analysis.flatbuffer import buffer_size, vec
from exporter.analysis.graph import Graph
from exporter.sparse.tensors import sparse_tensors

MIN_ONE_BY_ONE_ZEROS = 2 / 3
SOURCE = "XNNPACK delegate README, 'Sparse Inference', google-ai-edge/LiteRT tflite/delegates/xnnpack/README.md"
BASIS = (f"assessed from the documented conditions, not observed (LiteRT does not report which kernels ran); "
         f"source: {SOURCE}")
_VALUES = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "int32": np.int32, "int64": np.int64}
_PASS_THROUGH = ("DENSIFY", "DEQUANTIZE")


class _Model:
    """The facts the conditions read: the parsed graph, the raw flatbuffer and its sparse tensors."""

    def __init__(self, data: bytes):
        self.data = data
        self.graph = Graph.from_bytes(data)
        self.root = tflite.Model.GetRootAs(data, 0)
        self.sparse = {t.index: t for t in sparse_tensors(data)}
        self.producer = {i: op for op in self.graph.ops for i in op.outputs}

    def values(self, index: int) -> np.ndarray | None:
        """A constant tensor's values (flat), or None for a non-constant or sparse one."""
        tensor = self.graph.tensors[index]
        if not tensor.is_constant or index in self.sparse or tensor.dtype not in _VALUES:
            return None
        sub = self.root.Subgraphs(0)
        buf = self.root.Buffers(sub.Tensors(index).Buffer())
        if buf.Offset() > 1:           # buffers after the flatbuffer (models over 2 GB)
            raw = self.data[buf.Offset():buf.Offset() + buffer_size(buf, self.data)]
        else:
            raw = bytes(vec(buf, "Data"))
        return np.frombuffer(raw, _VALUES[tensor.dtype])

    def source(self, index: int) -> int:
        """The tensor a DENSIFY or DEQUANTIZE chain starts from (the stored weights of a filter)."""
        while index in self.producer and self.producer[index].name in _PASS_THROUGH:
            index = self.producer[index].inputs[0]
        return index

    def zeros(self, index: int) -> tuple[int, int] | None:
        """(zeros, values) of a filter's stored weights, or None when they are not stored in the model."""
        source = self.source(index)
        if source in self.sparse:
            t = self.sparse[source]
            return t.elements - t.stored, t.elements       # a block encoding stores some zeros: a lower bound
        values = self.values(source)
        return None if values is None else (int(np.sum(values == 0)), int(values.size))

    def conv_options(self, op) -> tflite.Conv2DOptions | None:
        """A CONV_2D's options (strides, dilation)."""
        raw = self.root.Subgraphs(0).Operators(op.index)
        table = raw.BuiltinOptions()
        if table is None or raw.BuiltinOptionsType() != tflite.BuiltinOptions.Conv2DOptions:
            return None
        opts = tflite.Conv2DOptions()
        opts.Init(table.Bytes, table.Pos)
        return opts


def _filter_shape(model: _Model, op) -> tuple[int, ...]:
    """The (dense) shape of a convolution's filter, its input 1; () without one."""
    return model.graph.tensors[op.inputs[1]].shape if len(op.inputs) > 1 and op.inputs[1] >= 0 else ()


def _stem(model: _Model) -> str | None:
    """The first 3x3 stride-2 CONV_2D with 3 input channels and no dilation, named; None without one."""
    for op in model.graph.ops:
        shape, opts = _filter_shape(model, op), model.conv_options(op) if op.name == "CONV_2D" else None
        if opts is not None and len(shape) == 4 and shape[1:] == (3, 3, 3) and (opts.StrideH(), opts.StrideW()) == \
                (2, 2) and (opts.DilationHFactor(), opts.DilationWFactor()) == (1, 1):
            return f"op {op.index} CONV_2D 3x3 stride 2, 3 input channels"
    return None


def _end(model: _Model) -> str | None:
    """A MEAN over the spatial axes (1 and 2 of NHWC) or a DEPTH_TO_SPACE, named; None without one."""
    for op in model.graph.ops:
        if op.name == "DEPTH_TO_SPACE":
            return f"op {op.index} DEPTH_TO_SPACE"
        axes = model.values(op.inputs[1]) if op.name == "MEAN" and len(op.inputs) > 1 else None
        if axes is not None and {int(a) for a in axes} in ({1, 2}, {2}):
            return f"op {op.index} MEAN over axes {sorted(int(a) for a in axes)}"
    return None


def _one_by_one(model: _Model) -> tuple[float | None, int]:
    """The share of zeros over the filters of all 1x1 CONV_2D ops, and how many there are (None: no such op)."""
    zeros = values = count = 0
    for op in model.graph.ops:
        shape = _filter_shape(model, op) if op.name == "CONV_2D" else ()
        counted = model.zeros(op.inputs[1]) if len(shape) == 4 and shape[1:3] == (1, 1) else None
        if counted is not None:
            zeros, values, count = zeros + counted[0], values + counted[1], count + 1
    return (zeros / values if values else None), count


def _conditions(model: _Model, mode: str) -> list[dict]:
    """Each documented condition: whether it is met and what was found."""
    densified = sum(t.densified for t in model.sparse.values())
    stem, end = _stem(model), _end(model)
    share, count = _one_by_one(model)
    found = "no 1x1 CONV_2D" if share is None else f"{count} 1x1 CONV_2D, filters {share * 100:.1f} % zeros"

    def row(condition: str, met: bool, what: str) -> dict:
        """One condition's entry."""
        return {"condition": condition, "met": bool(met), "found": what}

    return [row("float model", mode in ("float32", "float16"), f"{mode} model (the sparse kernels are float: FP32, "
                                                                 "FP16 on ARM)"),
            row("weights stored sparse behind DENSIFY", densified, f"{densified} tensor(s) behind DENSIFY"),
            row("starts with a 3x3 stride-2 CONV_2D with 3 input channels", stem, stem or "none"),
            row("ends with a spatial MEAN or DEPTH_TO_SPACE", end, end or "none"),
            row("1x1 CONV_2D filters at least 2/3 zeros", share is not None and share >= MIN_ONE_BY_ONE_ZEROS, found)]


def assess(data: bytes, mode: str) -> dict:
    """Whether XNNPACK's sparse inference can run this model, from its documented conditions (module docstring).

    Args:
        data: the .tflite bytes (with sparse encoding).
        mode: its conversion mode ("float32", "float16", "int8", "dynamic").

    Returns:
        {"applies": bool, "basis": how this was found, "conditions": [{"condition", "met", "found"}],
         "consequence": what it means for the device}.
    """
    model = _Model(data)
    conditions = _conditions(model, mode)
    applies = all(c["met"] for c in conditions)
    return {"applies": applies, "basis": BASIS, "conditions": conditions,
            "consequence": _consequence(applies, list(model.sparse.values()))}


def _consequence(applies: bool, tensors: list) -> str:
    """What the assessment means on the device, in words."""
    if applies:
        return ("XNNPACK may run the 1x1 convolutions with its sparse kernels (when the app uses the XNNPACK delegate, "
                "LiteRT's default on CPU); the stored size shrinks too")
    read = [t for t in tensors if not t.densified]
    expanded = ("LiteRT expands the sparse weights when it prepares the model (DENSIFY) and runs the dense kernels, "
                "keeping the dense weights in memory: only the stored size shrinks")
    if not read:
        return expanded
    blocks = ", ".join(sorted({t.encoding for t in read}))
    return (f"{len(read)} tensor(s) ({blocks}) are read sparse by the op using them (TFLite's sparse "
            f"FULLY_CONNECTED kernels); for the {len(tensors) - len(read)} other(s), {expanded}")
