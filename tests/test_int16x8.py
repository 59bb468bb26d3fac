"""The int16x8 mode (int16 activations, int8 weights) end to end: export, verify, a device run, its cost model,
a .tflite another tool made in 16x8, and the profiles and options that refuse it.

One android export of the demo is shared (`bundle`).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from exporter.analysis.cost_model import estimate_latency_ms
from exporter.analysis.graph import Graph
from exporter.calibrate import _fitted, _scaled
from exporter.errors import ConfigError
from exporter.profile import PROFILE_DIR, load_profile
from tests.test_cli import run

MIDRANGE = (PROFILE_DIR / "android-arm64-midrange.yaml").read_text()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, demo):
    out = tmp_path_factory.mktemp("int16x8") / "bundle"
    result = run(["export", "--demo", "--target", "android", "--quantize", "int16x8", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), out


def test_the_export_passes_with_float_io_and_int16_activations(bundle):
    report, out = bundle
    assert report["status"] == "pass" and report["mode"] == "int16x8" and report["io_dtype"] == "float32"
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["accuracy_drop"]["value"] <= 1.0 and checks["agreement"]["value"] >= 98
    graph = Graph.from_file(out / "model.tflite")
    assert {op.compute_dtype for op in graph.ops if op.macs} == {"int16"}
    assert [t.dtype for t in graph.input_details() + graph.output_details()] == ["float32", "float32"]
    assert run(["verify", str(out)]).exit_code == 0


def test_its_latency_is_estimated_at_the_profiles_int16_rate(bundle):
    report, out = bundle
    graph = Graph.from_file(out / "model.tflite")
    cost = load_profile("android-arm64-midrange").cost_model
    macs = sum(op.macs for op in graph.ops if op.macs)
    at_int16 = (macs / (cost.int16_gmacs * 1e9) + len(graph.ops) * cost.per_op_overhead_us * 1e-6) * 1e3
    latency = next(c for c in report["checks"] if c["name"] == "latency")
    assert latency["source"] == "estimated" and latency["value"] == pytest.approx(at_int16, rel=1e-3)
    without = cost.model_copy(update={"int16_gmacs": None})        # no int16 rate: the int8 rate, 70x faster
    assert estimate_latency_ms(graph, without) < latency["value"] / 10


def test_a_device_run_of_the_bundle_passes(bundle):
    _, out = bundle
    result = run(["hil", "run", str(out), "--device", "local", "--runs", "5", "--warmup", "1", "--eval-samples", "50",
                  "--json"])
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["complete"] and record["result"]["accuracy"] >= 90        # percent; the host measured 98.61


@pytest.fixture(scope="module")
def foreign(tmp_path_factory, demo, keras):
    """A 16x8 .tflite made by TensorFlow's converter directly, as another tool would."""
    from exporter import tf as tfmod

    tf = tfmod.tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.models.load_model(demo.model_path))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([demo.calib.x[i:i + 1].astype(np.float32)] for i in range(50))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    path = tmp_path_factory.mktemp("foreign16") / "model_16x8.tflite"
    path.write_bytes(converter.convert())
    return path


def test_a_16x8_tflite_from_another_tool_is_recognised_and_bundled(foreign, tmp_path):
    result = run(["export", str(foreign), "--target", "linux", "--out", str(tmp_path / "linux"), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["mode"] == "int16x8"
    refused = run(["export", str(foreign), "--target", "edgetpu", "--out", str(tmp_path / "tpu")])
    assert refused.exit_code == 2 and "is int16x8, which profile coral-usb does not allow" in refused.stderr
    assert not (tmp_path / "tpu").exists()


@pytest.mark.parametrize("args,message", [
    (["--target", "microcontroller"], "--quantize int16x8 is not allowed on this profile"),
    (["--sparse-encoding", "on"], "sparse encoding is not for int16x8 models"),
    (["--qat"], "stage 'qat' trains for int8 inference, but the conversion mode is int16x8"),
])
def test_what_cannot_take_int16x8_refuses_it_with_exit_2(args, message, tmp_path, demo):
    result = run(["export", "--demo", "--quantize", "int16x8", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_a_profile_allowing_int16x8_needs_an_int16_rate_given_like_the_others(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(MIDRANGE.replace("  int16_gmacs: 0.14\n", ""))
    with pytest.raises(ConfigError, match="allowed has int16x8 but the cost model has no int16 rate"):
        load_profile(path)
    path.write_text(MIDRANGE.replace("  int16_gmacs: 0.14", "  int16_cycles_per_mac: 3"))
    with pytest.raises(ConfigError, match="int16_gmacs beside int8_gmacs"):
        load_profile(path)
    path.write_text(MIDRANGE.replace("  int16_gmacs: 0.14\n", "").replace("int8, int16x8]", "int8]"))
    assert not load_profile(path).cost_model.has_int16_rate


def test_calibration_fits_the_int8_and_float_rates_around_the_int16_rate():
    cost = load_profile("raspberry-pi-4").cost_model
    true = {"int8": 4e9, "float": 2e9, "op": 20e-6}
    points = []
    for int8, flt, int16, ops in [(1e8, 0, 2e6, 10), (0, 5e7, 1e6, 30), (3e7, 2e7, 0, 50), (2e8, 1e7, 5e5, 12)]:
        seconds = int8 / true["int8"] + flt / true["float"] + int16 / (cost.int16_gmacs * 1e9) + ops * true["op"]
        points.append({"features": {"int8": int8, "float": flt, "int16": int16, "ops": ops}, "measured_ms": seconds * 1e3})
    fitted = _fitted(cost, points)
    assert (fitted.int8_gmacs, fitted.float_gmacs) == (pytest.approx(4.0), pytest.approx(2.0))
    assert fitted.per_op_overhead_us == pytest.approx(20) and fitted.int16_gmacs == cost.int16_gmacs
    assert _scaled(cost, 2.0).int16_gmacs == pytest.approx(cost.int16_gmacs / 2)

