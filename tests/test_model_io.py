"""Tests for exporter.model_io: safe loading of Keras / TFLite models."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import zipfile

import pytest

from exporter import keras_archive, model_io
from exporter import tf as tfmod
from exporter.config_scan import Findings
from exporter.errors import ModelFileError, UnsafeModelError, UsageError
from exporter.model_io import LoadedModel, load_model, scan_config


def _tiny(keras, *middle):
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3), *middle,
                             keras.layers.Flatten(), keras.layers.Dense(3)])


def _canary_lambda(keras, canary: str):
    # The closure (the canary path) is serialized with the lambda's bytecode.
    return keras.layers.Lambda(lambda x: (open(canary, "w").write("pwned"), x)[1], name="canary_lambda")


def _rewrite_keras(src, dst, mutate):
    """Copy a .keras archive, passing its config.json through `mutate`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                mutate(config)
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return dst


def _snapshot(*dirs):
    return {d: sorted(p.name for p in d.rglob("*")) for d in dirs}


def _layer(config, class_name):
    return next(l for l in config["config"]["layers"] if l["class_name"] == class_name)


@pytest.fixture(scope="module")
def keras():
    return tfmod.keras()


@pytest.fixture(scope="module")
def files(tmp_path_factory, keras):
    """Model files shared by the module: plain and Lambda models in each format."""
    d = tmp_path_factory.mktemp("models")
    canary = tmp_path_factory.mktemp("canary") / "pwned.txt"
    plain = _tiny(keras)
    plain.save(d / "plain.keras")
    plain.save(d / "plain.h5")
    lam = _tiny(keras, _canary_lambda(keras, str(canary)))
    lam.save(d / "lambda.keras")
    lam.save(d / "lambda.h5")
    wrapped = keras.Sequential([keras.Input((4, 8)), keras.layers.TimeDistributed(
        keras.layers.Lambda(lambda x: x * 2))])
    wrapped.save(d / "wrapped_lambda.keras")
    inp = keras.Input((4,))
    out = tfmod.tensorflow().math.add(tfmod.tensorflow().nn.relu(inp), 1.0)
    keras.Model(inp, out).save(d / "tfop.keras")
    canary.unlink(missing_ok=True)  # building the Lambda model called it
    return {"dir": d, "canary": canary, "plain": plain}


def _assert_unsafe(excinfo, *needles):
    err = excinfo.value
    assert err.exit_code == 3
    for needle in ("trust_model=True", *needles):
        assert needle in str(err)


# Rule 1: .keras with a Lambda layer ----------------------------------------

@pytest.mark.reliability(1)
def test_keras_lambda_refused_without_running_it(files):
    canary = files["canary"]
    canary.unlink(missing_ok=True)
    before = _snapshot(files["dir"], canary.parent)
    with pytest.raises(UnsafeModelError) as excinfo:
        load_model(files["dir"] / "lambda.keras")
    _assert_unsafe(excinfo, "Lambda layer 'canary_lambda'")
    assert not canary.exists()
    assert _snapshot(files["dir"], canary.parent) == before


def test_lambda_nested_in_wrapper_refused(files):
    with pytest.raises(UnsafeModelError) as excinfo:
        load_model(files["dir"] / "wrapped_lambda.keras")
    _assert_unsafe(excinfo, "Lambda layer", "$.config.layers[1].config.layer")


def test_trust_model_loads_lambda_model(files, keras):
    loaded = load_model(files["dir"] / "lambda.keras", trust_model=True)
    assert loaded.kind == "keras" and isinstance(loaded.model, keras.Model)
    assert any(type(l).__name__ == "Lambda" for l in loaded.model.layers)
    files["canary"].unlink(missing_ok=True)  # its lambda really is live code


# Rule 2: configs calling dangerous functions ------------------------------

_FN = {"class_name": "function", "registered_name": None}


@pytest.mark.reliability(2)
@pytest.mark.parametrize("activation, needle", [
    ({**_FN, "module": "keras.src.saving.serialization_lib",
      "config": "enable_unsafe_deserialization"}, "enable_unsafe_deserialization"),
    ({**_FN, "module": "os", "config": "system"}, "function 'os.system'"),
    ({**_FN, "module": "builtins", "config": "exec"}, "function 'builtins.exec'"),
    ({**_FN, "module": "builtins", "config": "eval"}, "function 'builtins.eval'"),
    ({**_FN, "module": "subprocess", "config": "check_call"}, "subprocess"),
    ({**_FN, "module": "evil_pkg", "config": "run"}, "evil_pkg.run"),
    ({**_FN, "module": "keras.utils", "config": "get_file"}, "keras.utils.get_file"),
    ({**_FN, "module": "keras.activations", "config": "deserialize"}, "keras.activations.deserialize"),
    ("__import__('os').system('id')", "activation \"__import__"),
    ("serialize", "activation 'serialize'"),
])
def test_keras_dangerous_config_refused(files, tmp_path, activation, needle):
    def mutate(config):
        _layer(config, "Dense")["config"]["activation"] = activation
    path = _rewrite_keras(files["dir"] / "plain.keras", tmp_path / "evil.keras", mutate)
    with pytest.raises(UnsafeModelError) as excinfo:
        load_model(path)
    _assert_unsafe(excinfo, needle, "at $.config.layers[3].config.activation")


@pytest.mark.reliability(2)
def test_safe_mode_still_on_afterwards(files, tmp_path, keras, monkeypatch):
    from tf_keras.src.saving import serialization_lib as sl

    def mutate(config):
        _layer(config, "Dense")["config"]["activation"] = {
            **_FN, "module": "keras.src.saving.serialization_lib",
            "config": "enable_unsafe_deserialization"}
    evil = _rewrite_keras(files["dir"] / "plain.keras", tmp_path / "evil.keras", mutate)
    with pytest.raises(UnsafeModelError):
        load_model(evil)
    load_model(files["dir"] / "lambda.keras", trust_model=True)  # safe_mode=False inside
    files["canary"].unlink(missing_ok=True)
    # Even a trusted load that switches safe mode off globally is undone.
    real = keras.models.load_model

    def sneaky(*args, **kwargs):
        sl.enable_unsafe_deserialization()
        return real(*args, **kwargs)
    monkeypatch.setattr(keras.models, "load_model", sneaky)
    load_model(files["dir"] / "plain.keras", trust_model=True)
    monkeypatch.undo()
    assert sl.in_safe_mode() is not False
    with pytest.raises(ValueError, match="lambda"):  # tf_keras still refuses by itself
        keras.models.load_model(files["dir"] / "lambda.keras", compile=False)
    assert not files["canary"].exists()


# Rule 3: .h5 with a Lambda, refused by our own scan ------------------------

@pytest.mark.reliability(3)
def test_h5_lambda_refused_by_own_scan(files, keras, monkeypatch):
    def must_not_load(*args, **kwargs):
        raise AssertionError("tf_keras loader called on an unsafe .h5")
    monkeypatch.setattr(keras.models, "load_model", must_not_load)
    files["canary"].unlink(missing_ok=True)
    with pytest.raises(UnsafeModelError) as excinfo:
        load_model(files["dir"] / "lambda.h5")
    _assert_unsafe(excinfo, "Lambda layer 'canary_lambda'")
    assert not files["canary"].exists()


def test_h5_lambda_loads_with_trust(files, keras):
    loaded = load_model(files["dir"] / "lambda.h5", trust_model=True)
    assert loaded.kind == "h5" and isinstance(loaded.model, keras.Model)
    files["canary"].unlink(missing_ok=True)


def test_loader_forces_safe_mode_even_if_disabled_globally(files, monkeypatch):
    # tf_keras lets a thread-global enable_unsafe_deserialization() override
    # load_model(safe_mode=True), and ignores safe_mode for .h5. If our scan
    # ever missed a Lambda, the forced SafeModeScope must still refuse it.
    from tf_keras.src.saving import serialization_lib as sl

    monkeypatch.setattr(model_io, "find_problems", lambda config: Findings())
    monkeypatch.setattr(sl.SAFE_MODE, "safe_mode", False, raising=False)
    files["canary"].unlink(missing_ok=True)
    for name in ("lambda.keras", "lambda.h5"):
        with pytest.raises(ModelFileError, match="could not load .*lambda"):
            load_model(files["dir"] / name)
        assert not files["canary"].exists()
    assert sl.in_safe_mode() is False  # the caller's own setting is left as it was


# Rule 4: SavedModel directories --------------------------------------------

@pytest.fixture(scope="module")
def savedmodels(tmp_path_factory, files):
    tf = tfmod.tensorflow()
    d = tmp_path_factory.mktemp("savedmodels")
    files["plain"].save(d / "keras_sm", save_format="tf")

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3])])
        def __call__(self, x):
            return x * 2
    tf.saved_model.save(Doubler(), str(d / "plain_sm"))
    return d


@pytest.mark.reliability(4)
def test_savedmodel_refused_without_trust(savedmodels):
    with pytest.raises(UnsafeModelError) as excinfo:
        load_model(savedmodels / "keras_sm")
    _assert_unsafe(excinfo, "SavedModel", "arbitrary")


@pytest.mark.reliability(4)
def test_savedmodel_loads_with_trust(savedmodels, keras):
    loaded = load_model(savedmodels / "keras_sm", trust_model=True)
    assert loaded.kind == "savedmodel" and isinstance(loaded.model, keras.Model)


def test_non_keras_savedmodel_is_model_file_error(savedmodels):
    with pytest.raises(ModelFileError, match="does not hold a tf_keras model"):
        load_model(savedmodels / "plain_sm", trust_model=True)


def test_directory_without_saved_model_pb(tmp_path):
    with pytest.raises(ModelFileError, match="not a SavedModel"):
        load_model(tmp_path)


# Rule 5: bad files -----------------------------------------------------------

@pytest.mark.reliability(5)
@pytest.mark.parametrize("name, content, message", [
    ("empty.keras", b"", "model file is empty"),
    ("empty.h5", b"", "model file is empty"),
    ("text.keras", b"not a zip at all", "not a valid .keras archive (not a zip file)"),
    ("corrupt.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 64, "not a valid HDF5 model file"),
    ("model.pt", b"PK\x03\x04", "unsupported model file type '.pt': expected .keras, "
     ".h5, .tflite or a SavedModel directory"),
    ("model.onnx", b"\x08\x07", "unsupported model file type '.onnx'"),
])
def test_bad_model_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelFileError) as excinfo:
        load_model(path)
    assert message in str(excinfo.value) and excinfo.value.exit_code == 2


@pytest.mark.reliability(5)
def test_truncated_keras(files, tmp_path):
    data = (files["dir"] / "plain.keras").read_bytes()
    path = tmp_path / "truncated.keras"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a valid .keras archive"):
        load_model(path)


@pytest.mark.reliability(5)
def test_h5_renamed_to_keras_is_not_loaded_as_h5(files, tmp_path):
    # tf_keras would load this via its legacy HDF5 path, ignoring safe_mode.
    path = tmp_path / "lambda.keras"
    path.write_bytes((files["dir"] / "lambda.h5").read_bytes())
    with pytest.raises(ModelFileError, match="not a zip file"):
        load_model(path)
    assert not files["canary"].exists()


def test_keras_zip_without_config(tmp_path):
    path = tmp_path / "noconfig.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", "{}")
    with pytest.raises(ModelFileError, match="no config.json"):
        load_model(path)


def test_weights_only_h5(files, tmp_path):
    path = tmp_path / "w.h5"
    files["plain"].save_weights(path)
    with pytest.raises(ModelFileError, match="no model config"):
        load_model(path)


@pytest.mark.reliability(5)
def test_missing_path(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file: .*nope.keras"):
        load_model(tmp_path / "nope.keras")


# Rule 6: Keras 3 models are bridged into tf_keras (exporter/keras3/; the bridge's own tests: tests/keras3/)

_KERAS3_SCRIPT = """
import sys, keras
m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3),
                      keras.layers.Flatten(), keras.layers.Dense(3)])
m.save(sys.argv[1] + "/k3.keras")
m.save(sys.argv[1] + "/k3.h5")
"""


@pytest.fixture(scope="module")
def keras3_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("keras3")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    subprocess.run([sys.executable, "-c", _KERAS3_SCRIPT, str(d)], env=env,
                   check=True, capture_output=True, timeout=120)
    return d


@pytest.mark.parametrize("name", ["k3.keras", "k3.h5"])
def test_keras3_file_is_bridged_into_tf_keras(keras3_dir, name):
    import numpy as np

    loaded = load_model(keras3_dir / name)
    assert isinstance(loaded.model, tfmod.keras().Model) and type(loaded.bridge.source).__module__.startswith("keras.src")
    assert loaded.bridge.version.startswith("3.") and loaded.bridge.layers == 4     # Input, Conv2D, Flatten, Dense
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded.model(x), loaded.bridge.source(x), atol=1e-6)


def test_keras3_object_is_bridged_into_tf_keras():
    import keras as keras3  # Keras 3 is importable as `keras` next to tf_keras

    model = keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(2, name="head")])
    loaded = load_model(model)
    assert (loaded.kind, loaded.path, loaded.bridge.source) == ("object", None, model)
    assert isinstance(loaded.model, tfmod.keras().Model)
    assert [w.tolist() for w in loaded.model.get_layer("head").get_weights()] == \
        [w.tolist() for w in model.get_layer("head").get_weights()]


# Rule 6 (scan details): allowed and custom classes --------------------------

def test_plain_keras_and_h5_load(files, keras):
    for name, kind in [("plain.keras", "keras"), ("plain.h5", "h5")]:
        loaded = load_model(str(files["dir"] / name))
        assert isinstance(loaded, LoadedModel) and loaded.kind == kind
        assert isinstance(loaded.model, keras.Model) and loaded.tflite_bytes is None


def test_tfoplambda_with_tf_ops_is_allowed(files):
    loaded = load_model(files["dir"] / "tfop.keras")
    assert "TFOpLambda" in {type(l).__name__ for l in loaded.model.layers}


@pytest.mark.reliability(34)
def test_tfoplambda_writing_files_refused(files, tmp_path):
    def mutate(config):
        _layer(config, "TFOpLambda")["config"]["function"] = "io.write_file"
    path = _rewrite_keras(files["dir"] / "tfop.keras", tmp_path / "w.keras", mutate)
    with pytest.raises(UnsafeModelError, match="tf.io.write_file"):
        load_model(path)


def test_custom_class_needs_trust(files, tmp_path):
    def mutate(config):
        dense = _layer(config, "Dense")
        dense.update(module="my_project.layers", class_name="FancyDense",
                     registered_name="my_project>FancyDense")
    path = _rewrite_keras(files["dir"] / "plain.keras", tmp_path / "c.keras", mutate)
    with pytest.raises(ModelFileError, match="custom classes.*FancyDense.*trust_model=True"):
        load_model(path)
    with pytest.raises(ModelFileError, match="could not load .*c.keras: "):
        load_model(path, trust_model=True)  # tf_keras cannot import my_project


def test_scan_config_directly():
    scan_config({"class_name": "Dense", "module": "keras.layers",
                 "config": {"activation": "relu"}}, origin="x")
    with pytest.raises(UnsafeModelError, match=r"origin.json.*Lambda layer 'f' at \$.layers\[0\]"):
        scan_config({"layers": [{"class_name": "Lambda", "config": {"name": "f"}}]},
                    origin="origin.json")
    with pytest.raises(UnsafeModelError, match="serialized Python lambda"):
        scan_config({"class_name": "__lambda__", "config": {"value": "..."}}, origin="x")
    deep = {"class_name": "Lambda", "config": {}}
    for _ in range(5000):
        deep = {"layer": deep}
    with pytest.raises(UnsafeModelError):
        scan_config(deep, origin="x")


# Rule 9: .keras archives are checked before any library extracts them ----------------

def _zip_with(src, dst, extra=(), drop=()):
    """Copy a .keras archive, dropping members and adding (name or ZipInfo, bytes) pairs."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename not in drop:
                zout.writestr(item, zin.read(item))
        for info, data in extra:
            zout.writestr(info, data)
    return dst


def _info(name, compress=zipfile.ZIP_STORED, kind=0):
    info = zipfile.ZipInfo(name)
    info.compress_type = compress
    info.external_attr = kind << 16
    return info


def _patch_central(path, member: str, offset: int, width: int, change):
    """Rewrite a field of a member's central-directory entry (what zipfile trusts)."""
    data = bytearray(path.read_bytes())
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        length = int.from_bytes(data[pos + 28:pos + 30], "little")
        if data[pos + 46:pos + 46 + length] == member.encode():
            value = int.from_bytes(data[pos + offset:pos + offset + width], "little")
            data[pos + offset:pos + offset + width] = change(value).to_bytes(width, "little")
        pos = data.find(b"PK\x01\x02", pos + 4)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Point `tempfile` at an empty folder, to see what a load leaves behind."""
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


_BOMB = [(_info("model.weights.h5", zipfile.ZIP_DEFLATED), b"\0" * (8 << 20))]
_HOSTILE_ARCHIVES = {
    "bomb": (_BOMB, ("model.weights.h5",), r"'model.weights.h5' expands \d+x \(limit 200x\): a zip bomb"),
    "traversal": ([("../evil.txt", b"x")], (), "unexpected member '../evil.txt'"),
    "absolute": ([("/tmp/evil.txt", b"x")], (), "unexpected member '/tmp/evil.txt'"),
    "assets_traversal": ([("assets/../../evil.txt", b"x")], (), "unexpected member 'assets/../../evil.txt'"),
    "other_member": ([("evil.py", b"import os")], (), "unexpected member 'evil.py'"),
    "backslash": ([("assets/..\\evil", b"x")], (), "bad member name"),
    "symlink": ([(_info("assets/link", kind=stat.S_IFLNK | 0o777), b"/etc/passwd")], (), "symlink"),
    "duplicate": ([("config.json", b"{}")], (), "duplicate member names"),
    "too_many": ([(f"assets/{i}", b"") for i in range(1001)], (), r"1004 members \(limit 1000\)"),
}


@pytest.mark.reliability(35)
@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("case", sorted(_HOSTILE_ARCHIVES))
def test_hostile_keras_archive_refused(files, tmp_path, private_tmp, case):
    extra, drop, message = _HOSTILE_ARCHIVES[case]
    path = _zip_with(files["dir"] / "plain.keras", tmp_path / "evil.keras", extra, drop)
    with pytest.raises(UnsafeModelError, match=message) as excinfo:
        load_model(path, trust_model=True)   # --trust-model is about code, not about archives
    assert "nothing was extracted" in str(excinfo.value) and excinfo.value.exit_code == 3
    assert not list(private_tmp.iterdir()) and not (tmp_path / "evil.txt").exists()


@pytest.mark.reliability(35)
def test_zip_bomb_refused_by_cli(files, tmp_path, capsys):
    from exporter.cli import main

    path = _zip_with(files["dir"] / "plain.keras", tmp_path / "bomb.keras", _BOMB, ("model.weights.h5",))
    assert main(["export", str(path), "--out", str(tmp_path / "out")]) == 3
    assert "zip bomb" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_encrypted_member_refused(files, tmp_path):
    path = _zip_with(files["dir"] / "plain.keras", tmp_path / "enc.keras", [("assets/secret", b"x")])
    with pytest.raises(UnsafeModelError, match="'assets/secret' is encrypted"):
        load_model(_patch_central(path, "assets/secret", 8, 2, lambda flags: flags | 0x1))


@pytest.mark.reliability(35)
def test_declared_total_is_capped(files, tmp_path, monkeypatch):
    monkeypatch.setattr(keras_archive, "_MAX_TOTAL_BYTES", 1000)
    with pytest.raises(UnsafeModelError, match=r"declares [\d,]+ bytes \(limit 1,000\)"):
        load_model(files["dir"] / "plain.keras")


@pytest.mark.reliability(35, 40)
def test_lying_zip_headers(files, tmp_path, private_tmp):
    src = (files["dir"] / "plain.keras").read_bytes()
    (tmp_path / "more.keras").write_bytes(src)
    _patch_central(tmp_path / "more.keras", "model.weights.h5", 24, 4, lambda size: size + 1000)
    with pytest.raises(UnsafeModelError, match="does not hold the size its header declares"):
        load_model(tmp_path / "more.keras")
    (tmp_path / "less.keras").write_bytes(src)
    _patch_central(tmp_path / "less.keras", "model.weights.h5", 24, 4, lambda size: size - 100)
    with pytest.raises(ModelFileError, match="not a valid .keras archive .*CRC"):
        load_model(tmp_path / "less.keras")
    assert not list(private_tmp.iterdir())


def test_assets_are_allowed_and_temp_files_removed(files, tmp_path, private_tmp, keras):
    path = _zip_with(files["dir"] / "plain.keras", tmp_path / "assets.keras",
                     [("assets/", b""), ("assets/notes/readme.txt", b"hello")])
    assert isinstance(load_model(path).model, keras.Model)
    assert not list(private_tmp.iterdir())


@pytest.mark.parametrize("name, kind", [("BASE.KERAS", "keras"), ("Plain.H5", "h5")])
def test_upper_case_suffix(files, tmp_path, name, kind):
    source = files["dir"] / ("plain.keras" if kind == "keras" else "plain.h5")
    (tmp_path / name).write_bytes(source.read_bytes())
    loaded = load_model(tmp_path / name)
    assert loaded.kind == kind and loaded.path == tmp_path / name


# Rule 10: odd paths never reach an internal error ---------------------------------------

@pytest.mark.reliability(40)
@pytest.mark.parametrize("name", ["a" * 5000 + ".keras", "b" * 300 + ".tflite"])
def test_over_long_path(tmp_path, capsys, name):
    from exporter.cli import main

    with pytest.raises(ModelFileError, match="cannot open model file .*File name too long") as excinfo:
        load_model(tmp_path / name)
    assert excinfo.value.exit_code == 2 and len(str(excinfo.value)) < 600
    assert main(["export", str(tmp_path / name), "--out", str(tmp_path / "out")]) == 2
    assert "internal error" not in capsys.readouterr().err


@pytest.mark.reliability(40)
@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["fifo.keras", "fifo.h5", "fifo.tflite"])
def test_fifo_is_not_a_model_file(tmp_path, name):
    os.mkfifo(tmp_path / name)
    with pytest.raises(ModelFileError, match="not a regular file"):
        load_model(tmp_path / name)


def test_directory_named_keras(tmp_path):
    (tmp_path / "dir.keras").mkdir()
    with pytest.raises(ModelFileError, match="dir.keras is a directory but not a SavedModel"):
        load_model(tmp_path / "dir.keras")


@pytest.mark.reliability(24)
def test_garbage_tflite_by_cli(tmp_path, capsys):
    from exporter.cli import main

    (tmp_path / "m.tflite").write_bytes(b"TFL3" + bytes(range(256)) * 4)
    assert main(["export", str(tmp_path / "m.tflite"), "--out", str(tmp_path / "out")]) == 2
    assert "not a valid TFLite model" in capsys.readouterr().err and not (tmp_path / "out").exists()


# Rule 7: .tflite ---------------------------------------------------------------

@pytest.fixture(scope="module")
def tflite_bytes(files):
    tf = tfmod.tensorflow()
    return tf.lite.TFLiteConverter.from_keras_model(files["plain"]).convert()


def test_tflite_valid(tmp_path, tflite_bytes):
    path = tmp_path / "m.tflite"
    path.write_bytes(tflite_bytes)
    loaded = load_model(path)
    assert (loaded.kind, loaded.model, loaded.tflite_bytes) == ("tflite", None, tflite_bytes)


@pytest.mark.reliability(24)
@pytest.mark.parametrize("cut", ["half", "garbage", "empty"])
def test_tflite_invalid(tmp_path, tflite_bytes, cut):
    data = {"half": tflite_bytes[: len(tflite_bytes) // 2], "garbage": b"hello" * 40,
            "empty": b""}[cut]
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    message = "model file is empty" if cut == "empty" else "not a valid TFLite model"
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


# Rule 8: in-memory objects -----------------------------------------------------

def test_in_memory_tf_keras_model(files):
    loaded = load_model(files["plain"])
    assert (loaded.model, loaded.path, loaded.kind, loaded.bridge) == (files["plain"], None, "object", None)


def test_in_memory_subclassed_model(keras):
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)
    assert load_model(Sub()).kind == "object"


@pytest.mark.parametrize("obj", [None, 42, {"model": 1}, b"model.keras", object()])
def test_other_objects_are_usage_errors(obj):
    with pytest.raises(UsageError):
        load_model(obj)



@pytest.mark.reliability(40)
@pytest.mark.parametrize("config, message", [
    ({}, "does not hold a tf_keras model"),
    ({"class_name": "Sequential", "config": None, "module": "keras"}, "no defined inputs or outputs"),
])
def test_a_config_that_loads_as_no_usable_model_is_refused(files, tmp_path, config, message):
    """Found by tests/test_fuzz.py: tf_keras returns a dict, or an unbuilt model, for these configs."""
    path = _zip_with(files["dir"] / "plain.keras", tmp_path / "odd.keras", [("config.json", json.dumps(config))],
                     drop=("config.json",))
    with pytest.raises(ModelFileError, match=message):
        load_model(path)
