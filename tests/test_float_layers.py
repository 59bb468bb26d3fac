"""Int8 models with layers kept in float (exporter/stages/float_layers.py): the .tflite, LiteRT, the export, refusals."""
from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pytest

import exporter
from exporter.analysis.graph import Graph
from exporter.errors import ConversionError, ExporterError
from exporter.stages.convert import ConvertConfig, convert
from tests.test_cli import run


@pytest.fixture(scope="module")
def converted(doctest_model, demo):
    """The demo converted to int8 as it is, and with `probs` kept in float."""
    plain = convert(doctest_model, ConvertConfig(mode="int8"), calib=demo.calib.x)
    probs = convert(doctest_model, ConvertConfig(mode="int8", float_layers=("probs",)), calib=demo.calib.x)
    return plain, probs


def _weights(graph: Graph, op) -> str:
    """The dtype of an op's weights: its constant input of rank 2 or more."""
    return next(graph.tensors[i].dtype for i in op.inputs if i >= 0 and graph.tensors[i].is_constant
                and len(graph.tensors[i].shape) >= 2)


def _litert_top1(tflite: bytes, demo) -> float:
    """Top-1 accuracy in % of the .tflite on the demo's eval split, run by LiteRT with quantized int8 inputs."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite)
    interpreter.allocate_tensors()
    given, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert given["dtype"] == np.int8 and out["dtype"] == np.int8
    scale, zero = given["quantization"]
    right = 0
    for x, y in zip(demo.eval.x, demo.eval.y):
        interpreter.set_tensor(given["index"], np.clip(np.round(x[None] / scale + zero), -128, 127).astype(np.int8))
        interpreter.invoke()
        right += int(interpreter.get_tensor(out["index"]).argmax() == y)
    return 100 * right / len(demo.eval.y)


def test_probs_is_float_and_the_convolutions_stay_int8(converted):
    graph = Graph.from_bytes(converted[1])
    dense, probs = (next(op for op in graph.ops if op.name == "FULLY_CONNECTED"
                         and f"/{layer}/" in graph.tensors[op.outputs[0]].name) for layer in ("dense", "probs"))
    assert _weights(graph, probs) == "float32" and probs.compute_dtype == "float32"
    assert _weights(graph, dense) == "int8" and dense.compute_dtype == "int8"
    convs = [op for op in graph.ops if op.name == "CONV_2D"]
    assert len(convs) == 2 and all(_weights(graph, op) == "int8" and op.compute_dtype == "int8" for op in convs)
    assert [op.name for op in graph.ops].count("DEQUANTIZE") == 1 and graph.ops[-1].name == "QUANTIZE"
    assert graph.input_details()[0].dtype == graph.output_details()[0].dtype == "int8"
    assert all(op.compute_dtype == "int8" for op in Graph.from_bytes(converted[0]).ops)


def test_litert_runs_it_on_int8_inputs(converted, demo):
    plain, probs = (_litert_top1(t, demo) for t in converted)
    print(f"demo top-1 on LiteRT: int8 {plain:.2f} %, probs in float {probs:.2f} %")
    assert probs >= 95 and abs(probs - plain) <= 1


def test_the_same_bytes_as_tf_quantization_debugger(converted, doctest_model, demo):
    """The documented route (fully_quantize=True: int8 I/O) makes the same model; it has no uint8 I/O."""
    from exporter import tf as tfmod

    tf = tfmod.tensorflow()
    spec = doctest_model.inputs[0]
    signature = tf.TensorSpec([1, *spec.shape[1:]], spec.dtype, name=spec.name.split(":")[0])
    function = tf.function(lambda x: doctest_model(x, training=False)).get_concrete_function(signature)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], doctest_model)
    samples = demo.calib.x[:200].astype(np.float32)                  # ConvertConfig's calibration_samples
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in samples)
    converter.inference_input_type = converter.inference_output_type = tf.int8
    nodes = ["digits_cnn/probs/MatMul;digits_cnn/probs/BiasAdd", "StatefulPartitionedCall:0"]   # probs' two ops
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes, fully_quantize=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # the debugger's tf.lite.Interpreter is deprecated
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=lambda: iter(()),
                                                             debug_options=options)
    assert debugger.get_nondebug_quantized_model() == converted[1]


@pytest.mark.parametrize("io", ["uint8", "float32"])
def test_other_io_dtypes_are_kept(doctest_model, demo, io):
    graph = Graph.from_bytes(convert(doctest_model, ConvertConfig(mode="int8", io_dtype=io, float_layers=("probs",)),
                                     calib=demo.calib.x))
    assert graph.input_details()[0].dtype == graph.output_details()[0].dtype == io
    assert [op.name for op in graph.ops if op.compute_dtype == "float32" and "QUANT" not in op.name] == \
        ["FULLY_CONNECTED", "SOFTMAX"]


def test_a_model_with_two_outputs_finds_each_output_layer():
    """`box` is one op, which writes a model output: it is found through the .tflite's signature names."""
    from tests.multi_io_models import build, samples

    data = samples(64, 0)
    graph = Graph.from_bytes(convert(build(epochs=1), ConvertConfig(mode="int8", float_layers=("box",)),
                                     calib=(data["image"], data["meta"])))
    floats = [op for op in graph.ops if op.compute_dtype == "float32" and op.name != "QUANTIZE"]
    assert [op.name for op in floats] == ["FULLY_CONNECTED"] and floats[0].outputs[0] not in graph.outputs
    assert [t.dtype for t in graph.output_details()] == ["int8", "int8"]


@pytest.mark.parametrize("layer, words", [
    ("nope", "no op of the converted model belongs to 'nope'"),
    ("max_pooling2d", "did not keep 'max_pooling2d' in float"),        # the quantizer keeps MAX_POOL_2D int8
])
def test_a_layer_that_cannot_stay_float_fails_the_conversion(doctest_model, demo, layer, words):
    with pytest.raises(ConversionError, match=words) as err:
        convert(doctest_model, ConvertConfig(mode="int8", float_layers=(layer,)), calib=demo.calib.x)
    assert err.value.exit_code == 4 and f"float_layers=['{layer}'] in the recipe" in str(err.value)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_records_it_and_a_manifest_reruns_it(tmp_path):
    result = run(["export", "--demo", "--target", "android", "--float-layer", "probs", "--out", str(tmp_path / "a"),
                  "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    note = "float_layers: probs kept in float32 (FULLY_CONNECTED, SOFTMAX); 2 QUANTIZE/DEQUANTIZE ops"
    assert any(n.startswith(note) for n in report["notes"])
    assert report["io"]["inputs"][0]["dtype"] == "int8" and report["measurements"]["accuracy"]["value"] >= 95
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["recipe"]["float_layers"] == ["probs"] and manifest["recipe"]["quantize"] == "int8"
    again = run(["export", "--demo", "--target", "android", "--recipe", str(tmp_path / "a"), "--out",
                 str(tmp_path / "b")])
    assert again.exit_code == 0, again.stderr
    assert _sha(tmp_path / "a" / "model.tflite") == _sha(tmp_path / "b" / "model.tflite")
    assert run(["verify", str(tmp_path / "b")]).exit_code == 0


@pytest.mark.parametrize("args, words", [
    (["--float-layer", "prob"], "--float-layer prob: no layer named 'prob' (did you mean 'probs'?); the model's "
                                "layers: conv2d, conv2d_1, max_pooling2d, flatten, dense, probs"),
    (["--float-layer", "probs", "--quantize", "float32"], "--float-layer probs: float layers are kept in an int8 "
                                                          "model; this export is float32 (--quantize int8 for int8)"),
    (["--float-layer", "probs", "--target", "microcontroller"], "--float-layer probs: target microcontroller runs "
                                                                "int8 models whole"),
    (["--float-layer", "probs", "--target", "edgetpu"], "mixes float and int8 ops: android, linux"),
    (["--float-layer", "probs", "--qat"], "a qat model is converted with the int8 ranges it learned"),
])
def test_refused_before_any_work(tmp_path, args, words):
    result = run(["export", "--demo", *args, "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_refused_from_python_in_its_spelling():
    with pytest.raises(ExporterError) as err:
        exporter.export(demo=True, target="ethos-u", recipe={"float_layers": ["probs"]}, progress=False)
    assert err.value.exit_code == 2 and str(err.value).startswith("float_layers=['probs'] in the recipe: target ethos-u")
