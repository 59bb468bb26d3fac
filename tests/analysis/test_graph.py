"""Tests for exporter.analysis.graph (static .tflite analysis)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np
import pytest

from exporter.analysis.graph import Graph
from exporter.errors import ModelFileError

# Input (8, 8, 1) -> Conv2D(4, 3) -> (6, 6, 4) -> DepthwiseConv2D(3) -> (4, 4, 4)
# -> MaxPool2D(2) -> (2, 2, 4) -> Flatten -> 16 -> Dense(10)
CONV_MACS = 6 * 6 * 4 * (3 * 3 * 1)
DW_MACS = 4 * 4 * 4 * (3 * 3)
POOL_MACS = 2 * 2 * 4 * (2 * 2)
FC_MACS = 10 * 16


def _build_model():
    from exporter import tf as tfmod

    keras = tfmod.keras()
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.layers.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3),
        keras.layers.DepthwiseConv2D(3),
        keras.layers.MaxPool2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])


@pytest.fixture(scope="module")
def models():
    """Convert the model once: float32, full-integer int8 and a hybrid Dense."""
    from exporter import tf as tfmod

    tf, keras = tfmod.tensorflow(), tfmod.keras()
    model = _build_model()
    out = {"float": tf.lite.TFLiteConverter.from_keras_model(model).convert()}

    rng = np.random.default_rng(0)

    def representative():
        for _ in range(8):
            yield [rng.standard_normal((1, 8, 8, 1)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    out["int8"] = conv.convert()

    dense = keras.Sequential([keras.layers.Input((64,)), keras.layers.Dense(64)])
    conv = tf.lite.TFLiteConverter.from_keras_model(dense)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]  # no dataset: dynamic range
    out["hybrid"] = conv.convert()
    return out


@pytest.fixture(scope="module")
def other_ops():
    """A float model with grouped conv, transpose conv, avg pool, add and matmul."""
    from exporter import tf as tfmod

    tf, keras = tfmod.tensorflow(), tfmod.keras()
    img, x, y = keras.Input((8, 8, 3)), keras.Input((4, 6)), keras.Input((6, 7))
    up = keras.layers.Conv2DTranspose(5, 3, strides=2)(img)  # -> (17, 17, 5)
    pooled = keras.layers.AveragePooling2D(3)(up)  # -> (5, 5, 5)
    outs = [keras.layers.Add()([pooled, pooled]),
            keras.layers.Conv2D(6, 3, groups=3)(img),  # filter (6, 3, 3, 1)
            keras.layers.Lambda(lambda t: tf.linalg.matmul(t[0], t[1]))([x, y])]
    model = keras.Model([img, x, y], outs)
    return Graph.from_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def _only(graph, name):
    ops = [op for op in graph.ops if op.name == name]
    assert len(ops) == 1, graph.op_counts()
    return ops[0]


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_op_names_and_macs(models, kind):
    g = Graph.from_bytes(models[kind])
    names = set(g.op_counts())
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED"} <= names
    assert _only(g, "CONV_2D").macs == CONV_MACS
    assert _only(g, "DEPTHWISE_CONV_2D").macs == DW_MACS
    assert _only(g, "MAX_POOL_2D").macs == POOL_MACS
    assert _only(g, "FULLY_CONNECTED").macs == FC_MACS
    assert g.total_macs == sum(op.macs for op in g.ops)
    assert g.total_macs == CONV_MACS + DW_MACS + POOL_MACS + FC_MACS
    assert g.subgraph_count == 1
    assert g.custom_ops() == []
    assert not any(op.is_custom for op in g.ops)


def test_conv_macs_match_tensor_shapes(models):
    g = Graph.from_bytes(models["float"])
    conv = _only(g, "CONV_2D")
    out_c, kh, kw, in_c = g.tensors[conv.inputs[1]].shape
    assert g.tensors[conv.outputs[0]].shape == (1, 6, 6, 4)
    assert conv.macs == 6 * 6 * out_c * kh * kw * in_c
    fc = _only(g, "FULLY_CONNECTED")
    units, in_features = g.tensors[fc.inputs[1]].shape
    assert (units, in_features) == (10, 16)
    assert fc.macs == units * in_features


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_peak_activation_bounds(models, kind):
    g = Graph.from_bytes(models[kind])
    acts = [t.nbytes for t in g.tensors if not t.is_constant]
    assert g.peak_activation_bytes > 0
    assert max(acts) <= g.peak_activation_bytes <= sum(acts)


def test_other_op_macs(other_ops):
    g = other_ops
    assert _only(g, "TRANSPOSE_CONV").macs == (8 * 8 * 3) * (3 * 3 * 5)
    assert _only(g, "AVERAGE_POOL_2D").macs == (5 * 5 * 5) * (3 * 3)
    assert _only(g, "ADD").macs == 5 * 5 * 5
    assert _only(g, "CONV_2D").macs == (6 * 6 * 6) * (3 * 3 * 1)  # per-group in_c
    assert _only(g, "BATCH_MATMUL").macs == (4 * 7) * 6
    assert g.total_macs == sum(op.macs for op in g.ops)
    assert len(g.input_details()) == 3 and len(g.output_details()) == 3


def test_peak_activation_of_a_chain(models):
    # A linear chain: each activation is read only by the next op, so the
    # peak is the largest (inputs + outputs) of a single op: conv 256 + 576.
    g = Graph.from_bytes(models["float"])
    per_op = [sum(g.tensors[i].nbytes for i in (*op.inputs, *op.outputs)
                  if i >= 0 and not g.tensors[i].is_constant) for op in g.ops]
    assert g.peak_activation_bytes == max(per_op) == 8 * 8 * 4 + 6 * 6 * 4 * 4


def test_float_tensors(models):
    g = Graph.from_bytes(models["float"])
    assert all(op.compute_dtype == "float32" for op in g.ops)
    inp = g.input_details()[0]
    assert (inp.dtype, inp.nbytes, inp.is_constant) == ("float32", 8 * 8 * 4, False)
    assert g.output_details()[0].shape == (1, 10)


def test_int8_compute_dtype_and_quantization(models):
    g = Graph.from_bytes(models["int8"])
    assert all(op.compute_dtype == "int8" for op in g.ops), [
        (op.name, op.compute_dtype) for op in g.ops]
    inp = g.input_details()[0]
    assert inp.dtype == "int8"
    assert inp.quantization is not None
    assert len(inp.quantization["scale"]) == len(inp.quantization["zero_point"]) == 1
    weights = g.tensors[_only(g, "CONV_2D").inputs[1]]
    assert weights.dtype == "int8" and weights.is_constant
    assert len(weights.quantization["scale"]) == 4  # per output channel


def test_int8_weight_bytes_about_a_quarter(models):
    f = Graph.from_bytes(models["float"]).weight_bytes
    q = Graph.from_bytes(models["int8"]).weight_bytes
    assert f > 0 and 0.2 <= q / f <= 0.4, (q, f)


def test_hybrid_compute_dtype(models):
    g = Graph.from_bytes(models["hybrid"])
    fc = _only(g, "FULLY_CONNECTED")
    assert fc.compute_dtype == "hybrid"
    assert g.tensors[fc.inputs[1]].dtype == "int8"
    assert fc.macs == 64 * 64


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_input_shape_matches_litert(models, kind):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=models[kind])
    g = Graph.from_bytes(models[kind])
    expected_in = interp.get_input_details()[0]
    assert g.input_details()[0].shape == tuple(expected_in["shape"].tolist())
    assert g.input_details()[0].dtype == np.dtype(expected_in["dtype"]).name
    assert g.output_details()[0].shape == tuple(
        interp.get_output_details()[0]["shape"].tolist())


def test_to_dict_is_json(models):
    g = Graph.from_bytes(models["int8"])
    d = json.loads(json.dumps(g.to_dict()))
    assert d["total_macs"] == g.total_macs
    assert d["weight_bytes"] == g.weight_bytes
    assert d["peak_activation_bytes"] == g.peak_activation_bytes
    assert d["subgraph_count"] == 1
    conv = next(op for op in d["ops"] if op["name"] == "CONV_2D")
    assert conv["output_shapes"] == [[1, 6, 6, 4]]
    assert conv["compute_dtype"] == "int8" and conv["version"] >= 1


def test_from_file(models, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(models["float"])
    assert Graph.from_file(path) == Graph.from_bytes(models["float"])
    with pytest.raises(ModelFileError):
        Graph.from_file(tmp_path / "missing.tflite")


@pytest.mark.reliability(24)
@pytest.mark.parametrize("mutate", [
    pytest.param(lambda b: b"", id="empty"),
    pytest.param(lambda b: b"\x00" * 3, id="tiny"),
    pytest.param(lambda b: bytes(np.random.default_rng(1).integers(0, 256, 4096, np.uint8)),
                 id="garbage"),
    pytest.param(lambda b: b[:4] + b"TFL3" + bytes(range(256)) * 4, id="garbage-with-id"),
    pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
    pytest.param(lambda b: b[:4] + b"3LFT" + b[8:], id="flipped-identifier"),
])
def test_invalid_bytes_raise(models, mutate):
    with pytest.raises(ModelFileError, match="not a valid TFLite model"):
        Graph.from_bytes(mutate(models["float"]))


def test_import_does_not_load_tensorflow():
    code = ("import sys, exporter.analysis.graph; "
            "sys.exit('tensorflow' in sys.modules)")
    cwd = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert subprocess.run([sys.executable, "-c", code], cwd=cwd).returncode == 0


def _corrupt_names(data: bytes, names) -> bytes:
    """Put invalid UTF-8 (0xff 0xfe) inside every occurrence of each tensor name in the flatbuffer."""
    out = bytearray(data)
    for name in names:
        raw, start = name.encode(), 0
        while (at := out.find(raw, start)) >= 0:
            out[at + 1:at + 3] = b"\xff\xfe"
            start = at + len(raw)
    return bytes(out)


@pytest.mark.reliability(40)
def test_corrupt_tensor_names_are_refused_as_invalid(models, tmp_path):
    """LiteRT's Python API cannot decode such names; edgex says so up front (exit 2), never exit 70."""
    from tests.test_cli import run

    names = [t.name for t in Graph.from_bytes(models["float"]).tensors if len(t.name) >= 4]
    bad = _corrupt_names(models["float"], names)
    assert bad != models["float"] and len(bad) == len(models["float"])
    with pytest.raises(ModelFileError, match=r"not a valid TFLite model: subgraph 0 tensor \d+ name is not UTF-8"):
        Graph.from_bytes(bad)
    path = tmp_path / "corrupt-names.tflite"
    path.write_bytes(bad)
    for args in (["inspect", str(path)], ["inspect", str(path), "--json"],
                 ["export", str(path), "--target", "android", "--out", str(tmp_path / "out")]):
        result = run(args)
        assert result.exit_code == 2, (args, result.stderr)
        assert "not a valid TFLite model" in result.stderr and "internal error" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("raw,ok", [(b"conv/weights", True), (b"", True), (None, True), ("é".encode(), True),
                                    (b"a\xffb", False), (b"\xc3", False), (b"\xed\xa0\x80", False)])
def test_flatbuffer_strings_are_strict_utf8(raw, ok):
    from exporter.analysis.flatbuffer import text

    if ok:
        assert text(raw, "tensor 1 name") == (raw or b"").decode()
    else:
        with pytest.raises(ModelFileError, match="tensor 1 name is not UTF-8"):
            text(raw, "tensor 1 name")


@pytest.mark.reliability(42)
def test_flipped_bytes_never_escape_as_other_errors(models):
    """Any damage to a real model gives a Graph or ModelFileError (never IndexError, UnicodeDecodeError, ...)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    data = models["int8"]

    @settings(max_examples=400, deadline=None, derandomize=True)
    @given(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), min_size=1, max_size=8),
           st.integers(8, len(data)))
    def parse(flips, keep):
        damaged = bytearray(data[:keep])
        for at, value in flips:
            if at < len(damaged):
                damaged[at] = value
        try:
            graph = Graph.from_bytes(bytes(damaged))
        except ModelFileError:
            return
        json.dumps(graph.to_dict())

    parse()
