"""The named steps of an export (exporter/steps.py, exporter/inputs.py), one at a time."""
import json

import pytest

from exporter import steps
from exporter.errors import DataError, UsageError


def test_each_step_hands_the_next_one_its_dataclass(tiny_model, tiny_data, tmp_path):
    args = steps.ExportArgs(sources=steps.Sources(model=tiny_model, calib=tiny_data[0], eval=tiny_data,
                                                  labels=["a", "b", "c"]),
                            output=steps.Output(out=tmp_path / "b"), quantize="int8")
    request = steps.resolve(args)
    assert request.profile.name == "android-arm64-midrange" and request.stages == []
    inputs = steps.load(request)
    assert inputs.mode == "int8" and inputs.classes == 3 and inputs.calib is None, "no data before check_data"
    inputs = steps.check_data(request, inputs)
    assert len(inputs.calib) == 64 and inputs.eval.y is not None and inputs.labels == ["a", "b", "c"]
    built = steps.build(request, inputs)
    assert built.mode == "int8" and built.tflite[4:8] == b"TFL3" and built.records == []
    assessment = steps.assess(request, inputs, built)
    assert {c.name for c in assessment.checks} >= {"model_size", "accuracy_drop"}
    report = steps.make_report(request, inputs, built, assessment)
    assert report.bundle is None and report.mode == "int8"
    path = steps.package(request, inputs, built, assessment, report)
    assert report.bundle == str(tmp_path / "b") and path == tmp_path / "b"
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "edgex-bundle" and manifest["status"] == report.status
    assert manifest["recipe"]["convert"] == {"mode": "int8", "io_dtype": "int8"}
    assert (path / "labels.txt").read_text() == "a\nb\nc\n"


def test_resolve_checks_arguments_before_loading_anything(tmp_path):
    with pytest.raises(UsageError, match="no model given"):
        steps.resolve(steps.ExportArgs())
    with pytest.raises(UsageError, match="either a model or demo=True"):
        steps.resolve(steps.ExportArgs(sources=steps.Sources(model="m.keras", demo=True)))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError):
        steps.resolve(steps.ExportArgs(sources=steps.Sources(model="m.keras"),
                                       output=steps.Output(out=tmp_path / "file" / "b")))


def test_check_data_refuses_int8_without_enough_calibration(tiny_model, tiny_data):
    request = steps.resolve(steps.ExportArgs(sources=steps.Sources(model=tiny_model, calib=tiny_data[0][:5])))
    inputs = steps.load(request)
    with pytest.raises(DataError, match="at least 32"):
        steps.check_data(request, inputs)


def test_manifest_for_records_the_report_and_the_whole_profile(demo_bundle):
    from exporter.manifest import manifest_for
    from exporter.profile import load_profile

    report, out = demo_bundle
    profile = load_profile(report.profile)
    body = manifest_for(report, profile)
    written = json.loads((out / "manifest.json").read_text())
    assert body["profile"] == profile.model_dump(mode="json") == written["profile"]
    assert {k: written[k] for k in body} == json.loads(json.dumps(body))
