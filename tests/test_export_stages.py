"""Compression stages through the CLI and the Python API, end to end on the demo."""
import hashlib
import json

import pytest

import exporter
from exporter.errors import DataError
from tests.test_cli import run


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def pcqat(tmp_path_factory, demo):
    out = tmp_path_factory.mktemp("pcqat") / "bundle"
    result = run(["export", "--demo", "--target", "android", "--prune", "0.8", "--cluster", "16", "--qat",
                  "--epochs", "2", "--limit", "accuracy_drop=10", "--out", str(out), "--json"])
    return result, out


def test_pcqat_from_the_cli(pcqat):
    result, out = pcqat
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [s["stage"] for s in report["stages"]] == ["original", "prune", "cluster", "qat"]
    assert report["stages"][-1]["metrics"]["scheme"] == "pcqat"
    assert report["recipe"]["stages"][0] == {"type": "prune", "config": report["stages"][1]["config"]}
    kernels = {k: w for k, w in report["stages"][-1]["tflite_weights"].items() if w["dtype"] == "int8"}
    assert len(kernels) == 4
    for name, w in kernels.items():      # still sparse and clustered after int8 conversion
        assert w["sparsity"] >= 0.75, name
        assert w["unique_per_channel_max"] <= 16, name
    assert report["stages"][-1]["gzip_bytes"] < report["stages"][0]["gzip_bytes"] / 2
    assert report["measurements"]["accuracy"]["value"] > 90


def test_bundle_has_the_html_report_and_the_recipe(pcqat):
    _, out = pcqat
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "Per-layer sparsity" in page
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["type"] for s in manifest["recipe"]["stages"]] == ["prune", "cluster", "qat"]
    assert manifest["recipe"]["training"]["epochs"] == 2
    assert [s["stage"] for s in manifest["stages"]] == ["original", "prune", "cluster", "qat"]
    assert run(["verify", str(out)]).exit_code == 0


def test_same_inputs_give_the_same_model_and_a_manifest_reruns_it(demo, tmp_path):
    recipe = {"stages": [{"type": "prune", "config": {"sparsity": 0.5}}], "training": {"epochs": 1},
              "skip_layers": ["dense"]}
    first = exporter.export(demo=True, recipe=recipe, out=tmp_path / "a", progress=False)
    exporter.export(demo=True, recipe=recipe, out=tmp_path / "b", progress=False)
    exporter.export(demo=True, recipe=tmp_path / "a", out=tmp_path / "c", progress=False)
    assert sha(tmp_path / "a" / "model.tflite") == sha(tmp_path / "b" / "model.tflite")
    assert sha(tmp_path / "a" / "model.tflite") == sha(tmp_path / "c" / "model.tflite")
    layers = first.stages[-1]["layers"]
    assert layers["dense"]["sparsity"] < 0.05 and layers["conv2d_1"]["sparsity"] >= 0.45


def test_distilled_student_with_qat(demo):
    report = exporter.export(demo=True, progress=False, limits={"accuracy_drop": 50},
                             recipe={"stages": [{"type": "distill", "config": {"width": 0.5}}, {"type": "qat"}],
                                     "training": {"epochs": 2}})
    distill = report.stages[1]
    assert distill["stage"] == "distill" and distill["params"] < report.stages[0]["params"] / 3
    for key in ("student_accuracy_distilled", "student_accuracy_labels_only", "teacher_accuracy"):
        assert distill["metrics"][key] is not None
    assert report.stages[2]["metrics"]["scheme"] == "default"


def test_binary_weights_from_the_cli(tmp_path):
    result = run(["export", "--demo", "--weight-bits", "1", "--epochs", "1", "--limit", "accuracy_drop=50",
                  "--out", str(tmp_path / "b"), "--json"])
    assert result.exit_code == 0, result.stderr
    final = json.loads(result.stdout)["stages"][-1]
    kernels = [w for w in final["tflite_weights"].values() if w["dtype"] == "int8"]
    assert kernels and all(w["unique_per_channel_max"] <= 2 for w in kernels)


def test_stage_that_makes_no_sense_is_refused_before_work(tmp_path):
    result = run(["export", "--demo", "--qat", "--quantize", "float16", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "int8" in result.stderr
    assert not (tmp_path / "x").exists()


def test_fine_tuning_needs_training_data(tiny_model, tiny_data):
    with pytest.raises(DataError, match="--train"):
        exporter.export(tiny_model, calib=tiny_data[0], recipe={"stages": [{"type": "prune",
                                                                            "config": {"sparsity": 0.5}}]},
                        progress=False)
    result = run(["export", "--demo", "--prune", "0.5", "--recipe", "r.yaml", "--out", "x"])
    assert result.exit_code == 2 and "not both" in result.stderr


@pytest.mark.reliability(8)
def test_profile_refuses_weight_bits_it_gains_nothing_from(tmp_path):
    from exporter.profile import PROFILE_DIR

    text = (PROFILE_DIR / "android-arm64-midrange.yaml").read_text()
    (tmp_path / "int8-only.yaml").write_text(text.replace("weight_bits: [8, 4, 2, 1]", "weight_bits: [8]"))
    result = run(["export", "--demo", "--weight-bits", "1", "--profile", str(tmp_path / "int8-only.yaml"),
                  "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "1-bit weights make no sense" in result.stderr
    assert not (tmp_path / "x").exists()
