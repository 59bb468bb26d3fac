"""Several targets in one export: one conversion per distinct (recipe, mode, I/O dtype), one bundle per target."""
import json

import pytest

import exporter
from exporter.errors import UsageError
from tests.test_cli import run


@pytest.fixture
def conversions(monkeypatch):
    """Count the calls of the converter that `steps.build` uses."""
    import exporter.stages.convert as convert_mod

    calls = []
    real = convert_mod.convert

    def counting(model, config, **kwargs):
        calls.append((config.mode, config.io_dtype))
        return real(model, config, **kwargs)

    monkeypatch.setattr(convert_mod, "convert", counting)
    return calls


def test_api_shares_one_conversion_and_writes_a_bundle_per_target(demo, tmp_path, conversions):
    reports = exporter.export(demo.model_path, targets=["android", "linux", "microcontroller"], calib=demo.calib,
                              eval=demo.eval, labels=demo.labels, out=tmp_path / "build", progress=False)
    assert [(r.target, r.profile, r.mode, r.io_dtype) for r in reports] == [
        ("android", "android-arm64-midrange", "int8", "int8"), ("linux", "raspberry-pi-4", "int8", "int8"),
        ("microcontroller", "arduino-nano-33-ble", "int8", "int8")]
    assert conversions == [("int8", "int8")], "all three are int8 with int8 I/O: one conversion"
    assert all(r.passed for r in reports)
    models = {}
    for r in reports:
        bundle = tmp_path / "build" / r.target
        assert r.bundle == str(bundle) and exporter.verify(bundle)["status"] == "pass"
        assert json.loads((bundle / "manifest.json").read_text())["profile"]["name"] == r.profile
        models[r.target] = (bundle / "model.tflite").read_bytes()
    from exporter.analysis.graph import Graph
    from exporter.tflite_metadata.model_file import read

    # one model: the same graph everywhere; android and linux add TFLite metadata naming their target, the MCU none
    assert len({json.dumps(Graph.from_bytes(m).to_dict(), sort_keys=True) for m in models.values()}) == 1
    assert read(models["microcontroller"]) is None and "target linux" in read(models["linux"])["metadata"]["description"]


def test_cli_exit_code_is_the_worst_and_every_bundle_verifies(tmp_path, conversions, monkeypatch):
    from targets.edgetpu.target import EdgeTpuTarget

    monkeypatch.setattr(EdgeTpuTarget, "default_profile", "coral-dev-board")   # a profile with uint8 I/O
    out = tmp_path / "build"
    result = run(["export", "--demo", "--target", "android", "--target", "edgetpu", "--out", str(out),
                  "--limit", "model_size=1KB"])
    assert result.exit_code == 1, result.output
    assert conversions == [("int8", "int8"), ("int8", "uint8")], "uint8 I/O on the Coral: a second conversion"
    assert "limit broken (android)" in result.stderr and "limit broken (edgetpu)" in result.stderr
    for name in ("target", "profile", "mode", "status", "failed checks", "android", "edgetpu", "model_size"):
        assert name in result.stdout
    for target in ("android", "edgetpu"):
        assert run(["verify", str(out / target)]).exit_code == 0


def test_an_error_for_one_target_stops_before_anything_is_written(tmp_path):
    out = tmp_path / "build"
    result = run(["export", "--demo", "--target", "android", "--target", "microcontroller", "--quantize", "float16",
                  "--out", str(out)])
    assert result.exit_code == 2 and "float16 is not allowed" in result.stderr
    assert not out.exists() or not any(out.iterdir())
    result = run(["export", "--demo", "--target", "android", "--target", "android", "--out", str(out)])
    assert result.exit_code == 2 and "more than once" in result.stderr
    with pytest.raises(UsageError, match="profile"):
        exporter.export(demo=True, targets=["android", "linux"], profile="raspberry-pi-5", progress=False)
    with pytest.raises(UsageError, match="target or targets"):
        exporter.export(demo=True, target="linux", targets=["android"], progress=False)
