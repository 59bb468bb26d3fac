"""Folders of images as --calib, --eval and --train: layouts, labels, decoding, normalization, safety."""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from exporter.errors import DataError, UsageError
from exporter.image_folder import MAX_UNREADABLE, folder_datasets, scan
from exporter.image_reader import input_size
from exporter.normalization import MODES
from tests.test_cli import help_without_imports, run
from tests.test_fuzz import budget, mutations

CLASSES = ("horizontal", "vertical")


def stripes(kind: str, rng, size: int = 32, period: int = 8) -> np.ndarray:
    """An RGB image of bright stripes on a dark ground, running `kind` (horizontal or vertical), random colors."""
    on = ((np.arange(size) + rng.integers(period)) // (period // 2)) % 2 == 0
    mask = np.broadcast_to(on[:, None] if kind == "horizontal" else on[None, :], (size, size))
    image = np.empty((size, size, 3), np.uint8)
    image[:] = rng.integers(0, 60, 3)
    image[mask] = rng.integers(150, 256, 3)
    return image


def write_class_folders(root: Path, images_per_class: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        (root / kind).mkdir(parents=True)
        for i in range(images_per_class):
            Image.fromarray(stripes(kind, rng)).save(root / kind / f"{i:03d}.png")
    return root


def read_independently(root: Path, size=(16, 16)) -> tuple[np.ndarray, np.ndarray]:
    """The folder as the test reads it, without edgex: Pillow RGB, bilinear to 16x16, /255; labels by sorted folder."""
    xs, ys = [], []
    for label, kind in enumerate(sorted(p.name for p in root.iterdir())):
        for path in sorted((root / kind).iterdir()):
            with Image.open(path) as img:
                xs.append(np.asarray(img.convert("RGB").resize(size, Image.Resampling.BILINEAR), np.float32) / 255)
            ys.append(label)
    return np.stack(xs), np.array(ys)


@pytest.fixture(scope="module")
def stripes_case(keras, tmp_path_factory):
    """A tf_keras 16x16x3 two-class model trained on horizontal vs vertical stripes, and 40+40 PNGs of them at 32x32."""
    root = tmp_path_factory.mktemp("stripes")
    folder = write_class_folders(root / "images", 40)
    x, y = read_independently(folder)
    train_x, train_y = read_independently(write_class_folders(root / "fit", 60, seed=1))
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.layers.Input((16, 16, 3)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(2, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train_x, train_y, epochs=15, batch_size=16, verbose=0)
    model.save(root / "stripes.keras")
    return root / "stripes.keras", folder, x, y


def test_two_class_folders_work_as_calib_eval_and_train(stripes_case, tmp_path):
    from exporter.litert import LiteRTRunner

    model, folder, x, y = stripes_case
    out = tmp_path / "bundle"
    result = run(["export", str(model), "--calib", str(folder), "--eval", str(folder), "--train", str(folder),
                  "--prune", "0.5", "--epochs", "3", "--batch-size", "8", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    tflite = LiteRTRunner((out / "model.tflite").read_bytes()).predict(x)
    expected = float((tflite.argmax(axis=1) == y).mean() * 100)          # the bundle's model on the test's own reading
    assert report["measurements"]["accuracy"]["value"] == pytest.approx(expected, abs=1e-9)
    assert report["measurements"]["accuracy"]["on"].endswith("80 eval samples") and expected > 90
    assert (out / "labels.txt").read_text() == "horizontal\nvertical\n"
    manifest = json.loads((out / "manifest.json").read_text())
    pre = manifest["preprocessing"]
    assert pre["normalize"]["mode"] == "unit" and pre["normalize"]["std"] == [255.0] * 3 and pre["color"] == "RGB"
    assert pre["resize"]["size"] == [16, 16] and pre["resize"]["method"] == "bilinear"
    assert [a["role"] for a in pre["applies_to"]] == ["calibration", "evaluation", "training"]
    assert any("normalized 'unit' (pixel/255, 0..1) (the default; --normalize to change)" in n for n in report["notes"])
    assert manifest["warnings"] == [] and {d["role"] for d in manifest["data"]} == {"calibration", "evaluation",
                                                                                   "training"}


@pytest.fixture
def gradient(tmp_path):
    """A flat folder with one 16x16 RGB image holding every value 0..255 in each channel."""
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    (tmp_path / "grad").mkdir()
    Image.fromarray(np.stack([values, values[::-1], values.T], axis=-1)).save(tmp_path / "grad" / "g.png")
    return tmp_path / "grad"


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("channels", [3, 1])
def test_normalize_modes_give_the_documented_ranges(gradient, mode, channels):
    expected = {"unit": (0.0, 1.0), "signed": (-1.0, 1.0), "raw": (0.0, 255.0)}
    ds = scan(gradient, role="calibration").dataset(shape=(None, 16, 16, channels), normalize=mode)
    assert ds.x.shape == (1, 16, 16, channels) and ds.x.dtype == np.float32
    if channels == 1:              # grayscale of a gradient does not reach 0 and 255: check the mapping instead
        with Image.open(next(gradient.iterdir())) as image:
            pixels = np.asarray(image.convert("L"), np.float32)
        mean, std = {"unit": (0, 1), "signed": (0.5, 0.5), "imagenet": (0.449, 0.226), "raw": (0, 1 / 255)}[mode]
        np.testing.assert_allclose(ds.x[0, ..., 0], (pixels / 255 - mean) / std, rtol=1e-5, atol=1e-5)
        return
    for c in range(3):
        low, high = float(ds.x[..., c].min()), float(ds.x[..., c].max())
        if mode == "imagenet":
            mean, std = (0.485, 0.456, 0.406)[c], (0.229, 0.224, 0.225)[c]
            assert (low, high) == pytest.approx(((0 - mean) / std, (1 - mean) / std), abs=1e-5)
        else:
            assert (low, high) == expected[mode]


def test_rgb_and_grayscale_conversion(tmp_path):
    (tmp_path / "red").mkdir()
    Image.new("RGB", (24, 24), (255, 0, 0)).save(tmp_path / "red" / "r.png")
    Image.new("L", (24, 24), 200).save(tmp_path / "red" / "gray.png")
    folder = scan(tmp_path / "red", role="calibration")
    rgb = folder.dataset(shape=(None, 8, 8, 3), normalize="raw").x
    gray = folder.dataset(shape=(None, 8, 8, 1), normalize="raw").x
    assert rgb[1, 0, 0].tolist() == [255.0, 0.0, 0.0] and rgb[0, 0, 0].tolist() == [200.0] * 3   # sorted: gray, r
    assert gray[1, 0, 0].tolist() == [76.0] and gray[0, 0, 0].tolist() == [200.0]        # ITU-R 601-2 luma of red


def test_jpeg_bmp_and_upper_case_extensions_are_read(tmp_path):
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (4, 4, 3)), np.ones((8, 8, 1))).astype(np.uint8)   # 32x32 flat blocks
    (tmp_path / "f").mkdir()
    for name, kwargs in (("a.png", {}), ("b.BMP", {}), ("c.jpg", {"quality": 95, "subsampling": 0}),
                         ("d.JPEG", {"quality": 95, "subsampling": 0})):
        Image.fromarray(smooth).save(tmp_path / "f" / name, **kwargs)
    ds = scan(tmp_path / "f", role="evaluation").dataset(shape=(None, 32, 32, 3), normalize="unit")
    assert len(ds) == 4 and ds.y is None
    np.testing.assert_array_equal(ds.x[1], ds.x[0])                        # BMP is lossless
    assert np.abs(ds.x[2] - ds.x[0]).mean() < 0.02 and np.abs(ds.x[3] - ds.x[0]).mean() < 0.02


@pytest.fixture(scope="module")
def digit_pngs(demo, tmp_path_factory):
    """The demo's evaluation images as 16x16 grayscale PNGs in class folders named by demo.labels."""
    root = tmp_path_factory.mktemp("digits") / "images"
    for i, (x, y) in enumerate(zip(demo.eval.x, demo.eval.y)):
        (root / demo.labels[y]).mkdir(parents=True, exist_ok=True)
        pixels = np.round(x[..., 0] * 255).astype(np.uint8)
        Image.fromarray(pixels, "L").resize((16, 16), Image.Resampling.NEAREST).save(root / demo.labels[y] / f"{i}.png")
    return root


def _copy_some(source: Path, target: Path, count: int, classes: int = 10) -> None:
    """`count` images of `source`, taken in turn from its first `classes` class folders, into `target`."""
    folders = [sorted(p.iterdir()) for p in sorted(source.iterdir())[:classes]]
    for i in range(count):
        path = folders[i % classes][i // classes]
        (target / path.parent.name).mkdir(parents=True, exist_ok=True)
        (target / path.parent.name / path.name).write_bytes(path.read_bytes())


def test_a_corrupt_image_among_200_is_skipped_and_listed(demo, digit_pngs, tmp_path):
    import exporter

    _copy_some(digit_pngs, tmp_path / "eval", 199)
    (tmp_path / "eval" / "3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    report = exporter.export(demo.model_path, calib=demo.calib, eval=tmp_path / "eval", progress=False)
    assert report.measurements["accuracy"].on.endswith("199 eval samples")
    skipped = [n for n in report.notes if "unreadable" in n]
    assert len(skipped) == 1 and "skipped 1 unreadable image of 200: 3/broken.png (" in skipped[0]
    assert "3/broken.png" in report.to_markdown()


def test_more_than_1_percent_unreadable_exits_2(digit_pngs, demo, tmp_path):
    _copy_some(digit_pngs, tmp_path / "eval", 17)
    for i in range(3):
        (tmp_path / "eval" / "0" / f"bad{i}.png").write_bytes(b"not an image")
    result = run(["export", str(demo.model_path), "--eval", str(tmp_path / "eval"), "--quantize", "float32",
                  "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "3 of 20 evaluation images are unreadable (more than 1%)" in result.stderr
    assert "0/bad0.png (cannot identify image file)" in result.stderr and not (tmp_path / "out").exists()
    assert MAX_UNREADABLE == 0.01


def test_decompression_bombs_count_as_unreadable(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    (tmp_path / "f").mkdir()
    Image.new("L", (40, 40)).save(tmp_path / "f" / "bomb.png")            # 1600 px: over the limit (a warning)
    Image.new("L", (64, 64)).save(tmp_path / "f" / "bigger.png")          # 4096 px: over twice the limit (an error)
    with pytest.raises(DataError, match=r"2 of 2 calibration images are unreadable") as err:
        scan(tmp_path / "f", role="calibration").dataset(shape=(None, 8, 8, 1), normalize=None)
    assert str(err.value).count("a decompression bomb") == 2


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "the calibration folder holds no images (.png, .jpg, .jpeg, .bmp)"),
    (lambda root: [(root / ".DS_Store").write_bytes(b"x"), (root / "notes.txt").write_text("x")],
     "holds no images (.png, .jpg, .jpeg, .bmp) (left out: .DS_Store (hidden), notes.txt (not .png/.jpg/.jpeg/.bmp))"),
    (lambda root: [(root / "cat").mkdir(), (root / "dog").mkdir(), Image.new("L", (8, 8)).save(root / "dog/a.png")],
     "class folder cat/ holds no images"),
    (lambda root: [(root / "cat").mkdir(), Image.new("L", (8, 8)).save(root / "cat/a.png"),
                   Image.new("L", (8, 8)).save(root / "b.png")], "holds both images (b.png) and sub-folders (cat)"),
    (lambda root: [os.mkdir(os.fsencode(root) + b"/\xff"), Image.new("L", (8, 8)).save(os.fsdecode(
        os.fsencode(root) + b"/\xff/a.png"))], "class folder '\\xff' is not valid UTF-8"),
], ids=["empty", "only-hidden-and-other-files", "empty-class-folder", "images-beside-class-folders", "non-utf8-name"])
@pytest.mark.reliability(40)
def test_folders_that_cannot_be_data_exit_2(tmp_path, demo, make, message):
    root = tmp_path / "images"
    root.mkdir()
    make(root)
    result = run(["export", str(demo.model_path), "--calib", str(root), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and "internal error" not in result.stderr and not (tmp_path / "out").exists()


def test_eval_and_train_folders_with_different_classes_exit_2(tmp_path, demo):
    for name, classes in (("eval", ("cat", "dog")), ("train", ("cat", "cow"))):
        for cls in classes:
            (tmp_path / name / cls).mkdir(parents=True)
            Image.new("L", (8, 8)).save(tmp_path / name / cls / "a.png")
    result = run(["export", str(demo.model_path), "--eval", str(tmp_path / "eval"), "--train", str(tmp_path / "train"),
                  "--quantize", "float32", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert (f"the evaluation and training folders have different class folders: only in {tmp_path}/eval/: dog; "
            f"only in {tmp_path}/train/: cow") in result.stderr


def test_class_folders_must_match_the_model_and_the_labels(tmp_path, demo, digit_pngs):
    _copy_some(digit_pngs, tmp_path / "three", 30, classes=3)
    result = run(["export", str(demo.model_path), "--eval", str(tmp_path / "three"), "--quantize", "float32",
                  "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "three/: 3 class folders (0, 1, 2) but the model has 10 classes" in result.stderr
    folder = scan(digit_pngs, role="evaluation")
    with pytest.raises(DataError, match=r"not the names given with labels=: only in .*images/: 9; only in labels=: nine"):
        folder_datasets((None, folder, None, [*"012345678", "nine"]), shape=(None, 8, 8, 1), classes=10,
                        normalize=None)


def test_labels_set_the_order_of_the_class_folders(tmp_path):
    for cls, value in (("a", 0), ("b", 255)):
        (tmp_path / cls).mkdir()
        Image.new("L", (8, 8), value).save(tmp_path / cls / "x.png")
    folder = scan(tmp_path, role="evaluation")
    _, ds, _, names = folder_datasets((None, folder, None, None), shape=(None, 8, 8, 1), classes=2, normalize=None)
    assert names == ["a", "b"] and ds.y.tolist() == [0, 1] and ds.x[:, 0, 0, 0].tolist() == [0.0, 1.0]
    _, ds, _, names = folder_datasets((None, folder, None, ["b", "a"]), shape=(None, 8, 8, 1), classes=2,
                                      normalize=None)
    assert names == ["b", "a"] and ds.y.tolist() == [1, 0]              # a/ is class 1 now, as keras' class_names


@pytest.mark.reliability(40)
@pytest.mark.timeout(30)
def test_fifo_links_out_and_hidden_files_are_left_out_without_hanging(tmp_path, demo):
    root = tmp_path / "calib"
    root.mkdir()
    for i in range(3):
        Image.new("L", (8, 8), 40 * i).save(root / f"{i}.png")
    os.mkfifo(root / "fifo.png")
    os.symlink("/etc/hostname", root / "outside.png")
    os.symlink(root, root / "loop")
    (root / ".hidden.png").write_bytes(b"x")
    folder = scan(root, role="calibration")
    assert [name for name, _ in folder.files] == ["0.png", "1.png", "2.png"]
    assert folder.ignored == [".hidden.png (hidden)", "fifo.png (a FIFO)", "loop (a link to a folder, not followed)",
                              "outside.png (a link out of the folder)"]
    ds = folder.dataset(shape=(None, 8, 8, 1), normalize=None)
    assert len(ds) == 3 and any("left out 4 entries: .hidden.png (hidden), fifo.png (a FIFO)" in n for n in ds.notes)


def test_input_shapes_images_cannot_fill_exit_2():
    for shape, message in (((None, 64), "need a model input of shape (N, height, width, channels)"),
                           ((None, None, None, 3), "has a free height or width"),
                           ((None, 8, 8, 2), "the model takes 2 channels; images give 1 (grayscale) or 3 (RGB)")):
        with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
            input_size(shape, "images/")


def test_normalize_applies_only_to_image_folders(tmp_path, gradient):
    result = run(["export", "--demo", "--normalize", "signed", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--normalize applies to image folders" in result.stderr
    with pytest.raises(UsageError, match="unknown normalize mode 'zscore'; choose one of unit, signed, imagenet, raw"):
        folder_datasets((scan(gradient, role="calibration"), None, None, None), shape=(None, 8, 8, 1), classes=10,
                        normalize="zscore")


def test_export_help_names_the_folder_formats_without_importing_pillow():
    text = " ".join(help_without_imports(["export", "--help"], modules=("tensorflow", "PIL", "pydantic", "rich")).split())
    assert "a folder of PNG/JPEG/BMP images (flat, or one sub-folder per class: the labels)" in text
    assert "--normalize [unit|signed|imagenet|raw]" in text


def _image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(1).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


_SEEDS = {suffix: _image_bytes(fmt) for suffix, fmt in ((".png", "PNG"), (".jpg", "JPEG"), (".bmp", "BMP"))}


@pytest.mark.reliability(40, 42)
@pytest.mark.timeout(300)
@budget(150)
@given(suffix=st.sampled_from(sorted(_SEEDS)), data=st.data())
def test_fuzzed_images_are_read_or_refused_as_unreadable(suffix, data):
    raw = data.draw(mutations(_SEEDS[suffix]) | st.binary(max_size=400), label="bytes")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / f"image{suffix}").write_bytes(raw)
        try:
            ds = scan(tmp, role="calibration").dataset(shape=(None, 8, 8, 3), normalize="signed")
        except DataError as exc:
            assert exc.exit_code == 2 and "1 of 1 calibration images are unreadable" in str(exc)
        else:
            assert ds.x.shape == (1, 8, 8, 3) and ds.x.min() >= -1 and ds.x.max() <= 1


def test_several_targets_decode_the_folder_once(demo, digit_pngs, monkeypatch):
    import exporter
    from exporter import image_reader

    calls, real = [], image_reader.read_images
    monkeypatch.setattr(image_reader, "read_images",
                        lambda folder, *rest: calls.append(folder.role) or real(folder, *rest))
    reports = exporter.export(demo.model_path, targets=["android", "linux"], calib=digit_pngs, eval=digit_pngs,
                              progress=False)
    assert calls == ["calibration", "evaluation"]                         # decoded once for both targets
    assert [r.preprocessing["normalize"]["mode"] for r in reports] == ["unit", "unit"]
    assert all(r.measurements["accuracy"].on.endswith("360 eval samples") and r.passed for r in reports)
