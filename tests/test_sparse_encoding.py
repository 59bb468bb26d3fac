"""Sparse encoding on phones (exporter/sparse/): the pruned demo for android, auto's rule, refusals, XNNPACK.

One pruned float32 export of the demo is shared (`pruned`); the other tests build tiny models, whose
dense and sparse conversions are compared directly on LiteRT.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import exporter
from exporter.errors import ConfigError
from exporter.litert import LiteRTRunner
from exporter.sparse.decision import AUTO_ZEROS, WeightZeros, decide, zero_fractions
from exporter.sparse.tensors import sparse_tensors
from exporter.sparse.xnnpack import assess
from exporter.stages.convert import ConvertConfig, convert
from tests.test_cli import run


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, demo):
    """The demo pruned to 80 % zeros, float32 for android, sparse encoding on (accuracy is test_prune's concern)."""
    out = tmp_path_factory.mktemp("sparse") / "bundle"
    result = run(["export", "--demo", "--target", "android", "--quantize", "float32", "--prune", "0.8",
                  "--sparse-encoding", "on", "--limit", "accuracy_drop=10", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), out


def _masked(keras, layers, zeros: float, seed: int = 0):
    """A model of `layers` whose kernels have `zeros` of their values set to exactly 0."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(layers)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if getattr(layer, "kernel", None) is not None:
            kernel = layer.kernel.numpy()
            kernel[rng.random(kernel.shape) < zeros] = 0
            layer.kernel.assign(kernel)
    return model


def _mobilenet_like(keras, zeros: float):
    """A stem 3x3 stride-2 conv on 3 channels, a depthwise 3x3, a 1x1 conv, a spatial mean: XNNPACK's sparse shape."""
    L = keras.layers
    return _masked(keras, [L.Input((32, 32, 3)), L.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
                           L.DepthwiseConv2D(3, padding="same", activation="relu"), L.Conv2D(64, 1, activation="relu"),
                           L.GlobalAveragePooling2D(), L.Dense(10)], zeros)


# -- the pruned demo for android ------------------------------------------------------------------

def test_the_sparse_model_is_smaller_on_disk_and_its_tensors_are_sparse(pruned):
    report, out = pruned
    m = report["measurements"]
    stored = (out / "model.tflite").read_bytes()
    assert m["model_size"]["value"] == len(stored) and report["sparse_encoding"]["applied"] is True
    assert m["model_size"]["value"] < 0.5 * m["model_size_dense"]["value"]       # 80 % zeros: about a third
    tensors = sparse_tensors(stored)                              # read back from the bundled file
    assert m["sparse_tensors"]["value"] == len(tensors) == 4       # both conv kernels and both Dense kernels
    assert all(t.densified and t.encoding == "random" for t in tensors)
    assert sum(t.stored for t in tensors) < 0.25 * sum(t.elements for t in tensors)


def test_the_sparse_model_answers_as_the_dense_one_on_litert(pruned, demo):
    report, out = pruned
    m = report["measurements"]
    assert m["sparse_max_abs_error"]["value"] <= 1e-5 and "360 eval samples" in m["sparse_max_abs_error"]["on"]
    assert m["fidelity_max_abs_error"]["value"] <= 1e-5           # against the pruned Keras model (measure_host)
    probs = LiteRTRunner((out / "model.tflite").read_bytes()).predict(demo.eval.x[:20])
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_the_report_has_bytes_and_host_latency_with_and_without(pruned):
    report, out = pruned
    m = report["measurements"]
    for name in ("host_latency_p50", "host_latency_p50_dense"):
        assert m[name]["source"] == "measured" and m[name]["value"] > 0 and "1 thread" in m[name]["on"]
    ratio = m["host_latency_ratio_sparse"]["value"]
    assert ratio == pytest.approx(m["host_latency_p50"]["value"] / m["host_latency_p50_dense"]["value"])
    xnn = report["sparse_encoding"]["xnnpack_sparse_inference"]
    assert xnn["applies"] is False and "not observed" in xnn["basis"]             # 1 input channel, no 1x1 convs
    assert "only the stored size shrinks" in xnn["consequence"]
    markdown = (out / "report.md").read_text()
    assert "## Sparse encoding" in markdown and "model_size_dense" in markdown and "host latency p50:" in markdown
    assert "Sparse encoding" in (out / "report.html").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sparse_encoding"]["summary"] == report["sparse_encoding"]["summary"]
    assert manifest["recipe"]["sparse_encoding"] == "on"
    assert [f["figure"] for f in manifest["sizes"]["stored"]] == ["model_size", "model_size_dense"]
    assert any(n.startswith("sparse encoding (on (as asked)") for n in report["notes"])


def test_the_bundle_recipe_re_runs_the_setting(pruned):
    from exporter.recipe import load_recipe

    assert load_recipe(pruned[1]).sparse_encoding == "on"
    with pytest.raises(ConfigError, match="sparse_encoding"):
        exporter.recipe._validate({"sparse_encoding": "sometimes"}, "recipe")


# -- auto's rule ----------------------------------------------------------------------------------

@pytest.mark.parametrize("zeros, on", [(0.29, False), (AUTO_ZEROS, True), (0.31, True)])
def test_auto_turns_on_from_30_percent_zeros_in_some_kernel(zeros, on):
    weights = [WeightZeros("conv/kernel:0", (3, 3, 1, 4), 0.05), WeightZeros("dense/kernel:0", (64, 10), zeros)]
    assert decide("auto", weights)[0] is on
    assert decide("on", weights)[0] is True and decide("off", weights)[0] is False


def test_zero_shares_are_read_from_kernels_only(keras):
    L = keras.layers
    model = keras.Sequential([L.Input((10,)), L.Dense(10), L.Dense(2)])
    kernel = model.layers[0].kernel.numpy()
    kernel.flat[:30] = 0                                          # exactly 30 of 100 values
    model.layers[0].kernel.assign(kernel)
    shares = zero_fractions(model)
    assert [w.shape for w in shares] == [(10, 10), (10, 2)]          # biases (all zeros here) are not counted
    assert shares[0].zeros == pytest.approx(0.30)
    assert decide("auto", zero_fractions(model))[0] is True
    kernel.flat[29] = 1.0
    model.layers[0].kernel.assign(kernel)
    assert decide("auto", zero_fractions(model))[0] is False


@pytest.mark.parametrize("zeros, applied", [(0.6, True), (0.1, False)])
def test_auto_through_the_api_for_android(keras, tiny_data, zeros, applied):
    L = keras.layers
    model = _masked(keras, [L.Input((8, 8, 1)), L.Conv2D(8, 3, activation="relu"), L.Flatten(),
                            L.Dense(32, activation="relu"), L.Dense(3, activation="softmax")], zeros)
    report = exporter.export(model, target="android", quantize="float32", eval=tiny_data, progress=False)
    assert report.sparse_encoding["setting"] == "auto" and report.sparse_encoding["applied"] is applied
    assert ("model_size_dense" in report.measurements) is applied
    if applied:
        assert report.measurements["model_size"].value < report.measurements["model_size_dense"].value


# -- where it is refused ---------------------------------------------------------------------------

@pytest.mark.parametrize("target, why", [("microcontroller", "TensorFlow Lite Micro has no DENSIFY kernel"),
                                         ("ethos-u", "Vela compiles dense int8 weights"),
                                         ("edgetpu", "DENSIFY (the op that expands sparse tensors) is not an Edge")])
def test_on_for_a_device_without_sparse_tensors_exits_2(tmp_path, demo, target, why):
    result = run(["export", "--demo", "--target", target, "--sparse-encoding", "on", "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and why in result.stderr and "--sparse-encoding on" in result.stderr
    assert not (tmp_path / "b").exists()


def test_auto_for_a_microcontroller_does_nothing_and_says_so(demo):
    from dataclasses import replace

    from exporter import steps
    from exporter.sparse.step import encode

    request = steps.resolve(steps.ExportArgs(sources=steps.Sources(demo=True), target="microcontroller"))
    inputs = steps.load(request)
    built = steps.Built(tflite=b"as converted", graph=None, mode="int8")
    encoded = encode(request, inputs, built)
    assert encoded.tflite == b"as converted" and encoded.sparse.applied is False
    assert encoded.notes == ["sparse encoding (auto) stays off, as it is not for target microcontroller: TensorFlow "
                             "Lite Micro has no DENSIFY kernel (the op that expands sparse tensors) and its kernels "
                             "read dense weights only"]
    assert encode(replace(request, sparse_encoding="off"), inputs, built).notes == []


def test_int8_with_sparse_encoding_is_refused_with_the_reason(tmp_path, demo):
    result = run(["export", "--demo", "--target", "android", "--sparse-encoding", "on", "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "not for int8 models" in result.stderr and "--quantize float32" in result.stderr


def test_the_converter_writes_int8_sparse_models_that_litert_s_default_delegate_cannot_prepare(keras):
    """Why int8 is refused: if a LiteRT release loads these, this test fails and the refusal should go."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    L = keras.layers
    model = _masked(keras, [L.Input((8, 8, 1)), L.Conv2D(8, 3, activation="relu"), L.Flatten(),
                            L.Dense(32, activation="relu"), L.Dense(3)], 0.8)
    calib = np.random.default_rng(0).random((32, 8, 8, 1), dtype=np.float32)
    sparse = convert(model, ConvertConfig(mode="int8", sparse=True), calib=calib)
    assert {t.dtype for t in sparse_tensors(sparse)} == {"int8"}
    with pytest.raises(RuntimeError, match="failed to delegate"):
        Interpreter(model_content=sparse).allocate_tensors()    # LiteRT's defaults: the XNNPACK delegate
    plain = Interpreter(model_content=sparse, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    plain.allocate_tensors()                                     # the builtin kernels alone can run it
    runner = LiteRTRunner(sparse)                                # edgex's runner falls back to them and says so
    assert runner.kernels and "failed to delegate" in runner.xnnpack_refusal


# -- encodings and XNNPACK's conditions ------------------------------------------------------------

def test_a_dense_kernel_in_1x4_blocks_is_read_sparse_and_answers_as_dense(keras):
    L = keras.layers
    keras.utils.set_random_seed(0)
    model = keras.Sequential([L.Input((64,)), L.Dense(32, activation="relu"), L.Dense(10)])
    kernel = model.layers[0].kernel.numpy()                      # (in, out): TFLite's filter is (out, in)
    keep = np.random.default_rng(0).random((16, 32)) < 0.2
    model.layers[0].kernel.assign(kernel * np.repeat(keep, 4, axis=0))   # 1x4 blocks along the input
    dense = convert(model, ConvertConfig(mode="float32"))
    sparse = convert(model, ConvertConfig(mode="float32", sparse=True))
    [tensor] = sparse_tensors(sparse)
    assert tensor.encoding == "block 1x4" and not tensor.densified and len(sparse) < 0.6 * len(dense)
    x = np.random.default_rng(1).random((20, 64), dtype=np.float32)
    assert np.abs(LiteRTRunner(sparse).predict(x) - LiteRTRunner(dense).predict(x)).max() <= 1e-5


@pytest.mark.parametrize("mode", ["float32", "float16"])
def test_xnnpack_s_sparse_inference_applies_to_a_mobilenet_like_float_model(keras, mode):
    sparse = convert(_mobilenet_like(keras, 0.8), ConvertConfig(mode=mode, sparse=True))
    result = assess(sparse, mode)
    assert result["applies"] is True, result["conditions"]
    assert "sparse kernels" in result["consequence"]


def test_xnnpack_s_sparse_inference_needs_two_thirds_zeros_in_the_1x1_convolutions(keras):
    sparse = convert(_mobilenet_like(keras, 0.5), ConvertConfig(mode="float32", sparse=True))
    unmet = [c for c in assess(sparse, "float32")["conditions"] if not c["met"]]
    assert [c["condition"] for c in unmet] == ["1x1 CONV_2D filters at least 2/3 zeros"]
    assert "% zeros" in unmet[0]["found"]
