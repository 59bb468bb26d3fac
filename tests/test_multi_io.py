"""Models with several inputs and outputs: data naming, conversion, measurement, every target, the device agent.

The model (tests/multi_io_models.py) takes `image` (8x8x1) and `meta` (3) and gives `cls` (softmax, 5
classes) and `box` (2 linear values); the TFLite converter orders its tensors meta, image and box, cls,
so every figure below would be wrong if anything mapped inputs or outputs by position.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.multi_io_models import write
from tests.test_cli import run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multi-io")
    return {"two_io": write(folder), "two_in": write(folder, two_outputs=False, stem="two_in"), "dir": folder}


def export(paths, out, *extra, eval_key="eval"):
    return run(["export", str(paths["model"]), "--calib", str(paths["calib"]), "--eval", str(paths[eval_key]),
                "--out", str(out), "--json", *extra])


@pytest.fixture(scope="module")
def android(files):
    out = files["dir"] / "android"
    result = export(files["two_io"], out)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), out


def _host_accuracy(bundle, eval_path, samples=None):
    """Top-1 of `cls` of the bundle's .tflite on the eval data, run here through the signature's names."""
    from exporter.io_names import IOSignature, Port
    from exporter.litert import LiteRTRunner

    data = np.load(eval_path)
    names = IOSignature((Port("image", ()), Port("meta", ())), (Port("cls", ()), Port("box", ())))
    runner = LiteRTRunner((bundle / "model.tflite").read_bytes(), names=names)
    x, y = (data["image"][:samples], data["meta"][:samples]), data["y"][:samples]
    return float((runner.predict(x, output=0).argmax(axis=1) == y).mean() * 100)


def test_android_int8_export_measures_every_output(android, files):
    report, out = android
    figures = report["measurements"]
    for name in ("cls", "box"):
        assert figures[f"fidelity_cosine[{name}]"]["value"] > 0.99
        assert figures[f"fidelity_cosine[{name}]"]["source"] == "measured"
        assert figures[f"fidelity_max_abs_error[{name}]"]["source"] == "measured"
    assert figures["fidelity_cosine"]["value"] == min(figures["fidelity_cosine[cls]"]["value"],
                                                      figures["fidelity_cosine[box]"]["value"])
    assert figures["fidelity_max_abs_error"]["value"] == max(figures["fidelity_max_abs_error[cls]"]["value"],
                                                             figures["fidelity_max_abs_error[box]"]["value"])
    assert "'cls'" in figures["accuracy"]["note"] and figures["accuracy"]["value"] > 80
    assert figures["accuracy"]["value"] == _host_accuracy(out, files["two_io"]["eval"])
    assert figures["top1_agreement"]["value"] >= 98
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["measurements"]["fidelity_cosine[box]"]["source"] == "measured"
    io = manifest["io"]
    assert [t["name"] for t in io["inputs"]] == ["image", "meta"] and io["label_output"] == "cls"
    assert [(t["name"], t["shape"]) for t in io["outputs"]] == [("cls", [1, 5]), ("box", [1, 2])]
    markdown, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    for text in (markdown, html):
        assert "fidelity_cosine[cls]" in text and "fidelity_max_abs_error[box]" in text
        assert all(f"serving_default_{name}:0" in text for name in ("image", "meta"))
    assert "| output (labels) | cls |" in markdown and "| output | box |" in markdown
    assert "| fidelity_cosine[box] |" in markdown and "| measured |" in markdown


def test_arrays_named_x0_x1_give_the_same_figures(android, files):
    result = export(files["two_io"], files["dir"] / "android-x", eval_key="eval_x")
    assert result.exit_code == 0, result.output
    figures, before = json.loads(result.stdout)["measurements"], android[0]["measurements"]
    for name in ("accuracy", "fidelity_cosine[cls]", "fidelity_cosine[box]", "top1_agreement"):
        assert figures[name]["value"] == before[name]["value"], name


def test_label_output_that_is_not_the_labels_class_output_is_refused(files):
    result = export(files["two_io"], files["dir"] / "box", "--label-output", "box")
    assert result.exit_code == 2
    assert "label output 'box' has 2 classes" in result.stderr and "--label-output" in result.stderr
    result = export(files["two_io"], files["dir"] / "boxes", "--label-output", "boxes")
    assert result.exit_code == 2 and "its outputs: 'cls', 'box'" in result.stderr


@pytest.mark.parametrize("arrays,detail", [
    (("image", "y"), "missing 'meta'"),
    (("image", "meta", "depth"), "not inputs: 'depth'"),
    (("x", "y"), "hold 'x'"),
])
def test_missing_or_extra_arrays_exit_2_naming_the_inputs(files, tmp_path, arrays, detail):
    data = np.load(files["two_io"]["eval"])
    path = tmp_path / "eval.npz"
    np.savez(path, **{k: data["meta" if k == "depth" else "image" if k == "x" else k] for k in arrays})
    result = run(["export", str(files["two_io"]["model"]), "--calib", str(files["two_io"]["calib"]),
                  "--eval", str(path), "--out", str(tmp_path / "b")])
    assert result.exit_code == 2
    assert "'image', 'meta' (or 'x0', 'x1')" in result.stderr and detail in result.stderr
    assert not (tmp_path / "b").exists()


def test_an_image_folder_is_refused_for_a_model_with_two_inputs(files, tmp_path):
    (tmp_path / "images").mkdir()
    result = run(["export", str(files["two_io"]["model"]), "--calib", str(tmp_path / "images"),
                  "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "single-input model; this one has 2 inputs" in result.stderr


def test_hil_local_runs_both_inputs_and_scores_the_label_output(android, files):
    out = android[1]
    with np.load(out / "agent" / "eval_samples.npz") as samples:
        assert sorted(samples.files) == ["ref", "x0", "x1", "y"]
        assert samples["x0"].shape[1:] == (8, 8, 1) and samples["x1"].shape[1:] == (3,)
    result = run(["hil", "run", str(out), "--device", "local", "--eval-samples", "50", "--runs", "5"])
    assert result.exit_code == 0, result.output
    stored = json.loads(next((out / "hil").glob("*.json")).read_text())["result"]
    assert stored["eval_samples"] == 50
    assert stored["accuracy"] == _host_accuracy(out, files["two_io"]["eval"], samples=50)


def test_linux_takes_arrays_in_memory_by_name_and_by_position(android, files):
    import exporter

    calib, data = np.load(files["two_io"]["calib"]), np.load(files["two_io"]["eval"])
    report = exporter.export(files["two_io"]["model"], target="linux", progress=False,
                             calib={"image": calib["image"], "meta": calib["meta"]},
                             eval=((data["image"], data["meta"]), data["y"]), out=files["dir"] / "linux")
    assert report.passed, [c.summary() for c in report.failed_checks()]
    assert report.measurements["accuracy"].value == android[0]["measurements"]["accuracy"]["value"]
    assert report.measurements["fidelity_cosine[box]"].value > 0.99


def test_microcontroller_fills_every_input(files, tmp_path):
    from tests.targets.microcontroller.test_codegen import STUBS, _gcc, _write

    out = tmp_path / "mcu"
    result = export(files["two_io"], out, "--target", "microcontroller")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)["measurements"]
    assert figures["arena"]["source"] == "measured" and figures["fidelity_cosine[cls]"]["value"] > 0.99
    root = out / "arduino" / "TwoIoModel"
    header = (root / "src" / "TwoIoModel.h").read_text()
    assert "kTwoIoInputCount = 2;" in header and "kTwoIoOutputSize = 5;" in header
    assert {"kTwoIoInput0Size = 3;", "kTwoIoInput1Size = 64;"} <= set(header.replace("constexpr int ", "").split("\n"))
    sketch = root / "examples" / "RunInference" / "RunInference.ino"
    assert "kInputTypes[2] = {kTfLiteInt8, kTfLiteInt8}" in sketch.read_text()
    ops = "TfLiteStatus AddConv2D();"        # the stub resolver, with this model's other ops
    more = " ".join(f"TfLiteStatus Add{op}();" for op in ("Concatenation", "MaxPool2D", "Reshape"))
    _write(tmp_path / "stubs", {k: v.replace(ops, f"{ops} {more}").encode() for k, v in STUBS.items()})
    done = _gcc("-x", "c++", "-std=c++11", "-Wall", "-Werror", "-fsyntax-only", "-include", "Arduino.h",
                "-I", root / "src", "-I", tmp_path / "stubs", sketch)
    assert done.returncode == 0, done.stderr


def test_prune_and_qat_fine_tune_a_two_input_model(files, tmp_path):
    paths = files["two_in"]
    result = export(paths, tmp_path / "pq", "--train", str(paths["train"]), "--prune", "0.5", "--qat")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [s["stage"] for s in report["stages"]] == ["original", "prune", "qat"]
    assert all(s["tflite_accuracy"] > 80 for s in report["stages"])
    assert report["stages"][1]["nonzero"] < report["stages"][0]["nonzero"] * 0.7


def test_fine_tuning_a_two_output_model_is_refused(files, tmp_path):
    paths = files["two_io"]
    result = export(paths, tmp_path / "p", "--train", str(paths["train"]), "--prune", "0.5")
    assert result.exit_code == 2
    assert "stage 'prune' fine-tunes the model" in result.stderr and "2 outputs ('cls', 'box')" in result.stderr


def test_a_single_input_model_converts_as_before(demo):
    """The demo CNN's int8 .tflite is byte for byte what the single-input conversion made before."""
    from exporter import tf as tfmod
    from exporter.model_io import load_model
    from exporter.stages.convert import ConvertConfig, convert

    tf, model = tfmod.tensorflow(), load_model(demo.model_path).model
    spec = model.inputs[0]
    signature = tf.TensorSpec([1, *spec.shape[1:]], spec.dtype, name=spec.name.split(":")[0])
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(signature)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    samples = demo.calib.x[:200].astype(np.float32)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([row[None, ...]] for row in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    assert convert(model, ConvertConfig(mode="int8", io_dtype="int8"), calib=demo.calib.x) == bytes(converter.convert())


def test_in_memory_forms_for_several_inputs():
    from exporter.errors import DataError
    from exporter.input_arrays import from_value, resolve
    from exporter.io_names import IOSignature, Port

    sig = IOSignature((Port("image", (None, 8, 8, 1)), Port("meta", (None, 3))),
                      (Port("cls", (None, 5)), Port("box", (None, 2)))).with_label("cls")
    image, meta, y = np.zeros((4, 8, 8, 1), np.float32), np.ones((4, 3)), np.array([0, 1, 2, 3])
    for value in ([image, meta], (image, meta), {"meta": meta, "image": image}, {"x1": meta, "x0": image}):
        ds = resolve(from_value(value, "calibration", 2), sig, "calibration")
        assert ds.x[0] is image and ds.x[1].dtype == np.float32 and ds.y is None
    for value in (((image, meta), y), ({"image": image, "meta": meta}, y), {"x0": image, "x1": meta, "y0": y}):
        assert resolve(from_value(value, "evaluation", 2), sig, "evaluation").y.tolist() == [0, 1, 2, 3]
    with pytest.raises(DataError, match="none for the label output 'box'"):
        resolve(from_value({"x0": image, "x1": meta, "y0": y}, "evaluation", 2), sig.with_label("box"), "evaluation")
    with pytest.raises(DataError, match=r"input 'meta'.*the model expects \(N, 3\)"):
        resolve(from_value((image, image), "evaluation", 2), sig, "evaluation")
    with pytest.raises(DataError, match="different numbers of samples"):
        from_value((image, meta[:3]), "evaluation", 2)
