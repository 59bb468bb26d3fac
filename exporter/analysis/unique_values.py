"""Unique weight values before conversion (Keras) and after it (the .tflite), kernel by kernel.

What a value table can store is bounded by the distinct values of a tensor, counted the way the
tensor is quantized: per tensor, or per channel along the tensor's `quantized_dimension`
(one scale per channel). Before conversion a kernel's channels are its output channels (the
Keras kernel's last axis; a DepthwiseConv2D's input channels × multiplier). After conversion
every kernel of a weighted op (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ...) is read from
the flatbuffer with its quantization. Each row pairs a Keras layer with the .tflite kernel whose
name holds the layer's name as a path part (`model/dense/MatMul`), so the table shows what
conversion did: per-channel quantization maps each float to one code per channel, so a channel
never gains values (it can lose some, where two floats round to one code), while the per-tensor
count of a per-channel-quantized kernel can grow up to channels × the per-channel count.

Example:
    >>> from exporter.stages.convert import ConvertConfig, convert
    >>> tflite = convert(model, ConvertConfig(mode="int8"), calib=demo.calib.x)     # the demo CNN
    >>> rows = weight_value_rows(model, tflite)
    >>> [(r["layer"], r["quantization"]) for r in rows]
    [('conv2d', 'per channel (axis 0)'), ('conv2d_1', 'per channel (axis 0)'), ('dense', 'per channel (axis 0)'), ('probs', 'per channel (axis 0)')]
    >>> rows[0]["keras_unique_per_channel_max"], rows[0]["tflite_unique_per_channel_max"]   # 9 weights per channel
    (9, 9)
"""
from __future__ import annotations

import numpy as np

# op -> the kernel's output-channel axis in the .tflite (the axis a per-tensor kernel is counted on)
_OUTPUT_AXIS = {"CONV_2D": 0, "FULLY_CONNECTED": 0, "DEPTHWISE_CONV_2D": 3, "CONV_3D": 4, "TRANSPOSE_CONV": 0}


def _per_channel_max(array: np.ndarray, axis: int) -> int:
    """The most distinct values in one slice along `axis`."""
    channels = np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1)
    return int(max((np.unique(c).size for c in channels), default=0))


def keras_kernel_values(model) -> dict[str, dict]:
    """Per layer with a kernel: class, shape, unique values per tensor and the most in one output channel.

    Args:
        model: a tf_keras model (TF-MOT wrappers are looked through, their variables never counted).

    Returns:
        layer name -> {"class", "inner", "shape", "unique", "unique_per_channel_max"}; "inner" is the
        name of the layer a TF-MOT wrapper wraps (the name conversion gives its tensors), else the same.
    """
    from exporter.analysis.weights import _kernel

    out = {}
    for layer in model.layers:
        kernel = _kernel(layer)
        if kernel is None or kernel.ndim < 2:
            continue
        inner = getattr(layer, "layer", layer)
        cls = type(inner).__name__
        channels = kernel.reshape(*kernel.shape[:-2], -1) if cls == "DepthwiseConv2D" else kernel
        out[layer.name] = {"class": cls, "inner": inner.name, "shape": list(kernel.shape),
                           "unique": int(np.unique(kernel).size),
                           "unique_per_channel_max": _per_channel_max(channels, -1)}
    return out


def tflite_kernel_values(data: bytes) -> list[dict]:
    """Per kernel of a weighted op in the .tflite: its quantization and its unique values.

    Args:
        data: a .tflite flatbuffer.

    Returns:
        One {"tensor", "op", "dtype", "shape", "per_channel", "axis", "unique", "unique_per_channel_max"}
        per kernel, in execution order. `per_channel`: quantized with one scale per channel (then `axis`
        is its `quantized_dimension`), False for one scale (or none: a float kernel), where `axis` is
        the op's output-channel axis and the per-tensor count is the one a value table must follow.
    """
    from exporter.analysis.graph import Graph
    from exporter.analysis.weights import tflite_layer_weights

    tensors = {t.name: t for t in Graph.from_bytes(data).tensors}
    out = []
    for entry in tflite_layer_weights(data):
        kernel, name = entry["kernel"], entry["kernel_name"]
        quant = tensors[name].quantization if name in tensors else None
        per_channel = bool(quant and len(quant["scale"]) > 1)
        axis = quant["quantized_dimension"] if per_channel else _OUTPUT_AXIS.get(entry["op"], 0)
        out.append({"tensor": name, "op": entry["op"], "dtype": str(kernel.dtype), "shape": list(kernel.shape),
                    "per_channel": per_channel, "axis": int(axis), "unique": int(np.unique(kernel).size),
                    "unique_per_channel_max": _per_channel_max(kernel, axis),
                    "sparsity": float(1 - np.count_nonzero(kernel) / max(kernel.size, 1))})
    return out


def _layer_of(tensor: str, names: list[str]) -> str | None:
    """The layer whose name is a path part of the tensor's name (its first `;`-separated alias)."""
    parts = tensor.split(";")[0].split("/")
    found = [n for n in names if n in parts]
    return max(found, key=len) if found else None


def weight_value_rows(model, data: bytes, clustered: dict[str, str] | None = None) -> list[dict]:
    """The before/after table: one row per .tflite kernel, with its Keras layer's figures beside it.

    Args:
        model: the Keras model that was converted.
        data: its .tflite.
        clustered: layer name (as the cluster stage saw it) -> "per channel" or "per tensor".

    Returns:
        Rows {"layer", "class", "clustered", "keras_unique", "keras_unique_per_channel_max", "tensor",
        "dtype", "quantization", "tflite_unique", "tflite_unique_per_channel_max", "sparsity"}; the Keras
        figures are None for a kernel no layer's name matches.
    """
    keras_side = keras_kernel_values(model)
    by_inner = {v["inner"]: k for k, v in keras_side.items()}
    rows = []
    for t in tflite_kernel_values(data):
        inner = _layer_of(t["tensor"], list(by_inner) + list(keras_side))
        layer = by_inner.get(inner, inner)
        k = keras_side.get(layer, {})
        name = k.get("inner", layer)        # a QAT wrapper's layer: the name the stages and the user know
        rows.append({
            "layer": name, "class": k.get("class"), "clustered": (clustered or {}).get(name),
            "keras_unique": k.get("unique"), "keras_unique_per_channel_max": k.get("unique_per_channel_max"),
            "tensor": t["tensor"], "dtype": t["dtype"],
            "quantization": f"per channel (axis {t['axis']})" if t["per_channel"] else
                            ("per tensor" if t["dtype"] in ("int8", "uint8") else "none (float)"),
            "tflite_unique": t["unique"], "tflite_unique_per_channel_max": t["unique_per_channel_max"],
            "sparsity": t["sparsity"]})
    return rows


HEADERS = ["layer", "class", "clustered", "Keras unique", "Keras max/channel", ".tflite tensor", "dtype",
           "quantized", ".tflite unique", ".tflite max/channel", "sparsity"]


def table_rows(rows: list[dict]) -> list[list]:
    """`weight_value_rows` as table cells under `HEADERS` ("-" where a figure is missing)."""
    dash = lambda v: "-" if v is None else v  # noqa: E731
    return [[dash(r["layer"]), dash(r["class"]), dash(r["clustered"]), dash(r["keras_unique"]),
             dash(r["keras_unique_per_channel_max"]), r["tensor"], r["dtype"], r["quantization"], r["tflite_unique"],
             r["tflite_unique_per_channel_max"], f"{r['sparsity']:.1%}"] for r in rows]


TITLE = "Unique weight values before and after conversion"
NOTE = ("Keras: the kernel the converter was given; .tflite: the kernel as shipped, counted per tensor and per "
        "channel along the axis it is quantized on (a value table must follow that: per channel, or per tensor).")
