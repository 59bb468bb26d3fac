"""A model LiteRT's default XNNPACK delegate refuses but its builtin kernels run (exporter/xnnpack.py).

The model: a conv layer whose ReLU output is zero on every calibration sample (a bias of -100), as in a
tiny student pruned to 95 %. The converter widens that output's range [0, 0] to about 2e-6, so the conv's
requantization scale (input x filter / output scale) is far above XNNPACK's limit of 256; the builtin
kernels and TFLM run it. Such a model is valid: edgex measures it on the builtin kernels and says so.
"""
from __future__ import annotations

import numpy as np
import pytest

import exporter
from exporter.errors import ModelFileError
from exporter.litert import LiteRTRunner
from exporter.stages.convert import ConvertConfig, convert
from exporter.xnnpack import REQUANTIZATION_LIMIT, requantization_scales

KERNELS = ", builtin kernels (XNNPACK refused the model)"


def _model(keras, bias: float):
    keras.utils.set_random_seed(1)
    L = keras.layers
    model = keras.Sequential([L.Input((8, 8, 1)), L.Conv2D(4, 3, activation="relu", name="conv"), L.Flatten(),
                              L.Dense(3, name="dense")])
    model.get_layer("conv").bias.assign(np.full(4, bias, np.float32))
    return model


@pytest.fixture(scope="module")
def calib():
    return np.random.default_rng(0).random((40, 8, 8, 1), dtype=np.float32)


@pytest.fixture(scope="module")
def dead(keras, calib):
    """The int8 model whose conv output was zero on every calibration sample."""
    return convert(_model(keras, -100.0), ConvertConfig(mode="int8"), calib=calib)


@pytest.fixture(scope="module")
def alive(keras, calib):
    """The same model with a zero bias: XNNPACK takes it."""
    return convert(_model(keras, 0.0), ConvertConfig(mode="int8"), calib=calib)


def test_xnnpack_refuses_the_dead_layer_model_that_the_builtin_kernels_run(dead):
    """LiteRT's behaviour the fallback is for: if a release prepares this model, this test fails (then the
    fallback no longer shows, and exporter/xnnpack.py's account should be revisited)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with pytest.raises(RuntimeError, match="failed to create XNNPACK runtime"):
        Interpreter(model_content=dead).allocate_tensors()
    builtin = Interpreter(model_content=dead,
                          experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    builtin.allocate_tensors()
    builtin.invoke()


def test_tflm_runs_the_dead_layer_model(dead):
    """TFLM, the microcontroller runtime, never uses XNNPACK: the model prepares and invokes there."""
    from targets.microcontroller.tflm import measure_arena

    result = measure_arena(dead)
    assert result.ok and result.invoked, result.finding


def test_the_refused_op_and_its_scales_are_named(dead, alive):
    [entry] = requantization_scales(dead)
    assert entry["op"] == 0 and entry["name"] == "CONV_2D" and "conv" in entry["output"]
    assert entry["scale"] >= REQUANTIZATION_LIMIT and entry["output_scale"] < 1e-7
    assert entry["scale"] == pytest.approx(entry["input_scale"] * entry["filter_scale"] / entry["output_scale"])
    assert requantization_scales(alive) == []


def test_the_runner_falls_back_to_the_builtin_kernels_and_says_why(dead, alive, calib):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    runner = LiteRTRunner(dead)
    assert runner.kernels == KERNELS
    reason = runner.xnnpack_refusal
    assert reason.startswith("failed to create XNNPACK runtime; Node number 3 (TfLiteXNNPackDelegate)")
    assert "node 3 is the delegate, not an op of the model" in reason
    assert "op 0 CONV_2D" in reason and "less than 256" in reason and "zero on every calibration sample" in reason
    assert "builtin kernels" in runner.kernels_note and reason in runner.kernels_note
    builtin = Interpreter(model_content=dead,
                          experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    builtin.allocate_tensors()
    (detail,), (out,) = builtin.get_input_details(), builtin.get_output_details()
    scale, zero = detail["quantization"]
    builtin.set_tensor(detail["index"], np.clip(np.round(calib[:1] / scale + zero), -128, 127).astype(np.int8))
    builtin.invoke()
    expected = (builtin.get_tensor(out["index"]).astype(np.float32) - out["quantization"][1]) * out["quantization"][0]
    assert np.array_equal(runner.predict(calib[:1]), expected)           # what ran: the builtin kernels
    sound = LiteRTRunner(alive)
    assert sound.xnnpack_refusal is None and sound.kernels == "" and sound.kernels_note == ""


def test_a_model_not_even_the_builtin_kernels_load_is_still_invalid(dead):
    with pytest.raises(ModelFileError, match="not a valid TFLite model"):
        LiteRTRunner(dead[: len(dead) // 2])


def test_host_figures_say_they_ran_on_the_builtin_kernels(dead):
    from exporter.measure import measure_host

    figures = measure_host(dead, None, None, latency_runs=5)
    for name in ("host_latency_p50", "host_latency_p90"):
        assert figures[name].on.endswith(KERNELS), figures[name].on
        assert "XNNPACK delegate refused the model" in figures[name].note and "op 0 CONV_2D" in figures[name].note
    assert figures["model_size"].on == "model.tflite file"


def test_a_given_tflite_that_only_xnnpack_refuses_exports(dead, calib, tmp_path):
    """A user's .tflite: loaded as valid, measured on the builtin kernels, every LiteRT figure saying so."""
    path = tmp_path / "dead.tflite"
    path.write_bytes(dead)
    labels = np.zeros(len(calib), np.int64)
    report = exporter.export(path, target="android", out=tmp_path / "bundle", eval=(calib, labels), progress=False)
    figures = report.to_dict()["measurements"]
    for name in ("host_latency_p50", "accuracy"):
        assert figures[name]["on"].split(", 40 eval samples")[0].endswith(KERNELS), figures[name]
        assert "op 0 CONV_2D" in figures[name]["note"]
    assert (tmp_path / "bundle" / "model.tflite").is_file()           # with the TFLite metadata android's apps read


def test_a_device_run_falls_back_to_the_builtin_kernels_as_the_host_did(dead, calib, tmp_path):
    """The device agent (exporter/hil/agent.py) on this machine as the device: XNNPACK refuses the bundle's
    model there too, so the agent runs it on the builtin kernels and the run says why, instead of failing."""
    import json

    from tests.test_cli import run

    path = tmp_path / "dead.tflite"
    path.write_bytes(dead)
    np.savez(tmp_path / "eval.npz", x=calib, y=np.zeros(len(calib), np.int64))
    bundle = tmp_path / "bundle"
    assert run(["export", str(path), "--target", "android", "--eval", str(tmp_path / "eval.npz"),
                "--out", str(bundle)]).exit_code == 0
    result = run(["hil", "run", str(bundle), "--device", "local", "--runs", "3", "--warmup", "1",
                  "--eval-samples", "20", "--json"])
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    ran = record["result"]
    assert record["complete"] and ran["ok"] and ran["delegate"] == "cpu" and ran["eval_samples"] == 20
    assert ran["xnnpack_refusal"].startswith("failed to create XNNPACK runtime")
    assert any("XNNPACK refused the model on the device" in note for note in record["notes"])
    assert "delegate cpu" in record["measurements"]["latency"]["note"]
