"""Static analysis of a `.tflite` flatbuffer: ops, tensors, MACs and memory.

The model is read with the `tflite` package (the flatbuffer schema bindings);
TensorFlow is never imported, so this module loads fast. Only the main
subgraph (index 0) is analysed; `Graph.subgraph_count` counts them all.
Lengths, buffers and every name are checked first (exporter/analysis/flatbuffer.py):
a name that is not UTF-8 makes the file "not a valid TFLite model" (exit 2).

MACs (multiply-accumulates) per op follow exporter/analysis/macs.py, from the tensors' shapes.

Dynamic sizes: each tensor keeps its `shape_signature` (-1 for a size fixed only at run time).
A dynamic batch (dim 0 of an input of rank 2 or more, the only dynamic dim) is taken as 1, the
batch edgex runs. Any other dynamic input dim leaves every tensor whose signature has a -1 with
that -1 in its `shape` (unknown) unless `shapes` fixes it: such ops have `macs` None, and
`total_macs` and `peak_activation_bytes` are None; nothing is computed from the flatbuffer's
placeholder sizes. `Graph.from_bytes(data, shapes=...)` takes the shapes of every tensor at one
input shape (exporter/input_shapes.py gets them from the LiteRT interpreter).

`Graph.peak_activation_bytes` is a liveness bound: a non-constant tensor is live
from the op that produces it (graph inputs from step 0) to the last op that
consumes it (graph outputs to the end); variable tensors are live throughout.
The peak is the largest sum of live tensor bytes over the op steps. It is what
a simple arena planner without in-place reuse needs; TFLite's own planner can
need less.

Example:
    >>> _ = Path("model.tflite").write_bytes(tiny_tflite)
    >>> g = Graph.from_file("model.tflite")
    >>> g.op_counts()
    {'CONV_2D': 1, 'DEPTHWISE_CONV_2D': 1, 'MAX_POOL_2D': 1, 'RESHAPE': 1, 'FULLY_CONNECTED': 1, 'SOFTMAX': 1}
    >>> g.total_macs, g.weight_bytes, g.peak_activation_bytes
    (2096, 272, 208)
    >>> g.input_details()[0].shape, g.input_details()[0].dtype
    ((1, 8, 8, 1), 'int8')
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import os
from dataclasses import dataclass, field

import tflite

from exporter.analysis.flatbuffer import buffer_size as _buffer_size
from exporter.analysis.flatbuffer import check_len as _check_len
from exporter.analysis.flatbuffer import builtin_code, check_strings, text
from exporter.analysis.flatbuffer import invalid as _invalid
from exporter.analysis.flatbuffer import vec as _vec
from exporter.analysis.macs import op_macs
from exporter.errors import ModelFileError

_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items()
             if not k.startswith("_") and isinstance(v, int)}
_DTYPES = {v: k.lower() for k, v in vars(tflite.TensorType).items()
           if not k.startswith("_") and isinstance(v, int)}
_BITS = {"float32": 32, "float16": 16, "bfloat16": 16, "float64": 64, "int4": 4,
         "int8": 8, "uint8": 8, "bool": 8, "int16": 16, "uint16": 16, "int32": 32,
         "uint32": 32, "int64": 64, "uint64": 64, "complex64": 64, "complex128": 128}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the main subgraph.

    `dtype` is a numpy-style name ("float32", "int8", ...); `is_constant` means
    backed by a non-empty buffer (weights); `quantization` is
    `{"scale": [...], "zero_point": [...], "quantized_dimension": int}` or None.
    `shape_signature` has -1 for sizes fixed only at run time (the `shape` when the file has none);
    a -1 left in `shape` is a size no input shape has fixed (see the module docstring).
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    is_constant: bool
    quantization: dict | None = field(default=None, hash=False)
    is_variable: bool = False
    shape_signature: tuple[int, ...] = ()


@dataclass(frozen=True)
class OpInfo:
    """One operator of the main subgraph, in execution order.

    `name` is the builtin name ("CONV_2D") or "CUSTOM:<custom_code>";
    `compute_dtype` is the dtype of the first non-constant input, or "hybrid"
    for float activations with int8/uint8/int4 weights. Input index -1 marks an
    omitted optional input. `macs` is None while it depends on an unknown size.
    """

    index: int
    name: str
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    macs: int | None
    compute_dtype: str
    is_custom: bool


def _nbytes(shape, dtype: str, stored: int) -> int:
    """Bytes of a tensor of `shape` (unknown -1 sizes count 0), or its stored bytes for an unsized dtype."""
    bits = _BITS.get(dtype)
    return (math.prod(max(int(d), 0) for d in shape) * bits + 7) // 8 if bits else stored


def _parse_tensor(i: int, t, buffer_sizes: list[int]) -> TensorInfo:
    dtype = _DTYPES.get(t.Type(), f"unknown({t.Type()})")
    shape = tuple(int(d) for d in _vec(t, "Shape"))
    b = t.Buffer()
    if not 0 <= b < max(len(buffer_sizes), 1):
        raise _invalid(f"tensor {i} refers to missing buffer {b}")
    stored = buffer_sizes[b] if buffer_sizes else 0
    variable = bool(t.IsVariable())
    q, quant = t.Quantization(), None
    if q is not None and q.ScaleLength() > 0:
        quant = {"scale": [float(s) for s in _vec(q, "Scale")],
                 "zero_point": [int(z) for z in _vec(q, "ZeroPoint")],
                 "quantized_dimension": int(q.QuantizedDimension())}
    name = text(t.Name(), f"tensor {i} name")
    signature = tuple(int(d) for d in _vec(t, "ShapeSignature")) or shape
    return TensorInfo(i, name, shape, dtype, _nbytes(shape, dtype, stored), stored > 0 and not variable,
                      quant, variable, signature)


def free_dims(signature) -> list[int]:
    """The dynamic (-1) dims of an input signature that need a given size: all but a dynamic batch.

    Example:
        >>> free_dims((-1, 8, 8, 1)), free_dims((-1, -1, 4)), free_dims((-1,))
        ([], [1], [0])
    """
    return [k for k, d in enumerate(signature) if d < 0 and (k > 0 or len(signature) < 2)]


def _settle(tensors: tuple, inputs, shapes: dict | None) -> tuple:
    """Tensors with `shapes` (index -> shape) applied, or their sizes left unknown (-1) when an input needs one."""
    if shapes is None and not any(free_dims(tensors[i].shape_signature) for i in inputs):
        return tensors
    if shapes is None:
        shapes = {t.index: t.shape_signature for t in tensors if min(t.shape_signature, default=0) < 0}
    return tuple(dataclasses.replace(t, shape=tuple(int(d) for d in shapes[t.index]),
                                     nbytes=_nbytes(shapes[t.index], t.dtype, t.nbytes))
                 if t.index in shapes else t for t in tensors)


def _compute_dtype(ins: list, outs: list, tensors) -> str:
    """Return the first activation's dtype, "hybrid", or the output's dtype."""
    acts = [tensors[i].dtype for i in ins if i >= 0 and not tensors[i].is_constant]
    if not acts:
        return tensors[outs[0]].dtype if outs else "none"
    weights = {tensors[i].dtype for i in ins if i >= 0 and tensors[i].is_constant}
    if acts[0] in ("float32", "float16", "bfloat16") and weights & {"int8", "uint8", "int4"}:
        return "hybrid"
    return acts[0]


@dataclass(frozen=True)
class Graph:
    """The main subgraph of a TFLite model, with cost and memory summaries."""

    ops: tuple[OpInfo, ...]
    tensors: tuple[TensorInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    subgraph_count: int

    @classmethod
    def from_bytes(cls, data: bytes, shapes: dict | None = None) -> "Graph":
        """Parse a TFLite flatbuffer.

        Args:
            data: The bytes of a `.tflite` file.
            shapes: tensor index -> shape at one input shape (see exporter/input_shapes.py), or None.

        Returns:
            A `Graph` of subgraph 0.

        Raises:
            ModelFileError: The bytes are empty, truncated, garbage, lack
                the "TFL3" file identifier, or hold a name that is not
                UTF-8 (see exporter/analysis/flatbuffer.py). Any error of
                the flatbuffer reader (IndexError, struct.error,
                RecursionError, ...) becomes this error.
        """
        data = bytes(data)
        if len(data) < 8:
            raise _invalid(f"only {len(data)} bytes")
        if not tflite.Model.ModelBufferHasIdentifier(data, 0) or data[4:8] != b"TFL3":
            raise _invalid("missing 'TFL3' file identifier")
        try:
            return cls._parse(data, shapes)
        except ModelFileError:
            raise
        except Exception as e:  # the flatbuffer reader fails in many ways
            raise _invalid(f"corrupt or truncated flatbuffer ({type(e).__name__}: {e})") from e

    @classmethod
    def from_file(cls, path) -> "Graph":
        """Read and parse a `.tflite` file.

        Args:
            path: Path to the file (str or os.PathLike).

        Returns:
            A `Graph` of subgraph 0.

        Raises:
            ModelFileError: The file is missing, unreadable or not valid.
        """
        try:
            with open(os.fspath(path), "rb") as f:
                data = f.read()
        except OSError as e:
            raise ModelFileError(f"cannot read TFLite model {path}: {e.strerror or e}") from e
        return cls.from_bytes(data)

    @classmethod
    def _parse(cls, data: bytes, shapes: dict | None) -> "Graph":
        model = tflite.Model.GetRootAs(data, 0)
        if model.Version() != 3:
            raise _invalid(f"schema version {model.Version()}, expected 3")
        n_sub = _check_len(model.SubgraphsLength(), data, "subgraphs")
        if n_sub == 0:
            raise _invalid("model has no subgraphs")
        check_strings(model, data)
        buffer_sizes = [_buffer_size(model.Buffers(b), data)
                        for b in range(_check_len(model.BuffersLength(), data, "buffers"))]
        codes = []
        for c in range(_check_len(model.OperatorCodesLength(), data, "operator codes")):
            oc = model.OperatorCodes(c)
            code = builtin_code(oc)
            custom = code == tflite.BuiltinOperator.CUSTOM
            name = "CUSTOM:" + text(oc.CustomCode(), f"operator code {c} custom name") if custom \
                else _OP_NAMES.get(code, f"BUILTIN_{code}")
            codes.append((name, int(oc.Version()), custom))
        sg = model.Subgraphs(0)
        n_t = _check_len(sg.TensorsLength(), data, "tensors")
        tensors = tuple(_parse_tensor(i, sg.Tensors(i), buffer_sizes) for i in range(n_t))

        def indices(values, what, optional=False):
            for i in values:
                if not (0 <= i < n_t or (optional and i == -1)):
                    raise _invalid(f"{what} refers to missing tensor {i}")
            return tuple(int(i) for i in values)

        inputs = indices(_vec(sg, "Inputs"), "subgraph input")
        tensors = _settle(tensors, inputs, shapes)
        ops = []
        for k in range(_check_len(sg.OperatorsLength(), data, "operators")):
            op = sg.Operators(k)
            if not 0 <= op.OpcodeIndex() < len(codes):
                raise _invalid(f"operator {k} has unknown opcode index {op.OpcodeIndex()}")
            name, version, custom = codes[op.OpcodeIndex()]
            ins = indices(_vec(op, "Inputs"), f"operator {k}", optional=True)
            outs = indices(_vec(op, "Outputs"), f"operator {k}")
            macs = op_macs(name, op, ins, outs, lambda i: tensors[i].shape)
            ops.append(OpInfo(k, name, version, ins, outs, macs, _compute_dtype(ins, outs, tensors), custom))
        return cls(tuple(ops), tensors, inputs, indices(_vec(sg, "Outputs"), "subgraph output"), n_sub)

    @property
    def total_macs(self) -> int | None:
        """Sum of the MACs of all ops of the main subgraph; None when an op's are unknown (dynamic sizes)."""
        macs = [op.macs for op in self.ops]
        return None if None in macs else sum(macs)

    @property
    def weight_bytes(self) -> int:
        """Sum of the bytes of all constant (buffer-backed) tensors."""
        return sum(t.nbytes for t in self.tensors if t.is_constant)

    @property
    def peak_activation_bytes(self) -> int | None:
        """Peak bytes of live non-constant tensors over the op steps; None while sizes are unknown.

        See the module docstring for the liveness rule (no in-place reuse).
        """
        if any(d < 0 for t in self.tensors for d in t.shape):
            return None
        steps = max(len(self.ops), 1)
        start, end = dict.fromkeys(self.inputs, 0), dict.fromkeys(self.inputs, 0)
        for op in self.ops:
            for i in op.outputs:
                start.setdefault(i, op.index)
            for i in (*op.inputs, *op.outputs):
                if i >= 0:
                    start.setdefault(i, 0)
                    end[i] = max(end.get(i, 0), op.index)
        for i in (*self.outputs, *(t.index for t in self.tensors if t.is_variable)):
            start[i] = 0 if self.tensors[i].is_variable else start.get(i, 0)
            end[i] = steps - 1
        diff = [0] * (steps + 1)
        for i, s in start.items():
            if not self.tensors[i].is_constant:
                diff[s] += self.tensors[i].nbytes
                diff[end[i] + 1] -= self.tensors[i].nbytes
        return max(itertools.accumulate(diff[:steps]))

    def op_counts(self) -> dict[str, int]:
        """Return how many times each op name occurs, in first-seen order."""
        return dict(collections.Counter(op.name for op in self.ops))

    def custom_ops(self) -> list[str]:
        """Return the distinct custom op codes (without "CUSTOM:"), sorted."""
        return sorted({op.name.split(":", 1)[1] for op in self.ops if op.is_custom})

    def dynamic_inputs(self) -> list[TensorInfo]:
        """The graph inputs whose shape signature has a dynamic (-1) size."""
        return [t for t in self.input_details() if min(t.shape_signature, default=0) < 0]

    def input_details(self) -> list[TensorInfo]:
        """Return the `TensorInfo` of each graph input, in order."""
        return [self.tensors[i] for i in self.inputs]

    def output_details(self) -> list[TensorInfo]:
        """Return the `TensorInfo` of each graph output, in order."""
        return [self.tensors[i] for i in self.outputs]

    def to_dict(self) -> dict:
        """Return a JSON-serialisable summary of the graph.

        Returns:
            A dict with `ops` (name, version, macs, compute_dtype,
            output_shapes), `inputs`/`outputs` (name, shape, shape_signature, dtype),
            `dynamic_inputs` (names), `op_counts`, `custom_ops`, `total_macs`, `weight_bytes`,
            `peak_activation_bytes` and `subgraph_count` (None: unknown, see the module docstring).
        """
        def io(ts):
            return [{"name": t.name, "shape": list(t.shape), "shape_signature": list(t.shape_signature),
                     "dtype": t.dtype} for t in ts]
        return {
            "ops": [{"index": op.index, "name": op.name, "version": op.version, "macs": op.macs,
                     "compute_dtype": op.compute_dtype,
                     "output_shapes": [list(self.tensors[i].shape) for i in op.outputs]}
                    for op in self.ops],
            "inputs": io(self.input_details()),
            "outputs": io(self.output_details()),
            "dynamic_inputs": [t.name for t in self.dynamic_inputs()],
            "op_counts": self.op_counts(),
            "custom_ops": self.custom_ops(),
            "total_macs": self.total_macs,
            "weight_bytes": self.weight_bytes,
            "peak_activation_bytes": self.peak_activation_bytes,
            "subgraph_count": self.subgraph_count,
        }
