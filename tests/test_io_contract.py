"""The I/O contract: every input's and output's scale and zero point in the manifest, the reports and `inspect`,
read from the .tflite, and the formulas that reproduce what the model itself computes.

The demo's int8 model (int8 I/O) is compared with the same model converted with float32 I/O (same
calibration): there the QUANTIZE op at the input and the DEQUANTIZE op at the output run inside LiteRT,
so what they compute is the model's own quantized input and real output.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from exporter.analysis.graph import Graph
from exporter.io_contract import contract_text, dequantize, quantize, tensor_contract
from exporter.report_html import render_html
from tests.test_cli import run


def _litert(tflite: bytes, **kwargs):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite, **kwargs)
    interpreter.allocate_tensors()
    return interpreter


@pytest.fixture(scope="module")
def float_io(demo):
    """The demo converted to int8 with float32 I/O: QUANTIZE and DEQUANTIZE inside the model."""
    from exporter.model_io import load_model
    from exporter.stages.convert import ConvertConfig, convert

    return convert(load_model(demo.model_path).model, ConvertConfig(mode="int8", io_dtype="float32"),
                   calib=demo.calib.x)


def test_manifest_report_and_inspect_give_the_scale_and_zero_point_litert_reports(demo_bundle):
    report, out = demo_bundle
    manifest = json.loads((out / "manifest.json").read_text())
    interpreter = _litert((out / "model.tflite").read_bytes())
    details = {"inputs": interpreter.get_input_details(), "outputs": interpreter.get_output_details()}
    inspected = json.loads(run(["inspect", str(out / "model.tflite"), "--json"]).stdout)["io"]
    for kind in ("inputs", "outputs"):
        (entry,), (detail,) = manifest["io"][kind], details[kind]
        assert (entry["scale"], entry["zero_point"]) == tuple(detail["quantization"])          # exactly LiteRT's
        assert entry["dtype"] == "int8" and (entry["qmin"], entry["qmax"]) == (-128, 127) and not entry["per_channel"]
        assert entry["scale"] > 0 and -128 <= entry["zero_point"] <= 127
        assert inspected[kind] == manifest["io"][kind] == report.to_dict()["io"][kind]
        cells = f"| {entry['dtype']} | {entry['scale']:.9g} | {entry['zero_point']} | -128..127 |"
        assert cells in report.to_markdown()
        assert f"<td>{entry['scale']:.9g}</td><td>{entry['zero_point']}</td>" in render_html(report)
    assert manifest["io"]["formulas"]["quantize"] == "q = clamp(round(x / scale) + zero_point, qmin, qmax)"
    assert manifest["io"]["formulas"]["dequantize"] == "x = (q - zero_point) * scale"
    assert "q = clamp(round(x / scale) + zero_point, qmin, qmax)" in report.to_markdown()
    text = run(["inspect", str(out / "model.tflite")]).stdout
    entry = manifest["io"]["inputs"][0]
    assert f"input 'image' [1, 8, 8, 1]: int8, scale {entry['scale']:.9g}, zero point {entry['zero_point']}" in text


def test_the_formula_with_the_recorded_figures_is_the_models_own_quantization(demo_bundle, demo, float_io):
    _, out = demo_bundle
    io_ = json.loads((out / "manifest.json").read_text())["io"]
    graph = Graph.from_bytes(float_io)
    first, last = graph.ops[0], graph.ops[-1]
    assert (first.name, last.name) == ("QUANTIZE", "DEQUANTIZE")
    quantized, before = graph.tensors[first.outputs[0]], graph.tensors[last.inputs[0]]
    assert tensor_contract(quantized) == {k: io_["inputs"][0][k] for k in tensor_contract(quantized)}   # same calibration
    assert tensor_contract(before) == {k: io_["outputs"][0][k] for k in tensor_contract(before)}
    rng = np.random.default_rng(0)
    xs = np.concatenate([demo.eval.x, rng.uniform(-0.2, 1.2, (64, 8, 8, 1)).astype(np.float32)])
    floats = _litert(float_io, experimental_preserve_all_tensors=True)
    ints = _litert((out / "model.tflite").read_bytes())
    for x in xs:
        floats.set_tensor(floats.get_input_details()[0]["index"], x[None])
        floats.invoke()
        q = quantize(x[None], io_["inputs"][0])
        assert np.array_equal(q, floats.get_tensor(quantized.index))       # the model's own QUANTIZE, exactly
        ints.set_tensor(io_["inputs"][0]["index"], q)
        ints.invoke()
        y = dequantize(ints.get_tensor(io_["outputs"][0]["index"]), io_["outputs"][0])
        assert np.array_equal(y, floats.get_tensor(floats.get_output_details()[0]["index"]))   # its DEQUANTIZE


def test_weights_quantized_per_channel_say_so_with_their_axis(demo_bundle):
    _, out = demo_bundle
    graph = Graph.from_bytes((out / "model.tflite").read_bytes())
    conv = next(op for op in graph.ops if op.name == "CONV_2D")
    kernel = tensor_contract(graph.tensors[conv.inputs[1]])
    filters = graph.tensors[conv.inputs[1]].shape[0]
    assert kernel["per_channel"] and kernel["axis"] == 0 and len(kernel["scale"]) == filters
    assert kernel["zero_point"] == [0] * filters and (kernel["qmin"], kernel["qmax"]) == (-127, 127)
    assert contract_text(kernel).startswith(f"int8, per channel along axis 0: {filters} scales ")
    q = quantize(np.ones((filters, 3, 3, 1), np.float32) * 0.01, kernel)
    assert q.dtype == np.int8 and np.array_equal(dequantize(q, kernel)[:, 0, 0, 0],
                                                 q[:, 0, 0, 0] * np.asarray(kernel["scale"], np.float32))


def test_float_and_uint8_tensors(demo_bundle):
    float_entry = {"dtype": "float32", "scale": None, "zero_point": None, "qmin": None, "qmax": None,
                   "per_channel": False, "axis": None}
    assert contract_text(float_entry) == "float32, not quantized (real values as they are)"
    x = np.array([-1.5, 0.25], np.float32)
    assert quantize(x, float_entry).tolist() == [-1.5, 0.25] and dequantize(x, float_entry).tolist() == [-1.5, 0.25]
    u8 = dict(float_entry, dtype="uint8", scale=0.5, zero_point=128, qmin=0, qmax=255)
    q = quantize(np.array([-100.0, -0.25, 0.25, 0.75, 63.5, 100.0], np.float32), u8)
    assert q.dtype == np.uint8 and q.tolist() == [0, 127, 129, 130, 255, 255]     # ties away from zero; clamped
    assert dequantize(q, u8).tolist() == [-64.0, -0.5, 0.5, 1.0, 63.5, 63.5]
