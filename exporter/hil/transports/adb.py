"""The `adb` device: an Android phone or board reached through an adb server (adbutils).

The device is picked from the adb server's list, never guessed: no device, several devices
and no serial, or a device that is `unauthorized`, `offline` or lacks permissions is a
DeviceError naming the devices and what to do. Files go to a private dir
`/data/local/tmp/edgex-<random>/`, each as `<name>.part`, checked with `sha256sum` on the device
and only then renamed. The agent runs through `adb shell` with a deadline; on timeout (or
Ctrl-C) its process is killed by pid. `close()` removes the dir.

A stock phone has no Python: `run_bundle` (exporter/hil/phone_run.py) reads `getprop` and runs
LiteRT's `benchmark_model` for the phone's ABI (`options.benchmark_binary`, or the edgex config),
and the Python agent only where it is needed and present. The agent needs a Python with numpy and
a TFLite runtime that the adb shell user (uid `shell`) may run: `options.python` (`--python`) is
that command, split like a shell line. Termux's Python lives in an app-private dir the shell user
cannot read: unpack a Python under /data/local/tmp, or on a rooted device use e.g.
`--python "su 0 /data/data/com.termux/files/usr/bin/python"`.

URIs: `adb://SERIAL` (as `adb devices` lists it, e.g. `adb://R58M123ABC`,
`adb://192.168.1.20:5555`), or `adb://` when exactly one device is attached.
`options.extra`: `adb_host`, `adb_port` (default: adb's own `ANDROID_ADB_SERVER_HOST` and
`ANDROID_ADB_SERVER_PORT`, else 127.0.0.1:5037), `adb_tmp` (default /data/local/tmp).

Example:
    >>> from exporter.hil.transports.base import RunPlan
    >>> options = TransportOptions(python="/data/local/tmp/py/bin/python3", extra={"adb_port": 5037})
    >>> with AdbTransport("adb://emulator-5554", options) as t:          # doctest: +SKIP
    ...     raw = t.run_bundle(Path("build/android"), RunPlan(runs=50))
    ...     t.describe()["id"]
    'emulator-5554'
"""
from __future__ import annotations

import os
import posixpath
import secrets
import shlex
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from exporter.errors import DeviceError, UsageError
from exporter.hil.transports.base import HostTransport, TransportOptions, register
from exporter.hil.transports.local import MAX_STREAM_BYTES, sha256_file

STATE_ADVICE = {
    "unauthorized": "unlock the device and accept the 'Allow USB debugging?' prompt, then retry",
    "offline": "reconnect the cable (or run `adb reconnect`); restart the adb server if it stays offline",
    "no": "no permissions to use it over USB: add a udev rule for the device (plugdev group)",
    "authorizing": "wait for the authorization to finish, then retry",
    "connecting": "wait for the connection to finish, then retry",
}
_MARK = b"EDGEX-EXIT:"


def _kill_command(workdir: str) -> str:
    """Shell line killing the agent started in `workdir` (its pid is in .pid) and its children."""
    pidfile = shlex.quote(posixpath.join(workdir, ".pid"))
    return f'p=$(cat {pidfile} 2>/dev/null) && {{ pkill -9 -P "$p"; kill -9 "$p"; }} 2>/dev/null; true'


def _port(value) -> int:
    """The adb server port from `adb_port` or ANDROID_ADB_SERVER_PORT; a bad one is a UsageError."""
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise UsageError(f"adb server port {value!r} (adb_port or ANDROID_ADB_SERVER_PORT) is not a port number")
    return port


def _adb_errors():
    from adbutils import AdbError

    return (AdbError, OSError, EOFError, ValueError)


@register
class AdbTransport(HostTransport):
    """Runs the agent on an Android device through an adb server.

    Args:
        uri: `adb://SERIAL` or `adb://`.
        options: `connect_timeout` bounds each exchange with the server, `python` is the command
            that runs the agent on the device, `extra` may set `adb_host`, `adb_port`, `adb_tmp`.

    Raises:
        DeviceError: no adb server, no device, several and no serial, the serial not listed,
            or the device not in state `device`.
    """

    scheme = "adb"
    takes_benchmark_binary = True

    def __init__(self, uri: str, options: TransportOptions):
        super().__init__(uri, options)
        self.phone: dict | None = None       # getprop facts (exporter/hil/phone_run.py)
        self.tool: str | None = None         # the benchmark_model that ran, for the run record
        parts = urlsplit(uri)
        self.serial = (parts.netloc + parts.path.rstrip("/")) or None
        self.host = str(options.extra.get("adb_host", os.environ.get("ANDROID_ADB_SERVER_HOST", "127.0.0.1")))
        self.port = _port(options.extra.get("adb_port", os.environ.get("ANDROID_ADB_SERVER_PORT", "5037")))
        self._dir: str | None = None
        self._check_server()
        from adbutils import AdbClient

        self.client = AdbClient(self.host, self.port, socket_timeout=options.connect_timeout)
        self.serial = self._pick_device()
        self.device = self.client.device(self.serial)
        base = str(options.extra.get("adb_tmp", "/data/local/tmp"))
        workdir = posixpath.join(base, f"edgex-{secrets.token_hex(6)}")
        code, _, err = self._shell(f"mkdir -m 700 {shlex.quote(workdir)}", options.connect_timeout)
        if code != 0:
            raise DeviceError(f"adb device {self.serial}: cannot create {workdir}: {err.decode(errors='replace')}")
        self._dir = workdir

    def _check_server(self) -> None:
        """Fail fast when no adb server listens (adbutils would try to start one)."""
        try:
            socket.create_connection((self.host, self.port), timeout=self.options.connect_timeout).close()
        except OSError as exc:
            raise DeviceError(f"no adb server at {self.host}:{self.port} ({exc.strerror or exc}): start it with "
                              "`adb start-server` (Debian/Ubuntu: apt-get install adb)") from None

    def _pick_device(self) -> str:
        try:
            devices = [(d.serial, d.state) for d in self.client.list()]
        except _adb_errors() as exc:
            raise DeviceError(f"adb server at {self.host}:{self.port} did not list its devices: {exc}") from None
        listing = ", ".join(f"{s} ({st})" for s, st in devices)
        if self.serial is None:
            if not devices:
                raise DeviceError("adb: no device attached (`adb devices` lists none): plug one in with USB "
                                  "debugging on, or `adb connect HOST:PORT`")
            if len(devices) > 1:
                raise DeviceError(f"adb: {len(devices)} devices attached ({listing}); name one: "
                                  + " or ".join(f"adb://{s}" for s, _ in devices))
            chosen = devices[0]
        else:
            found = [d for d in devices if d[0] == self.serial]
            if not found:
                raise DeviceError(f"adb device {self.serial} is not attached; attached: {listing or 'none'}")
            chosen = found[0]
        serial, state = chosen
        if state != "device":
            name = "no permissions" if state == "no" else state
            advice = STATE_ADVICE.get(state, "it must be in state 'device' (booted, USB debugging on)")
            raise DeviceError(f"adb device {serial} is {name}: {advice}")
        return serial

    # -- shell ----------------------------------------------------------------------------

    def _shell(self, cmd: str, timeout: float, on_timeout: str | None = None) -> tuple[int, bytes, bytes]:
        """Run `cmd` with `sh -c` semantics on the device; the whole exchange bounded by `timeout`.

        Output is read with a deadline (not per read); its last MAX_STREAM_BYTES are kept.
        The exit code comes from a marker line (shell protocol v1, which every adbd speaks).
        """
        deadline = time.monotonic() + timeout
        out = bytearray()
        conn = None
        try:
            conn = self.device.open_shell(f"( {cmd} ); s=$?; echo; echo {_MARK.decode()}$s")
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise socket.timeout
                conn.conn.settimeout(remaining)
                chunk = conn.conn.recv(65536)
                if not chunk:
                    break
                out += chunk
                if len(out) > MAX_STREAM_BYTES:        # keep the tail: the exit status and the JSON
                    del out[:len(out) - MAX_STREAM_BYTES]
        except (socket.timeout, TimeoutError):
            if conn is not None:
                conn.close()
                conn = None
            if on_timeout:
                self._quiet(on_timeout)
            raise DeviceError(f"adb device {self.serial}: `{cmd[:80]}` did not finish within {timeout:g} s"
                              + ("; killed it" if on_timeout else "")) from None
        except _adb_errors() as exc:
            raise DeviceError(f"adb device {self.serial}: shell failed ({type(exc).__name__}: {exc}); "
                              "was it unplugged?") from None
        finally:
            if conn is not None:
                conn.close()
        body, sep, tail = bytes(out).replace(b"\r\n", b"\n").rpartition(_MARK)
        if not sep or not tail.strip().isdigit():
            raise DeviceError(f"adb device {self.serial}: the shell ended without an exit status (disconnected?)")
        return int(tail.strip()), body[:-1] if body.endswith(b"\n") else body, b""

    def shell(self, cmd: str, timeout: float) -> tuple[int, bytes]:
        """Run a shell line (not in the private dir, no pid file); return (exit code, stdout and stderr)."""
        code, out, _ = self._shell(cmd, timeout)
        return code, out

    def _quiet(self, cmd: str) -> None:
        """Best effort, bounded: used for cleanup."""
        try:
            self._shell(cmd, min(self.options.connect_timeout, 10))
        except DeviceError:
            pass

    # -- HostTransport --------------------------------------------------------------------

    def _workdir(self) -> str:
        if self._dir is None:
            raise DeviceError(f"adb device {self.serial}: the transport is closed")
        return self._dir

    def push(self, local: Path, remote_name: str) -> str:
        """Push to `<dir>/<name>.part`, check its sha256 on the device, rename; return the remote path."""
        if "/" in remote_name or remote_name in ("", ".", ".."):
            raise DeviceError(f"adb device {self.serial}: refusing to push to {remote_name!r}")
        target = posixpath.join(self._workdir(), remote_name)
        part = target + ".part"
        try:
            self.device.sync.push(Path(local), part, mode=0o644)
        except _adb_errors() as exc:
            self._quiet(f"rm -f {shlex.quote(part)}")
            raise DeviceError(f"adb device {self.serial}: push of {remote_name} failed ({exc}); "
                              "the partial file was removed") from None
        want = sha256_file(Path(local))
        code, out, _ = self._shell(f"sha256sum {shlex.quote(part)} 2>&1", self.options.command_timeout)
        got = out.split()[0].decode("ascii", "replace") if out.split() else ""
        if code != 0 or got != want:
            self._quiet(f"rm -f {shlex.quote(part)}")
            why = f"sha256 {got[:12]}… instead of {want[:12]}…" if code == 0 else out.decode(errors="replace")[:200]
            raise DeviceError(f"adb device {self.serial}: {remote_name} arrived damaged ({why}); removed it")
        code, out, _ = self._shell(f"mv -f {shlex.quote(part)} {shlex.quote(target)} 2>&1",
                                   self.options.connect_timeout)
        if code != 0:
            raise DeviceError(f"adb device {self.serial}: cannot rename {part}: {out.decode(errors='replace')[:200]}")
        return target

    def run(self, argv: list[str], timeout: float) -> tuple[int, bytes, bytes]:
        """Run `argv` in the private dir; kill it by pid on timeout or interrupt.

        stderr goes to a file in the dir, whose last 64 KiB are fetched after the run.
        """
        workdir = self._workdir()
        argv = shlex.split(argv[0]) + list(argv[1:]) if argv else argv
        errfile = shlex.quote(posixpath.join(workdir, ".stderr"))
        kill = _kill_command(workdir)
        cmd = (f"cd {shlex.quote(workdir)} || exit 97; {' '.join(map(shlex.quote, argv))} </dev/null 2>{errfile} & "
               f"echo $! > .pid; wait $!")
        try:
            code, out, _ = self._shell(cmd, timeout, on_timeout=kill)
        except KeyboardInterrupt:
            self._quiet(kill)
            raise
        try:
            _, err, _ = self._shell(f"tail -c 65536 {errfile}", self.options.connect_timeout)
        except DeviceError:
            err = b""
        return code, out, err

    def run_bundle(self, bundle: Path, plan) -> bytes:
        """Run the bundle with benchmark_model and/or the Python agent (exporter/hil/phone_run.py)."""
        from exporter.hil.phone_run import run_on_phone

        return run_on_phone(self, bundle, plan)

    def describe(self) -> dict:
        phone = {k: self.phone[k] for k in ("model", "manufacturer", "abi", "android", "sdk") if self.phone}
        return {"transport": "adb", "id": self.serial, "server": f"{self.host}:{self.port}",
                "python": self.options.python, **phone, **({"tool": self.tool} if self.tool else {})}

    def close(self) -> None:
        workdir, self._dir = self._dir, None
        if workdir is not None:
            self._quiet(f"{_kill_command(workdir)}; rm -rf {shlex.quote(workdir)}")
