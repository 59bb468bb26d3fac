"""Compression stages through the CLI and the Python API, end to end on the demo."""
import hashlib
import json

import numpy as np
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
                  "--epochs", "2", "--limit", "accuracy_drop=10", "--out", str(out),
                  "--json"])
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
    assert report["stages"][-1]["gzip_size"] < report["stages"][0]["gzip_size"] / 2
    assert report["measurements"]["accuracy"]["value"] > 90
    m = report["measurements"]    # agreement: with the model that was converted; the original's is a figure
    assert m["top1_agreement"]["value"] >= 98 and "last stage" in m["top1_agreement"]["on"] + m["top1_agreement"].get("note", "")
    assert 0 < m["top1_agreement_original"]["value"] <= 100


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
                             recipe={"stages": [{"type": "distill", "config": {"width": 0.5, "epochs": 2}},
                                                {"type": "qat"}],
                                     "training": {"epochs": 2}})
    distill = report.stages[1]
    assert distill["stage"] == "distill" and distill["params"] < report.stages[0]["params"] / 3
    for key in ("student_accuracy_distilled", "student_accuracy_labels_only", "teacher_accuracy"):
        assert distill["metrics"][key] is not None
    assert report.stages[2]["metrics"]["scheme"] == "default"


def test_readme_distill_example_stays_within_the_accuracy_limit(tmp_path):
    # README "Compression stages": the distill stage's own default epochs (25) keep the student within 1 pt
    result = run(["export", "--demo", "--target", "android", "--distill", "0.5", "--qat",
                  "--out", str(tmp_path / "student"), "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["measurements"]["accuracy_drop"]["value"] <= 1.0
    distill = report["stages"][1]
    assert distill["stage"] == "distill" and distill["metrics"]["epochs"] == 25
    for note in distill["notes"]:      # e.g. "distill: the student trained on labels alone scored …"
        if note.startswith("distill: "):
            assert note in report["notes"]


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
    with pytest.raises(DataError, match="train='train.npz'"):
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


CLUSTERS = 8


@pytest.fixture(scope="module")
def pcqat_api(demo, keras):
    """prune 0.8 → cluster 8 → qat on the demo, one epoch each, measured as an export measures stages."""
    from exporter.pipeline import run_stages
    from exporter.profile import load_profile
    from exporter.stages.base import StageContext, get_stage
    from exporter.stages.convert import ConvertConfig
    from exporter.stages.training import TrainingConfig

    model = keras.models.load_model(demo.model_path, compile=False)
    ctx = StageContext(train=demo.train, eval=demo.eval, training=TrainingConfig(epochs=1),
                       profile=load_profile("android-arm64-midrange"), mode="int8")
    stages = [get_stage("prune")({"sparsity": 0.8}), get_stage("cluster")({"clusters": CLUSTERS}),
              get_stage("qat")()]
    _, tflite_bytes, records = run_stages(model, stages, ctx, ConvertConfig(mode="int8"), demo.calib.x)
    return records, tflite_bytes


def test_original_row_counts_every_keras_weight(pcqat_api, demo, keras):
    records, _ = pcqat_api
    model = keras.models.load_model(demo.model_path, compile=False)
    flat = np.concatenate([w.reshape(-1) for w in model.get_weights()])    # trainable and non-trainable
    original = records[0]
    assert (original["params"], original["nonzero"], original["unique"]) == (
        flat.size, np.count_nonzero(flat), np.unique(flat).size)


def test_stage_figures_are_those_of_the_stripped_model_the_tflite_ships(pcqat_api):
    """The qat row counts kernels and biases only, as the .tflite holds them: no TF-MOT variables.

    What must match, on the demo (no BatchNorm, so conversion folds nothing away):
    - params: the stage's params == the elements of the .tflite's kernels and biases (int8 conversion
      transposes kernels but keeps their element count), and == the original's;
    - non-zeros: per layer, the kernel's non-zeros equal exactly (PCQAT keeps pruned zeros at 0 and
      no clustered centroid rounds to the int8 zero); biases: int32 rounding can only turn a value
      into 0, so the .tflite has at most the Keras non-zero biases;
    - unique values: each Keras kernel holds at most `CLUSTERS` values, and quantizing per channel maps
      each float to one int8 code, so a .tflite kernel channel holds at most what the Keras layer
      holds in its most varied channel; the stage's unique count is at most the kernels' plus the biases'.
    """
    from exporter.analysis.weights import tflite_layer_weights, tflite_totals

    records, tflite_bytes = pcqat_api
    original, cluster, qat = records[0], records[2], records[-1]
    assert qat["stage"] == "qat" and qat["metrics"]["scheme"] == "pcqat"
    shipped = tflite_totals(tflite_bytes)
    assert qat["params"] == shipped["params"] == original["params"] == cluster["params"]

    layers = list(qat["layers"].values())                  # Keras kernels, in model order
    tfl = tflite_layer_weights(tflite_bytes)               # .tflite kernels, in execution order (same here)
    assert [k["params"] for k in layers] == [e["kernel"].size for e in tfl]
    assert sum(k["params"] for k in layers) == shipped["kernel_params"]
    for keras_kernel, entry in zip(layers, tfl):
        kernel = entry["kernel"]
        assert keras_kernel["nonzero"] == np.count_nonzero(kernel), entry["kernel_name"]
        assert keras_kernel["unique"] <= CLUSTERS, entry["kernel_name"]
        per_channel = max(len(np.unique(c)) for c in kernel.reshape(kernel.shape[0], -1))
        assert per_channel <= keras_kernel["unique_per_channel_max"], entry["kernel_name"]
    keras_bias_nonzero = qat["nonzero"] - sum(k["nonzero"] for k in layers)
    assert shipped["bias_nonzero"] <= keras_bias_nonzero <= shipped["bias_params"]
    assert qat["nonzero"] - shipped["nonzero"] == keras_bias_nonzero - shipped["bias_nonzero"]
    assert qat["nonzero"] < 0.25 * qat["params"]                           # 80 % pruned, as shipped
    assert qat["unique"] <= sum(k["unique"] for k in layers) + shipped["bias_params"]
