"""The sparse tensors of a .tflite, read from its flatbuffer (each tensor's `sparsity` field).

TFLite stores a sparse tensor as its non-zero values (or non-zero blocks) in the buffer, plus per-dimension
metadata: dense dimensions and one compressed (CSR) dimension, and for a block encoding the block sizes
(`block_map` names the dimensions split into blocks; the schema's SparsityParameters). The converter's
dense-to-sparse pass encodes a filter of CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV or FULLY_CONNECTED that is at
least 30 % zeros; when no block shape the op's sparse kernel takes fits (e.g. 1x4 for float FULLY_CONNECTED), it
stores the plain (random) sparsity and puts a DENSIFY op in front, which expands the weights when the model is
prepared (tensorflow/compiler/mlir/lite/transforms/dense_to_sparse_pass.cc).

The buffers are read without TensorFlow (the `tflite` schema package), lengths checked as exporter/analysis/ does.

Example:
    >>> sparse_tensors(tiny_tflite)          # a dense model
    []
"""
from __future__ import annotations

from dataclasses import dataclass

import tflite

from exporter.analysis.flatbuffer import buffer_size, builtin_code, check_len, invalid, text, vec

_ELEMENT_BYTES = {tflite.TensorType.FLOAT32: 4, tflite.TensorType.FLOAT16: 2, tflite.TensorType.INT8: 1,
                  tflite.TensorType.UINT8: 1}
_DTYPES = {tflite.TensorType.FLOAT32: "float32", tflite.TensorType.FLOAT16: "float16", tflite.TensorType.INT8: "int8",
           tflite.TensorType.UINT8: "uint8"}


@dataclass(frozen=True)
class SparseTensor:
    """One tensor stored in a sparse encoding.

    Attributes:
        index: the tensor's index in the main subgraph.
        name: its name.
        dtype: "float32", "float16", "int8" ...
        shape: its dense shape.
        stored: values kept in the buffer (the non-zeros; with blocks, every value of a non-zero block).
        block: the block shape over the dense dims ((1, 4) for 1x4 blocks), None for plain (random) sparsity.
        densified: a DENSIFY op expands it when the model is prepared (else an op reads it sparse).
    """

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    stored: int
    block: tuple[int, ...] | None
    densified: bool

    @property
    def elements(self) -> int:
        """Values of the dense tensor."""
        count = 1
        for d in self.shape:
            count *= max(int(d), 0)
        return count

    @property
    def encoding(self) -> str:
        """"random" or "block 1x4"."""
        return "random" if self.block is None else "block " + "x".join(map(str, self.block))

    def to_dict(self) -> dict:
        """The record's row for this tensor (JSON-ready)."""
        return {"tensor": self.name, "index": self.index, "dtype": self.dtype, "shape": list(self.shape),
                "stored_values": self.stored, "values": self.elements, "encoding": self.encoding,
                "densified_at_load": self.densified}


def _block(sparsity, rank: int) -> tuple[int, ...] | None:
    """The block shape of a sparsity table over `rank` dense dims, or None without blocks."""
    block_map = [int(d) for d in vec(sparsity, "BlockMap")]
    if not block_map:
        return None
    shape = [1] * rank
    for k, dim in enumerate(block_map):
        if not 0 <= dim < rank or rank + k >= sparsity.DimMetadataLength():
            raise invalid(f"sparsity block map names dim {dim} of a rank-{rank} tensor")
        shape[dim] = int(sparsity.DimMetadata(rank + k).DenseSize())
    return tuple(shape)


def densify_inputs(model, data: bytes) -> set[int]:
    """The indices of the tensors a DENSIFY op of the main subgraph reads."""
    count = check_len(model.OperatorCodesLength(), data, "codes")
    codes = [builtin_code(model.OperatorCodes(i)) for i in range(count)]
    sub = model.Subgraphs(0)
    out = set()
    for k in range(check_len(sub.OperatorsLength(), data, "operators")):
        op = sub.Operators(k)
        if 0 <= op.OpcodeIndex() < len(codes) and codes[op.OpcodeIndex()] == tflite.BuiltinOperator.DENSIFY:
            out.update(int(i) for i in vec(op, "Inputs"))
    return out


def sparse_tensors(data: bytes) -> list[SparseTensor]:
    """Every tensor of the main subgraph stored in a sparse encoding, in index order.

    Args:
        data: the .tflite bytes.

    Returns:
        The sparse tensors (empty for a dense model).

    Raises:
        ModelFileError: a flatbuffer whose lengths, buffers or block map do not fit.
    """
    model = tflite.Model.GetRootAs(data, 0)
    if check_len(model.SubgraphsLength(), data, "subgraphs") == 0:
        raise invalid("model has no subgraphs")
    sub = model.Subgraphs(0)
    densified = densify_inputs(model, data)
    out = []
    for i in range(check_len(sub.TensorsLength(), data, "tensors")):
        tensor = sub.Tensors(i)
        sparsity = tensor.Sparsity()
        if sparsity is None:
            continue
        if not 0 <= tensor.Buffer() < model.BuffersLength():
            raise invalid(f"tensor {i} refers to missing buffer {tensor.Buffer()}")
        shape = tuple(int(d) for d in vec(tensor, "Shape"))
        size = buffer_size(model.Buffers(tensor.Buffer()), data)
        out.append(SparseTensor(i, text(tensor.Name(), f"tensor {i} name"), _DTYPES.get(tensor.Type(), "other"),
                                shape, size // _ELEMENT_BYTES.get(tensor.Type(), 1), _block(sparsity, len(shape)),
                                i in densified))
    return out


def summary(tensors: list[SparseTensor]) -> str:
    """One line: "4 tensors (random sparsity; expanded by DENSIFY at load): 7,633 of 38,160 values stored"."""
    if not tensors:
        return "no tensor"
    kinds = sorted({t.encoding for t in tensors})
    load = sum(t.densified for t in tensors)
    how = ("expanded by DENSIFY at load" if load == len(tensors) else
           "read sparse by the ops using them" if not load else f"{load} expanded by DENSIFY at load")
    stored, values = sum(t.stored for t in tensors), sum(t.elements for t in tensors)
    noun = "tensor" if len(tensors) == 1 else "tensors"
    return f"{len(tensors)} {noun} ({', '.join(kinds)} sparsity; {how}): {stored:,} of {values:,} values stored"
