"""Stand-in devices for the tests (a pytest plugin, loaded by the root conftest.py for every test).

- `device_venv`, `sshd`: a real OpenSSH server on 127.0.0.1 and a "Raspberry Pi" venv behind it.
- `serial_board`: a TFLM "board" (tests/hil/firmware_sim.py) on a real pty.
- `adb_server`: the stub adb server and "phone" of tests/hil/adb_stub.py.
- `hil_bundle`: a demo bundle with the agent.

- `device_venv`: a separate virtualenv holding only tflite-runtime 2.14.0 and numpy<2 (no
  TensorFlow), like a Raspberry Pi. Cached under the caller's $EDGEX_CACHE_DIR (keyed on the
  Python and package versions) when that is set, else built in a temp dir (~10 s).
- `sshd`: Debian's /usr/sbin/sshd (package openssh-server) in the foreground with its own host
  key, config and authorized client key, on a free loopback port; stopped at the end.
- `hil_bundle`: a demo bundle with `agent/edgex_agent.py` and `agent/eval_samples.npz`.
"""
from __future__ import annotations

import getpass
import os
import pty
import secrets
import select
import shutil
import socket
import subprocess
import sys
import time
import tty
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from exporter.hil.agent_files import AGENT_NAME, AGENT_SOURCE, EVAL_NAME
from tests.hil.adb_stub import StubAdbServer

DEVICE_PACKAGES = ("tflite-runtime==2.14.0", "numpy==1.26.4")   # numpy<2: tflite-runtime 2.14 needs it
SSHD = "/usr/sbin/sshd"
ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_SIM = Path(__file__).resolve().with_name("firmware_sim.py")
_USER_CACHE = os.environ.get("EDGEX_CACHE_DIR")   # read before tests/conftest.py points it at a temp dir


def _run(argv, timeout=300, **kw):
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def _build_venv(path: Path) -> None:
    _run([sys.executable, "-m", "venv", str(path)], timeout=120)
    _run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          *DEVICE_PACKAGES], timeout=600)


@pytest.fixture(scope="session")
def device_venv(tmp_path_factory) -> Path:
    """The Python of a venv with only tflite-runtime 2.14.0 and numpy<2: the "Raspberry Pi"."""
    key = f"device-venv-py{sys.version_info[0]}{sys.version_info[1]}-" + "-".join(
        p.replace("==", "").replace("<", "lt") for p in DEVICE_PACKAGES)
    if _USER_CACHE:
        venv = Path(_USER_CACHE) / key
        if not (venv / ".complete").is_file():
            building = venv.with_name(f"{key}.tmp-{secrets.token_hex(4)}")
            _build_venv(building)      # bin/python works after a rename; only pip's script shebangs do not
            (building / ".complete").touch()
            try:
                os.rename(building, venv)
            except OSError:            # another session finished first
                shutil.rmtree(building, ignore_errors=True)
    else:
        venv = tmp_path_factory.mktemp("device-venv") / "venv"
        _build_venv(venv)
    python = venv / "bin" / "python"
    check = ("import importlib.util, sys, numpy, tflite_runtime; "
             "assert importlib.util.find_spec('tensorflow') is None, 'tensorflow is importable'; "
             "assert importlib.util.find_spec('ai_edge_litert') is None, 'ai_edge_litert is importable'; "
             "assert numpy.__version__.startswith('1.'), numpy.__version__; "
             "print(tflite_runtime.__version__)")
    assert _run([str(python), "-c", check], timeout=60).strip() == "2.14.0"
    return python


@dataclass(frozen=True)
class Sshd:
    host: str
    port: int
    user: str
    client_key: Path
    known_hosts: Path
    fingerprint: str       # "SHA256:..." of the server's host key
    home: Path             # a directory for remote temp dirs
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_banner(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.settimeout(2)
                if s.recv(64).startswith(b"SSH-2.0"):
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real OpenSSH server on 127.0.0.1 that accepts a client key made here (yields Sshd)."""
    if not os.access(SSHD, os.X_OK):
        pytest.fail(f"{SSHD} is missing: install Debian's openssh-server (make sysdeps)")
    tmp = tmp_path_factory.mktemp("sshd")
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "host_key")], timeout=30)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "client_key")], timeout=30)
    shutil.copy(tmp / "client_key.pub", tmp / "authorized_keys")
    fingerprint = _run(["ssh-keygen", "-lf", str(tmp / "host_key.pub")], timeout=30).split()[1]
    host_key_line = " ".join((tmp / "host_key.pub").read_text().split()[:2])
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)   # sshd's privilege separation dir
    (tmp / "remote").mkdir()
    proc = None
    for _ in range(3):   # a free port can be taken between the check and sshd's bind
        port = _free_port()
        config = tmp / "sshd_config"
        config.write_text("\n".join([
            "ListenAddress 127.0.0.1", f"Port {port}", f"HostKey {tmp / 'host_key'}",
            f"AuthorizedKeysFile {tmp / 'authorized_keys'}", f"PidFile {tmp / 'sshd.pid'}",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password", "MaxStartups 50",
            "Subsystem sftp internal-sftp", "LogLevel VERBOSE", ""]))
        log = open(tmp / "sshd.log", "ab")
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        if _wait_banner(port, proc):
            break
        _stop(proc)
        proc = None
    if proc is None:
        pytest.fail(f"sshd did not start: {(tmp / 'sshd.log').read_text()[-2000:]}")
    known_hosts = tmp / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key_line}\n")
    try:
        yield Sshd(host="127.0.0.1", port=port, user=getpass.getuser(), client_key=tmp / "client_key",
                   known_hosts=known_hosts, fingerprint=fingerprint, home=tmp / "remote", log=tmp / "sshd.log")
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def hil_bundle(demo, demo_bundle, tmp_path_factory) -> Path:
    """A copy of the demo bundle that surely has the agent and eval samples (read-only for tests)."""
    out = tmp_path_factory.mktemp("hil-bundle") / "bundle"
    shutil.copytree(demo_bundle[1], out)
    (out / "agent").mkdir(exist_ok=True)
    if not (out / "agent" / AGENT_NAME).is_file():
        shutil.copy(AGENT_SOURCE, out / "agent" / AGENT_NAME)
    if not (out / "agent" / EVAL_NAME).is_file():
        np.savez(out / "agent" / EVAL_NAME, x=demo.eval.x[:200], y=demo.eval.y[:200])
    return out


@pytest.fixture
def serial_board():
    """Start simulated boards: `serial_board(model, fault=None, clock_hz=...)` -> (port path, process)."""
    started: list[tuple[subprocess.Popen, int]] = []

    def start(model: Path, fault: str | None = None, clock_hz: int = 64_000_000):
        master, slave = pty.openpty()
        tty.setraw(slave)
        cmd = [sys.executable, str(FIRMWARE_SIM), "--fd", str(master), "--model", str(model),
               "--clock-hz", str(clock_hz)]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen(cmd + (["--fault", fault] if fault else []), pass_fds=[master], cwd=ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(master)                      # the simulator holds the only master: its death closes the line
        started.append((proc, slave))
        ready, _, _ = select.select([proc.stderr], [], [], 60)
        line = proc.stderr.readline().decode() if ready else ""
        assert line.startswith("firmware_sim ready"), f"simulator did not start: {line}{proc.stderr.read1(4000)}"
        return os.ttyname(slave), proc

    yield start
    for proc, slave in started:
        proc.kill()
        proc.wait(timeout=10)
        proc.stderr.close()
        os.close(slave)
        assert proc.poll() is not None


@pytest.fixture
def adb_server():
    """Start stub servers: `adb_server([(serial, state), ...], device_root=None, props=None, extra_tools=None)`."""
    servers = []

    def start(devices, device_root=None, **phone):
        servers.append(StubAdbServer(devices, device_root, **phone))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
