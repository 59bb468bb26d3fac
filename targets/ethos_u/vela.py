"""Compile a TFLite model for an Arm Ethos-U NPU with Vela, and read its figures.

The real `vela` CLI (pip package `ethos-u-vela`) runs in a child process in a
temporary directory, with a timeout, so that a crash of Vela's native core
(it segfaults on some malformed flatbuffers) never takes edgex down:

    vela model.tflite --accelerator-config ethos-u55-128 \\
        --config Arm/vela.ini --system-config Ethos_U55_High_End_Embedded \\
        --memory-mode Shared_Sram --output-dir out --output-format tflite \\
        --show-cpu-operations

Where each figure of `VelaResult` comes from:

- `summary_csv`, `sram_bytes`, `flash_bytes`, `dram_bytes`, `cycles`, `macs`:
  Vela's summary CSV (`out/model_summary_<system config>.csv`, one row).
  Memory columns are in KiB and become bytes: `sram_memory_used`,
  `off_chip_flash_memory_used` + `on_chip_flash_memory_used`,
  `dram_memory_used`. `cycles` is `cycles_total` (NPU compute and memory
  access, the figure Vela divides by `core_clock` for `inference_time`);
  `macs` is `nn_macs`. A model with nothing on the NPU has them all 0.
- `cpu_ops`, `cpu_op_names`: the ops of Vela's output model other than the
  `ethos-u` custom op(s), read with `Graph`. Vela leaves CPU ops as ordinary
  builtin ops; the count equals the "CPU operators = N" line Vela prints.
- `npu_ops`: ops of the input model absorbed into `ethos-u` custom ops
  (input op count - `cpu_ops`). Vela's own printed "NPU operators" count is
  not used: it counts its internal, decomposed ops (a SOFTMAX becomes ~28)
  and omits ops it removes (a RESHAPE).

Vela only accelerates int8/int16 ops: a float32 model is not an error, all
its ops stay on the CPU (`npu_ops == 0`, `cycles == 0`).

System configs and memory modes come from Arm's `vela.ini`, shipped inside
the `ethos-u-vela` wheel as `Arm/vela.ini` (e.g. `Ethos_U55_High_End_Embedded`,
`Ethos_U65_High_End`, `Shared_Sram`, `Dedicated_Sram_384KB`). It is used
unless `config_file` names another. "internal-default" lets Vela pick a
per-NPU default (U55: Ethos_U55_High_End_Embedded + Shared_Sram).

Example:
    >>> int8 = (bundle / "model.tflite").read_bytes()        # the demo CNN, int8
    >>> r = compile_for_ethos_u(int8, accelerator_config="ethos-u55-128",
    ...     system_config="Ethos_U55_High_End_Embedded", memory_mode="Shared_Sram")
    >>> r.npu_ops, r.cpu_ops, r.sram_bytes, round(r.latency_ms(500.0), 6)
    (7, 0, 3072, 0.087218)
    >>> " ".join(r.command[:4])
    'vela model.tflite --accelerator-config ethos-u55-128'
"""
from __future__ import annotations

import csv
import io
import math
import re
import shutil

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from exporter.analysis.graph import Graph
from exporter.tool import run_tool, tail
from exporter.errors import ConfigError, ConversionError, ModelFileError, UsageError

PIP_PACKAGE = "ethos-u-vela"
SHIPPED_CONFIG = "Arm/vela.ini"  # resolved by vela inside its own config_files folder
DEFAULT_CONFIG = "internal-default"
ETHOS_U_OP = "CUSTOM:ethos-u"
# Vela's errors for bad names or files (argparse exits 2 for a bad choice).
_CONFIG_ERRORS = ("CliOptionError", "ConfigOptionError", "InputFileError", "error: argument")


@dataclass(frozen=True)
class VelaResult:
    """What Vela made of one model (see the module docstring for each source)."""

    optimised_tflite: bytes = field(repr=False)
    summary_csv: str = field(repr=False)
    npu_ops: int
    cpu_ops: int
    cpu_op_names: list[str]
    sram_bytes: int
    flash_bytes: int
    cycles: int
    macs: int
    command: list[str]
    log: str = field(repr=False)
    dram_bytes: int = 0
    summary: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def latency_ms(self, clock_mhz: float) -> float:
        """Return Vela's estimated NPU time of one inference.

        Args:
            clock_mhz: The NPU clock in MHz.

        Returns:
            `cycles / clock` in milliseconds.

        Raises:
            UsageError: `clock_mhz` is not a positive number.
        """
        if not isinstance(clock_mhz, (int, float)) or not clock_mhz > 0 or math.isinf(clock_mhz):
            raise UsageError(f"NPU clock must be a positive number of MHz, got {clock_mhz!r}")
        return self.cycles / (clock_mhz * 1e3)


def _find_vela() -> Path | None:
    """Return the `vela` next to this Python (same venv), else the one on PATH."""
    local = Path(sys.executable).with_name("vela")
    if local.is_file():
        return local
    found = shutil.which("vela")
    return Path(found) if found else None


def vela_available() -> bool:
    """Return whether the `vela` CLI can be found (venv of this Python or PATH)."""
    return _find_vela() is not None


def _config_args(system_config: str, memory_mode: str, config_file: Path | None) -> list[str]:
    if config_file is not None:
        path = Path(config_file).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"Vela config file not found: {path}")
        if path.suffix != ".ini":
            raise ConfigError(f"Vela config file must end in .ini: {path}")
        return ["--config", str(path)]
    if DEFAULT_CONFIG in (system_config, memory_mode):
        return []  # vela refuses --config with internal-default; it reads Arm/vela.ini itself
    return ["--config", SHIPPED_CONFIG]


def _kib_to_bytes(row: dict[str, str], *columns: str) -> int:
    return int(round(sum(_number(row, c) for c in columns) * 1024))


def _number(row: dict[str, str], column: str) -> float:
    """Return a numeric summary column; 0 for a missing, empty or nan cell."""
    try:
        value = float(row.get(column) or 0)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) else 0.0


def _parse_summary(text: str) -> dict[str, str]:
    rows = list(csv.DictReader(io.StringIO(text)))
    if len(rows) != 1:
        raise ConversionError(f"Vela's summary CSV has {len(rows)} data rows, expected 1")
    return {k.strip(): (v or "").strip() for k, v in rows[0].items() if k}


def _run(command: list[str], cwd: Path, timeout: float) -> str:
    """Run vela; return its combined output or raise with the tail of it."""
    code, log = run_tool(command, cwd=cwd, timeout=timeout, name="vela",
                         hint=f"; reinstall the pip package {PIP_PACKAGE}")
    if code < 0:
        raise ConversionError(f"vela crashed (signal {-code}); last output:\n{tail(log)}")
    if code != 0:
        if code == 2 or any(m in log for m in _CONFIG_ERRORS):
            lines = [ln for ln in log.splitlines() if "rror" in ln] or log.splitlines() or [""]
            reason = re.sub(r"^[\w.]*Error: |^vela: error: ", "", lines[-1].strip()).strip("'\"")
            raise ConfigError(f"vela rejected its configuration: {reason}")
        raise ConversionError(f"vela failed (exit code {code}); last output:\n{tail(log)}")
    return log


def _graph(data: bytes, problem: str) -> Graph:
    """Parse a model for Vela; an invalid one is a ConversionError saying `problem` (vela segfaults on garbage)."""
    try:
        return Graph.from_bytes(data)
    except ModelFileError as e:
        raise ConversionError(f"{problem}: {e}") from e


def _compile(tflite_bytes: bytes, command: list[str], timeout: float) -> tuple[bytes, str, str]:
    """Run `command` (vela on `model.tflite`, output in `out/`) in a temporary directory.

    Returns:
        The optimised model, Vela's summary CSV and its output.
    """
    with tempfile.TemporaryDirectory(prefix="edgex-vela-") as tmp:
        work = Path(tmp)
        (work / "model.tflite").write_bytes(tflite_bytes)
        log = _run(command, work, timeout)
        optimised_path = work / "out" / "model_vela.tflite"
        summaries = sorted((work / "out").glob("model_summary_*.csv"))
        if not optimised_path.is_file() or not summaries:
            raise ConversionError("vela exited 0 but wrote no optimised model or summary CSV; "
                                  f"last output:\n{tail(log)}")
        return optimised_path.read_bytes(), summaries[0].read_text(encoding="utf-8"), log


def compile_for_ethos_u(tflite_bytes: bytes, *, accelerator_config: str, system_config: str,
                        memory_mode: str, timeout: float = 300,
                        config_file: Path | None = None) -> VelaResult:
    """Compile a TFLite model with Vela and collect its placement and estimates.

    Args:
        tflite_bytes: The `.tflite` flatbuffer (int8/int16 for NPU placement).
        accelerator_config: Vela's NPU name, e.g. "ethos-u55-128", "ethos-u65-256".
        system_config: A `System_Config.<name>` section of the config file,
            e.g. "Ethos_U55_High_End_Embedded", or "internal-default".
        memory_mode: A `Memory_Mode.<name>` section, e.g. "Shared_Sram",
            or "internal-default".
        timeout: Seconds before vela is killed.
        config_file: A Vela `.ini` file; default: `Arm/vela.ini` shipped with
            the `ethos-u-vela` package.

    Returns:
        A `VelaResult` (the optimised model, Vela's summary and figures).

    Raises:
        ConversionError: vela is not installed, the bytes are not a TFLite
            model, or vela failed, crashed or timed out (with its last output).
        ConfigError: the config file is missing, or vela rejected a name
            (accelerator, system config or memory mode).
        UsageError: `timeout` is not positive.
    """
    if not isinstance(timeout, (int, float)) or not timeout > 0:
        raise UsageError(f"vela timeout must be a positive number of seconds, got {timeout!r}")
    vela = _find_vela()
    if vela is None:
        raise ConversionError(f"the Vela compiler is not installed: pip install {PIP_PACKAGE} "
                              f"(no 'vela' next to {sys.executable} nor on PATH)")
    source = _graph(tflite_bytes, "vela cannot compile this model")  # also guards vela's native reader
    command = [str(vela), "model.tflite", "--accelerator-config", accelerator_config,
               *_config_args(system_config, memory_mode, config_file),
               "--system-config", system_config, "--memory-mode", memory_mode,
               "--output-dir", "out", "--output-format", "tflite", "--show-cpu-operations"]
    optimised, summary_csv, log = _compile(bytes(tflite_bytes), command, timeout)
    row = _parse_summary(summary_csv)
    out_graph = _graph(optimised, "vela wrote an unreadable model")
    cpu_names = [op.name for op in out_graph.ops if op.name != ETHOS_U_OP]
    return VelaResult(
        optimised_tflite=optimised,
        summary_csv=summary_csv,
        npu_ops=max(len(source.ops) - len(cpu_names), 0),
        cpu_ops=len(cpu_names),
        cpu_op_names=cpu_names,
        sram_bytes=_kib_to_bytes(row, "sram_memory_used"),
        flash_bytes=_kib_to_bytes(row, "off_chip_flash_memory_used", "on_chip_flash_memory_used"),
        cycles=int(_number(row, "cycles_total")),
        macs=int(_number(row, "nn_macs")),
        command=["vela", *command[1:]],
        log=log,
        dram_bytes=_kib_to_bytes(row, "dram_memory_used"),
        summary=row,
    )


def cpu_operator_count(log: str) -> int | None:
    """Return N of the "CPU operators = N" line Vela prints, or None if absent."""
    m = re.search(r"^CPU operators = (\d+)", log, re.MULTILINE)
    return int(m.group(1)) if m else None
