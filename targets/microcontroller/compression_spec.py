"""Which constant tensors TFLM weight compression stores as b-bit indices plus value tables, and how.

TFLite Micro's look-up-table (LUT) compression (`tflite_micro.compression` in the pinned wheel:
`SpecBuilder`, `compress`) stores a constant tensor with at most 2**b unique values as b-bit indices
(b = 1..7) plus a value table, one per tensor or one per channel; a `TFLM_DECODE` op inserted before
its consumer decodes it into the arena at run time.

**The table mode follows the tensor's quantization** (`choose`): a per-tensor table for a tensor
quantized per tensor (one scale, or none), a per-channel table along `quantized_dimension` for one
quantized per channel. TFLM's decoder does not read the table's axis: `DecodeStateLut::Setup`
(tensorflow/lite/micro/kernels/decode_state_lut.cc) takes the channel count from the decoded tensor's
quantization scales and the axis from its `quantized_dimension`. A per-channel table on a
per-tensor-quantized kernel is therefore decoded as one table and gives wrong outputs without any error
(issue 14's trap; the bit-exactness proof in `targets.microcontroller.tflm_compress` catches it).

Sizes (`lut.py` of the wheel): indices `ceil(n * b / 8)` bytes; the ancillary tensor is a 16-byte
header (DECODE Common Metadata) + the value tables, each padded to the longest (its stride, at most 128
entries) of the tensor's element size. A tensor is a candidate only when that total is below its
bytes; `tflm_compress` then also drops one whose DECODE op, extra tensors and names make the model grow.

Example:
    >>> kernel = np.repeat(np.arange(-8, 8, dtype=np.int8), 64).reshape(64, 16)   # 16 values, per tensor
    >>> plan = choose(3, "dense/kernel", kernel, {"scale": [0.1], "quantized_dimension": 0})
    >>> plan.quantization, plan.uniques, plan.bits, plan.table, plan.bytes_before, plan.bytes_after
    ('per-tensor', 16, 4, 'per-tensor', 1024, 544)
    >>> choose(4, "bias", np.arange(16, dtype=np.int32), None).reason       # 16 distinct int32 values
    'would grow: 64 B -> 88 B (4-bit indices + 16-entry table)'
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DCM_BYTES = 16
"""The DECODE Common Metadata header at the start of every ancillary tensor (decode.py of the wheel)."""
MAX_BITS = 7
"""Widest index the LUT format holds (`LutAncillaryData.MAX_BITWIDTH`): at most 128 values per table."""
MAX_STRIDE = 128
"""Most entries a value table may have (`value_table_stride`, one byte)."""
LUT_DTYPES = frozenset({"int8", "int16", "int32", "int64", "float32", "bool"})
"""Tensor types `DecodeStateLut::Decode` handles."""


@dataclass(frozen=True)
class TensorPlan:
    """What compression does with one constant tensor.

    `quantization`: "per-tensor", "per-channel (axis N)" or "none"; `uniques`: distinct values in the
    whole tensor; `uniques_per_channel`: the most in one channel along the quantized dimension (axis 0
    when quantized per tensor), None for a scalar; `bits`, `table` ("per-tensor" or "per-channel (axis
    N)") and `axis` (None: one table) are the chosen spec, None when skipped; `bytes_after`: indices +
    header + value tables. `status`: "candidate" (from `choose`), then "compressed", "skipped" or
    "dropped" (the proof found different outputs); `reason` says why not compressed.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: str
    uniques: int
    uniques_per_channel: int | None
    bits: int | None
    table: str | None
    axis: int | None
    bytes_before: int
    bytes_after: int | None
    status: str
    reason: str = ""

    def to_dict(self) -> dict:
        """A JSON-ready dict (the report's and manifest's `compression.tensors` rows)."""
        return {**asdict(self), "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict) -> TensorPlan:
        """The inverse of `to_dict`."""
        return cls(**{**data, "shape": tuple(data["shape"])})


def _per_channel_uniques(array: np.ndarray, axis: int) -> int | None:
    """The most distinct values in one slice along `axis`; None for a scalar."""
    if array.ndim == 0:
        return None
    slices = np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1)
    return int(max(np.unique(s).size for s in slices)) if len(slices) else 0


def quantization_mode(quantization: dict | None) -> tuple[str, int | None]:
    """("per-tensor" | "per-channel (axis N)" | "none", the quantized dimension when per channel)."""
    if not quantization or not quantization.get("scale"):
        return "none", None
    if len(quantization["scale"]) > 1:
        axis = int(quantization.get("quantized_dimension", 0))
        return f"per-channel (axis {axis})", axis
    return "per-tensor", None


def choose(index: int, name: str, array: np.ndarray, quantization: dict | None) -> TensorPlan:
    """The compression spec of one constant tensor: bit width and table mode, or why none.

    Args:
        index: the tensor's index in subgraph 0.
        name: its name (for the report).
        array: its values, as stored.
        quantization: `{"scale": [...], "quantized_dimension": int, ...}` (as `Graph` reads it) or None.

    Returns:
        A `TensorPlan`: "candidate" with `bits` and `table` (per tensor for a tensor quantized per tensor or not
        at all, per channel along `quantized_dimension` for one quantized per channel; never otherwise),
        or "skipped" with the reason (a type TFLM cannot decode, an unsupported axis, more than 128 values,
        or a tensor the indices and tables would not make smaller).
    """
    array = np.asarray(array)
    dtype = str(array.dtype)
    mode, axis = quantization_mode(quantization)
    per_channel = _per_channel_uniques(array, axis if axis is not None else 0)
    uniques = int(np.unique(array).size)
    before = int(array.nbytes)
    base = dict(index=index, name=name, shape=tuple(int(d) for d in array.shape), dtype=dtype,
                quantization=mode, uniques=uniques, uniques_per_channel=per_channel, bytes_before=before)

    def skip(reason: str) -> TensorPlan:
        return TensorPlan(**base, bits=None, table=None, axis=None, bytes_after=None, status="skipped", reason=reason)

    if dtype not in LUT_DTYPES:
        return skip(f"TFLM's DECODE op has no {dtype} look-up tables")
    if axis is not None and axis not in (0, array.ndim - 1):
        return skip(f"quantized along axis {axis}: TFLM decodes per-channel tables along axis 0 or the last only")
    count = per_channel if axis is not None else uniques
    if count > MAX_STRIDE:
        where = "in one channel" if axis is not None else "in the tensor"
        return skip(f"{count} unique values {where}: more than 2**{MAX_BITS}")
    bits = max(1, (count - 1).bit_length())
    tables = array.shape[axis] if axis is not None else 1
    after = -(-array.size * bits // 8) + DCM_BYTES + tables * count * array.itemsize
    if after >= before:
        return skip(f"would grow: {before:,} B -> {after:,} B ({bits}-bit indices + {tables * count}-entry table"
                    f"{'s' if tables > 1 else ''})")
    table = "per-tensor" if axis is None else f"per-channel (axis {axis})"
    return TensorPlan(**base, bits=bits, table=table, axis=axis, bytes_after=after, status="candidate")
