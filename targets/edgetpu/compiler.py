"""Running Coral's `edgetpu_compiler` and collecting what it made (model, log, operation log).

The compiler is only installable from Coral's apt repository (x86-64 Debian/Ubuntu); where it is
missing, targets/edgetpu/target.py writes the exact command into the bundle instead.

Example:
    >>> " ".join(compile_command(14))                       # what edgex runs, and writes into COMPILE.md
    'edgetpu_compiler -s -m 14 -o ../edgetpu-compiled model.tflite'
    >>> result = compile_for_edgetpu(tiny_tflite, runtime_version=14)    # doctest: +SKIP
    >>> result.log.tpu_ops, result.log.cpu_ops                           # doctest: +SKIP
    (6, 0)
"""
from __future__ import annotations

import shutil

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from exporter.tool import run_tool, tail
from exporter.errors import ConversionError

COMPILER = "edgetpu_compiler"
COMPILE_TIMEOUT_S = 600  # the compiler's own timer defaults to 180 s; this guards a hung process
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
    log: object = None  # targets.edgetpu.log.CompilerLog

    def log_text(self) -> str:
        text = self.stdout
        if self.operation_log:
            text += "\n--- model_edgetpu.log ---\n" + self.operation_log
        return text


def compile_for_edgetpu(tflite_bytes: bytes, runtime_version: int, *, compiler: str | None = None,
                        timeout: float = COMPILE_TIMEOUT_S) -> CompileResult:
    """Run `edgetpu_compiler -s -m <runtime> -o <tmp> model.tflite` in a temporary directory.

    Raises:
        ConversionError: the compiler is missing, timed out, crashed, failed or wrote no model
            (with its error lines or the tail of its output).
    """
    from targets.edgetpu.log import parse_compiler_log

    compiler = compiler or compiler_path()
    if compiler is None:
        raise ConversionError(f"{COMPILER} not found on PATH")
    with tempfile.TemporaryDirectory(prefix="edgex-edgetpu-") as tmp:
        model, out = Path(tmp) / "model.tflite", Path(tmp) / "out"
        model.write_bytes(tflite_bytes)
        out.mkdir()
        command = compile_command(runtime_version, str(out), str(model))
        command[0] = compiler
        code, text = run_tool(command, cwd=tmp, timeout=timeout, name=COMPILER)
        log = parse_compiler_log(text)
        compiled = out / "model_edgetpu.tflite"
        if code != 0 or log.succeeded is False or not compiled.is_file():
            why = "; ".join(log.errors) or tail(text)
            what = f"crashed (signal {-code})" if code < 0 else f"failed (exit {code})"
            raise ConversionError(f"{COMPILER} {what}: {why}")
        op_log = out / "model_edgetpu.log"
        return CompileResult(compile_command(runtime_version), text,
                             op_log.read_text("utf-8", "replace") if op_log.is_file() else None,
                             compiled.read_bytes(), log)


def compile_instructions(profile, settings, mapping: dict) -> str:
    """COMPILE.md: the exact command, how to install the compiler, and what edgex expects it to map."""
    static = mapping["static_mapping"]
    io = mapping.get("io_dtype") or profile.quantization.int8_io
    rows = "\n".join(f"| {o['index']} | {o['name']} | v{o['version']} | {o['placement'].upper()} | {o['status']} |"
                     for o in static["ops"])
    cut = (f"the first unsupported op is op {static['cut_index']} {static['cut_op']} ({static['cut_reason']}); "
           "the compiler maps ops only up to it, so it and every op after it run on the CPU"
           if static["cut_index"] is not None else "every op maps to the Edge TPU (no cut)")
    install = "\n".join(f"    {c}" for c in INSTALL_COMMANDS)
    params = mapping["estimate"]["parameters"]
    command = " ".join(compile_command(settings.runtime_version))
    return f"""# Compiling this bundle for the Edge TPU

edgex did not compile `model.tflite`: `{COMPILER}` was not found on PATH where the bundle was made.
The compiler comes only from Coral's apt repository (x86-64 Debian/Ubuntu); it is not in Debian,
PyPI or npm. `model.tflite` is the full-integer int8 model ({io} I/O, batch 1, static shapes) that
the Edge TPU needs. Compile it on a machine that has the compiler, from this bundle's directory:

    {command}

This writes `model_edgetpu.tflite` (load it with the Edge TPU delegate) and `model_edgetpu.log`
(the per-operator table, which `-s` also prints) into `{BUNDLE_OUT_DIR[3:]}/` next to the bundle, not
into it: `edgex verify` reports any file added to a bundle.

- `-m {settings.runtime_version}`: the lowest Edge TPU runtime the compiled model must run on (profile
  {profile.name}: runtime {settings.runtime_version}, compiler {settings.compiler_version}); lower it
  for a device with an older runtime (e.g. `-m 13`).
- Or re-run the edgex export with `{COMPILER}` on PATH: edgex then compiles, reads the compiler's
  log and bundles `model_edgetpu.tflite` and `edgetpu/compile.log`; `--require-compiled` refuses
  to write an uncompiled bundle.

## Installing the compiler (Coral's "Edge TPU Compiler" page)

{install}

The compiler runs on x86-64 only (no ARM64 build since compiler 2.1): compile on a desktop, not on
a Raspberry Pi or the Dev Board. Distributions that deprecate `apt-key` need the key in
`/etc/apt/keyrings` and `signed-by=` in the source line instead. On the device, install the Edge
TPU runtime (`libedgetpu1-std`) from the same repository.

## What edgex expects the compiler to do

{mapping['summary']}.

In short: {cut}.

This is edgex's estimate from Coral's supported-operations table
(https://coral.ai/docs/edgetpu/models-intro/#supported-operations) and edgex's own limits on op
versions for compiler {settings.compiler_version}; the compiler's log is authoritative.

| # | op | version | runs on | status |
|---|---|---|---|---|
{rows}

Parameters of the TPU part (estimated): {params['tpu_bytes']:,} B; on-chip cache {params['cache_bytes']:,} B;
streamed every inference: {params['streamed_bytes']:,} B. After compiling, compare with the compiler's
"On-chip memory used for caching model parameters" and "Off-chip memory used for streaming
uncached model parameters".
"""
