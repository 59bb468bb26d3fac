"""Why LiteRT's default delegate, XNNPACK, refused a model that LiteRT's builtin kernels run.

LiteRT's Python interpreter hands the ops it can to the XNNPACK delegate. When XNNPACK cannot prepare them,
LiteRT only says e.g. "failed to create XNNPACK runtime Node number 7 (TfLiteXNNPackDelegate) failed to
prepare.": node 7 is the delegate's own node (appended after the model's 7 ops), not an op of the model, and
XNNPACK's own reason is neither in the message nor logged by the ai-edge-litert wheel. The model itself may be
sound: the builtin kernels, and TFLM on a microcontroller, never use XNNPACK.

`refusal_reason` keeps LiteRT's message and adds the cause this module can see in the flatbuffer: XNNPACK's
int8 convolution, depthwise convolution, fully connected and transposed convolution operators refuse a
requantization scale `input scale x filter scale / output scale` of 256 or more in any output channel (with
ai-edge-litert 2.3, a conv at 251.95 was prepared and one at 257.86 refused). The builtin kernels take any
such scale. The converter gives one to a layer whose output was zero on every calibration sample (a dead
ReLU layer, e.g. in a tiny student pruned to 95 %): the calibrated range [0, 0] is widened to a span of
about 2e-6, an output scale of about 7.8e-9.

Example:
    >>> refusal_reason(tiny_tflite, "failed to create XNNPACK runtimeNode number 5 (TfLiteXNNPackDelegate) "
    ...                "failed to prepare.")                 # a sound model: nothing more to say
    'failed to create XNNPACK runtime; Node number 5 (TfLiteXNNPackDelegate) failed to prepare. (node 5 is the delegate, not an op of the model)'
"""
from __future__ import annotations

import re

REQUANTIZATION_LIMIT = 256.0
"""XNNPACK refuses an int8 convolution or fully connected op whose requantization scale reaches this."""
KERNEL_INPUTS = {"CONV_2D": (0, 1), "DEPTHWISE_CONV_2D": (0, 1), "FULLY_CONNECTED": (0, 1), "TRANSPOSE_CONV": (2, 1)}
"""Op name -> (activation input, filter input) positions of the ops whose requantization XNNPACK checks."""
QUANTIZED = ("int8", "uint8")
_NODE_RUN_ON = re.compile(r"(?<=\S)\s*(?=Node number \d+ \()")
"""Where LiteRT runs its two sentences together ("...XNNPACK runtimeNode number 7 (...")."""
_DELEGATE_NODE = re.compile(r"Node number (\d+) \(TfLiteXNNPackDelegate\)")


def requantization_scales(model_bytes: bytes) -> list[dict]:
    """The ops whose requantization scale (input x filter / output scale) XNNPACK refuses, in execution order.

    Args:
        model_bytes: the .tflite.

    Returns:
        One dict per such op: `op` (index), `name` (builtin name), `output` (tensor name, or "tensor N" in a
        model whose names were stripped: exporter/tensor_names.py), `scale` (the largest over the output
        channels), `input_scale`, `filter_scale` (that channel's) and `output_scale`.

    Raises:
        ModelFileError: bytes that are not a TFLite flatbuffer.
    """
    from exporter.analysis.graph import Graph

    graph = Graph.from_bytes(model_bytes)
    found = []
    for op in graph.ops:
        positions = KERNEL_INPUTS.get(op.name)
        if positions is None or max(positions) >= len(op.inputs) or not op.outputs:
            continue
        x, w, y = (graph.tensors[i] if i >= 0 else None
                   for i in (op.inputs[positions[0]], op.inputs[positions[1]], op.outputs[0]))
        if not all(t is not None and t.dtype in QUANTIZED and t.quantization and t.quantization["scale"]
                   for t in (x, w, y)):
            continue
        in_scale, out_scale = x.quantization["scale"][0], y.quantization["scale"][0]
        filter_scale = max(w.quantization["scale"])
        scale = in_scale * filter_scale / out_scale if out_scale > 0 else float("inf")
        if scale >= REQUANTIZATION_LIMIT:
            found.append({"op": op.index, "name": op.name, "output": y.name or f"tensor {y.index}", "scale": scale,
                          "input_scale": in_scale, "filter_scale": filter_scale, "output_scale": out_scale})
    return found


def _describe(entry: dict) -> str:
    """One op's requantization problem in words."""
    span = entry["output_scale"] * 255
    dead = (f": its quantized range spans only {span:.2g}, as for an output that was zero on every "
            "calibration sample (a dead layer)") if span < 1e-4 else ""
    return (f"op {entry['op']} {entry['name']} (output {entry['output']!r}) has a requantization scale "
            f"(input scale {entry['input_scale']:.3g} x filter scale {entry['filter_scale']:.3g} / output scale "
            f"{entry['output_scale']:.3g}) of {entry['scale']:.4g}, and XNNPACK's int8 kernels take less than "
            f"{REQUANTIZATION_LIMIT:g}{dead}")


def refusal_reason(model_bytes: bytes, message: str) -> str:
    """LiteRT's message when its default XNNPACK delegate failed, on one line, with the cause found in the model.

    Args:
        model_bytes: the .tflite the builtin kernels ran.
        message: what LiteRT raised with the default delegate.

    Returns:
        The message (the delegate's node named as such), then every op whose requantization scale XNNPACK
        refuses (at most 3 named).
    """
    text = _NODE_RUN_ON.sub("; ", " ".join(str(message).split()))[:300]
    node = _DELEGATE_NODE.search(text)
    if node:
        text += f" (node {node.group(1)} is the delegate, not an op of the model)"
    try:
        found = requantization_scales(model_bytes)
    except Exception:  # noqa: BLE001 - the reason is a courtesy: LiteRT's own message stays
        found = []
    more = f"; and {len(found) - 3} more such ops" if len(found) > 3 else ""
    return "; ".join([text, *map(_describe, found[:3])]) + more
