"""The device agent run directly, and LocalTransport, on this machine (edgex's venv as the device)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from exporter.errors import DeviceError
from exporter.hil.result import parse_agent_output
from exporter.hil.transports.base import RunPlan, TransportOptions
from exporter.hil.transports.local import LocalTransport


def agent(bundle, *args, model="model.tflite", manifest="manifest.json", python=sys.executable):
    argv = [python, str(bundle / "agent" / "edgex_agent.py"), "--model", str(bundle / model),
            "--manifest", str(bundle / manifest), "--warmup", "2", "--runs", "10", *args]
    return subprocess.run(argv, capture_output=True, timeout=120)


def only_json_line(stdout: bytes) -> dict:
    lines = stdout.decode().splitlines()
    assert len(lines) == 1, f"stdout must be exactly one JSON line, got {stdout[:500]!r}"
    return json.loads(lines[0])


def test_agent_runs_the_demo_model(hil_bundle):
    done = agent(hil_bundle)
    assert done.returncode == 0, done.stderr.decode()[-1000:]
    only_json_line(done.stdout)
    result = parse_agent_output(done.stdout)
    assert result.ok and result.error is None
    assert result.runtime == "ai_edge_litert" and result.runtime_version
    assert result.latency_ms.p50 > 0 and result.latency_ms.runs == 10
    assert result.latency_ms.p90 >= result.latency_ms.p50
    manifest = json.loads((hil_bundle / "manifest.json").read_text())
    assert result.model_sha256 == manifest["files"]["model.tflite"]["sha256"]
    assert result.peak_rss_bytes > 10 << 20 and len(result.output_digest) == 64
    assert result.device["machine"] and result.device["hostname"] and result.device["platform"]


def test_agent_scores_the_eval_samples(hil_bundle):
    done = agent(hil_bundle, "--eval", str(hil_bundle / "agent" / "eval_samples.npz"), "--eval-samples", "150")
    result = parse_agent_output(done.stdout)
    assert done.returncode == 0 and result.ok
    assert result.eval_samples == 150 and result.accuracy >= 90


def test_flipped_byte_is_refused_before_running(hil_bundle, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(hil_bundle, bundle)
    data = bytearray((bundle / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0x01
    (bundle / "model.tflite").write_bytes(bytes(data))
    done = agent(bundle)
    assert done.returncode == 3
    answer = only_json_line(done.stdout)
    assert answer["ok"] is False and "does not match the manifest" in answer["error"]
    assert answer["model_sha256"] == hashlib.sha256(data).hexdigest()
    assert b"Traceback" not in done.stderr + done.stdout
    assert parse_agent_output(done.stdout).ok is False


@pytest.mark.reliability(24)
@pytest.mark.parametrize("kind", ["garbage", "corrupt-flatbuffer"])
def test_invalid_model_with_matching_sha(hil_bundle, tmp_path, kind):
    """Garbage, and a TFL3 file with broken offsets (which crashes tflite-runtime 2.14 when loaded)."""
    bundle = tmp_path / "b"
    shutil.copytree(hil_bundle, bundle)
    data = bytearray((bundle / "model.tflite").read_bytes())
    if kind == "garbage":
        data = bytearray(b"this is not a flatbuffer at all " * 64)
    else:
        data[8:200] = b"\xff" * 192
    (bundle / "model.tflite").write_bytes(bytes(data))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["model.tflite"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    done = agent(bundle)
    answer = only_json_line(done.stdout)
    assert done.returncode == 2, answer
    assert answer["ok"] is False and "not a valid model" in answer["error"]
    assert b"Traceback" not in done.stderr + done.stdout


def test_local_transport_end_to_end(hil_bundle):
    with LocalTransport("local", TransportOptions()) as device:
        workdir = device._dir
        raw = device.run_bundle(hil_bundle, RunPlan(warmup=2, runs=10, eval_samples=100, timeout=120))
        assert device.describe()["transport"] == "local" and device.describe()["id"]
        assert device.options.python == sys.executable
        assert sorted(p.name for p in workdir.iterdir()) == ["edgex_agent.py", "eval_samples.npz",
                                                             "manifest.json", "model.tflite"]
    result = parse_agent_output(raw)
    assert result.ok and result.accuracy >= 90 and result.eval_samples == 100
    assert result.peak_rss_bytes < 300 << 20, "the agent's own peak, not that of the (TensorFlow-laden) parent"
    assert not workdir.exists(), "close() removes the private dir"


def test_local_push_refuses_path_names(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    with LocalTransport("local", TransportOptions()) as device:
        with pytest.raises(DeviceError):
            device.push(tmp_path / "f", "../escape")


@pytest.mark.reliability(27)
def test_hung_command_is_killed_with_its_group(tmp_path):
    marker = f"{os.getpid()}{time.monotonic_ns() % 1000}"
    with LocalTransport("local", TransportOptions()) as device:
        start = time.monotonic()
        with pytest.raises(DeviceError, match=r"timed out after 1s"):
            # a shell that starts a grandchild: the whole process group must go
            device.run(["sh", "-c", f"sleep 60.{marker} & sleep 60.{marker}; wait"], timeout=1)
        assert time.monotonic() - start < 2.5
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-f", f"sleep 60.{marker}"], capture_output=True, text=True)
    assert left.stdout.strip() == "", "the timed-out processes are gone"


@pytest.mark.reliability(31)
def test_bounded_output(tmp_path):
    with LocalTransport("local", TransportOptions()) as device:
        code, out, err = device.run([sys.executable, "-c", "import sys; sys.stdout.write('x' * (8 << 20))"], 60)
    assert code == 0 and len(out) == 2 << 20
