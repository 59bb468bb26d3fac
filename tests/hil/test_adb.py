"""The adb transport against the stub adb server of tests/hil/adb_stub.py (the `adb_server` fixture
of tests/hil/devices.py), which runs pushed files and shell commands for real on this machine."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

from exporter.errors import DeviceError, UsageError
from exporter.hil.result import parse_agent_output
from exporter.hil.transports.adb import AdbTransport
from exporter.hil.transports.base import RunPlan, TransportOptions, open_transport


def _options(server, tmp_path=None, **kw):
    extra = {"adb_host": "127.0.0.1", "adb_port": server.port}
    if tmp_path is not None:
        extra["adb_tmp"] = str(tmp_path)
    return TransportOptions(connect_timeout=3, command_timeout=10, extra=extra, **kw)


def _refused(uri, options, message):
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match=message) as info:
        AdbTransport(uri, options)
    assert time.monotonic() - t0 < 5 and info.value.exit_code == 5
    return str(info.value)


# -- picking the device: never silently ------------------------------------------------------

@pytest.mark.reliability(28)
def test_no_server_is_a_device_error_not_a_spawned_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # closed again: nothing listens there
    _refused("adb://", TransportOptions(connect_timeout=1, extra={"adb_port": port}),
             f"no adb server at 127.0.0.1:{port}.*adb start-server")


@pytest.mark.reliability(28)
def test_no_device(adb_server):
    server = adb_server([])
    _refused("adb://", _options(server), "no device attached")
    assert "host:devices" in server.requests


@pytest.mark.reliability(28)
def test_several_devices_and_no_serial_lists_them(adb_server):
    server = adb_server([("R58M123ABC", "device"), ("emulator-5554", "device")])
    text = _refused("adb://", _options(server), "2 devices attached")
    assert "adb://R58M123ABC" in text and "adb://emulator-5554" in text
    assert not any(r.startswith("host:tport") for r in server.requests)   # nothing was opened


@pytest.mark.reliability(28)
@pytest.mark.parametrize("state, advice", [("unauthorized", "accept the 'Allow USB debugging"),
                                           ("offline", "adb reconnect")])
def test_unusable_state_named_with_advice(adb_server, state, advice):
    server = adb_server([("R58M123ABC", state)])
    _refused("adb://R58M123ABC", _options(server), f"R58M123ABC is {state}: .*{advice}")
    _refused("adb://", _options(server), f"R58M123ABC is {state}")


@pytest.mark.reliability(28)
def test_serial_not_listed(adb_server):
    server = adb_server([("R58M123ABC", "device"), ("emulator-5554", "offline")])
    _refused("adb://192.168.1.20:5555", _options(server),
             r"192.168.1.20:5555 is not attached; attached: R58M123ABC \(device\), emulator-5554 \(offline\)")


# -- a device: push, run, close -------------------------------------------------------------

def test_push_checks_sha256_and_close_removes_the_dir(adb_server, tmp_path):
    server = adb_server([("emulator-5554", "device")])
    src = tmp_path / "blob.bin"
    src.write_bytes(os.urandom(100_000))
    device_tmp = tmp_path / "device"
    device_tmp.mkdir()
    with AdbTransport("adb://", _options(server, device_tmp)) as t:
        assert t.serial == "emulator-5554"
        remote = t.push(src, "blob.bin")
        assert Path(remote).read_bytes() == src.read_bytes() and Path(remote).parent.name.startswith("edgex-")
        assert not Path(remote + ".part").exists()
        code, out, _ = t.run(["echo", "hi there"], 5)
        assert (code, out) == (0, b"hi there\n")
        code, _, err = t.run(["sh", "-c", "echo oops >&2; exit 3"], 5)
        assert code == 3 and err == b"oops\n"
        with pytest.raises(DeviceError, match="refusing"):
            t.push(src, "../escape")
    assert list(device_tmp.iterdir()) == []                     # close removed the dir


@pytest.mark.reliability(29)
@pytest.mark.parametrize("fault, message", [("corrupt", "arrived damaged"), ("cut", "push of blob.bin failed")])
def test_damaged_or_cut_push_leaves_nothing(adb_server, tmp_path, fault, message):
    server = adb_server([("emulator-5554", "device")])
    src = tmp_path / "blob.bin"
    src.write_bytes(os.urandom(50_000))
    device_tmp = tmp_path / "device"
    device_tmp.mkdir()
    with AdbTransport("adb://", _options(server, device_tmp)) as t:
        server.push_fault = fault
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match=message):
            t.push(src, "blob.bin")
        assert time.monotonic() - t0 < 5
        assert list(Path(t._dir).iterdir()) == []             # neither blob.bin nor blob.bin.part
    assert list(device_tmp.iterdir()) == []


@pytest.mark.reliability(27)
def test_hung_command_is_killed_at_the_deadline(adb_server, tmp_path):
    server = adb_server([("emulator-5554", "device")])
    with AdbTransport("adb://emulator-5554", _options(server, tmp_path)) as t:
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match="did not finish within 1 s; killed it"):
            t.run(["sleep", "60"], 1)
        assert time.monotonic() - t0 < 4
        pid = int((Path(t._dir) / ".pid").read_text())
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and subprocess.run(["kill", "-0", str(pid)],
                                                             capture_output=True).returncode == 0:
            time.sleep(0.05)
        assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0


def test_run_bundle_runs_the_real_agent(adb_server, tmp_path, demo_bundle):
    _, bundle = demo_bundle
    assert (bundle / "agent" / "edgex_agent.py").is_file()
    server = adb_server([("emulator-5554", "device")])
    with open_transport("adb://emulator-5554", _options(server, tmp_path, python=sys.executable)) as t:
        assert isinstance(t, AdbTransport)
        raw = t.run_bundle(bundle, RunPlan(warmup=1, runs=5, timeout=60))
        assert t.describe()["id"] == "emulator-5554"
    result = parse_agent_output(raw)
    assert result.ok and result.latency_ms.runs == 5
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert result.model_sha256 == manifest["files"]["model.tflite"]["sha256"]
    assert list(tmp_path.iterdir()) == []


def test_server_address_from_adbs_environment(adb_server, monkeypatch, tmp_path):
    server = adb_server([("emulator-5554", "device")], device_root=tmp_path)
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
    with open_transport("adb://emulator-5554", TransportOptions(connect_timeout=3)) as t:
        assert t.port == server.port and len(list(tmp_path.iterdir())) == 1   # its work dir, on the "device"
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", "adb")
    with pytest.raises(UsageError, match="ANDROID_ADB_SERVER_PORT"):
        open_transport("adb://emulator-5554", TransportOptions(connect_timeout=3))
