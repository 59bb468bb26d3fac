"""The android bundle's app code: its Kotlin compiles and, run on the JVM, feeds the model what Python does.

Five bundles: the demo for android-arm64-midrange (int8 I/O) and android-arm64-lowend (uint8 I/O), the
demo as float32, an RGB model read from image folders with --normalize imagenet, and a model with two
inputs and two outputs. Their `android/*.kt` are compiled with Debian's kotlinc 1.3.31 in one call,
against tests/android_stubs (the Android and LiteRT classes the code uses, declared as in the public
API reference, with in-memory bodies), and run in one JVM (tests/targets/android/kotlin_check.py):
the bytes each class writes into LiteRT's input buffers must equal Python's
`q = clamp(round(x / scale) + zero_point, qmin, qmax)` with the manifest's figures, the outputs it
dequantizes and its top-5 must equal Python's on the outputs real LiteRT gave for those bytes, and
its Bitmap path must equal edgex's own image reader (Pillow) on the same pixels.
"""
from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

import exporter
from exporter.image_reader import decode
from exporter.io_contract import dequantize, quantize
from exporter.normalization import Normalization, normalization
from tests.targets.android.kotlin_check import Variant, compile_and_run, parse

HOSTILE = 'a"$b\\c\n@@INPUTS@@ é 😀 ${x}'


def _export(root, name, **kwargs):
    out = root / name
    exporter.export(target="android", out=out, progress=False, **kwargs)
    return out


@pytest.fixture(scope="module")
def bundles(demo_bundle, tmp_path_factory, keras):
    """name -> bundle folder: the five exports this module checks."""
    from tests.multi_io_models import write
    from tests.test_image_folder import write_class_folders

    root = tmp_path_factory.mktemp("android-app")
    keras.utils.set_random_seed(5)
    rgb = keras.Sequential([keras.layers.Input((12, 10, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")])
    rgb.save(root / "stripes.keras")
    images = write_class_folders(root / "images", 20)
    multi = write(root / "multi-files")
    return {
        "midrange": demo_bundle[1],
        "lowend": _export(root, "lowend", demo=True, profile="android-arm64-lowend"),
        "float32": _export(root, "float32", demo=True, quantize="float32"),
        "rgb": _export(root, "rgb", model=root / "stripes.keras", calib=images, eval=images, normalize="imagenet"),
        "multi": _export(root, "multi", model=multi["model"], calib=multi["calib"], eval=multi["eval"]),
    }


def _ints(path, values) -> None:
    path.write_text("\n".join(str(int(v)) for v in values) + "\n")


def _bits(values) -> np.ndarray:
    return np.asarray(values, np.float32).reshape(-1).view(np.int32)


def _real_values(entry: dict, rng) -> np.ndarray:
    """Inputs over the tensor's range and 20 % beyond (clamping), with exact halves of the scale (ties)."""
    shape = entry["shape"]
    if entry["scale"] is None:
        return rng.normal(0.5, 0.5, shape).astype(np.float32)
    scale, zero = entry["scale"], entry["zero_point"]
    lo, hi = (entry["qmin"] - zero) * scale, (entry["qmax"] - zero) * scale
    x = rng.uniform(lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo), shape).astype(np.float32)
    flat = x.reshape(-1)
    ties = ((np.arange(8) - 3.5) * np.float32(scale)).astype(np.float32)[:flat.size]
    flat[:len(ties)] = ties
    return x


def _as_written(q: np.ndarray) -> list[int]:
    """The bytes TensorBuffer.writeInt8 receives for quantized values: uint8 as their signed bit pattern."""
    return q.reshape(-1).astype(q.dtype).view(np.int8).astype(int).tolist()


def _litert(bundle, manifest, fed: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Real LiteRT on the bundle's model: tensor index -> value fed; returns output slot -> raw output."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=(bundle / "model.tflite").read_bytes())
    interpreter.allocate_tensors()
    for index, value in fed.items():
        interpreter.set_tensor(index, value)
    interpreter.invoke()
    return {t["slot"]: interpreter.get_tensor(t["index"]) for t in manifest["io"]["outputs"]}


def _pixels(entry: dict, manifest, rng) -> tuple[list[int], np.ndarray]:
    """(ARGB ints of a random image at the model's size, edgex's own reading of it: Pillow decode + normalization)."""
    _, height, width, channels = entry["shape"]
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, format="PNG")
    pre = manifest["preprocessing"]
    norm = (Normalization(pre["normalize"]["mode"], tuple(pre["normalize"]["mean"]), tuple(pre["normalize"]["std"]))
            if pre else normalization("unit", channels=channels))
    expected = norm.apply(decode(png.getvalue(), "RGB" if channels == 3 else "L", (width, height)))
    argb = (0xFF << 24) | (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    return argb.reshape(-1).view(np.int32).tolist(), expected.astype(np.float32)


def _prepare(name: str, bundle, work, seed: int) -> tuple[Variant, dict]:
    """Write the variant's input and output files; return it and what its driver must print."""
    rng = np.random.default_rng(seed)
    manifest = json.loads((bundle / "manifest.json").read_text())
    io_, data = manifest["io"], work / f"data_{name}"
    data.mkdir()
    xs = [_real_values(t, rng) for t in io_["inputs"]]
    fed = {t["index"]: quantize(x, t) for t, x in zip(io_["inputs"], xs)}
    raw = _litert(bundle, manifest, fed)
    for k, x in enumerate(xs):
        _ints(data / f"in_{k}.txt", _bits(x))
    for t in io_["outputs"]:
        _ints(data / f"out_{t['slot']}.txt", _bits(raw[t["slot"]]) if t["scale"] is None else
              raw[t["slot"]].reshape(-1).astype(int))
    writes = {t["slot"]: ("writeFloat", _bits(x).tolist()) if t["scale"] is None else ("writeInt8", _as_written(fed[t["index"]]))
              for t, x in zip(io_["inputs"], xs)}
    outputs = {k: dequantize(raw[t["slot"]], t).reshape(-1) for k, t in enumerate(io_["outputs"])}
    label = next(k for k, t in enumerate(io_["outputs"]) if t["name"] == io_["label_output"])
    names = (bundle / "labels.txt").read_text().splitlines() if (bundle / "labels.txt").exists() else []
    order = np.argsort(-outputs[label], kind="stable")[:5]
    top = [(names[i] if i < len(names) else str(i), outputs[label][i]) for i in order]
    bitmap = len(io_["inputs"]) == 1
    expected = {"writes": writes, "outputs": outputs, "top": top, "threads": manifest["profile"]["threads"]}
    if bitmap:
        argb, image = _pixels(io_["inputs"][0], manifest, rng)
        _ints(data / "pixels.txt", argb)
        t = io_["inputs"][0]
        expected["bitmap"] = {t["slot"]: ("writeFloat", _bits(image).tolist()) if t["scale"] is None
                              else ("writeInt8", _as_written(quantize(image, t)))}
    variant = Variant(name, bundle, data, len(xs), [t["scale"] is None for t in io_["outputs"]],
                      single=len(xs) == 1, bitmap=bitmap)
    return variant, expected


@pytest.fixture(scope="module")
def jvm(bundles, tmp_path_factory):
    """Every variant compiled and run: ({name: (parsed run, expected)}, gradle description, kotlinc diagnostics)."""
    work = tmp_path_factory.mktemp("kotlin")
    prepared = {name: _prepare(name, bundle, work, seed) for seed, (name, bundle) in enumerate(bundles.items())}
    snippet = (bundles["midrange"] / "android" / "build.gradle.kts.snippet").read_text()
    outputs, gradle, diagnostics = compile_and_run([v for v, _ in prepared.values()], snippet, work,
                                                   literals=[HOSTILE])
    runs = {name: (parse(outputs[name]), expected) for name, (_, expected) in prepared.items()}
    return runs, gradle, diagnostics, outputs["literals"]


def test_the_bundles_are_what_the_variants_say(bundles):
    dtypes = {name: json.loads((b / "manifest.json").read_text())["io"]["inputs"][0]["dtype"] for name, b in bundles.items()}
    assert dtypes == {"midrange": "int8", "lowend": "uint8", "float32": "float32", "rgb": "int8", "multi": "int8"}
    assert sorted(p.name for p in (bundles["rgb"] / "android").iterdir()) == [
        "README.md", "StripesModel.kt", "build.gradle.kts.snippet"]
    assert (bundles["midrange"] / "android" / "EdgexModel.kt").is_file()
    assert (bundles["multi"] / "android" / "TwoIoModel.kt").is_file()
    for bundle in bundles.values():                 # the class names the model it was made for
        digest = hashlib.sha256((bundle / "model.tflite").read_bytes()).hexdigest()
        assert f"for model.tflite (sha256 {digest})" in next((bundle / "android").glob("*.kt")).read_text()
        readme = (bundle / "android" / "README.md").read_text()
        assert "| I/O | name | shape | dtype | scale | zero point | q range |" in readme
        assert "`q = clamp(round(x / scale) + zero_point, qmin, qmax)`" in readme


def test_the_generated_kotlin_compiles_without_warnings(jvm):
    _, _, diagnostics, _ = jvm
    assert "/src/" not in diagnostics, diagnostics          # the generated classes and drivers: not a warning


@pytest.mark.parametrize("name", ["midrange", "lowend", "float32", "rgb", "multi"])
def test_the_class_writes_the_bytes_python_computes_and_reads_outputs_back(jvm, name):
    runs, _, _, _ = jvm
    run, expected = runs[name]
    assert run.threads == str(expected["threads"]) and run.asset == "model.tflite" and run.closed == "true"
    assert run.passes[0]["writes"] == expected["writes"]
    for k, values in expected["outputs"].items():
        assert run.outputs[k].tobytes() == values.astype(np.float32).tobytes(), (name, k)
    assert [label for label, _ in run.passes[0]["top"]] == [label for label, _ in expected["top"]]
    assert [float(s) for _, s in run.passes[0]["top"]] == [float(np.float32(s)) for _, s in expected["top"]]
    if "bitmap" in expected:
        assert run.passes[1]["writes"] == expected["bitmap"], name
    else:
        assert len(run.passes) == 1


def test_uint8_inputs_cross_as_their_unsigned_bit_pattern(jvm):
    runs, _, _, _ = jvm
    run, expected = runs["lowend"]
    kind, values = run.passes[0]["writes"][0]
    assert kind == "writeInt8" and min(values) < 0 < max(values)          # q above 127 arrives as a negative byte
    assert run.passes[0]["writes"] == expected["writes"]


def test_the_gradle_snippet_compiles_as_kotlin_dsl(jvm):
    _, gradle, _, _ = jvm
    assert gradle.splitlines() == ["noCompress tflite", "implementation com.google.ai.edge.litert:litert:2.1.0"]


def test_names_from_the_model_reach_the_source_only_as_escaped_literals(jvm):
    *_, literals = jvm
    assert literals == HOSTILE + "\n"


def test_an_input_with_dynamic_dims_is_fed_at_the_measured_shape_and_the_readme_says_why(tmp_path):
    from tests.dynamic_models import frontend_tflite

    model = tmp_path / "frontend.tflite"
    model.write_bytes(frontend_tflite())
    out = _export(tmp_path, "frontend", model=model, input_shapes=(1, 16000))
    source = (out / "android" / "FrontendModel.kt").read_text()
    assert 'Port("audio", 0, intArrayOf(1, 16000), "float32", floatArrayOf(), intArrayOf(), -1, 0, 0)' in source
    readme = (out / "android" / "README.md").read_text()
    assert "Input `audio` has dynamic dims (shape signature [-1, -1]): the class feeds it at the shape edgex " \
           "measured (1x16000)" in readme and "`resizeInput(slot, dims)`" in readme
