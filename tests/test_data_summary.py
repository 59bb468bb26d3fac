"""Data sanity: data sets on different value ranges give a warning, and failed accuracy checks name the ranges."""
from __future__ import annotations

import json

import numpy as np
import pytest

from exporter.checks import Check
from exporter.data import Dataset
from exporter.data_summary import data_ranges, range_warning, ranges_differ, summarize, with_range_hints
from tests.test_cli import run


def dataset(low: float, high: float, origin: str = "d.npz", n: int = 50) -> Dataset:
    rng = np.random.default_rng(0)
    return Dataset(rng.uniform(low, high, (n, 8, 8, 1)).astype(np.float32), None, origin)


@pytest.mark.parametrize("a, b, differ", [
    ((0, 1), (0, 1), False),
    ((0, 1), (0.05, 0.9), False),          # a subset of the same range
    ((0, 255), (0, 1), True),              # the 77-point case: 255x the span
    ((0, 1), (-1, 1), True),               # unit vs signed: half of the combined span shared
    ((0, 1), (-2.1, 2.6), True),           # unit vs imagenet: 4.7x the span
    ((0, 1), (0.6, 1.6), True),            # shifted: they share 0.4 of 1.6
    ((0, 1), (0.3, 1.3), False),           # shifted less: they share 0.7 of 1.3
])
def test_the_range_rule(a, b, differ):
    first, second = data_ranges(dataset(*a), dataset(*b), None)
    assert ranges_differ(first, second) is differ and ranges_differ(second, first) is differ


def test_one_stray_value_does_not_make_a_range():
    clean, stray = dataset(0, 1), dataset(0, 1)
    stray.x[3, 2, 2, 0] = 255.0
    ranges = data_ranges(clean, stray, None)
    assert ranges[1].max == 255.0 and ranges[1].high < 1.0 and range_warning(ranges) is None


def test_training_data_are_compared_too():
    summary = summarize(dataset(0, 1, "calib.npz"), dataset(0, 1, "eval.npz"), dataset(0, 255, "train.npz"))
    assert [r.role for r in summary.ranges] == ["calibration", "evaluation", "training"]
    assert summary.warnings == [
        "the data live on different ranges (calibration vs training, evaluation vs training): calibration "
        "(calib.npz) 0.00019..1, mean 0.497; evaluation (eval.npz) 0.00019..1, mean 0.497; training (train.npz) "
        "0.0485..255, mean 127; preprocess every data set the same way (int8 calibrated on one range mis-scales "
        "another)"]
    assert "training (train.npz) " in summary.warnings[0] and summary.preprocessing is None


def test_failed_accuracy_checks_name_the_ranges_and_others_are_left_alone():
    failed = Check("accuracy_drop", "fail", 12.0, 1.0, "points", "measured", "host")
    checks = [failed, Check("latency", "fail", 50.0, 33.0, "ms", "estimated", "cost model"),
              Check("agreement", "pass", 99.0, 98.0, "%", "measured", "host", bound="min")]
    agreeing = with_range_hints(checks, data_ranges(dataset(0, 1, "c.npz"), dataset(0, 1, "e.npz"), None))
    assert agreeing[0].hint == ("data ranges agree (calibration (c.npz) 0.00019..1, mean 0.497 vs evaluation (e.npz) "
                                "0.00019..1, mean 0.497)")
    assert [c.hint for c in agreeing[1:]] == ["", ""]
    assert with_range_hints(checks, data_ranges(None, dataset(0, 1), None)) == checks       # one data set: no hint
    assert "hint" not in checks[1].to_dict() and agreeing[0].to_dict()["hint"] == agreeing[0].hint


def test_the_demo_data_agree(demo_bundle):
    report, out = demo_bundle
    assert report.warnings == [] and [d["role"] for d in report.data] == ["calibration", "evaluation", "training"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["preprocessing"] is None and manifest["warnings"] == [] and len(manifest["data"]) == 3


def test_calibration_0_to_255_against_evaluation_0_to_1_warns_and_the_failed_check_names_both(demo, tmp_path):
    np.savez(tmp_path / "calib.npz", x=demo.calib.x * 255)
    np.savez(tmp_path / "eval.npz", x=demo.eval.x, y=demo.eval.y)
    out = tmp_path / "bundle"
    result = run(["export", str(demo.model_path), "--calib", str(tmp_path / "calib.npz"),
                  "--eval", str(tmp_path / "eval.npz"), "--out", str(out)])
    assert result.exit_code == 1, result.stderr
    calib, eval_ = f"calibration ({tmp_path}/calib.npz) 0..255", f"evaluation ({tmp_path}/eval.npz) 0..1"
    stdout = " ".join(result.stdout.split())                  # rich wraps long lines
    assert "warning: the data live on different ranges (calibration vs evaluation)" in stdout
    assert calib in stdout and eval_ in stdout
    broken = next(line for line in result.stderr.splitlines() if line.startswith("edgex: limit broken"))
    drop = broken.split("; agreement:")[0]
    assert drop.startswith("edgex: limit broken: accuracy_drop: ") and "OVER limit 1.00 pt" in drop
    assert "likely cause: the data live on different ranges" in drop and calib in drop and eval_ in drop
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["measurements"]["accuracy_drop"]["value"] > 50           # 76 points on this machine
    assert manifest["warnings"] == [w for w in manifest["warnings"] if calib in w and eval_ in w] != []
    hinted = {c["name"]: c.get("hint", "") for c in manifest["checks"]}
    assert calib in hinted["accuracy_drop"] and calib in hinted["agreement"] and hinted["model_size"] == ""
    markdown = (out / "report.md").read_text()
    assert "**Warning:** the data live on different ranges (calibration vs evaluation)" in markdown
    assert f"- accuracy_drop failed: likely cause: the data live on different ranges ({calib}" in markdown
    assert "| calibration |" in markdown and "| evaluation |" in markdown
    assert "<b>Warning:</b> the data live on different ranges" in (out / "report.html").read_text()
