"""The metadata edgex writes, read back by the real readers: tflite-support's and MediaPipe's displayers, and
MediaPipe Tasks' ImageClassifier, each in its own venv (tests/metadata/readers.py).

Cases: the demo's android bundle (int8, grayscale, the demo's normalization, labels); an RGB model
exported from image folders with `--normalize imagenet` (per-channel) and every metadata option; the
same with `--normalize signed` (one value), which MediaPipe's ImageClassifier runs; and a model with
two inputs and two outputs (tests/multi_io_models.py). Each displayer's JSON must say what the manifest
says edgex wrote and what the test expects from first principles (ImageNet constants, the labels).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from exporter.analysis.graph import Graph
from exporter.io_names import signature_names
from exporter.tflite_metadata.model_file import read
from tests.metadata.readers import run_in
from tests.multi_io_models import write as write_two_io
from tests.test_cli import run
from tests.test_image_folder import stripes, write_class_folders

pytestmark = pytest.mark.timeout(900)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def close(a, b) -> bool:
    """Equal structures, floats within 1e-6 (flatc's JSON prints floats with 6 decimals, the model holds float32)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
    return a == b


def read_back(readers, *models: Path) -> dict:
    """{reader: {model path: what it read}} for both readers."""
    return {name: run_in(python, "read_metadata.py", name, *models) for name, python in readers.items()}


def options(tensor: dict) -> dict | None:
    units = [u["options"] for u in tensor.get("process_units", []) if u["options_type"] == "NormalizationOptions"]
    return units[0] if units else None


def check(found: dict, bundle: Path) -> dict:
    """Assert what a reader found in `bundle`'s model matches its manifest and the model; return the JSON."""
    model = (bundle / "model.tflite").read_bytes()
    manifest = json.loads((bundle / "manifest.json").read_text())["metadata"]
    j = found["json"]
    for key in ("name", "version", "description", "author", "license"):
        assert j.get(key) == manifest[key], key
    assert j["min_parser_version"] == found["min_parser_version"] == manifest["min_parser_version"] == "1.0.0"
    graph, (ins, outs) = Graph.from_bytes(model), signature_names(model)
    sub = j["subgraph_metadata"]
    assert len(sub) == 1
    for kind, order, names in (("input", graph.inputs, ins), ("output", graph.outputs, outs)):
        tensors, recorded = sub[0][f"{kind}_tensor_metadata"], manifest[f"{kind}s"]
        assert [t["name"] for t in tensors] == [names.get(i, graph.tensors[i].name) for i in order]   # tensor order
        assert [t["name"] for t in tensors] == [r["name"] for r in recorded]
        for t, r in zip(tensors, recorded):
            assert t["content"]["content_properties_type"] == r["content"]
            assert t["content"]["content_properties"].get("color_space") == r["color_space"]
            norm = r["normalization"]
            assert close(options(t), None if norm is None else {"mean": norm["mean"], "std": norm["std"]})
            assert close(t.get("stats"), r["stats"])
            assert [(f["name"], f["type"]) for f in t.get("associated_files", [])] == \
                [(f["name"], f["type"]) for f in r["associated_files"]]
            assert t["description"].startswith(f"{kind.capitalize()} {t['name']!r}: ")
    assert found["files"] == manifest["associated_files"]
    for name in found["files"]:
        assert found["contents"][name] == (bundle / name).read_text(encoding="utf-8")
    assert close(read(model)["metadata"], j)            # edgex's own reader agrees with the displayer
    return j


def test_the_demo_android_bundle_reads_back_with_labels_and_normalization(demo, demo_bundle, readers):
    _, bundle = demo_bundle
    found = read_back(readers, bundle / "model.tflite")
    jsons = [check(found[name][str(bundle / "model.tflite")], bundle) for name in readers]
    j = jsons[0]
    assert close(jsons[0], jsons[1])                     # tflite-support and MediaPipe read the same
    assert j["name"] == "edgex demo" and j["version"] == "1" and "author" not in j and "license" not in j
    assert "android-arm64-midrange" in j["description"] and "int8" in j["description"]
    (image,) = j["subgraph_metadata"][0]["input_tensor_metadata"]
    (scores,) = j["subgraph_metadata"][0]["output_tensor_metadata"]
    assert image["content"] == {"content_properties_type": "ImageProperties",
                                "content_properties": {"color_space": "GRAYSCALE"}}
    assert options(image) == {"mean": [0.0], "std": [255.0]} and image["stats"] == {"max": [1.0], "min": [0.0]}
    x = demo.eval.x                                      # the demo's data really live in the recorded range
    assert x.min() >= image["stats"]["min"][0] and x.max() <= image["stats"]["max"][0] and x.max() > 0.99
    assert "scale 0.00392156" in image["description"] and "zero point -128" in image["description"]
    assert scores["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
    assert found["tflite-support"][str(bundle / "model.tflite")]["contents"]["labels.txt"] == \
        "".join(f"{i}\n" for i in range(10))


@pytest.fixture(scope="module")
def rgb(keras, tmp_path_factory):
    """An RGB 16x16 float model and class folders of stripes (untrained: the metadata does not care)."""
    root = tmp_path_factory.mktemp("rgb-metadata")
    folder = write_class_folders(root / "images", 6)
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.layers.Input((16, 16, 3), name="photo"), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")])
    model.save(root / "stripes.keras")
    return root, folder


def export_rgb(rgb, mode: str, *extra) -> Path:
    root, folder = rgb
    out = root / mode
    result = run(["export", str(root / "stripes.keras"), "--eval", str(folder), "--normalize", mode,
                  "--quantize", "float32", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return out


def test_rgb_image_folders_with_imagenet_normalization_and_every_option(rgb, readers):
    bundle = export_rgb(rgb, "imagenet", "--model-name", "Stripes", "--model-version", "2.1b",
                        "--model-description", "Horizontal or vertical stripes.\nTwo classes.",
                        "--author", "Zoë Müller <zoe@example.org>", "--license", "Apache-2.0")
    found = read_back(readers, bundle / "model.tflite")
    j = check(found["tflite-support"][str(bundle / "model.tflite")], bundle)
    assert close(j, check(found["mediapipe"][str(bundle / "model.tflite")], bundle))
    assert (j["name"], j["version"], j["author"], j["license"]) == \
        ("Stripes", "2.1b", "Zoë Müller <zoe@example.org>", "Apache-2.0")
    assert j["description"] == "Horizontal or vertical stripes.\nTwo classes."
    (photo,) = j["subgraph_metadata"][0]["input_tensor_metadata"]
    assert photo["name"] == "photo" and photo["content"]["content_properties"] == {"color_space": "RGB"}
    mean, std = [255 * m for m in IMAGENET_MEAN], [255 * s for s in IMAGENET_STD]
    assert close(options(photo), {"mean": mean, "std": std})
    assert close(photo["stats"], {"min": [(0 - m) / s for m, s in zip(mean, std)],
                                  "max": [(255 - m) / s for m, s in zip(mean, std)]})
    assert found["mediapipe"][str(bundle / "model.tflite")]["contents"]["labels.txt"] == "horizontal\nvertical\n"


def test_mediapipe_image_classifier_applies_the_normalization_and_names_the_labels(rgb, readers, tmp_path):
    from exporter.litert import LiteRTRunner

    bundle = export_rgb(rgb, "signed")
    found = read_back(readers, bundle / "model.tflite")
    j = check(found["tflite-support"][str(bundle / "model.tflite")], bundle)
    assert options(j["subgraph_metadata"][0]["input_tensor_metadata"][0]) == {"mean": [127.5], "std": [127.5]}
    rng = np.random.default_rng(3)
    images = np.stack([stripes(kind, rng, size=16, period=4) for kind in ("horizontal", "vertical", "vertical")])
    np.save(tmp_path / "images.npy", images)
    classified = run_in(readers["mediapipe"], "classify.py", bundle / "model.tflite", tmp_path / "images.npy")
    ours = LiteRTRunner((bundle / "model.tflite").read_bytes()).predict(images.astype(np.float32) / 127.5 - 1)
    for categories, scores in zip(classified, ours):
        by_index = {index: (name, score) for index, name, score in categories}
        assert {i: n for i, (n, _) in by_index.items()} == {0: "horizontal", 1: "vertical"}
        assert np.allclose([by_index[i][1] for i in range(2)], scores, atol=1e-5)


@pytest.fixture(scope="module")
def two_io(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two-io-metadata")
    paths = write_two_io(folder)
    (folder / "classes.txt").write_text("top left\ntop right\nbottom left\nbottom right\ncentre\n", encoding="utf-8")
    out = folder / "android"
    result = run(["export", str(paths["model"]), "--calib", str(paths["calib"]), "--eval", str(paths["eval"]),
                  "--labels", str(folder / "classes.txt"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, paths


def test_several_inputs_and_outputs_each_get_their_entry(two_io, readers):
    bundle, paths = two_io
    found = read_back(readers, bundle / "model.tflite")
    j = check(found["tflite-support"][str(bundle / "model.tflite")], bundle)
    assert close(j, check(found["mediapipe"][str(bundle / "model.tflite")], bundle))
    sub = j["subgraph_metadata"][0]
    ins = {t["name"]: t for t in sub["input_tensor_metadata"]}
    outs = {t["name"]: t for t in sub["output_tensor_metadata"]}
    assert set(ins) == {"image", "meta"} and set(outs) == {"cls", "box"}
    assert ins["image"]["content"]["content_properties"] == {"color_space": "GRAYSCALE"}
    assert ins["meta"]["content"]["content_properties_type"] == "FeatureProperties"
    calib = np.load(paths["calib"])
    for name in ("image", "meta"):                       # arrays: no normalization, the calibration data's range
        assert options(ins[name]) is None and "edgex does not know how they were made" in ins[name]["description"]
        assert close(ins[name]["stats"], {"max": [float(calib[name].max())], "min": [float(calib[name].min())]})
    assert [f["name"] for f in outs["cls"]["associated_files"]] == ["labels.txt"] and "associated_files" not in outs["box"]
    assert found["tflite-support"][str(bundle / "model.tflite")]["contents"]["labels.txt"].splitlines()[-1] == "centre"
