"""SshTransport against a real OpenSSH server on 127.0.0.1 and a tflite-runtime-only venv as the device."""
from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from exporter.errors import DeviceError
from exporter.hil.result import parse_agent_output
from exporter.hil.transports.base import RunPlan, TransportOptions
from exporter.hil.transports.ssh import SshTransport


def uri(sshd, port=None) -> str:
    return f"ssh://{sshd.user}@{sshd.host}:{port or sshd.port}{sshd.home}"


def options(sshd, **kw) -> TransportOptions:
    base = TransportOptions(connect_timeout=5, retries=1, identity_file=sshd.client_key, known_hosts=sshd.known_hosts)
    return replace(base, **kw)


def temp_dirs(sshd) -> list[Path]:
    return sorted(sshd.home.glob(".edgex-*"))


def other_host_key(tmp_path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True,
                   timeout=30)
    return " ".join((tmp_path / "other.pub").read_text().split()[:2])


def test_run_bundle_on_the_device_venv(sshd, device_venv, hil_bundle):
    with SshTransport(uri(sshd), options(sshd, python=str(device_venv))) as device:
        raw = device.run_bundle(hil_bundle, RunPlan(warmup=2, runs=10, eval_samples=100, timeout=120))
        who = device.describe()
        assert len(temp_dirs(sshd)) == 1
    result = parse_agent_output(raw)
    assert result.ok, result.error
    assert (result.runtime, result.runtime_version) == ("tflite_runtime", "2.14.0")
    assert result.latency_ms.p50 > 0 and result.accuracy >= 90 and result.eval_samples == 100
    assert result.device["numpy"].startswith("1.")
    assert who == {"transport": "ssh", "id": f"{sshd.user}@127.0.0.1:{sshd.port}",
                   "host_key_sha256": sshd.fingerprint, "host_key_type": "ssh-ed25519"}
    assert temp_dirs(sshd) == [], "close() removes the remote temp dir"


def test_missing_python_on_the_device(sshd, hil_bundle):
    with SshTransport(uri(sshd), options(sshd, python="/nonexistent/python3")) as device:
        with pytest.raises(DeviceError, match=r"exited 127"):
            device.run_bundle(hil_bundle, RunPlan(warmup=1, runs=1, timeout=30))


@pytest.mark.reliability(26)
def test_unknown_host_key_is_refused_then_accepted_on_request(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    with pytest.raises(DeviceError) as refused:
        SshTransport(uri(sshd), options(sshd, known_hosts=known))
    message = str(refused.value)
    assert "127.0.0.1" in message and sshd.fingerprint in message and "--accept-unknown-host" in message
    assert temp_dirs(sshd) == [], "nothing pushed"
    assert known.read_text() == ""
    with SshTransport(uri(sshd), options(sshd, known_hosts=known, accept_unknown_host=True)) as device:
        assert device.run(["echo", "hello"], timeout=10) == (0, b"hello\n", b"")
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519 " in known.read_text(), "saved to the known_hosts the user named"
    with SshTransport(uri(sshd), options(sshd, known_hosts=known)) as device:   # now known: no flag needed
        assert device.run(["true"], timeout=10)[0] == 0


def test_accepting_does_not_write_the_default_known_hosts(sshd, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))     # ~/.ssh/known_hosts of a user who has none
    with pytest.raises(DeviceError, match="unknown"):
        SshTransport(uri(sshd), options(sshd, known_hosts=None))
    with SshTransport(uri(sshd), options(sshd, known_hosts=None, accept_unknown_host=True)) as device:
        assert device.run(["true"], timeout=10)[0] == 0
    assert not (tmp_path / ".ssh" / "known_hosts").exists()


@pytest.mark.reliability(26)
def test_changed_host_key_is_always_refused(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {other_host_key(tmp_path)}\n")
    for accept in (False, True):
        with pytest.raises(DeviceError, match="CHANGED") as refused:
            SshTransport(uri(sshd), options(sshd, known_hosts=known, accept_unknown_host=accept))
        assert sshd.fingerprint in str(refused.value) and "ssh-keygen -R" in str(refused.value)
    assert temp_dirs(sshd) == []


def test_wrong_client_key_fails_authentication(sshd, tmp_path):
    other_host_key(tmp_path)
    with pytest.raises(DeviceError, match="authentication .* failed"):
        SshTransport(uri(sshd), options(sshd, identity_file=tmp_path / "other"))


@pytest.mark.reliability(27)
def test_unreachable_host_is_bounded(sshd):
    with socket.socket() as s:     # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = options(sshd, connect_timeout=2, retries=2)
    start = time.monotonic()
    with pytest.raises(DeviceError, match=r"after 3 attempt\(s\): connection refused"):
        SshTransport(uri(sshd, port), opts)
    assert time.monotonic() - start < opts.connect_timeout * (opts.retries + 1) + 3


@pytest.mark.reliability(27)
def test_server_that_never_speaks_is_bounded(sshd):
    from tests.hil.test_ssh_inputs import silent_server

    opts = options(sshd, connect_timeout=1, retries=1)
    with silent_server() as (port, held):
        start = time.monotonic()
        with pytest.raises(DeviceError, match="no SSH banner"):
            SshTransport(uri(sshd, port), opts)
        assert time.monotonic() - start < opts.connect_timeout * (opts.retries + 1) + 3
        for _ in range(20):   # the accepting thread polls every 0.2 s
            if len(held) >= 2:
                break
            time.sleep(0.1)
        assert len(held) == 2, "one connection per attempt"


@pytest.mark.reliability(27)
def test_hung_remote_command_is_killed(sshd):
    sleeper = f"sleep 60.{int(time.time() * 1000) % 100000}"
    with SshTransport(uri(sshd), options(sshd)) as device:
        start = time.monotonic()
        with pytest.raises(DeviceError, match="timed out after 2s"):
            device.run(sleeper.split(), timeout=2)
        assert time.monotonic() - start < 6
        assert device.run(["true"], timeout=10)[0] == 0, "the connection still works"
    time.sleep(0.3)
    left = subprocess.run(["pgrep", "-af", sleeper], capture_output=True, text=True, timeout=10)
    assert left.stdout.strip() == "", f"remote sleep still running: {left.stdout}"


@pytest.mark.reliability(29)
def test_corrupted_upload_is_refused_and_removed(sshd, tmp_path, monkeypatch):
    """The file is changed on the device between upload and verification: never renamed, .part removed."""
    payload = tmp_path / "model.tflite"
    payload.write_bytes(b"model bytes " * 1000)
    original = SshTransport._remote_sha256

    def corrupt_then_hash(self, path):
        local_view = Path(path)         # the "device" is this machine: flip a byte of the uploaded .part
        data = bytearray(local_view.read_bytes())
        data[100] ^= 0xFF
        local_view.write_bytes(bytes(data))
        return original(self, path)

    monkeypatch.setattr(SshTransport, "_remote_sha256", corrupt_then_hash)
    with SshTransport(uri(sshd), options(sshd)) as device:
        with pytest.raises(DeviceError, match="model.tflite .*corrupt"):
            device.push(payload, "model.tflite")
        [tmp] = temp_dirs(sshd)
        assert list(tmp.iterdir()) == [], "neither the .part nor the final file is left"
        monkeypatch.setattr(SshTransport, "_remote_sha256", original)
        remote = device.push(payload, "model.tflite")
        assert Path(remote).read_bytes() == payload.read_bytes()
    assert temp_dirs(sshd) == []
