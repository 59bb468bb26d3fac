"""What compression did to the weights: sparsity and unique values, in Keras and in the .tflite.

Keras side: the kernel of every Conv/Dense-like layer, and totals over the
model's own weights; TF-MOT wrappers are looked through and their variables
(masks, centroids, quantizer ranges) never counted, so a stage's figures are
those of the stripped model it hands on. TFLite side: every constant weight
tensor of rank >= 2 read from the flatbuffer's buffers (the `tflite` package),
and the kernels and biases of weighted ops (`tflite_totals`), so the figures
are measured on what ships.

Example:
    >>> dense = keras_weight_stats(model)["dense"]          # the demo CNN, before any stage
    >>> dense["class"], dense["params"], dense["sparsity"]
    ('Dense', 32768, 0.0)
    >>> kernel = tflite_weight_stats(tiny_tflite)["tiny/dense/MatMul1"]
    >>> kernel["dtype"], kernel["shape"], kernel["unique_per_channel_max"]   # 16 weights per output channel
    ('int8', [10, 16], 16)
"""
from __future__ import annotations

import numpy as np

_KERNEL_NAMES = ("depthwise_kernel:0", "kernel:0")


def _kernel(layer):
    """The kernel variable's values; TF-MOT wrappers (pruning, clustering, QAT) are looked through."""
    from exporter.stages.tfmot_shim import layer_variables

    for variable in layer_variables(layer):
        name = variable.name.split("/")[-1]
        if name in _KERNEL_NAMES:
            return np.asarray(variable.numpy())
    return None


def _stats(array: np.ndarray, channel_axis: int) -> dict:
    flat = array.reshape(-1)
    channels = np.moveaxis(array, channel_axis, 0).reshape(array.shape[channel_axis], -1)
    return {
        "params": int(flat.size),
        "nonzero": int(np.count_nonzero(flat)),
        "sparsity": float(1 - np.count_nonzero(flat) / max(flat.size, 1)),
        "unique": int(np.unique(flat).size),
        "unique_per_channel_max": int(max(np.unique(c).size for c in channels)),
    }


def keras_weight_stats(model) -> dict[str, dict]:
    """Per-layer kernel statistics of a tf_keras model (channel axis: the last)."""
    out = {}
    for layer in model.layers:
        kernel = _kernel(layer)
        if kernel is not None and kernel.ndim >= 2:
            out[layer.name] = {"class": type(getattr(layer, "layer", layer)).__name__, **_stats(kernel, -1)}
    return out


def keras_totals(model) -> dict:
    """Parameters, non-zero parameters and unique values over the model's own weights.

    Counted on the weights a stripped model holds and conversion keeps: every variable of
    `model.weights` (trainable and non-trainable, e.g. BatchNorm's moving statistics) except
    those TF-MOT's layers add (pruning masks and thresholds, cluster centroids and indices,
    quantizer ranges, step counters; see `exporter.stages.tfmot_shim.model_variables`). A
    quantization-aware model, which keeps its wrappers until conversion, counts like the
    model it wraps.

    Args:
        model: a tf_keras model, plain or wrapped by TF-MOT.

    Returns:
        {"params", "nonzero", "unique"}: elements, non-zero elements and distinct values over
        all those weights together.
    """
    from exporter.stages.tfmot_shim import model_variables

    weights = [np.asarray(v.numpy()).reshape(-1) for v in model_variables(model)]
    flat = np.concatenate(weights) if weights else np.zeros(0)
    return {"params": int(flat.size), "nonzero": int(np.count_nonzero(flat)), "unique": int(np.unique(flat).size)}


def tflite_constant_arrays(data: bytes) -> dict[str, np.ndarray]:
    """Constant weight tensors of rank >= 2 of the main subgraph, as numpy arrays."""
    import tflite

    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    dtypes = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16,
              tflite.TensorType.INT8: np.int8, tflite.TensorType.UINT8: np.uint8}
    out = {}
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        dtype = dtypes.get(tensor.Type())
        buffer = model.Buffers(tensor.Buffer())
        if dtype is None or buffer is None or buffer.DataLength() == 0 or tensor.ShapeLength() < 2:
            continue
        raw = buffer.DataAsNumpy().tobytes()
        shape = tuple(int(d) for d in tensor.ShapeAsNumpy())
        if int(np.prod(shape)) * np.dtype(dtype).itemsize != len(raw):
            continue
        out[tensor.Name().decode("utf-8", "replace")] = np.frombuffer(raw, dtype=dtype).reshape(shape)
    return out


def tflite_weight_stats(data: bytes) -> dict[str, dict]:
    """Per-tensor weight statistics measured on a .tflite (output channel: axis 0; depthwise: last)."""
    out = {}
    for name, array in tflite_constant_arrays(data).items():
        axis = -1 if array.ndim == 4 and array.shape[0] == 1 else 0   # depthwise kernels are [1, kh, kw, out]
        out[name] = {"dtype": str(array.dtype), "shape": list(array.shape), **_stats(array, axis)}
    return out


# op name -> (kernel input, bias input) in the TFLite schema
_WEIGHTED_OPS = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2),
                 "CONV_3D": (1, 2), "TRANSPOSE_CONV": (1, 3)}
_NUMPY = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "uint8": np.uint8,
          "int16": np.int16, "int32": np.int32, "int64": np.int64}


def _constant(model, tensors, index: int, producers: dict) -> np.ndarray | None:
    """The values of tensor `index`, looking through a DEQUANTIZE of a constant (float16, dynamic)."""
    info = tensors[index]
    if not info.is_constant and index in producers:
        op = producers[index]
        if op.name == "DEQUANTIZE" and op.inputs and op.inputs[0] >= 0:
            return _constant(model, tensors, op.inputs[0], {})
    dtype = _NUMPY.get(info.dtype)
    if not info.is_constant or dtype is None:
        return None
    raw = model.Buffers(model.Subgraphs(0).Tensors(index).Buffer()).DataAsNumpy().tobytes()
    if int(np.prod(info.shape)) * np.dtype(dtype).itemsize != len(raw):
        return None
    return np.frombuffer(raw, dtype=dtype).reshape(info.shape)


def tflite_layer_weights(data: bytes) -> list[dict]:
    """The kernel and bias of every weighted op (conv, depthwise, fully connected, transpose conv).

    Args:
        data: a .tflite flatbuffer.

    Returns:
        One {"op", "kernel_name", "kernel", "bias"} per op in execution order (arrays as stored:
        int8 kernels and int32 biases after int8 conversion; a DEQUANTIZE's constant input for
        float16 and dynamic weights; "bias" None when the op has none). A tensor shared by
        several ops is given only with the first.
    """
    import tflite

    from exporter.analysis.graph import Graph

    graph = Graph.from_bytes(data)
    model = tflite.Model.GetRootAsModel(data, 0)
    producers = {out: op for op in graph.ops for out in op.outputs}
    seen, out = set(), []
    for op in graph.ops:
        slots = _WEIGHTED_OPS.get(op.name)
        if slots is None:
            continue
        found = {}
        for role, slot in zip(("kernel", "bias"), slots):
            index = op.inputs[slot] if slot < len(op.inputs) else -1
            array = None if index < 0 or index in seen else _constant(model, graph.tensors, index, producers)
            if array is not None:
                seen.add(index)
            found[role] = array
            found[f"{role}_name"] = graph.tensors[index].name if index >= 0 else None
        if found["kernel"] is not None:
            out.append({"op": op.name, "kernel_name": found["kernel_name"], "kernel": found["kernel"],
                        "bias": found["bias"]})
    return out


def tflite_totals(data: bytes) -> dict:
    """Parameters and non-zero parameters of the kernels and biases a .tflite ships.

    The counterpart of `keras_totals` for a model without BatchNormalization (conversion folds a
    BatchNorm into the kernel and bias before it, so its four vectors have no tensor of their own).

    Args:
        data: a .tflite flatbuffer.

    Returns:
        {"params", "nonzero", "kernel_params", "kernel_nonzero", "bias_params", "bias_nonzero"}.
    """
    totals = dict.fromkeys(("kernel_params", "kernel_nonzero", "bias_params", "bias_nonzero"), 0)
    for entry in tflite_layer_weights(data):
        for role in ("kernel", "bias"):
            if entry[role] is not None:
                totals[f"{role}_params"] += int(entry[role].size)
                totals[f"{role}_nonzero"] += int(np.count_nonzero(entry[role]))
    return {"params": totals["kernel_params"] + totals["bias_params"],
            "nonzero": totals["kernel_nonzero"] + totals["bias_nonzero"], **totals}
