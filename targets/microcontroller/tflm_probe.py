"""Child process of `targets.microcontroller.tflm.measure_arena`: run one model on TFLM.

Usage:
    python -m targets.microcontroller.tflm_probe MODEL_PATH ARENA_SIZE

The TFLM Python interpreter (`tflite_micro`) aborts the whole process on some
models, so it only ever runs here, never inside edgex. The probe creates the
interpreter with the `kAllocationRecording` config and an arena of
`ARENA_SIZE` bytes, sets every input to zeros of its dtype, invokes once and
reads the `RecordingMicroAllocator` report.

Protocol, on the original stdout (one JSON object a line, flushed at once):

- `{"stage": "<what is being done>"}` before each step, so that the parent
  can name the step the process died in;
- `{"result": {...}}` last: `ok`, `invoked`, and `arena_bytes`,
  `head_bytes`, `tail_bytes`, `arena_size`, `log` on success, or `stage` and
  `error` on a Python-level failure (exit code 1).

TFLM's own messages (`MicroPrintf`) go to stderr, which the parent reads.
The probe points fd 1 at stderr too, so nothing the native code prints can
corrupt the JSON stream. `print_allocations()` writes its report to stderr
(fd 2) from C++; the probe catches it at the file-descriptor level.
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import sys
import tempfile

_ALLOCATION = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


def _flush_c_stdio() -> None:
    """Flush C stdio buffers, so that native output lands before fds move."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def capture_native(fn) -> str:
    """Call `fn()` with fds 1 and 2 pointed at a temp file; return what was written."""
    with tempfile.TemporaryFile() as f:
        sys.stdout.flush()
        sys.stderr.flush()
        _flush_c_stdio()
        saved = os.dup(1), os.dup(2)
        try:
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            fn()
            _flush_c_stdio()
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        f.seek(0)
        return f.read().decode("utf-8", "replace").replace("\r\n", "\n")


def parse_allocations(text: str) -> dict:
    """Read total/head/tail bytes from `print_allocations()` output."""
    found = {kind: int(n) for kind, n in _ALLOCATION.findall(text)}
    if "total" not in found:
        raise RuntimeError("print_allocations() printed no 'Arena allocation total' line")
    return {f"{kind}_bytes": found.get(kind) for kind in ("head", "tail")} | {"arena_bytes": found["total"]}


def probe(model_path: str, arena_size: int, emit) -> dict:
    """Run the model once on TFLM; call `emit({"stage": ...})` before each step.

    Returns:
        The result dict (see the module docstring).
    """
    stage, invoked = "reading the model", False
    try:
        emit({"stage": stage})
        with open(model_path, "rb") as f:
            data = f.read()
        from exporter.analysis.graph import Graph

        n_inputs = len(Graph.from_bytes(data).inputs)

        stage = "importing tflite_micro"
        emit({"stage": stage})
        import numpy as np
        from tflite_micro.python.tflite_micro import runtime

        stage = "creating the interpreter (allocating tensors)"
        emit({"stage": stage})
        interpreter = runtime.Interpreter.from_bytes(
            data, arena_size=arena_size,
            intrepreter_config=runtime.InterpreterConfig.kAllocationRecording)

        for i in range(n_inputs):
            stage = f"setting input {i}"
            emit({"stage": stage})
            details = interpreter.get_input_details(i)
            interpreter.set_input(np.zeros(tuple(details["shape"]), dtype=details["dtype"]), i)

        stage = "invoking"
        emit({"stage": stage})
        interpreter.invoke()
        invoked = True

        stage = "reading the allocations"
        emit({"stage": stage})
        log = capture_native(interpreter.print_allocations)
        return {"ok": True, "invoked": True, "arena_size": arena_size, "log": log,
                **parse_allocations(log)}
    except Exception as e:  # every failure is reported to the parent, never raised
        return {"ok": False, "invoked": invoked, "stage": stage, "error": f"{type(e).__name__}: {e}"}


def main(argv: list[str] | None = None) -> int:
    """Entry point: see the module docstring. Returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # native and stray prints go to stderr; `out` keeps the real stdout

    def emit(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    if len(args) != 2 or not args[1].isdigit():
        emit({"result": {"ok": False, "invoked": False, "stage": "reading the arguments",
                         "error": "usage: python -m targets.microcontroller.tflm_probe MODEL_PATH ARENA_SIZE"}})
        return 2
    result = probe(args[0], int(args[1]), emit)
    emit({"result": result})
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
