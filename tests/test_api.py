"""The Python API end to end on the demo and on tiny models."""
import json

import numpy as np
import pytest

import exporter
from exporter.errors import DataError, UsageError


def test_demo_int8_keeps_accuracy_and_passes(demo_bundle):
    report, out = demo_bundle
    m = report.measurements
    assert report.mode == "int8" and report.io_dtype == "int8"
    assert m["accuracy_original"].value > 90, "the demo CNN learned the digits"
    assert abs(m["accuracy_original"].value - m["accuracy"].value) <= 1.0
    assert report.passed and {c.name for c in report.checks} == {"model_size", "ram", "latency", "accuracy_drop",
                                                                 "agreement"}
    assert exporter.verify(out)["files"] == 9  # model, report.md/html, labels, agent, eval samples, android/ (3)


@pytest.mark.reliability(43)
def test_every_figure_says_measured_estimated_or_mixed_and_on_what(demo_bundle):
    report, _ = demo_bundle
    for m in report.measurements.values():
        assert m.source in ("measured", "estimated", "mixed") and m.on
    sources = {c.name: c.source for c in report.checks}
    assert sources == {"model_size": "measured", "ram": "mixed", "latency": "estimated",
                       "accuracy_drop": "measured", "agreement": "measured"}
    ram = report.measurements["ram"]
    assert all(part in ram.note for part in ("(read from model.tflite)", "(estimated: tensor liveness)",
                                             "(profile estimate)"))


def test_manifest_records_profile_recipe_versions_and_hashes(demo_bundle):
    _, out = demo_bundle
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["profile"]["name"] == "android-arm64-midrange"
    assert manifest["recipe"]["convert"] == {"mode": "int8", "io_dtype": "int8"}
    assert manifest["versions"]["tensorflow"].startswith("2.21")
    assert set(manifest["files"]) == {"model.tflite", "report.md", "report.html", "labels.txt",
                                      "agent/edgex_agent.py", "agent/eval_samples.npz", "android/EdgexModel.kt",
                                      "android/build.gradle.kts.snippet", "android/README.md"}
    assert manifest["status"] == "pass" and manifest["created"]
    assert (out / "labels.txt").read_text().split() == [str(i) for i in range(10)]
    assert "accuracy_drop" in (out / "report.md").read_text()


def test_lowend_profile_gets_uint8_io(demo, tmp_path):
    report = exporter.export(demo.model_path, profile="android-arm64-lowend", calib=demo.calib, eval=demo.eval,
                             out=tmp_path / "low", progress=False)
    assert report.io_dtype == "uint8"
    assert report.graph["inputs"][0]["dtype"] == "uint8"


def test_limit_override_fails_the_check_but_writes_the_bundle(demo, tmp_path):
    report = exporter.export(demo.model_path, calib=demo.calib, eval=demo.eval, out=tmp_path / "b",
                             limits=["model_size=1KB"], progress=False)
    assert not report.passed and [c.name for c in report.failed_checks()] == ["model_size"]
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["status"] == "fail"


def test_no_labels_gives_fidelity_and_an_estimated_drop(tiny_model, tiny_data):
    report = exporter.export(tiny_model, calib=tiny_data[0], eval=tiny_data[0], quantize="int8", progress=False)
    m = report.measurements
    assert "accuracy" not in m and m["fidelity_cosine"].value > 0.99
    assert m["accuracy_drop"].source == "estimated" and m["accuracy_drop"].value == 100 - m["top1_agreement"].value


def test_float_modes_need_no_calibration(tiny_model, tiny_data):
    for mode in ("float32", "float16", "dynamic"):
        report = exporter.export(tiny_model, eval=tiny_data, quantize=mode, progress=False)
        assert report.mode == mode and report.io_dtype == "float32"


@pytest.mark.reliability(13)
def test_int8_without_calibration_never_falls_back(tiny_model, tiny_data):
    with pytest.raises(DataError, match="calibration"):
        exporter.export(tiny_model, eval=tiny_data, progress=False)
    with pytest.raises(DataError, match="at least 32"):
        exporter.export(tiny_model, calib=tiny_data[0][:10], progress=False)


def test_mode_not_allowed_by_profile_is_refused(tiny_model, tiny_data):
    with pytest.raises(UsageError, match="quantize='float16' is not allowed"):
        exporter.export(tiny_model, profile="android-arm64-lowend", quantize="float16", progress=False)


@pytest.mark.reliability(12, 15)
def test_data_that_does_not_fit_the_model_is_refused_before_work(tiny_model):
    with pytest.raises(DataError, match="expects"):
        exporter.export(tiny_model, calib=np.zeros((40, 9, 9, 1), np.float32), progress=False)
    with pytest.raises(DataError, match="3 classes"):
        exporter.export(tiny_model, quantize="float32", eval=(np.zeros((4, 8, 8, 1), np.float32), [0, 1, 2, 7]),
                        progress=False)


def test_labels_must_match_classes(tiny_model, tiny_data, tmp_path):
    (tmp_path / "labels.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match="2 names but the model has 3"):
        exporter.export(tiny_model, quantize="float32", labels=tmp_path / "labels.txt", progress=False)


def test_existing_tflite_is_measured_and_bundled_as_is(demo_bundle, demo, tmp_path):
    _, first = demo_bundle
    data = (first / "model.tflite").read_bytes()
    (tmp_path / "given.tflite").write_bytes(data)
    report = exporter.export(tmp_path / "given.tflite", eval=demo.eval, out=tmp_path / "again", progress=False)
    assert report.mode == "int8"
    assert (tmp_path / "again" / "model.tflite").read_bytes() == data
    assert report.measurements["accuracy"].value > 90
    assert [c.status for c in report.checks if c.name == "accuracy_drop"] == ["skip"]
    with pytest.raises(UsageError, match="as it is"):
        exporter.export(tmp_path / "given.tflite", quantize="float32", progress=False)


def test_export_progress_setting_is_scoped_to_the_call(tiny_model, tiny_data, monkeypatch):
    """`export(progress=False)` turns progress off for the call only, also when it raises."""
    from exporter import progress

    monkeypatch.setitem(progress._settings, "enabled", True)
    seen = []
    real_status = progress.status
    monkeypatch.setattr(progress, "status", lambda message: (seen.append(progress._settings["enabled"]),
                                                             real_status(message)))
    exporter.export(tiny_model, eval=tiny_data, quantize="float32", progress=False)
    assert seen and not any(seen), "progress was off during the export"
    assert progress._settings["enabled"] is True, "and is on again after it"
    with pytest.raises(UsageError):
        exporter.export(tiny_model, profile="android-arm64-lowend", quantize="float16", progress=False)
    assert progress._settings["enabled"] is True


def test_progress_scoped_restores_nested_settings_on_error():
    from exporter import progress

    before = dict(progress._settings)
    with pytest.raises(RuntimeError):
        with progress.scoped(enabled=not before["enabled"], debug=True):
            with progress.scoped(debug=False):
                assert progress._settings == {"enabled": not before["enabled"], "debug": False}
            assert progress._settings["debug"] is True
            raise RuntimeError("boom")
    assert progress._settings == before


def test_the_int8_calibration_error_names_the_parameters_and_only_other_modes(tiny_model, tiny_data):
    with pytest.raises(DataError) as err:
        exporter.export(tiny_model, eval=tiny_data, progress=False)
    message = str(err.value)
    assert "calib=" in message and "quantize=" in message and "--" not in message
    assert message.split("another mode")[1].count("int8") == 0 and "float32" in message
    with pytest.raises(DataError) as err:       # a profile that allows only int8 offers no other mode
        exporter.export(tiny_model, target="microcontroller", eval=tiny_data, progress=False)
    assert "another mode" not in str(err.value)
