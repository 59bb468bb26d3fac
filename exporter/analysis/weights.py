"""What compression did to the weights: sparsity and unique values, in Keras and in the .tflite.

Keras side: the kernel of every Conv/Dense-like layer (wrapped layers are
looked through). TFLite side: every constant weight tensor of rank >= 2 read
from the flatbuffer's buffers (the `tflite` package), so the figures are
measured on what ships.

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
    """The kernel variable's values; wrappers (pruning, clustering, QAT) are looked through by name."""
    for variable in layer.weights:
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


def _is_model_weight(variable) -> bool:
    """False for the bookkeeping variables TF-MOT adds (QAT ranges and step counters)."""
    last = variable.name.split("/")[-1].split(":")[0]
    return not (last.endswith(("_min", "_max")) or last in ("optimizer_step", "iteration"))


def keras_totals(model) -> dict:
    """Parameters, non-zero parameters and unique values over the model's own weights.

    QAT's range and step variables are left out, so a quantization-aware model counts like the
    model it wraps.
    """
    weights = [np.asarray(v.numpy()).reshape(-1) for v in model.weights if _is_model_weight(v)]
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
