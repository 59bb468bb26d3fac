"""LiteRT's `benchmark_model` for a phone: which file fits the phone's ABI, and how to run it.

edgex never downloads the tool: the user gives a path (`--benchmark-binary`, or per ABI in the edgex
config, exporter/hil/user_config.py). Before anything is pushed the file is checked here: a regular
file, an ELF executable whose machine is one of the phone's ABIs (`ro.product.cpu.abilist`), or a
`#!` script (run by the phone's shell, as a wrapper would be). The flags are those of the Interpreter
API tool (google-ai-edge/LiteRT tflite/tools/benchmark: benchmark_model.cc, benchmark_tflite_model.cc,
tflite/tools/delegates/*_delegate_provider.cc), not of the CompiledModel tool in litert/tools.

Example:
    >>> from exporter.hil.transports.base import RunPlan
    >>> " ".join(benchmark_argv("./benchmark_model", "model.tflite", RunPlan(warmup=5, runs=50, threads=4,
    ...                                                                       delegate="xnnpack")))
    './benchmark_model --graph=model.tflite --num_threads=4 --warmup_runs=5 --warmup_min_secs=0 --num_runs=50 --min_secs=0 --max_secs=300 --enable_op_profiling=true --use_xnnpack=true'
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from exporter.errors import UsageError
from exporter.option_names import option

# ELF e_machine and class (32/64-bit) of each Android ABI (developer.android.com/ndk/guides/abis).
ABI_MACHINES = {"arm64-v8a": (183, 64), "armeabi-v7a": (40, 32), "armeabi": (40, 32), "x86_64": (62, 64),
                "x86": (3, 32), "riscv64": (243, 64)}
MACHINE_NAMES = {183: "arm64 (AArch64)", 40: "32-bit ARM", 62: "x86-64", 3: "x86", 243: "RISC-V"}
# The nightly prebuilt tools for each ABI (LiteRT "Benchmark Interpreter API" page and tool README).
NIGHTLY = "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/latest/"
PREBUILT = {"arm64-v8a": "android_aarch64_benchmark_model", "armeabi-v7a": "android_arm_benchmark_model",
            "armeabi": "android_arm_benchmark_model", "x86_64": "android_x86_64_benchmark_model",
            "x86": "android_x86_benchmark_model"}
DELEGATE_FLAGS = {
    "cpu": ("--use_xnnpack=false",),     # LiteRT's builtin kernels: XNNPACK, applied by default, turned off
    "xnnpack": ("--use_xnnpack=true",),  # the XNNPACK CPU delegate
    "gpu": ("--use_gpu=true",),
    "nnapi": ("--use_nnapi=true",),
}
"""The profile's `delegate` as benchmark_model flags."""
MAX_BINARY_BYTES = 1 << 30


def where_to_get(abi: str | None) -> str:
    """One sentence on where the tool for `abi` comes from (edgex never downloads it)."""
    name = PREBUILT.get(abi or "", "android_aarch64_benchmark_model")
    return (f"LiteRT's prebuilt benchmark tool for {abi or 'the phone'}: {NIGHTLY}{name} (see "
            "https://ai.google.dev/edge/litert/models/measurement), or build tflite/tools/benchmark:benchmark_model")


def _head(path: Path) -> bytes:
    """The first bytes of a regular file (a missing, special or huge file is a UsageError)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{option('benchmark_binary')} {path} is not a regular file")
        if info.st_size > MAX_BINARY_BYTES:
            raise UsageError(f"{option('benchmark_binary')} {path} is {info.st_size:,} bytes: not a benchmark tool")
        with open(path, "rb") as f:
            return f.read(64)
    except OSError as exc:
        raise UsageError(f"{option('benchmark_binary')} {path}: {exc.strerror or exc}") from None


def elf_machine(path: Path) -> tuple[int, int] | None:
    """The ELF machine and class (32/64) of an executable; None for a `#!` script.

    Raises:
        UsageError: missing, unreadable, not a regular file, or neither an ELF executable nor a script.
    """
    head = _head(path)
    if head.startswith(b"#!"):
        return None
    if head[:4] != b"\x7fELF" or len(head) < 20:
        raise UsageError(f"{option('benchmark_binary')} {path} is not an executable (neither an ELF binary nor a "
                         "#! script)")
    order = "little" if head[5] == 1 else "big"
    if int.from_bytes(head[16:18], order) not in (2, 3):          # ET_EXEC, ET_DYN (position-independent)
        raise UsageError(f"{option('benchmark_binary')} {path} is an ELF file but not an executable")
    return int.from_bytes(head[18:20], order), {1: 32, 2: 64}.get(head[4], 0)


def check_binary(path: Path, abis: list[str]) -> str:
    """Refuse a benchmark tool the phone cannot run; return what it is, for the run record.

    Args:
        path: the tool on this machine.
        abis: the phone's ABIs, preferred first (`ro.product.cpu.abilist`); empty when unknown.

    Returns:
        "ELF arm64 (AArch64), 64-bit" or "#! script".

    Raises:
        UsageError: missing, not an executable, or an ELF for none of the phone's ABIs (exit 2).
    """
    found = elf_machine(path)
    if found is None:
        return "#! script"
    machine, bits = found
    what = f"ELF {MACHINE_NAMES.get(machine, f'machine {machine}')}, {bits}-bit"
    if abis and not any(ABI_MACHINES.get(abi) == found for abi in abis):
        raise UsageError(f"{option('benchmark_binary')} {path} is an {what} executable, which this phone cannot "
                         f"run (its ABIs: {', '.join(abis)}); use {where_to_get(abis[0])}")
    return what


def benchmark_argv(binary: str, model: str, plan) -> list[str]:
    """The tool's command line for a RunPlan: threads, warm-up and runs exactly, op profiling on.

    `--warmup_min_secs=0` and `--min_secs=0` make the counts the plan's (the tool would otherwise keep
    running for 0.5 s and 1 s); `--max_secs` is the plan's timeout.
    """
    return [binary, f"--graph={model}", f"--num_threads={plan.threads or 1}", f"--warmup_runs={plan.warmup}",
            "--warmup_min_secs=0", f"--num_runs={plan.runs}", "--min_secs=0", f"--max_secs={plan.timeout:g}",
            "--enable_op_profiling=true", *DELEGATE_FLAGS[plan.delegate or "xnnpack"]]
