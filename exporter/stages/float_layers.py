"""Selective quantization: an int8 model with some Keras layers kept in float (the recipe's `float_layers`).

The ops of a layer named in `ConvertConfig.float_layers` keep float32 weights and activations; every other op is
int8 as in a full-integer conversion, the model's I/O keeps its int8 dtype (`io_dtype`), and the quantizer puts a
DEQUANTIZE before and a QUANTIZE after each float run of ops. LiteRT on a CPU runs such a mix; runtimes that
take int8 ops only do not (`Target.float_layers`: android and linux allow it, microcontroller, edgetpu and
ethos-u refuse it before any work, exporter/inputs.py).

How (checked with tensorflow 2.21): the converter calibrates only (`_experimental_calibrate_only`, as TF's
quantization debugger does), a float model with the calibrated ranges; then `mlir_quantize` quantizes it with
`denylisted_nodes`, the output tensor names of the layers' ops, and the I/O dtype, the call the converter itself
makes for an int8 model (lite.py `_quantize`). The documented route, `tf.lite.experimental.QuantizationDebugger(
converter=..., debug_options=QuantizationDebugOptions(denylisted_nodes=..., fully_quantize=True))
.get_nondebug_quantized_model()`, makes the same call without I/O dtypes: it writes int8 I/O with
`fully_quantize=True` and float32 I/O without, never uint8 (android-arm64-lowend's `int8_io`), and
`util.modify_model_io_type` cannot turn it into uint8 once the last layer is float (it keeps float32 output with
only a logged warning). The debugger's constructor also builds an instrumented model (NumericVerify ops) in a
deprecated tf.lite.Interpreter, and raises when no op is left to verify (debugger.py `_initialize_stats`). For
int8 I/O both routes give the same bytes (tests/test_float_layers.py).

Layer → nodes: the converter names each op's output tensor after the TF ops it fused, under the Keras layer's
name scope ("digits_cnn/probs/MatMul;digits_cnn/probs/BiasAdd"); the op writing a model output is named after
the function's output ("StatefulPartitionedCall:0") and belongs to that output's layer. A fused op that holds
ops of two layers (a Conv2D and its own Activation layer) stays float when either is named.

Example:
    >>> from exporter.stages.convert import ConvertConfig, convert
    >>> tflite = convert(model, ConvertConfig(mode="int8", float_layers=("probs",)), calib=demo.calib.x)
    >>> graph = Graph.from_bytes(tflite)
    >>> float_ops(graph), graph.input_details()[0].dtype, graph.output_details()[0].dtype
    (['FULLY_CONNECTED', 'SOFTMAX'], 'int8', 'int8')
    >>> [op.name for op in graph.ops][-5:]
    ['FULLY_CONNECTED', 'DEQUANTIZE', 'FULLY_CONNECTED', 'SOFTMAX', 'QUANTIZE']
    >>> float_notes(tflite, ConvertConfig(mode="int8", float_layers=("probs",)))
    ['float_layers: probs kept in float32 (FULLY_CONNECTED, SOFTMAX); 2 QUANTIZE/DEQUANTIZE ops between float and int8']
"""
from __future__ import annotations

from exporter.analysis.graph import Graph
from exporter.errors import ConfigError, ConversionError, UsageError
from exporter.option_names import option

__all__ = ["check_request", "float_notes", "float_ops", "float_targets", "layer_nodes", "quantize_keeping_float"]

_BOUNDARY = ("QUANTIZE", "DEQUANTIZE")


def _output_layers(calibrated: bytes, graph: Graph, model, output_names) -> dict[int, str]:
    """{output tensor index: the Keras layer that computes it} of the calibrated model."""
    from exporter.io_names import signature_names

    layers = list(model.output_names)
    if len(layers) == 1:
        return {i: layers[0] for i in graph.outputs}
    names = list(output_names or layers)
    _, by_index = signature_names(calibrated)
    return {i: layers[names.index(by_index[i])] for i in graph.outputs if by_index.get(i) in names}


def layer_nodes(calibrated: bytes, model, layers, output_names=None) -> dict[str, list[str]]:
    """The output tensor names of each layer's ops in a calibrated (float) .tflite: the quantizer's node names.

    Args:
        calibrated: the converter's calibrate-only model.
        model: the tf_keras model it was converted from.
        layers: the names of the layers to find.
        output_names: the signature's output names (`ConvertConfig.output_names`); None: the model's.

    Returns:
        {layer: [node names]}, in the order of `layers`.

    Raises:
        ConversionError: a layer with no op of its own in the model (its ops folded into others', or none).
    """
    graph = Graph.from_bytes(calibrated)
    known, outputs = {layer.name for layer in model.layers}, _output_layers(calibrated, graph, model, output_names)
    found: dict[str, list[str]] = {name: [] for name in layers}
    for op in graph.ops:
        names = [graph.tensors[i].name for i in op.outputs]
        parts = {part for name in names for scope in name.split(";") for part in scope.split("/")[1:]}
        owners = (parts & known) or {outputs[i] for i in op.outputs if i in outputs}
        for owner in owners & set(found):
            found[owner] += names
    missing = [name for name, nodes in found.items() if not nodes]
    if missing:
        raise ConversionError(f"{option('float_layers', missing)}: no op of the converted model belongs to "
                              f"{', '.join(map(repr, missing))} (folded into another layer's op, or nothing to "
                              "compute at inference); name the layer whose op it is")
    return found


def quantize_keeping_float(converter, model, config) -> bytes:
    """Quantize to int8 with the ops of `config.float_layers` left in float.

    Args:
        converter: a TFLiteConverter set up for int8 (optimizations, representative data, I/O types).
        model: the tf_keras model being converted.
        config: the ConvertConfig (its `float_layers` and `output_names`).

    Returns:
        The .tflite bytes: int8 I/O (the converter's `inference_input_type`), float ops for the named layers.

    Raises:
        ConversionError: a named layer with no op of its own.
    """
    from exporter import tf as tfmod

    converter._experimental_calibrate_only = True       # as QuantizationDebugger does
    calibrated = converter.convert()
    nodes = layer_nodes(calibrated, model, config.float_layers, config.output_names)
    tflite = bytes(tfmod.mlir_quantize()(
        calibrated, converter._experimental_disable_per_channel,
        input_data_type=converter.inference_input_type, output_data_type=converter.inference_output_type,
        denylisted_nodes=sorted({n for names in nodes.values() for n in names}),
        disable_per_channel_for_dense_layers=converter._experimental_disable_per_channel_quantization_for_dense_layers))
    _check_kept(tflite, nodes)
    return tflite


def _check_kept(tflite: bytes, nodes: dict[str, list[str]]) -> None:
    """Refuse a result in which some named layer has no float op: the quantizer did not honour its nodes.

    An op keeps its node's name, or that name with a digit added where a QUANTIZE after it took the name
    (a model output), so an op of a layer is one whose output name starts with one of the layer's node names.
    Seen with tensorflow 2.21: MAX_POOL_2D stays int8 when denylisted.
    """
    graph = Graph.from_bytes(tflite)
    floats = [graph.tensors[i].name for op in _float_ops(graph) for i in op.outputs]
    kept = [layer for layer, names in nodes.items() if not any(f.startswith(n) for f in floats for n in names)]
    if kept:
        raise ConversionError(f"{option('float_layers', kept)}: the int8 quantizer did not keep "
                              f"{', '.join(map(repr, kept))} in float (it quantizes some ops, such as MAX_POOL_2D, "
                              "whatever it is told); name a layer with weights (Conv2D, Dense, ...)")


def _float_ops(graph: Graph) -> list:
    """The ops of `graph` that compute in float32, in graph order (QUANTIZE and DEQUANTIZE left out)."""
    return [op for op in graph.ops if op.compute_dtype == "float32" and op.name not in _BOUNDARY]


def float_ops(graph: Graph) -> list[str]:
    """The names of the float32 ops of an int8 model, in graph order (QUANTIZE and DEQUANTIZE left out)."""
    return [op.name for op in _float_ops(graph)]


def float_targets() -> str:
    """The targets whose runtime mixes float and int8 ops (`Target.float_layers`), for messages: "android, linux"."""
    from targets.base import all_targets

    return ", ".join(t.name for t in all_targets() if t.float_layers)


def float_notes(tflite: bytes, config) -> list[str]:
    """The console and report line of an int8 model with float layers (which ops compute in float32); [] without."""
    if not config.float_layers:
        return []
    graph = Graph.from_bytes(tflite)
    boundary = sum(op.name in _BOUNDARY for op in graph.ops)
    return [f"float_layers: {', '.join(config.float_layers)} kept in float32 ({', '.join(float_ops(graph))}); "
            f"{boundary} QUANTIZE/DEQUANTIZE ops between float and int8"]


def check_request(request, mode: str | None, model) -> None:
    """Refuse float_layers before any work where they cannot apply.

    Args:
        request: the resolved export (its recipe's `float_layers`, its target and stages).
        mode: the conversion mode (None: a given .tflite, bundled as it is).
        model: the loaded tf_keras model (None for a .tflite).

    Raises:
        UsageError: a .tflite, a target whose runtime cannot mix float and int8 ops (`Target.float_layers`), a
            mode other than int8, or a qat stage (a QAT model is converted with the ranges it learned, whole).
        ConfigError: a name no layer of the model has, listing the model's layers.
    """
    names = list(request.recipe.float_layers)
    if not names:
        return
    spelled, target = option("float_layers", names), request.target
    if model is None:
        raise UsageError(f"{spelled}: a .tflite is bundled as it is; float layers apply to Keras models")
    if not target.float_layers:
        raise UsageError(f"{spelled}: target {target.name} runs int8 models whole ({target.runtime}); keeping layers "
                         f"in float works on targets whose runtime mixes float and int8 ops: {float_targets()}")
    if mode != "int8":
        raise UsageError(f"{spelled}: float layers are kept in an int8 model; this export is {mode} "
                         f"({option('quantize', 'int8')} for int8)")
    if any(stage.name == "qat" for stage in request.stages):
        raise UsageError(f"{spelled}: a qat model is converted with the int8 ranges it learned, every layer; "
                         "drop qat or the float layers")
    known = [layer.name for layer in model.layers]
    unknown = [name for name in names if name not in known]
    if unknown:
        from exporter.stages.selection import _named

        raise ConfigError(f"{spelled}: no layer named {_named(unknown, known)}; the model's layers: "
                          f"{', '.join(known)}")
