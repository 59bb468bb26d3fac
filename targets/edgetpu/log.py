"""Parse what edgetpu_compiler prints: its summary and the per-operator table.

The format is that of Edge TPU Compiler 16.0 (the example output on Coral's "Edge TPU
Compiler" page, https://coral.ai/docs/edgetpu/compiler/, and what `edgetpu_compiler -s`
prints). The summary lines read:

    Edge TPU Compiler version 16.0.384591198
    Model compiled successfully in 1524 ms.
    Input model: model.tflite
    Output model: model_edgetpu.tflite
    On-chip memory used for caching model parameters: 4.21MiB
    On-chip memory remaining for caching model parameters: 3.29MiB
    Off-chip memory used for streaming uncached model parameters: 0.00B
    Number of Edge TPU subgraphs: 1
    Total number of operations: 267
    Number of operations that will run on Edge TPU: 264   (only when some ops stay on the CPU)
    Number of operations that will run on CPU: 3

and the operator table (printed with `-s`, and written to `<model>_edgetpu.log`):

    Operator                       Count      Status

    CONV_2D                        11         Mapped to Edge TPU
    LEAKY_RELU                     1          Operation not supported
    CONV_2D                        2          More than one subgraph is not supported

A row whose status is "Mapped to Edge TPU" runs on the TPU; every other status means the
CPU. Sizes ("4.21MiB", "80.00KiB", "0.00B") become bytes with binary prefixes.

Example:
    >>> from pathlib import Path
    >>> _ = Path("compile.log").write_text('''Edge TPU Compiler version 16.0.384591198
    ... Model compiled successfully in 1524 ms.
    ... On-chip memory used for caching model parameters: 4.21MiB
    ... Off-chip memory used for streaming uncached model parameters: 0.00B
    ... Number of operations that will run on Edge TPU: 264
    ... Number of operations that will run on CPU: 3
    ...
    ... Operator                       Count      Status
    ...
    ... CONV_2D                        262        Mapped to Edge TPU
    ... MEAN                           2          Mapped to Edge TPU
    ... LEAKY_RELU                     1          Operation not supported
    ... CONV_2D                        2          More than one subgraph is not supported
    ... ''')
    >>> log = parse_compiler_log(Path("compile.log").read_text())
    >>> log.compiler_version, log.tpu_ops, log.cpu_ops, log.on_chip_bytes, log.off_chip_bytes
    ('16.0.384591198', 264, 3, 4414505, 0)
    >>> [row.name for row in log.cpu_rows()]
    ['LEAKY_RELU', 'CONV_2D']
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

MAPPED = "Mapped to Edge TPU"
_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMG]i?B|B)\s*$", re.IGNORECASE)
_VERSION = re.compile(r"Edge TPU Compiler version\s+(\S+)")
_HEADER = re.compile(r"^\s*Operator\s+Count\s+Status\s*$")
_ROW = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_:\-]*)\s+(\d+)\s+(\S.*?)\s*$")
_KEYS = {
    "Input model": "input_model", "Input": "input_model", "Output model": "output_model", "Output": "output_model",
    "On-chip memory used for caching model parameters": "on_chip_bytes",
    "On-chip memory remaining for caching model parameters": "on_chip_remaining_bytes",
    "On-chip memory available for caching model parameters": "on_chip_available_bytes",
    "Off-chip memory used for streaming uncached model parameters": "off_chip_bytes",
    "Number of Edge TPU subgraphs": "edgetpu_subgraphs",
    "Total number of operations": "total_ops",
    "Number of operations that will run on Edge TPU": "reported_tpu_ops",
    "Number of operations that will run on CPU": "reported_cpu_ops",
}
_SIZES = {"on_chip_bytes", "on_chip_remaining_bytes", "on_chip_available_bytes", "off_chip_bytes"}


def parse_size(text: str) -> int:
    """Turn a compiler size ("4.21MiB", "80.00KiB", "0.00B") into bytes.

    Raises:
        ValueError: not a number with a B, KiB/MiB/GiB or KB/MB/GB unit.
    """
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a compiler size: {text!r}")
    return int(round(float(match.group(1)) * _UNITS[match.group(2).lower()]))


@dataclass(frozen=True)
class OperatorRow:
    """One row of the compiler's operator table."""

    name: str
    count: int
    status: str

    @property
    def mapped(self) -> bool:
        return self.status.strip() == MAPPED


@dataclass(frozen=True)
class CompilerLog:
    """What one compiler run said (None where the log does not say it)."""

    compiler_version: str | None = None
    succeeded: bool | None = None
    compile_ms: float | None = None
    input_model: str | None = None
    output_model: str | None = None
    on_chip_bytes: int | None = None
    on_chip_remaining_bytes: int | None = None
    on_chip_available_bytes: int | None = None
    off_chip_bytes: int | None = None
    edgetpu_subgraphs: int | None = None
    total_ops: int | None = None
    reported_tpu_ops: int | None = None
    reported_cpu_ops: int | None = None
    operators: tuple[OperatorRow, ...] = ()
    errors: tuple[str, ...] = field(default=())

    @property
    def tpu_ops(self) -> int | None:
        """Ops on the TPU: the table's mapped rows, else the printed count, else all when nothing says CPU."""
        if self.operators:
            return sum(r.count for r in self.operators if r.mapped)
        if self.reported_tpu_ops is not None:
            return self.reported_tpu_ops
        if self.total_ops is not None and self.succeeded and self.reported_cpu_ops is None:
            return self.total_ops
        return None

    @property
    def cpu_ops(self) -> int | None:
        """Ops left to the CPU (the table's other rows, else the printed count)."""
        if self.operators:
            return sum(r.count for r in self.operators if not r.mapped)
        if self.reported_cpu_ops is not None:
            return self.reported_cpu_ops
        tpu = self.tpu_ops
        return None if tpu is None or self.total_ops is None else self.total_ops - tpu

    def cpu_rows(self) -> list[OperatorRow]:
        """The table's rows that stay on the CPU, in log order."""
        return [r for r in self.operators if not r.mapped]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["operators"] = [asdict(r) | {"mapped": r.mapped} for r in self.operators]
        data["errors"] = list(self.errors)
        data["tpu_ops"], data["cpu_ops"] = self.tpu_ops, self.cpu_ops
        return data


def parse_compiler_log(text: str) -> CompilerLog:
    """Parse edgetpu_compiler output (stdout with `-s`, or its `_edgetpu.log`).

    Args:
        text: the log text.

    Returns:
        A `CompilerLog`; fields the text does not carry stay None (the op table empty).
    """
    values: dict = {}
    rows: list[OperatorRow] = []
    errors: list[str] = []
    in_table = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if _HEADER.match(line):
            in_table = True
            continue
        match = _VERSION.search(line)
        if match:
            values["compiler_version"] = match.group(1)
            continue
        if line.startswith("ERROR") or line.startswith("Compilation failed") or "Invalid model" in line:
            errors.append(line)
        if line.startswith("Compilation failed") or line == "Compilation failed!":
            values["succeeded"] = False
        elif line.startswith("Compilation succeeded") or line.startswith("Model compiled successfully") \
                or line.startswith("INFO: Model compiled successfully"):
            values.setdefault("succeeded", True)
            ms = re.search(r"in\s+([0-9.]+)\s*ms", line)
            if ms:
                values["compile_ms"] = float(ms.group(1))
        key, sep, value = line.partition(":")
        if sep and key.strip() in _KEYS:
            name, value = _KEYS[key.strip()], value.strip()
            try:
                values[name] = parse_size(value) if name in _SIZES else (
                    int(value) if name.endswith(("ops", "subgraphs")) else value)
            except ValueError:
                pass
            in_table = False
            continue
        if in_table:
            row = _ROW.match(line)
            if row:
                rows.append(OperatorRow(row.group(1), int(row.group(2)), row.group(3)))
            else:
                in_table = False
    return CompilerLog(**values, operators=tuple(rows), errors=tuple(errors))
