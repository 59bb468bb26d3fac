"""Running an external compiler (Vela, edgetpu_compiler) as a bounded child process.

Example:
    >>> import sys
    >>> code, output = run_tool([sys.executable, "-c", "print('compiled'); raise SystemExit(3)"], cwd=tmp,
    ...                         timeout=60, name="compiler")
    >>> code, output.strip()
    (3, 'compiled')
    >>> run_tool(["no-such-tool", "model.tflite"], cwd=tmp, timeout=60, name="tool", hint="; is it on PATH?")
    Traceback (most recent call last):
    ...
    exporter.errors.ConversionError: cannot run tool (no-such-tool): No such file or directory; is it on PATH?
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from exporter.errors import ConversionError

TAIL_LINES = 30


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last `lines` non-blank-trimmed lines of a tool's output, or '(no output)'."""
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


def run_tool(command: list[str], *, cwd: Path | str, timeout: float, name: str, hint: str = "") -> tuple[int, str]:
    """Run `command` with stdout and stderr merged; return (exit code, output). A crash is a negative code.

    Raises:
        ConversionError: it could not start (with `hint`), or did not finish in `timeout` (killed).
    """
    try:
        proc = subprocess.run(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.output or b"").decode("utf-8", "replace")
        raise ConversionError(f"{name} did not finish within {timeout:g} s (killed); last output:\n{tail(out)}") from None
    except OSError as e:
        raise ConversionError(f"cannot run {name} ({command[0]}): {e.strerror or e}{hint}") from e
    return proc.returncode, proc.stdout.decode("utf-8", "replace")
