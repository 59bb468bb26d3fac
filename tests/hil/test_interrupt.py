"""Ctrl-C or SIGTERM during a device run: the run on the device is stopped, temp files go, exit 130/143."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.timeout(120)


@pytest.mark.reliability(33, 41)
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_device_run_cut_by_a_signal_stops_the_agent_and_leaves_nothing(demo_bundle, tmp_path, sig, code):
    pid_file, tmp = tmp_path / "agent.pid", tmp_path / "tmp"
    tmp.mkdir()
    fake_python = tmp_path / "python"        # the "device" interpreter: records its pid, then hangs
    fake_python.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    fake_python.chmod(0o755)
    bundle = demo_bundle[1]
    before = sorted(p.name for p in bundle.rglob("*"))
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "hil", "run", str(bundle), "--device", "local",
                             "--python", str(fake_python), "--runs", "5"],
                            env=dict(os.environ, TMPDIR=str(tmp)), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.05)
    agent = int(pid_file.read_text())
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == code
    assert "Traceback" not in proc.stderr.read()
    assert _gone(agent, within=10), "the agent's process group was killed"      # polled: a loaded machine is slow
    assert list(tmp.iterdir()) == []          # the device's temp dir and every other temp file are gone
    assert sorted(p.name for p in bundle.rglob("*")) == before, "no run stored for a cut run"


def _gone(pid: int, within: float) -> bool:
    """True once no process `pid` exists (killed and reaped), polled for up to `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False
