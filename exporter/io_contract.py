"""The I/O contract of a .tflite: how an app turns real values into each input and each output back.

A quantized tensor holds integers q that stand for real values x. TFLite's quantization spec
(https://ai.google.dev/edge/litert/models/quantization_spec) defines, per tensor (or per channel
along one axis):

    quantize    q = clamp(round(x / scale) + zero_point, qmin, qmax)
    dequantize  x = (q - zero_point) * scale

with qmin/qmax the dtype's range (int8 -128..127, uint8 0..255, int16 -32768..32767) and `round`
to nearest, ties away from zero (TFLite's QUANTIZE kernel calls `std::round` on the float32
`x / scale`: tensorflow/lite/kernels/internal/reference/quantize.h). The scale and zero point are
the ones the converter stored in the .tflite (read from the flatbuffer by exporter/analysis/graph.py,
never recomputed); LiteRT's `get_input_details()["quantization"]` reports the same pair.

`tensor_contract` gives one tensor's part of the record (manifest.json `io`, report, `edgex
inspect`); `quantize` and `dequantize` apply the formulas in numpy, as an app does.

Example:
    >>> from exporter.analysis.graph import Graph
    >>> image = Graph.from_bytes(tiny_tflite).input_details()[0]
    >>> c = tensor_contract(image)
    >>> c["dtype"], round(c["scale"], 4), c["zero_point"], c["qmin"], c["qmax"], c["per_channel"]
    ('int8', 0.0039, -128, -128, 127, False)
    >>> c = dict(c, scale=1 / 255)
    >>> quantize(np.array([0.0, 0.25, 1.0, 2.0, -1.0], np.float32), c).tolist()     # clamped to -128..127
    [-128, -64, 127, 127, -128]
    >>> dequantize(np.array([-128, 127], np.int8), c).tolist()
    [0.0, 1.0]
    >>> contract_text(c)
    'int8, scale 0.00392156863, zero point -128, q in -128..127'
    >>> contract_text({"dtype": "int8", "scale": [0.002, 0.0038], "zero_point": [0, 0], "qmin": -127, "qmax": 127,
    ...                "per_channel": True, "axis": 0})
    'int8, per channel along axis 0: 2 scales 0.002..0.0038, zero points 0, q in -127..127'
"""
from __future__ import annotations

__all__ = ["FORMULAS", "FORMULA_NOTE", "QRANGES", "contract_cells", "contract_text", "dequantize", "quantize",
           "tensor_contract"]

QRANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int4": (-8, 7)}
"""qmin, qmax of each quantized dtype (the full range of the integer type)."""

FORMULAS = {
    "quantize": "q = clamp(round(x / scale) + zero_point, qmin, qmax)",
    "dequantize": "x = (q - zero_point) * scale",
    "round": "to nearest, ties away from zero, of the float32 x / scale (TFLite's QUANTIZE kernel, std::round)",
    "ranges": {dtype: list(bounds) for dtype, bounds in QRANGES.items()},
    "per_channel": "scale[c] and zero_point[c] for index c along `axis`",
    "float": "a tensor with scale null takes and gives the real values as they are",
}
"""How an app uses the figures of each tensor (manifest.json `io.formulas`)."""


def tensor_contract(tensor) -> dict:
    """One tensor's I/O contract: dtype, scale and zero point, the q range, per-tensor or per-channel.

    Args:
        tensor: a `TensorInfo` (exporter/analysis/graph.py), whose `quantization` is read from the .tflite.

    Returns:
        `{"dtype", "scale", "zero_point", "qmin", "qmax", "per_channel", "axis"}`: `scale` and
        `zero_point` are numbers for a per-tensor quantized tensor, lists (one per index along `axis`)
        for a per-channel one, None for a float tensor (or an integer one without quantization, whose
        values are taken as they are); `qmin`/`qmax` None unless quantized; `axis` None unless per channel.
    """
    quant, dtype = tensor.quantization, tensor.dtype
    scales = [float(s) for s in (quant or {}).get("scale", [])]
    record = {"dtype": dtype, "scale": None, "zero_point": None, "qmin": None, "qmax": None, "per_channel": False,
              "axis": None}
    if not scales or dtype not in QRANGES:
        return record
    zeros = [int(z) for z in quant.get("zero_point", [])] or [0] * len(scales)
    per_channel = len(scales) > 1
    qmin, qmax = QRANGES[dtype]
    if dtype == "int8" and per_channel:
        qmin = -127               # TFLite's spec: per-channel (weight) int8 is symmetric, -127..127
    record.update(scale=scales if per_channel else scales[0], zero_point=zeros if per_channel else zeros[0],
                  qmin=qmin, qmax=qmax, per_channel=per_channel,
                  axis=int(quant.get("quantized_dimension", 0)) if per_channel else None)
    return record


def _channel_view(values, contract: dict, np):
    """(scale, zero point) arrays broadcastable against `values` (per channel: along `axis`)."""
    scale = np.asarray(contract["scale"], np.float32)
    zero = np.asarray(contract["zero_point"], np.int64)
    if contract["per_channel"]:
        shape = [1] * values.ndim
        shape[contract["axis"]] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return scale, zero


def quantize(x, contract: dict):
    """`q = clamp(round(x / scale) + zero_point, qmin, qmax)` of real values `x`, as an app does it.

    The division is in float32 and the rounding to nearest with ties away from zero, as TFLite's
    QUANTIZE kernel; the result has the tensor's dtype. A float tensor's values come back as float32.
    """
    import numpy as np

    x = np.asarray(x, np.float32)
    if contract["scale"] is None:
        return x
    scale, zero = _channel_view(x, contract, np)
    v = (x / scale).astype(np.float64)                  # the float32 quotient, exactly
    rounded = np.sign(v) * np.floor(np.abs(v) + 0.5)    # ties away from zero (std::round)
    return np.clip(rounded + zero, contract["qmin"], contract["qmax"]).astype(contract["dtype"])


def dequantize(q, contract: dict):
    """`x = (q - zero_point) * scale` of a tensor's integers `q`, in float32 (a float tensor: as it is)."""
    import numpy as np

    q = np.asarray(q)
    if contract["scale"] is None:
        return q.astype(np.float32)
    scale, zero = _channel_view(q, contract, np)
    return (q.astype(np.int64) - zero).astype(np.float32) * scale


def _number(value: float) -> str:
    """A scale in 9 significant digits: enough to give back the float32 the .tflite stores."""
    return f"{value:.9g}"


def contract_text(contract: dict) -> str:
    """One phrase for the console and the reports, e.g. 'int8, scale 0.00392156886, zero point -128, q in -128..127'."""
    if contract["scale"] is None:
        return f"{contract['dtype']}, not quantized (real values as they are)"
    span = f"q in {contract['qmin']}..{contract['qmax']}"
    if not contract["per_channel"]:
        return f"{contract['dtype']}, scale {_number(contract['scale'])}, zero point {contract['zero_point']}, {span}"
    scales, zeros = contract["scale"], sorted(set(contract["zero_point"]))
    shown_zeros = ", ".join(map(str, zeros[:4])) + (", ..." if len(zeros) > 4 else "")
    return (f"{contract['dtype']}, per channel along axis {contract['axis']}: {len(scales)} scales "
            f"{min(scales):.3g}..{max(scales):.3g}, zero points {shown_zeros}, {span}")


FORMULA_NOTE = ("Quantized inputs and outputs: an app feeds a real value x as q = clamp(round(x / scale) + zero_point, "
                "qmin, qmax) (round to nearest, ties away from zero) and reads q as x = (q - zero_point) * scale")
"""The sentence under the inputs-and-outputs table of the reports."""


def contract_cells(entry: dict) -> list[str]:
    """The scale, zero point and q range cells of one `io` entry (blank for a record without them)."""
    if "scale" not in entry:
        return ["", "", ""]
    if entry["scale"] is None:
        return ["-", "-", "-"]
    span = f"{entry['qmin']}..{entry['qmax']}"
    if entry["per_channel"]:
        return [f"per channel (axis {entry['axis']}, {len(entry['scale'])} scales)", "per channel", span]
    return [_number(entry["scale"]), str(entry["zero_point"]), span]
