"""Running Coral's `edgetpu_compiler` and collecting what it made (model, log, operation log).

The compiler is only installable from Coral's apt repository (x86-64 Debian/Ubuntu); where it is
missing, targets/edgetpu.py writes the exact command into the bundle instead.

Example:
    >>> result = compile_for_edgetpu(tflite_bytes, runtime_version=14)
    >>> result.log.tpu_ops, result.log.cpu_ops
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from exporter.errors import ConversionError

COMPILER = "edgetpu_compiler"
COMPILE_TIMEOUT_S = 600  # the compiler's own timer defaults to 180 s; this guards a hung process
_TAIL_LINES = 30
INSTALL_COMMANDS = (
    "curl https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo apt-key add -",
    'echo "deb https://packages.cloud.google.com/apt coral-edgetpu-stable main" '
    "| sudo tee /etc/apt/sources.list.d/coral-edgetpu.list",
    "sudo apt-get update",
    "sudo apt-get install edgetpu-compiler",
)


def compiler_path() -> str | None:
    """The `edgetpu_compiler` on PATH, or None."""
    return shutil.which(COMPILER)


BUNDLE_OUT_DIR = "../edgetpu-compiled"  # next to the bundle: `edgex verify` reports files added inside it


def compile_command(runtime_version: int, out_dir: str = BUNDLE_OUT_DIR, model: str = "model.tflite") -> list[str]:
    """The compiler command edgex runs (with a temporary `out_dir`) and writes into COMPILE.md."""
    return [COMPILER, "-s", "-m", str(runtime_version), "-o", out_dir, model]


@dataclass(frozen=True)
class CompileResult:
    """One edgetpu_compiler run: the compiled model and what the compiler said."""

    command: list[str]
    stdout: str = field(repr=False)
    operation_log: str | None = field(repr=False)
    compiled_tflite: bytes = field(repr=False)
    log: object = None  # edgetpu_log.CompilerLog

    def log_text(self) -> str:
        text = self.stdout
        if self.operation_log:
            text += "\n--- model_edgetpu.log ---\n" + self.operation_log
        return text


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-_TAIL_LINES:]) or "(no output)"


def compile_for_edgetpu(tflite_bytes: bytes, runtime_version: int, *, compiler: str | None = None,
                        timeout: float = COMPILE_TIMEOUT_S) -> CompileResult:
    """Run `edgetpu_compiler -s -m <runtime> -o <tmp> model.tflite` in a temporary directory.

    Raises:
        ConversionError: the compiler is missing, timed out, crashed, failed or wrote no model
            (with its error lines or the tail of its output).
    """
    from exporter.analysis.edgetpu_log import parse_compiler_log

    compiler = compiler or compiler_path()
    if compiler is None:
        raise ConversionError(f"{COMPILER} not found on PATH")
    with tempfile.TemporaryDirectory(prefix="edgex-edgetpu-") as tmp:
        model, out = Path(tmp) / "model.tflite", Path(tmp) / "out"
        model.write_bytes(tflite_bytes)
        out.mkdir()
        command = compile_command(runtime_version, str(out), str(model))
        command[0] = compiler
        try:
            proc = subprocess.run(command, cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            text = (e.output or b"").decode("utf-8", "replace")
            raise ConversionError(f"{COMPILER} did not finish within {timeout:g} s (killed); last output:\n"
                                  f"{_tail(text)}") from None
        except OSError as e:
            raise ConversionError(f"cannot run {compiler}: {e.strerror or e}") from e
        text = proc.stdout.decode("utf-8", "replace")
        log = parse_compiler_log(text)
        compiled = out / "model_edgetpu.tflite"
        if proc.returncode != 0 or log.succeeded is False or not compiled.is_file():
            why = "; ".join(log.errors) or _tail(text)
            what = f"crashed (signal {-proc.returncode})" if proc.returncode < 0 else f"failed (exit {proc.returncode})"
            raise ConversionError(f"{COMPILER} {what}: {why}")
        op_log = out / "model_edgetpu.log"
        return CompileResult(compile_command(runtime_version), text,
                             op_log.read_text("utf-8", "replace") if op_log.is_file() else None,
                             compiled.read_bytes(), log)
