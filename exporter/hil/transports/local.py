"""The `local` device: run the agent on this machine, in a private temp dir.

Useful to check a bundle end to end without hardware, and as the reference the
other transports are compared with. The agent runs with `options.python`, or the
interpreter running edgex when that is unset (None, "" or the default "python3"),
so `--device local` works in edgex's own venv.

Example:
    >>> from exporter.hil.result import parse_agent_output
    >>> from exporter.hil.transports.base import RunPlan
    >>> with LocalTransport("local", TransportOptions()) as t:          # the demo's android bundle
    ...     raw = t.run_bundle(bundle, RunPlan(warmup=2, runs=20))
    ...     who = t.describe()
    >>> answer = parse_agent_output(raw)
    >>> answer.ok, answer.latency_ms.runs, who["transport"]
    (True, 20, 'local')
"""
from __future__ import annotations

import hashlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from exporter.errors import DeviceError
from exporter.hil.transports.base import HostTransport, TransportOptions, register
from exporter.session import signals_deferred

MAX_STREAM_BYTES = 2 << 20   # stdout/stderr kept per stream; the rest is read and dropped


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _drain(stream, sink: bytearray, limit: int) -> None:
    """Read a pipe to its end, keeping at most `limit` bytes (so the child never blocks on a full pipe)."""
    try:
        for chunk in iter(lambda: stream.read1(65536), b""):
            room = limit - len(sink)
            if room > 0:
                sink += chunk[:room]
    except (OSError, ValueError):
        pass


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of `proc` (started with start_new_session) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


@register
class LocalTransport(HostTransport):
    """Runs the agent in a subprocess on this machine.

    Args:
        uri: "local".
        options: `python` picks the interpreter (default: the one running edgex).
    """

    scheme = "local"

    def __init__(self, uri: str, options: TransportOptions):
        python = options.python if options.python not in (None, "", "python3") else sys.executable
        super().__init__(uri, replace(options, python=python))
        self._dir: Path | None = Path(tempfile.mkdtemp(prefix="edgex-local-"))

    def _workdir(self) -> Path:
        if self._dir is None:
            raise DeviceError("local device: the transport is closed")
        return self._dir

    def push(self, local: Path, remote_name: str) -> str:
        """Copy into the private dir as `<name>.part`, check its sha256, rename; return the path."""
        if "/" in remote_name or remote_name in ("", ".", ".."):
            raise DeviceError(f"local device: refusing to push to {remote_name!r}")
        target = self._workdir() / remote_name
        part = target.with_name(target.name + ".part")
        try:
            shutil.copyfile(local, part)
            if sha256_file(part) != sha256_file(local):
                part.unlink()
                raise DeviceError(f"local device: {remote_name} changed while it was copied (sha256 mismatch)")
            os.replace(part, target)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise DeviceError(f"local device: cannot copy {local} to {target}: {exc.strerror or exc}") from None
        return str(target)

    def run(self, argv: list[str], timeout: float) -> tuple[int, bytes, bytes]:
        """Run `argv` in the private dir, killing its whole process group after `timeout` seconds.

        Raises:
            DeviceError: the command cannot start, or timed out.
        """
        out, err, proc = bytearray(), bytearray(), None
        try:
            with signals_deferred():      # a Ctrl-C as Popen returns would leave the child running, unknown
                proc = subprocess.Popen(argv, cwd=self._workdir(), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
                readers = [threading.Thread(target=_drain, args=(stream, sink, MAX_STREAM_BYTES), daemon=True)
                           for stream, sink in ((proc.stdout, out), (proc.stderr, err))]
        except OSError as exc:
            raise DeviceError(f"local device: cannot run {argv[0]!r}: {exc.strerror or exc}") from None
        except BaseException:
            if proc is not None:
                kill_group(proc)
            raise
        try:
            for reader in readers:      # Thread.start waits for the thread: long on a busy machine
                reader.start()
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"local device: {Path(argv[0]).name} {' '.join(argv[1:2])} timed out after "
                              f"{timeout:g}s; killed it") from None
        finally:   # also on Ctrl-C; and whatever the command left behind in its group goes too
            kill_group(proc)
            deadline = time.monotonic() + 5
            for reader, stream in zip(readers, (proc.stdout, proc.stderr)):
                if reader.ident is not None:                # started
                    reader.join(timeout=max(0.0, deadline - time.monotonic()))
                if not reader.is_alive():
                    stream.close()
        return proc.returncode, bytes(out), bytes(err)

    def describe(self) -> dict:
        return {"transport": "local", "id": socket.gethostname(), "machine": platform.machine(),
                "python": self.options.python}

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
