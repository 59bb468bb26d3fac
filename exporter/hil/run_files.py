"""Device runs stored in a bundle (`<bundle>/hil/<run>.json`): writing them, reading them back.

A run file comes from outside as soon as a bundle is shared, so it is read like any other
outside input: only regular files (a symlink, FIFO, directory or device named `x.json` is
refused before it is opened, and the open itself neither follows links nor waits on a FIFO),
at most `MAX_RUN_BYTES`, strict UTF-8 JSON, and every field that edgex reads back (by
`edgex hil report` and `edgex profiles calibrate`) must have the type edgex writes. A file
that fails is refused with IntegrityError (exit 3) naming it, as `edgex verify` does; files
whose names start with "." are temporaries of a run being written and are skipped.

Example:
    >>> load_runs(bundle)                                # the demo's android bundle: no device run yet
    []
    >>> from exporter.hil.runner import hil_run
    >>> from exporter.hil.transports.base import RunPlan
    >>> path = hil_run(bundle, "local", RunPlan(warmup=2, runs=20)).path     # stored under bundle/hil/
    >>> [(run["status"], run["path"] == path) for run in load_runs(bundle)]
    [('pass', True)]
"""
from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
import tempfile
from pathlib import Path

from exporter.errors import IntegrityError, UsageError

HIL_DIR = "hil"
MAX_RUN_BYTES = 16 << 20
_TEXT = (str,)
_SCALAR = (str, int, float, type(None))
_FIELDS = {"status": _TEXT, "created": _TEXT, "bundle": _TEXT, "complete": (bool,), "device": (dict,),
           "plan": (dict,), "result": (dict,), "measurements": (dict,), "estimates": (dict,), "checks": (list,),
           "notes": (list,), "run_format": (int,)}          # run_format: 2 and later (exporter/hil/runner.py)


def shown(path, limit: int = 120) -> str:
    """A path for a one-line message: long ones keep their start and end around "…"."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit // 2]}…{text[-(limit // 2):]}"


def check_path(path, what: str = "bundle") -> Path:
    """Refuse a path the system cannot even look up (too long, NUL byte, ...), before any work.

    A missing path is not refused here: the caller says what is missing.

    Args:
        path: the path given by the user.
        what: what it is, for the message (default "bundle").

    Returns:
        The path as a Path.

    Raises:
        UsageError: the path is too long, holds a NUL byte, or cannot be looked up.
    """
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:
        reason = f"path too long ({len(str(path))} characters)" if exc.errno == errno.ENAMETOOLONG else exc.strerror
        raise UsageError(f"cannot use {what} {shown(path)}: {reason or exc}") from None
    except ValueError:              # an embedded NUL byte
        raise UsageError(f"cannot use {what} {shown(path)!r}: it holds a NUL byte") from None
    return Path(path)


def _json_type(value) -> str:
    """The JSON name of a parsed value's type ("an object", "a number", ...)."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def run_problem(run) -> str | None:
    """Why a parsed run file is not a run as edgex writes it (None when it is).

    Args:
        run: the parsed JSON.

    Returns:
        One line naming the first field of the wrong type, or None.
    """
    if not isinstance(run, dict):
        return f"it is {_json_type(run)}, not an object"
    for key, types in _FIELDS.items():
        if key in run and not isinstance(run[key], types):
            return f'"{key}" is {_json_type(run[key])}, not {_json_type(types[0]())}'
    for key in ("transport", "id"):
        if not isinstance(run.get("device", {}).get(key), _SCALAR):
            return f'"device.{key}" is not a plain value'
    result = run.get("result", {})
    for key in ("runtime", "runtime_version"):
        if not isinstance(result.get(key), _SCALAR):
            return f'"result.{key}" is not a plain value'
    if result.get("accuracy") is not None and not _number(result["accuracy"]):
        return '"result.accuracy" is not a finite number'
    if not isinstance(result.get("ops") or [], list) or not all(isinstance(op, dict) for op in result.get("ops") or []):
        return '"result.ops" is not a list of objects'
    for group, required in (("measurements", ("value",)), ("estimates", ())):
        for name, figure in run.get(group, {}).items():
            if not isinstance(figure, dict):
                return f'"{group}.{name}" is not an object'
            for key in ("value", "estimated", "measured", "error_pct"):
                if (key in figure or key in required) and not _number(figure.get(key)):
                    return f'"{group}.{name}.{key}" is not a finite number'
    if not all(isinstance(n, str) for n in run.get("notes", [])):
        return '"notes" holds something other than text'
    return None


def read_run(path: Path) -> dict:
    """Read one run file: a regular file (no link, FIFO or directory), bounded, valid, well-typed.

    Raises:
        IntegrityError: naming the file and what is wrong with it.
    """
    try:
        mode = os.lstat(path).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a symlink" if stat.S_ISLNK(mode) else "a directory" if stat.S_ISDIR(mode)
                    else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file")
            raise IntegrityError(f"device run {shown(path)} is {kind}; refused (remove it, then retry)")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise IntegrityError(f"device run {shown(path)} is not a regular file; refused")
            raw = f.read(MAX_RUN_BYTES + 1)
    except OSError as exc:
        raise IntegrityError(f"cannot read device run {shown(path)}: {exc.strerror or exc}") from None
    if len(raw) > MAX_RUN_BYTES:
        raise IntegrityError(f"device run {shown(path)} is larger than {MAX_RUN_BYTES:,} bytes; refused")
    try:
        run = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:    # UnicodeDecodeError is a ValueError
        raise IntegrityError(f"device run {shown(path)} is not valid JSON: {str(exc)[:200]}") from None
    problem = run_problem(run)
    if problem:
        raise IntegrityError(f"device run {shown(path)} is not an edgex run: {problem}")
    return run


def load_runs(bundle) -> list[dict]:
    """The runs stored in a bundle, oldest first, each with its file as "path".

    Args:
        bundle: the bundle directory (no `hil/` folder: no runs).

    Returns:
        The parsed runs (dicts as `HilRun.to_dict()` wrote them, plus "path").

    Raises:
        UsageError: the bundle path cannot be looked up (e.g. too long).
        IntegrityError: a `hil/*.json` entry that is not a regular file, is too large, is not
            JSON, or has a field of the wrong type; naming it.
    """
    folder = check_path(bundle) / HIL_DIR
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise IntegrityError(f"{shown(folder)} is not a directory; refused")
        names = sorted(entry.name for entry in os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise IntegrityError(f"cannot list device runs in {shown(folder)}: {exc.strerror or exc}") from None
    runs = []
    for name in names:
        if name.endswith(".json") and not name.startswith("."):
            runs.append(read_run(folder / name) | {"path": str(folder / name)})
    return runs


def store_run(bundle: Path, run: dict) -> Path:
    """Write a run atomically as `<bundle>/hil/<created>-<device>.json`; return its path.

    Args:
        bundle: the bundle directory.
        run: `HilRun.to_dict()`.

    Returns:
        The path written.

    Raises:
        OSError: the bundle cannot be written (the temp file is removed).
    """
    folder = Path(bundle) / HIL_DIR
    folder.mkdir(exist_ok=True)
    device = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(run["device"].get("id", "device")))[:60]
    stamp = run["created"].replace(":", "").replace("-", "")
    path = folder / f"{stamp}-{device}.json"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".run-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(run, fh, indent=2, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
