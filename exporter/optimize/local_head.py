"""A Ray head on this machine for a single-machine search: `ray start --head --block` on 127.0.0.1.

The tests (tests/optimize/, tests/test_readme.py) and benchmarks/search.py start their real Ray heads with
`local_ray_head`; `edgex optimize --ray ADDRESS` then runs trials on it. Only this head's processes are stopped (SIGTERM to its process group, then SIGKILL): never `ray stop`, which
stops every Ray instance of the user on the machine (another test session's included).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


HEAD_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
"""The head's environment. Ray 2.60 turns token authentication on for `ray start` when ~/.ray/auth_token exists
(any earlier local `ray.init()` writes one), while a driver connecting without RAY_AUTH_MODE=token sends no
token and is refused ("InvalidAuthToken", then "Failed to connect to Ray cluster"): this head for one machine
runs without it, whatever ~/.ray holds."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_ray_head(cpus: int = 2, timeout: float = 90.0):
    """Start a Ray head with `cpus` CPUs; yield its address "127.0.0.1:PORT"; stop it and remove its temp dir."""
    ray = str(Path(sys.executable).with_name("ray"))
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))       # short: Ray's socket paths are length-limited
    port = free_port()
    head = subprocess.Popen([ray, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
                             "--num-cpus", str(cpus), "--temp-dir", str(temp), "--disable-usage-stats",
                             "--include-dashboard", "false"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, **HEAD_ENV})
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if head.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Ray head did not start (exit {head.poll()})") from None
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(head.pid, sig)
                head.wait(timeout=5)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        shutil.rmtree(temp, ignore_errors=True)
