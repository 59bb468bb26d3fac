"""Agreement and fidelity are checks: minimum limits against the .tflite's outputs vs the Keras model's."""
import json

import numpy as np
import pytest

import exporter
from exporter.checks import Measurement, run_checks
from exporter.errors import ConfigError
from exporter.profile import LIMITS, load_profile, parse_limit_overrides
from tests.test_cli import run


@pytest.fixture(scope="module")
def tie_model(keras, tmp_path_factory):
    """Float argmax is always class 3 (bias 1e-4 above the rest); int8 softmax outputs tie, so argmax is 0."""
    bias = np.zeros(10, dtype=np.float32)
    bias[3] = 1e-4
    model = keras.Sequential([
        keras.layers.Input((4,)),
        keras.layers.Dense(10, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(bias)),
        keras.layers.Softmax(),
    ])
    root = tmp_path_factory.mktemp("tie")
    rng = np.random.default_rng(0)
    x = rng.random((64, 4), dtype=np.float32)
    y = np.array([3, 0] * 32)           # float right on the 3s, int8 right on the 0s: the same 50 %
    model.save(root / "tie.keras")
    np.savez(root / "calib.npz", x=x)
    np.savez(root / "eval.npz", x=x, y=y)
    return root


@pytest.mark.reliability(43)
def test_zero_agreement_fails_though_accuracy_is_unchanged(tie_model, tmp_path):
    root = tie_model
    result = run(["export", str(root / "tie.keras"), "--target", "android", "--calib", str(root / "calib.npz"),
                  "--eval", str(root / "eval.npz"), "--limit", "fidelity=0.99", "--out", str(tmp_path / "b"),
                  "--json"])
    assert result.exit_code == 1, result.stderr
    assert "agreement" in result.stderr and "BELOW limit 98.00 %" in result.stderr
    report = json.loads(result.stdout)
    m = report["measurements"]
    assert m["accuracy_original"]["value"] == m["accuracy"]["value"] == 50.0
    assert m["accuracy_drop"]["value"] == 0 and m["top1_agreement"]["value"] == 0
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["accuracy_drop"]["status"] == "pass", "the blind spot: accuracy alone passes"
    agreement = checks["agreement"]
    assert agreement["status"] == "fail" and agreement["bound"] == "min"
    assert agreement["value"] == 0 and agreement["limit"] == 98 and agreement["headroom"] == -98
    assert [c["name"] for c in report["checks"] if c["status"] == "fail"] == ["agreement"]
    # the outputs are still close (all ~0.1): fidelity passes, which is why agreement is checked too
    assert checks["fidelity"]["status"] == "pass" and checks["fidelity"]["value"] > 0.99
    bundle = tmp_path / "b"
    assert "| agreement | fail |" in (bundle / "report.md").read_text()
    assert "agreement" in (bundle / "report.html").read_text()
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["status"] == "fail" and manifest["profile"]["limits"]["agreement"] == 98


@pytest.mark.reliability(43)
def test_the_issues_mobilenetv2_case_exits_1_naming_agreement(keras, tmp_path):
    """A MobileNetV2 (alpha 0.35, 96x96) whose Keras top-1 is class 3 and whose int8 top-1 is class 0."""
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)
    kernel, bias = model.layers[-1].get_weights()
    bias[:] = 0
    bias[3] = 1e-4                          # the float softmax favours 3 by a hair; int8 outputs tie
    model.layers[-1].set_weights([np.zeros_like(kernel), bias])
    model.save(tmp_path / "mnv2.keras")
    x = np.random.default_rng(0).random((64, 96, 96, 3), dtype=np.float32)
    np.savez(tmp_path / "calib.npz", x=x)
    np.savez(tmp_path / "eval.npz", x=x, y=np.array([3, 0] * 32))
    result = run(["export", str(tmp_path / "mnv2.keras"), "--target", "android", "--calib", str(tmp_path / "calib.npz"),
                  "--eval", str(tmp_path / "eval.npz"), "--out", str(tmp_path / "b"), "--json"])
    assert result.exit_code == 1 and "agreement" in result.stderr, result.stderr
    m = json.loads(result.stdout)["measurements"]
    assert m["top1_agreement"]["value"] == 0 and m["accuracy"]["value"] == m["accuracy_original"]["value"] == 50


@pytest.mark.reliability(43)
def test_demo_passes_its_agreement_check(demo_bundle):
    report, out = demo_bundle
    check = next(c for c in report.checks if c.name == "agreement")
    assert check.status == "pass" and check.bound == "min" and check.source == "measured"
    assert check.value == report.measurements["top1_agreement"].value >= 98 and check.headroom >= 0
    assert "| agreement | pass |" in (out / "report.md").read_text()
    assert "agreement" in (out / "report.html").read_text()


def test_agreement_and_fidelity_overrides_parse_in_their_units():
    assert parse_limit_overrides(["agreement=90", "fidelity=0.99"]) == {"agreement": 90.0, "fidelity": 0.99}
    assert parse_limit_overrides(["agreement=90%"]) == parse_limit_overrides(["agreement=90pt"]) == {"agreement": 90}
    for bad in ("agreement=90ms", "fidelity=0.9%", "fidelity=1KB"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            parse_limit_overrides([bad])
    profile = load_profile("android-arm64-midrange")
    for over in ({"agreement": 101.0}, {"fidelity": 1.5}):
        with pytest.raises(ConfigError, match=f"limits.{next(iter(over))}"):
            profile.with_limits(over)
    assert profile.with_limits({"fidelity": 0.99}).limits.fidelity == 0.99


@pytest.mark.parametrize("name", ["android-arm64-midrange", "android-arm64-lowend", "raspberry-pi-4",
                                  "raspberry-pi-5", "arduino-nano-33-ble", "esp32-s3", "stm32h743",
                                  "corstone-300-u55-128", "coral-usb", "coral-dev-board"])
def test_every_shipped_profile_sets_an_agreement_minimum(name):
    profile = load_profile(name)
    expected = 98 if profile.target in ("android", "linux") else 95
    assert profile.limits.agreement == expected and profile.limits.fidelity is None


@pytest.mark.reliability(43)
def test_a_minimum_fails_below_and_passes_at_its_limit():
    assert LIMITS["agreement"].minimum and LIMITS["fidelity"].minimum and not LIMITS["ram"].minimum
    limits = load_profile("android-arm64-midrange").with_limits({"fidelity": 0.99}).limits

    def checks(agree, cosine):
        figures = {"top1_agreement": Measurement("top1_agreement", agree, "%", "measured", "host"),
                   "fidelity_cosine": Measurement("fidelity_cosine", cosine, "", "measured", "host")}
        return {c.name: c for c in run_checks(limits, figures)}

    low = checks(97.5, 0.5)
    assert low["agreement"].status == low["fidelity"].status == "fail"
    assert low["agreement"].headroom == pytest.approx(-0.5) and "BELOW limit 0.99" in low["fidelity"].summary()
    edge = checks(98.0, 0.99)
    assert edge["agreement"].status == edge["fidelity"].status == "pass" and edge["agreement"].headroom == 0
    assert "at or above limit 98.00 %" in edge["agreement"].summary()


def test_agreement_skips_with_the_reason_without_eval_data(tiny_model, tiny_data):
    report = exporter.export(tiny_model, calib=tiny_data[0], quantize="int8", limits=["fidelity=0.9"],
                             progress=False)
    checks = {c.name: c for c in report.checks}
    assert checks["agreement"].status == checks["fidelity"].status == "skip"
    assert checks["agreement"].note == "no evaluation data (eval=)" and report.passed
