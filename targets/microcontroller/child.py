"""Run one of the TFLM child modules (`tflm_probe`, `tflm_compress`) and read its JSON lines.

TFLM aborts the whole process on some models, so its interpreter only runs in a child process,
`python -m <module> ARGS...`, with a timeout. The child prints one JSON object a line on stdout:
`{"stage": ...}` before each step (so that a crash names the step) and `{"result": {...}}` last.

Example:
    >>> run = run_child("targets.microcontroller.tflm_probe", [], timeout=60)     # no arguments: a usage error
    >>> run.returncode, run.result["stage"]
    (2, 'reading the arguments')
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ChildRun:
    """What one child run gave: exit code (None: killed at the timeout), last stage, result, stderr."""

    returncode: int | None
    stage: str
    result: dict | None
    stderr: str


def run_child(module: str, args: list[str], timeout: float) -> ChildRun:
    """Run `python -m module args...` with edgex on its path; never raises for what the child does.

    Args:
        module: the child module's dotted name.
        args: its arguments.
        timeout: seconds it may take, then it is killed.

    Returns:
        A `ChildRun`.
    """
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    cmd = [sys.executable, "-m", module, *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=max(timeout, 0.001), env=env,
                              stdin=subprocess.DEVNULL)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        code, out, err = None, e.stdout or b"", e.stderr or b""
    stage, result = f"starting {module}", None
    for line in out.decode("utf-8", "replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            stage = obj.get("stage", stage)
            result = obj.get("result", result)
    return ChildRun(code, stage, result, err.decode("utf-8", "replace"))
