"""Multiply-accumulates of one TFLite op, from its tensors' shapes (exporter/analysis/graph.py uses it).

MAC convention (`out_elems` = elements of the op's first output):

- CONV_2D: out_elems * kh * kw * in_c (filter `[out_c, kh, kw, in_c/groups]`)
- DEPTHWISE_CONV_2D: out_elems * kh * kw
- FULLY_CONNECTED: out_elems * in_features (weights `[units, in_features]`)
- BATCH_MATMUL: out_elems * K (K = contracted dimension of the lhs)
- TRANSPOSE_CONV: input_elems * kh * kw * out_c
- AVERAGE_POOL_2D, MAX_POOL_2D: out_elems * filter_h * filter_w
- ADD, SUB, MUL, DIV, SQUARED_DIFFERENCE: out_elems
- everything else: 0

An op of the first groups whose input or output shape still holds a `-1` (a dynamic size no input
shape has fixed) has unknown MACs: `op_macs` returns None, never a figure made from placeholders.

Example:
    >>> shapes = {0: (1, 8, 8, 1), 1: (4, 3, 3, 1), 2: (1, 6, 6, 4)}
    >>> op_macs("CONV_2D", None, [0, 1], [2], shapes.get)
    1296
    >>> op_macs("CONV_2D", None, [0, 1], [2], {**shapes, 2: (1, -1, -1, 4)}.get) is None
    True
    >>> op_macs("RESHAPE", None, [0], [2], {0: (1, -1, 4), 2: (-1, 4)}.get)   # no MACs whatever the size
    0
"""
from __future__ import annotations

import math

import tflite


def _prod(dims) -> int:
    return math.prod(max(int(d), 0) for d in dims)


def _options(op, cls):
    """Return the op's builtin options as `cls`, or None if it has others (or no op is given)."""
    table = op.BuiltinOptions() if op is not None else None
    if table is None or op.BuiltinOptionsType() != getattr(tflite.BuiltinOptions, cls.__name__):
        return None
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    return opts


def _batch_matmul(op, arg, out_elems):
    if len(arg(0)) < 2:
        return 0
    opts = _options(op, tflite.BatchMatMulOptions)
    return out_elems * arg(0)[-2 if opts is not None and opts.AdjX() else -1]


def _pool(op, arg, out_elems):
    opts = _options(op, tflite.Pool2DOptions)
    return out_elems * opts.FilterHeight() * opts.FilterWidth() if opts else 0


_ELEMENTWISE = lambda op, arg, out_elems: out_elems  # noqa: E731
_FORMULAS = {
    "CONV_2D": lambda op, arg, out_elems: out_elems * _prod(arg(1)[1:]) if len(arg(1)) == 4 else 0,
    "DEPTHWISE_CONV_2D": lambda op, arg, out_elems: out_elems * arg(1)[1] * arg(1)[2] if len(arg(1)) == 4 else 0,
    "FULLY_CONNECTED": lambda op, arg, out_elems: out_elems * arg(1)[-1] if arg(1) else 0,
    "BATCH_MATMUL": _batch_matmul,
    "TRANSPOSE_CONV": lambda op, arg, out_elems: _prod(arg(2)) * _prod(arg(1)[:3]) if len(arg(1)) == 4 else 0,
    "AVERAGE_POOL_2D": _pool,
    "MAX_POOL_2D": _pool,
    **dict.fromkeys(("ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE"), _ELEMENTWISE),
}
"""Op name -> f(op, arg, out_elems): the MACs, with `arg(k)` the shape of the op's k-th input."""


def op_macs(name: str, op, ins, outs, shape_of) -> int | None:
    """The multiply-accumulates of one op (see the module docstring).

    Args:
        name: the op's builtin name ("CONV_2D").
        op: its flatbuffer `tflite.Operator` (read for pool and batch-matmul options), or None.
        ins, outs: its input and output tensor indices (-1: an omitted optional input).
        shape_of: tensor index -> shape tuple (dims of -1 are unknown sizes).

    Returns:
        The MACs; None when they depend on a size still unknown (a -1 in an input or output shape).
    """
    formula = _FORMULAS.get(name)
    if formula is None:
        return 0
    shape = lambda i: shape_of(i) if i >= 0 else ()  # noqa: E731
    if any(d < 0 for i in (*ins, *outs) for d in shape(i)):
        return None
    arg = lambda k: shape(ins[k]) if len(ins) > k else ()  # noqa: E731
    return formula(op, arg, _prod(shape(outs[0])) if outs else 0)
