""".tflite files from other tools with dynamic input dims (-1 in the shape signature): issue 12, part 2.

The models are built here as another tool would (tests/dynamic_models.py): a sensor model with input
[-1, -1, 4] (float and int8) and an audio front-end with input [-1, -1]. Each is measured at the shape
given with --input-shape / input_shapes=, and compared with its static twin converted at that shape.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import exporter
from exporter.analysis.graph import Graph
from exporter.errors import PreflightError, UsageError
from tests import dynamic_models as dm
from tests.test_cli import run


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Paths of the dynamic models and their static twins (same weights, converted at the shape used here)."""
    root = tmp_path_factory.mktemp("dynamic")
    made = {"sensor": dm.sensor_tflite(), "sensor_int8": dm.sensor_tflite(int8=True),
            "sensor_static": dm.sensor_tflite((1, 50, dm.FEATURES)),
            "frontend": dm.frontend_tflite(), "frontend_static": dm.frontend_tflite((1, 1600))}
    paths = {}
    for name, data in made.items():
        paths[name] = root / f"{name}.tflite"
        paths[name].write_bytes(data)
    rng = np.random.default_rng(0)
    paths["eval"] = root / "eval.npz"
    np.savez(paths["eval"], x=rng.standard_normal((20, 50, dm.FEATURES)).astype(np.float32),
             y=rng.integers(0, dm.CLASSES, 20))
    paths["eval_60"] = root / "eval_60.npz"
    np.savez(paths["eval_60"], x=rng.standard_normal((20, 60, dm.FEATURES)).astype(np.float32))
    return paths


def _manifest(bundle) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def test_the_models_are_dynamic_and_litert_cannot_prepare_them_unresized(models):
    from ai_edge_litert.interpreter import Interpreter

    inp = Graph.from_file(models["sensor"]).input_details()[0]
    assert (inp.name, inp.shape_signature) == ("features", (-1, -1, 4))
    assert Graph.from_file(models["frontend"]).input_details()[0].shape_signature == (-1, -1)
    assert Graph.from_file(models["sensor_static"]).dynamic_inputs() == []
    with pytest.raises(RuntimeError):               # what used to make edgex call it "not a valid TFLite model"
        Interpreter(model_content=models["sensor"].read_bytes()).allocate_tensors()


@pytest.mark.parametrize("name, mode", [("sensor", "float32"), ("sensor_int8", "int8")])
def test_export_at_the_given_shape_records_it(models, tmp_path, name, mode):
    out = tmp_path / "b"
    result = run(["export", str(models[name]), "--target", "android", "--input-shape", "1,50,4", "--out", str(out),
                  "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mode"] == mode and report["status"] == "pass"
    manifest = _manifest(out)
    assert manifest["input_shapes"] == {"features": [1, 50, 4]}
    assert manifest["graph"]["inputs"][0]["shape_signature"] == [-1, -1, 4]
    assert manifest["graph"]["dynamic_inputs"] == ["features"]
    assert manifest["graph"]["total_macs"] == Graph.from_file(models["sensor_static"]).total_macs == 4648
    assert any("dynamic dims" in n and "[1, 50, 4]" in n and "--input-shape" in n for n in report["notes"])
    assert "measured at [1, 50, 4] (manifest.json `input_shapes`)" in (out / "report.md").read_text()
    assert run(["verify", str(out)]).exit_code == 0


def test_without_a_shape_the_export_names_the_tensor_and_the_option(models, tmp_path):
    result = run(["export", str(models["sensor"]), "--out", str(tmp_path / "b")])
    assert result.exit_code == 2
    assert "'features'" in result.stderr and "[-1, -1, 4]" in result.stderr and "--input-shape 1,N,4" in result.stderr
    assert "not a valid" not in result.stderr and not (tmp_path / "b").exists()
    with pytest.raises(UsageError, match=r"input_shapes=\(1, N, 4\)"):
        exporter.export(models["sensor"], progress=False)


@pytest.mark.parametrize("given, problem", [
    ("1,50,5", "dim 2 is fixed at 4"),
    ("1,50", "it has 3 dims, not 2"),
    ("2,50,4", "edgex runs batch 1"),
])
def test_a_shape_that_does_not_fit_the_signature_exits_2(models, tmp_path, given, problem):
    result = run(["export", str(models["sensor"]), "--input-shape", given, "--out", str(tmp_path / "b")])
    assert result.exit_code == 2
    assert f"--input-shape {given} does not fit input 'features' (shape signature [-1, -1, 4])" in result.stderr
    assert problem in result.stderr


@pytest.mark.parametrize("values, message", [
    (["1,x,4"], "positive whole sizes"),
    (["1,0,4"], "positive whole sizes"),
    (["1,50,4", "1,60,4"], "without a name fixes the one input"),
    (["features=1,50,4", "1,50,4"], "with its input's name"),
    (["features=1,50,4", "features=1,60,4"], "'features' given more than once"),
])
def test_bad_option_values_exit_2(models, values, message):
    args = [a for v in values for a in ("--input-shape", v)]
    result = run(["inspect", str(models["sensor"]), *args])
    assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_the_named_form_and_an_unknown_name(models, tmp_path):
    result = run(["export", str(models["sensor"]), "--input-shape", "features=1,50,4", "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.stderr
    assert _manifest(tmp_path / "b")["input_shapes"] == {"features": [1, 50, 4]}
    result = run(["export", str(models["sensor"]), "--input-shape", "audio=1,50,4", "--out", str(tmp_path / "c")])
    assert result.exit_code == 2 and "no input 'audio'; its inputs: 'features'" in result.stderr
    report = exporter.export(models["sensor"], input_shapes={"features": (1, 30, 4)}, progress=False)
    assert report.graph["inputs"][0]["shape"] == [1, 30, 4]


def test_a_static_model_takes_only_its_own_shape(models, tmp_path):
    result = run(["export", str(models["sensor_static"]), "--input-shape", "1,60,4", "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "no dynamic dims, so its shape is [1, 50, 4]" in result.stderr
    result = run(["export", str(models["sensor_static"]), "--input-shape", "1,50,4", "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.stderr


def test_inspect_without_a_shape_says_what_is_unknown(models):
    result = run(["inspect", str(models["sensor"])])
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "input 'features' has dynamic dims: shape signature [-1, -1, 4], sizes unknown" in text
    assert "MACs unknown for ops 1, 4" in text and "--input-shape" in text and "MACs unknown ·" in text
    data = json.loads(run(["inspect", str(models["sensor"]), "--json"]).stdout)
    assert data["dynamic_inputs"] == ["features"] and data["inputs"][0]["shape"] == [-1, -1, 4]
    assert data["total_macs"] is None and data["peak_activation_bytes"] is None
    assert {op["name"]: op["macs"] for op in data["ops"]} == {"EXPAND_DIMS": 0, "CONV_2D": None, "SQUEEZE": 0,
                                                              "MEAN": 0, "FULLY_CONNECTED": None, "SOFTMAX": 0}


def test_inspect_at_a_shape_matches_the_static_twin(models):
    static = Graph.from_file(models["sensor_static"])
    data = json.loads(run(["inspect", str(models["sensor"]), "--input-shape", "1,50,4", "--json"]).stdout)
    assert data["total_macs"] == static.total_macs == 4648
    assert [op["macs"] for op in data["ops"]] == [op.macs for op in static.ops]
    assert data["inputs"][0] == {"name": "features", "shape": [1, 50, 4], "shape_signature": [-1, -1, 4],
                                 "dtype": "float32"}
    graph = exporter.inspect(models["sensor"], input_shapes=(1, 50, 4))
    assert graph.peak_activation_bytes == static.peak_activation_bytes
    assert exporter.inspect(models["sensor"], input_shapes=(1, 100, 4)).total_macs == 98 * 8 * 12 + 40
    text = run(["inspect", str(models["sensor"]), "--input-shape", "features=1,50,4"]).stdout
    assert "analysed at [1, 50, 4]" in text and "MACs 4,648" in text


def test_the_audio_front_end(models, tmp_path):
    static = Graph.from_file(models["frontend_static"])
    graph = exporter.inspect(models["frontend"], input_shapes=(1, 1600))
    dense = lambda g: [op.macs for op in g.ops if op.name == "FULLY_CONNECTED"]  # noqa: E731
    frames = (1600 - dm.FRAME) // dm.HOP + 1
    assert dense(graph) == dense(static) == [frames * dm.BINS * dm.FRAME, dm.BINS * 3]
    assert exporter.inspect(models["frontend"]).total_macs is None
    result = run(["export", str(models["frontend"]), "--target", "linux", "--input-shape", "1,1600",
                  "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.stderr
    assert _manifest(tmp_path / "b")["input_shapes"] == {"audio": [1, 1600]}


def test_eval_data_are_checked_against_the_given_shape(models, tmp_path):
    result = run(["export", str(models["sensor"]), "--input-shape", "1,50,4", "--eval", str(models["eval_60"]),
                  "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "the model expects (N, 50, 4)" in result.stderr


def test_device_run_resizes_to_the_recorded_shape(models, tmp_path):
    out = tmp_path / "b"
    result = run(["export", str(models["sensor"]), "--input-shape", "1,50,4", "--eval", str(models["eval"]),
                  "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    result = run(["hil", "run", str(out), "--device", "local", "--eval-samples", "20", "--json"])
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "pass" and record["result"]["eval_samples"] == 20
    assert record["result"]["accuracy"] == pytest.approx(_manifest(out)["measurements"]["accuracy"]["value"])
    result = run(["profiles", "calibrate", "android-arm64-midrange", "--from", str(out), "--out",
                  str(tmp_path / "cal.yaml")])
    assert result.exit_code == 0, result.stderr


def test_tflite_runtime_2_14_resizes_the_int8_bundle_too(models, tmp_path, device_venv):
    """The device stand-in of the README (a venv with only tflite-runtime 2.14 and numpy 1) as `--python`."""
    out = tmp_path / "b"
    result = run(["export", str(models["sensor_int8"]), "--input-shape", "1,50,4", "--eval", str(models["eval"]),
                  "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    result = run(["hil", "run", str(out), "--device", "local", "--python", str(device_venv), "--eval-samples", "20",
                  "--json"])
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["result"]["runtime"] == "tflite_runtime" and record["result"]["eval_samples"] == 20
    assert record["result"]["accuracy"] == pytest.approx(_manifest(out)["measurements"]["accuracy"]["value"])


def test_the_agent_takes_the_manifest_shape_and_falls_back_to_ones():
    from exporter.hil.agent import input_shape

    detail = {"name": "features", "shape": np.array([1, 1, 4]), "shape_signature": np.array([-1, -1, 4])}
    assert input_shape(detail, {"features": [1, 50, 4]}) == [1, 50, 4]
    assert input_shape(detail, {}) == [1, 1, 4]                  # a bundle from an older edgex
    assert input_shape({"name": "x", "shape": np.array([1, 8])}, {"x": [1, 9]}) is None


@pytest.mark.parametrize("target, reason", [
    ("microcontroller", "TFLM needs static shapes"),
    ("edgetpu", "the Edge TPU compiler needs static shapes"),
    ("ethos-u", "Vela needs static shapes"),
])
def test_static_shape_targets_refuse_with_the_reason(models, tmp_path, target, reason):
    for extra in ([], ["--input-shape", "1,50,4"]):
        result = run(["export", str(models["sensor_int8"]), "--target", target, *extra, "--out", str(tmp_path / "b")])
        assert result.exit_code == 4, result.stderr
        assert reason in result.stderr and "'features'" in result.stderr and "[-1, -1, 4]" in result.stderr
        assert "re-export the model with a static input shape" in result.stderr and not (tmp_path / "b").exists()
    with pytest.raises(PreflightError, match="input_shapes= only sets the shape LiteRT measures at"):
        exporter.export(models["sensor_int8"], target=target, input_shapes=(1, 50, 4), progress=False)


def test_a_keras_model_with_a_dynamic_dim_is_converted_at_the_given_shape(keras, tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input((None, 4), name="features"), keras.layers.Conv1D(8, 3),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(5, activation="softmax")])
    path = tmp_path / "seq.keras"
    model.save(path)
    result = run(["export", str(path), "--quantize", "float32", "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "'features'" in result.stderr and "[-1, -1, 4]" in result.stderr
    result = run(["export", str(path), "--quantize", "float32", "--input-shape", "1,50,4",
                  "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.stderr
    graph = Graph.from_file(tmp_path / "b" / "model.tflite")
    assert graph.dynamic_inputs() == [] and graph.input_details()[0].shape == (1, 50, 4)
    assert graph.total_macs == 48 * 8 * 12 + 5 * 8 + 0          # conv, dense (the mean has none)
    assert _manifest(tmp_path / "b")["input_shapes"] == {graph.input_details()[0].name: [1, 50, 4]}
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).standard_normal((40, 50, 4)).astype(np.float32))
    result = run(["export", str(path), "--target", "microcontroller", "--input-shape", "1,50,4", "--calib", str(calib),
                  "--out", str(tmp_path / "mcu")])             # static after conversion: TFLM takes it
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "mcu" / "mcu" / "model_arena.h").is_file()


def test_help_stays_light_and_lists_the_option():
    code = ("import sys; from exporter.cli import main; rc = main(['export', '--help']); "
            "assert not [m for m in ('tensorflow', 'pydantic', 'rich') if m in sys.modules]; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "--input-shape [NAME=]SHAPE" in done.stdout
