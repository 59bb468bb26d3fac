"""Keras 3 files exported through the bridge: every target, compression stages, .h5, MobileNetV3's hard
activations; what is refused (outside the table: 2, hostile: 3) and a wrong table entry caught (4).

The models are built with `import keras` (Keras 3) and saved once per module.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import exporter
from exporter.errors import ConversionError, ModelFileError, UnsafeModelError
from exporter.keras3 import table
from tests.keras3.models import trained_digits_cnn
from tests.test_cli import run
from tests.test_model_io import _rewrite_keras as _rewrite

_RNG = np.random.default_rng(0)
_CALIB = _RNG.uniform(-1, 1, (32, 96, 96, 3)).astype("float32")


def _with_moving_statistics(model, seed: int):
    """Give every BatchNormalization of an untrained Keras 3 model statistics away from 0 and 1."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * rng.uniform(0.8, 1.2, gamma.shape), beta + rng.normal(0, 0.05, beta.shape),
                               mean + rng.normal(0, 0.05, mean.shape), var * rng.uniform(0.8, 1.5, var.shape)])
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory, demo):
    """Keras 3 files: MobileNetV2 and V3Small (.keras), the trained digits CNN (.keras and .h5)."""
    import keras

    root = tmp_path_factory.mktemp("keras3")
    keras.utils.set_random_seed(0)
    v2 = keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), weights=None, classes=10)
    _with_moving_statistics(v2, 1).save(root / "mobilenet_v2.keras")
    v3 = keras.applications.MobileNetV3Small(alpha=0.75, input_shape=(96, 96, 3), weights=None, classes=10)
    _with_moving_statistics(v3, 2).save(root / "mobilenet_v3_small.keras")
    cnn = trained_digits_cnn(demo.train.x, demo.train.y)
    assert np.abs(cnn.get_layer("bn").moving_mean.numpy()).max() > 0.01        # BatchNormalization is not identity
    cnn.save(root / "digits.keras")
    cnn.save(root / "digits.h5")
    return root


def _bridge_figure(report, samples: str):
    figure = report.measurements["bridge_max_abs_error"]
    assert figure.source == "measured" and figure.on.endswith(samples) and figure.value <= 1e-4, figure
    return figure.value


def test_mobilenet_v2_exports_for_android_microcontroller_and_edgetpu(models, tmp_path):
    reports = exporter.export(models / "mobilenet_v2.keras", targets=["android", "microcontroller", "edgetpu"],
                              calib=_CALIB, out=tmp_path, progress=False)
    assert [r.target for r in reports] == ["android", "microcontroller", "edgetpu"]
    for report in reports:
        _bridge_figure(report, "32 calibration samples")
        assert report.notes[0] == "bridged from Keras 3.15.1: 156 layers translated to tf_keras"
        manifest = json.loads((tmp_path / report.target / "manifest.json").read_text())
        assert manifest["bridge"] == {"from": "keras 3.15.1", "layers": 156, "added_layers": [],
                                      "max_abs_error": report.measurements["bridge_max_abs_error"].value}
        assert "bridged from Keras 3.15.1" in (tmp_path / report.target / "report.md").read_text()
    assert reports[0].passed and reports[2].passed          # TFLM may abort on the untrained model (exit 1)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_functional_model_with_residual_concat_and_trained_batchnorm(models, demo, tmp_path, suffix):
    reports = exporter.export(models / f"digits{suffix}", targets=["android", "microcontroller", "edgetpu"],
                              calib=demo.calib, eval=demo.eval, out=tmp_path / "out", progress=False)
    for report in reports:
        _bridge_figure(report, f"{min(256, len(demo.eval))} eval samples")
        assert report.passed and report.measurements["accuracy"].value > 50   # Keras 3 training carried over
        manifest = json.loads((tmp_path / "out" / report.target / "manifest.json").read_text())
        assert manifest["measurements"]["bridge_max_abs_error"]["value"] <= 1e-4 and manifest["bridge"]["layers"] == 13


def test_prune_and_qat_run_on_the_bridged_mobilenet_v2(models, tmp_path):
    x = _RNG.uniform(-1, 1, (24, 96, 96, 3)).astype("float32")
    recipe = {"training": {"epochs": 1, "batch_size": 8, "validation_split": 0},
              "stages": [{"type": "prune", "config": {"sparsity": 0.5, "frequency": 1}}, {"type": "qat"}]}
    report = exporter.export(models / "mobilenet_v2.keras", target="android", calib=_CALIB,
                             train=(x, np.arange(24) % 10), recipe=recipe, out=tmp_path / "out", progress=False)
    _bridge_figure(report, "32 calibration samples")
    stages = {s["stage"]: s for s in report.stages}
    assert list(stages) == ["original", "prune", "qat"]
    assert stages["prune"]["nonzero"] < 0.7 * stages["original"]["nonzero"]     # 50 % of the prunable weights
    assert stages["qat"]["metrics"]["scheme"] == "pqat"                         # sparsity kept through QAT


def test_mobilenet_v3_small_hard_swish_bridges_exactly(models):
    from exporter.keras3.proof import prove
    from exporter.model_io import load_model

    loaded = load_model(models / "mobilenet_v3_small.keras")
    figure = prove(loaded.bridge, loaded.model, None, "eval", "v3.keras")      # no data: seeded random inputs
    assert figure.value < 1e-5 and figure.on.endswith("8 random inputs")
    assert "8 seeded random inputs uniform in [0, 255) (the model starts with a Rescaling)" in figure.note
    added = loaded.bridge.translation.added                                    # hard_sigmoid and hard_silu expanded
    assert len(added) > 0 and "tf_keras layers added" in loaded.bridge.note()


@pytest.mark.reliability(6)
def test_a_layer_outside_the_table_exits_2_naming_it(tmp_path):
    import keras

    path = tmp_path / "transpose.keras"
    keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2DTranspose(2, 3, name="up")]).save(path)
    result = run(["export", str(path), "--quantize", "float32", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and not (tmp_path / "out").exists()
    assert "layer 'up' (Conv2DTranspose) is not in edgex's Keras 3 table" in result.stderr
    assert "import tf_keras as keras" in result.stderr and "pass the .tflite as MODEL" in result.stderr


@pytest.fixture
def loads(monkeypatch):
    """Records every translation and every load by Keras 3 or tf_keras."""
    import keras

    from exporter import model_io
    from exporter.keras3 import bridge

    calls = []
    for owner, name in [(keras.saving, "load_model"), (bridge, "translate"), (model_io, "_guarded_load")]:
        original = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    return calls


def test_hostile_keras3_configs_exit_3_before_anything_loads(models, tmp_path, loads):
    import keras

    lam = tmp_path / "lambda.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2, name="code")]).save(lam)

    def to_os(config):
        config["config"]["layers"][1]["module"] = "os"
    evil = _rewrite(models / "digits.keras", tmp_path / "os.keras", to_os)
    for path, message in [(lam, r"Lambda layer 'code' at \$.config.layers\[1\]"), (evil, r"module 'os' at")]:
        with pytest.raises(UnsafeModelError, match=message) as caught:
            exporter.export(path, quantize="float32", out=tmp_path / "out", progress=False)
        assert caught.value.exit_code == 3
    assert loads == [] and not (tmp_path / "out").exists()


def test_a_wrong_table_entry_exits_4_naming_the_layer(models, tmp_path, monkeypatch):
    rule = table.RULES["BatchNormalization"]      # epsilon "inert" at the model's 0.05: tf_keras's default 0.001
    broken = dataclasses.replace(rule, keep=rule.keep - {"epsilon"}, inert={**rule.inert, "epsilon": (0.05,)})
    monkeypatch.setitem(table.RULES, "BatchNormalization", broken)
    with pytest.raises(ConversionError) as caught:
        exporter.export(models / "digits.keras", quantize="float32", out=tmp_path / "out", progress=False)
    assert caught.value.exit_code == 4 and not (tmp_path / "out").exists()
    assert "the first layer whose outputs differ is 'bn' (BatchNormalization)" in str(caught.value)
    assert "8 random inputs (limit 0.0001)" in str(caught.value)


def test_a_keras3_model_object_is_exported_like_a_file(models, demo):
    import keras

    model = keras.saving.load_model(models / "digits.keras")
    report = exporter.export(model, target="android", calib=demo.calib, eval=demo.eval, progress=False)
    _bridge_figure(report, f"{min(256, len(demo.eval))} eval samples")
    assert report.model == "<in-memory model>" and report.bridge["from"].startswith("keras 3.")
    with pytest.raises(ModelFileError, match="never built"):
        exporter.export(keras.Sequential([keras.layers.Dense(2)]), quantize="float32", progress=False)


_SMALL_JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 40) | st.floats(-4, 4) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=3), max_leaves=6)


@pytest.mark.reliability(42)
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_a_mutated_keras3_file_is_bridged_or_refused_with_a_documented_code(models, tmp_path, data):
    """Whatever a Keras 3 config.json holds, loading ends bridged or with exit 2, 3 or 4, never a crash."""
    from exporter.model_io import load_model

    def mutate(config):
        layers = config["config"]["layers"]
        layer = data.draw(st.sampled_from(layers))
        key = data.draw(st.sampled_from(sorted(layer["config"]) + ["class_name", "inbound_nodes"]))
        (layer if key in ("class_name", "inbound_nodes") else layer["config"])[key] = data.draw(_SMALL_JSON)
    path = _rewrite(models / "digits.keras", tmp_path / f"m{data.draw(st.integers(0, 10**6))}.keras", mutate)
    try:
        loaded = load_model(path)
    except (ModelFileError, UnsafeModelError, ConversionError) as e:
        assert e.exit_code in (2, 3, 4) and str(e)
    else:
        assert loaded.bridge is not None and loaded.model.inputs


def test_a_keras3_model_with_two_inputs_is_refused_with_what_to_do(tmp_path):
    import keras

    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    model = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Concatenate()([a, b])))
    model.save(tmp_path / "two.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", a=rng.random((32, 4), dtype=np.float32), b=rng.random((32, 3), dtype=np.float32))
    result = run(["export", str(tmp_path / "two.keras"), "--calib", str(tmp_path / "calib.npz"),
                  "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "one input and one output" in result.stderr and "tf_keras" in result.stderr
    assert not (tmp_path / "out").exists()
