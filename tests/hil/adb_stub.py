"""A stub adb server speaking the adb host protocol on 127.0.0.1, standing in for adb and a phone.

The stub answers what adbutils 2.12 sends: `host:version`, `host:devices`, `host:devices-l`,
`host:tport:serial:S` (then `shell:CMD` or `sync:` with STAT/SEND), each request a 4-hex-digit
length and the text; replies `OKAY` [+ 4-hex length + data] or `FAIL` + length + message. For
the one device in state `device` it behaves as adbd: `shell:` runs the command with /bin/sh on
this machine and `sync:` writes files here, so push (sha256 check, rename), run (deadline,
kill by pid) and close (cleanup) run for real. The device's /data/local/tmp is `device_root` on
this machine when given (a run through the CLI), else paths are taken as they are (tests pass
`adb_tmp`).

Like a stock phone's shell, the stub's shell has no Python: its PATH is one folder (the phone's
/system/bin) holding links to this machine's copies of the toybox commands edgex and the tests use,
and a `getprop` stand-in (a sh script) answering from `props` (default: an arm64 Android 14 phone).
`extra_tools` adds links to it (a test giving the "phone" a Python adds `python3`).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
from pathlib import Path


DEVICE_TMP = "/data/local/tmp"
TOOLBOX = ("sh", "cat", "chmod", "cut", "dirname", "echo", "grep", "head", "kill", "ls", "mkdir", "mv", "pkill",
           "printf", "rm", "sed", "sha256sum", "sleep", "tail", "test", "tr", "true", "false", "wc")
PHONE_PROPS = {"ro.product.model": "Stub", "ro.product.manufacturer": "edgex tests", "ro.product.cpu.abi": "arm64-v8a",
               "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi", "ro.build.version.release": "14",
               "ro.build.version.sdk": "34"}
_GETPROP = """#!/bin/sh
# getprop stand-in: `getprop NAME` prints the property (an empty line when unset); `getprop` prints all.
props="$(dirname "$0")/build.prop"
if [ $# -eq 0 ]; then sed 's/^\\([^=]*\\)=\\(.*\\)$/[\\1]: [\\2]/' "$props"; exit 0; fi
echo "$(grep "^$1=" "$props" | head -n 1 | cut -d= -f2-)"
"""


class StubAdbServer:
    """An adb server (and adbd) stand-in: `devices` is [(serial, state)]."""

    def __init__(self, devices: list[tuple[str, str]], device_root: Path | None = None, props: dict | None = None,
                 extra_tools: dict[str, str] | None = None):
        self.devices = devices
        self.device_root = device_root           # where the device's /data/local/tmp lives here
        self.system_bin = Path(tempfile.mkdtemp(prefix="stub-system-bin-"))
        self._phone(PHONE_PROPS if props is None else props, extra_tools or {})
        self.push_fault: str | None = None       # "corrupt": flip a byte; "cut": hang up mid-file
        self.requests: list[str] = []
        self.pushed: list[tuple[str, str]] = []     # (path here, sha256) of every file pushed
        self.procs: list[subprocess.Popen] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _phone(self, props: dict, extra_tools: dict[str, str]) -> None:
        """The phone's /system/bin: toybox commands, getprop and its build.prop, and `extra_tools` (name: path)."""
        for name in TOOLBOX:
            found = shutil.which(name)
            if found:
                os.symlink(found, self.system_bin / name)
        for name, target in extra_tools.items():
            os.symlink(target, self.system_bin / name)
        (self.system_bin / "build.prop").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.system_bin / "getprop").write_text(_GETPROP)
        os.chmod(self.system_bin / "getprop", 0o755)

    def shell_commands(self) -> list[str]:
        """The shell lines the device was asked to run, in order."""
        return [r[len("shell:"):] for r in self.requests if r.startswith("shell:")]

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
        shutil.rmtree(self.system_bin, ignore_errors=True)

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

    def _local(self, text: str) -> str:
        """A device path or shell line with /data/local/tmp moved to `device_root`."""
        return text.replace(DEVICE_TMP, str(self.device_root)) if self.device_root else text

    def _shell(self, conn, cmd: str) -> None:
        proc = subprocess.Popen(["/bin/sh", "-c", self._local(cmd)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "PATH": str(self.system_bin)})
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
            path = self._local(self._exact(conn, length).decode())
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
                self.pushed.append((dst, hashlib.sha256(Path(dst).read_bytes()).hexdigest()))
                conn.sendall(b"OKAY" + struct.pack("<I", 0))
            else:
                return self._fail(conn, f"unknown sync command {cmd!r}")
