"""The adb transport against a stub adb server speaking the adb host protocol on 127.0.0.1.

The stub answers what adbutils 2.12 sends: `host:version`, `host:devices`, `host:devices-l`,
`host:tport:serial:S` (then `shell:CMD` or `sync:` with STAT/SEND), each request a 4-hex-digit
length and the text; replies `OKAY` [+ 4-hex length + data] or `FAIL` + length + message. For
the one device in state `device` it behaves as adbd: `shell:` runs the command with /bin/sh on
this machine and `sync:` writes files here, so push (sha256 check, rename), run (deadline,
kill by pid) and close (cleanup) run for real; the dir is `options.extra["adb_tmp"]`.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

from exporter.errors import DeviceError
from exporter.hil.result import parse_agent_output
from exporter.hil.transports.adb import AdbTransport
from exporter.hil.transports.base import RunPlan, TransportOptions, open_transport


class StubAdbServer:
    """An adb server (and adbd) stand-in: `devices` is [(serial, state)]."""

    def __init__(self, devices: list[tuple[str, str]]):
        self.devices = devices
        self.push_fault: str | None = None       # "corrupt": flip a byte; "cut": hang up mid-file
        self.requests: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    # -- wire helpers --
    @staticmethod
    def _exact(conn, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    @staticmethod
    def _block(text: str | bytes) -> bytes:
        data = text.encode() if isinstance(text, str) else text
        return f"{len(data):04x}".encode() + data

    def _fail(self, conn, message: str) -> None:
        conn.sendall(b"FAIL" + self._block(message))

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        serial = None
        try:
            with conn:
                while True:
                    request = self._exact(conn, int(self._exact(conn, 4), 16)).decode()
                    self.requests.append(request)
                    states = dict(self.devices)
                    if request == "host:version":
                        conn.sendall(b"OKAY" + self._block("0029"))
                    elif request in ("host:devices", "host:devices-l"):
                        extra = " product:stub model:Stub device:stub transport_id:1" if request.endswith("-l") else ""
                        listing = "".join(f"{s}\t{st}{extra}\n" for s, st in self.devices)
                        conn.sendall(b"OKAY" + self._block(listing))
                    elif request.startswith("host:tport:serial:"):
                        serial = request.split(":", 3)[3]
                        if states.get(serial) != "device":
                            return self._fail(conn, f"device '{serial}' not found" if serial not in states
                                              else f"device {states[serial]}")
                        conn.sendall(b"OKAY" + struct.pack("<Q", 1))
                    elif serial and request.startswith("shell:"):
                        conn.sendall(b"OKAY")
                        return self._shell(conn, request[len("shell:"):])
                    elif serial and request == "sync:":
                        conn.sendall(b"OKAY")
                        return self._sync(conn)
                    else:
                        return self._fail(conn, f"unknown host service '{request}'")
        except (EOFError, OSError):
            pass

    def _shell(self, conn, cmd: str) -> None:
        proc = subprocess.Popen(["/bin/sh", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        for chunk in iter(lambda: proc.stdout.read1(65536), b""):
            try:
                conn.sendall(chunk)
            except OSError:
                break
        proc.stdout.close()
        proc.wait()

    def _sync(self, conn) -> None:
        while True:
            cmd, length = struct.unpack("<4sI", self._exact(conn, 8))
            if cmd == b"QUIT":
                return
            path = self._exact(conn, length).decode()
            if cmd == b"STAT":
                st = os.stat(path) if os.path.exists(path) else None
                conn.sendall(b"STAT" + struct.pack("<III", st.st_mode if st else 0, st.st_size if st else 0,
                                                   int(st.st_mtime) if st else 0))
            elif cmd == b"SEND":
                dst, mode = path.rsplit(",", 1)
                with open(dst, "wb") as f:
                    while True:
                        kind, n = struct.unpack("<4sI", self._exact(conn, 8))
                        if kind == b"DONE":
                            break
                        data = self._exact(conn, n)
                        if self.push_fault == "cut":
                            return
                        if self.push_fault == "corrupt":
                            data = bytes([data[0] ^ 1]) + data[1:]
                        f.write(data)
                os.chmod(dst, int(mode) & 0o777)
                conn.sendall(b"OKAY" + struct.pack("<I", 0))
            else:
                return self._fail(conn, f"unknown sync command {cmd!r}")


@pytest.fixture
def adb_server():
    """Start stub servers: `adb_server([(serial, state), ...])` -> the server."""
    servers = []

    def start(devices):
        servers.append(StubAdbServer(devices))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


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
