"""`edgex hil run/report` and `edgex profiles calibrate` on this machine as the device (local)."""
import json
import stat
import sys

import pytest

import exporter
from exporter.errors import DeviceError, IntegrityError
from exporter.hil.result import MAX_OUTPUT_BYTES, parse_agent_output
from exporter.hil.runner import hil_run, load_runs
from exporter.hil.transports.base import RunPlan, TransportOptions
from exporter.profile import load_profile
from tests.test_cli import run


@pytest.fixture(scope="module")
def rpi_bundle(demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("hil") / "rpi"
    exporter.export(demo=True, target="linux", profile="raspberry-pi-4", out=out, progress=False)
    return out


def local(python=sys.executable):
    return TransportOptions(python=python, command_timeout=120)


def test_local_run_decides_the_checks_with_measured_figures(rpi_bundle):
    result = hil_run(rpi_bundle, "local", RunPlan(runs=20, warmup=3, eval_samples=100), local())
    assert result.passed and result.complete
    checks = {c.name: c for c in result.checks}
    assert checks["latency"].source == "measured" and checks["latency"].value > 0
    assert checks["ram"].source == "measured" and checks["accuracy_drop"].source == "measured"
    assert result.result["accuracy"] > 90 and result.result["runtime"]
    assert "latency" in result.estimates and "error_pct" in result.estimates["latency"]
    assert exporter.verify(rpi_bundle)["files"] > 0, "stored runs do not break verification"
    stored = load_runs(rpi_bundle)
    assert stored and stored[-1]["status"] == "pass"


def test_cli_run_and_report(rpi_bundle):
    result = run(["hil", "run", str(rpi_bundle), "--device", "local", "--runs", "5", "--warmup", "1", "--json",
                  "--python", sys.executable])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["checks"][0]["source"] == "measured"
    report = run(["hil", "report", str(rpi_bundle)])
    assert report.exit_code == 0 and "local" in report.stdout


def test_tampered_bundle_is_refused_before_anything_runs(tmp_path, demo):
    out = tmp_path / "b"
    exporter.export(demo=True, target="linux", out=out, progress=False)
    model = out / "model.tflite"
    data = bytearray(model.read_bytes())
    data[100] ^= 1
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model.tflite"):
        hil_run(out, "local", RunPlan(runs=2), local())
    assert not (out / "hil").exists()


def shim(tmp_path, body: str):
    """A stand-in interpreter: a real process whose output the runner must judge."""
    path = tmp_path / "shim.sh"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def answer(sha, **changes):
    data = {"protocol": 1, "ok": True, "runtime": "x", "runtime_version": "1", "model_sha256": sha,
            "latency_ms": {"p50": 1.0, "p90": 1.0, "mean": 1.0, "runs": 20}}
    return json.dumps({**data, **changes})


@pytest.mark.reliability(31)
@pytest.mark.parametrize("make,message", [
    (lambda sha: "not json at all", "not JSON"),
    (lambda sha: answer(sha, protocol=7), "protocol 7"),
    (lambda sha: answer(sha, latency_ms={"p50": -5, "p90": 1, "mean": 1, "runs": 20}), "impossible value"),
    (lambda sha: answer("0" * 64), "not this bundle"),
    (lambda sha: answer(sha, ok=False, error="no runtime"), "no runtime"),
])
def test_bad_agent_answers_are_refused(rpi_bundle, tmp_path, make, message):
    sha = json.loads((rpi_bundle / "manifest.json").read_text())["files"]["model.tflite"]["sha256"]
    (tmp_path / "a.json").write_text(make(sha))
    python = shim(tmp_path, f"cat {tmp_path / 'a.json'}")
    with pytest.raises(DeviceError, match=message):
        hil_run(rpi_bundle, "local", RunPlan(runs=20), local(python), store=False)


@pytest.mark.reliability(32)
def test_a_run_cut_short_is_never_a_pass(rpi_bundle, tmp_path):
    sha = json.loads((rpi_bundle / "manifest.json").read_text())["files"]["model.tflite"]["sha256"]
    (tmp_path / "a.json").write_text(answer(sha, latency_ms={"p50": 1, "p90": 1, "mean": 1, "runs": 3}))
    result = hil_run(rpi_bundle, "local", RunPlan(runs=20), local(shim(tmp_path, f"cat {tmp_path / 'a.json'}")),
                     store=False)
    assert not result.passed and result.status == "incomplete" and "3 of 20" in result.notes[0]


@pytest.mark.reliability(31)
def test_oversized_output_is_refused():
    with pytest.raises(DeviceError, match="refusing more than"):
        parse_agent_output(b"x" * (MAX_OUTPUT_BYTES + 1))


def test_calibration_lowers_the_estimate_error(rpi_bundle, tmp_path):
    hil_run(rpi_bundle, "local", RunPlan(runs=30, warmup=5), local())
    out = tmp_path / "pi.yaml"
    result = run(["profiles", "calibrate", "raspberry-pi-4", "--from", str(rpi_bundle), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["latency_error_after_pct"] < summary["latency_error_before_pct"]
    assert summary["latency_error_after_pct"] < 50
    calibrated = load_profile(out)
    assert calibrated.cost_model.int8_gmacs != load_profile("raspberry-pi-4").cost_model.int8_gmacs
    assert "error" in out.read_text().splitlines()[1]


def test_unknown_device_scheme(rpi_bundle):
    result = run(["hil", "run", str(rpi_bundle), "--device", "bogus://x"])
    assert result.exit_code == 2 and "unknown device" in result.stderr
