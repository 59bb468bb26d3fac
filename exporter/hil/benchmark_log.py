r"""Reading what LiteRT's `benchmark_model` printed: latency, init time, memory and the per-op table.

The format is the tool's own (google-ai-edge/LiteRT, tflite/tools/benchmark/benchmark_model.cc:
`BenchmarkLoggingListener::OnBenchmarkEnd` and `BenchmarkModel::Run`; tflite/tools/logging.h for the
`INFO: ` prefix; the op tables from xla/tsl/util/stats_calculator.cc, used through
tflite/profiling/profile_summary_formatter.cc; see tests/hil/fixtures/benchmark_model/README.md):

    INFO: count=50 first=2881 curr=2703 min=2605 max=20356 avg=2942.27 std=1190 p5=2647 median=2781 p95=3169
    INFO: Inference timings in us: Init: 6395, First inference: 2761, Warmup (avg): 3243.58, Inference (avg): 2942.27
    INFO: Memory footprint delta from the start of the tool (MB): init=39.4531 overall=40.8281
    INFO: Operator-wise Profiling Info for Regular Benchmark Runs:
    ============================== Run Order ==============================
    \t[node type]\t[first]\t[avg ms]\t[%]\t[cdf%]\t[mem KB]\t[times called]\t[Name]
    \tCONV_2D\t0.416\t0.421\t12.345%\t12.345%\t0.000\t1\t[conv2d/Relu]:0

Timings are microseconds (the regular runs' statistics are the last `count=` line before the
"Inference timings" line); memory is in MB of 1024 KB of max RSS (`ru_maxrss` on Linux and
Android, tflite/profiling/memory_info.cc), so `overall` is the growth of the tool's peak resident
memory from its start: the model's own cost, the tool itself left out. The output comes from a
device, so every figure is validated (exporter/hil/result.py) and missing essentials are a DeviceError.

Example:
    >>> text = '''INFO: Num threads: [4]
    ... INFO: count=3 first=1210 curr=1190 min=1190 max=1210 avg=1200 std=8 p5=1190 median=1200 p95=1210
    ... INFO: Inference timings in us: Init: 5210, First inference: 1300, Warmup (avg): 1300, Inference (avg): 1200
    ... INFO: Memory footprint delta from the start of the tool (MB): init=1.5 overall=2.25'''
    >>> answer = parse_benchmark_output(text, threads=4, delegate="xnnpack", model_sha256="ab" * 32)
    >>> answer["latency_ms"]["p50"], answer["init_ms"], answer["model_memory_bytes"], answer["threads"]
    (1.2, 5.21, 2359296, 4)
"""
from __future__ import annotations

import math
import re

from exporter.errors import DeviceError

RUNTIME = "LiteRT benchmark_model"
MAX_OPS = 2000                      # rows of the op table kept (a run's answer must stay well under 1 MiB)
_PREFIX = r"^(?:INFO:\s*|.*\bI/tflite\s*\(\s*\d+\):\s*)?"          # stdout, or the same line from logcat
_STATS = re.compile(_PREFIX + r"count=(\d+)(.*)$")
_PAIR = re.compile(r"(\w+)=([-+0-9.eE]+|nan|inf)")
_TIMINGS = re.compile(r"Inference timings in us: Init: ([-+0-9.eE]+)")
_SESSION = re.compile(r"Initialized session in ([-+0-9.eE]+)ms")
_MEMORY = re.compile(r"Memory footprint delta from the start of the tool \(MB\): init=(\S+) overall=(\S+)")
_PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring: (\S+)")
_THREADS = re.compile(r"(?:#threads used for CPU inference|Num threads): \[(-?\d+)\]")
_USES = re.compile(r"INFO: Use (xnnpack|gpu|NNAPI): \[([01])\]")    # the delegate providers' own log lines
_DELEGATES = {("gpu", "1"): "gpu", ("NNAPI", "1"): "nnapi", ("xnnpack", "1"): "xnnpack", ("xnnpack", "0"): "cpu"}
_APPLIED = re.compile(r"(Explicitly applied \S+ delegate.*|Though \S+ delegate is explicitly applied.*)$")
_OPS_HEADER = "Operator-wise Profiling Info for Regular Benchmark Runs:"
_COLUMNS = {"[node type]": "node_type", "[first]": "first_ms", "[avg ms]": "avg_ms", "[%]": "percent",
            "[cdf%]": "cdf_percent", "[mem KB]": "mem_kb", "[times called]": "times_called", "[Name]": "name"}


def _number(text: str) -> float | None:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _regular_run(lines: list[str]) -> dict[str, float]:
    """The statistics (µs) of the timed runs: the last `count=` line before "Inference timings"."""
    end = next((i for i, line in enumerate(lines) if _TIMINGS.search(line)), None)
    if end is None:
        raise DeviceError(_failure(lines, "it printed no 'Inference timings' line: the benchmark did not finish"))
    found = [m for m in map(_STATS.match, lines[:end]) if m]
    if not found:
        raise DeviceError(_failure(lines, "it printed no statistics of its timed runs (count=...)"))
    stats = {key: _number(value) for key, value in _PAIR.findall(found[-1].group(2))}
    stats["count"] = float(found[-1].group(1))
    if stats.get("median") is None:
        raise DeviceError("benchmark_model printed no median of its runs (p5=... median=... p95=...); use a "
                          "LiteRT benchmark_model from 2021 or later (the nightly prebuilt binary prints it)")
    return stats


def _latency(stats: dict[str, float]) -> dict:
    """LatencyStats (ms) from the run statistics; a run whose times were all equal prints `curr` only."""
    ms = {key: stats[key] / 1000 for key in ("median", "avg", "curr", "p5", "p95", "min", "max", "std")
          if stats.get(key) is not None}
    mean = ms.get("avg", ms.get("curr", ms["median"]))
    return {"p50": ms["median"], "mean": mean, "runs": int(stats["count"]), "p5": ms.get("p5"),
            "p95": ms.get("p95"), "min": ms.get("min", mean), "max": ms.get("max", mean), "std": ms.get("std", 0.0)}


def _op_row(cells: list[str], columns: list[str]) -> dict | None:
    """One op-table row keyed like OpTiming (None when it does not have the header's cells)."""
    if len(cells) != len(columns):
        return None
    row = {_COLUMNS[c]: cell for c, cell in zip(columns, cells) if c in _COLUMNS}
    for key in ("first_ms", "avg_ms", "percent", "cdf_percent", "mem_kb", "times_called"):
        row[key] = _number(row.get(key, ""))
        if row[key] is None:
            return None
    row["times_called"] = int(row["times_called"])
    return row


def _cells(line: str) -> list[str]:
    """A table line's cells: tab-separated as printed (runs of spaces where tabs were copied as spaces)."""
    parts = line.split("\t") if "\t" in line else re.split(r"\s{2,}", line)
    return [part.strip() for part in parts if part.strip()]


def parse_ops(lines: list[str]) -> list[dict]:
    """The "Run Order" table of the regular runs' op profile (primary graph), at most MAX_OPS rows."""
    start = next((i for i, line in enumerate(lines) if _OPS_HEADER in line), None)
    if start is None:
        return []
    header = next((i for i in range(start + 1, len(lines)) if "[node type]" in lines[i]), None)
    if header is None:
        return []
    columns, rows = _cells(lines[header]), []
    for line in lines[header + 1:]:
        row = _op_row(_cells(line), columns) if line.strip() else None
        if row is None or len(rows) >= MAX_OPS:
            break
        rows.append(row)
    return rows


def _failure(lines: list[str], what: str) -> str:
    """A message naming what is missing and the tool's own ERROR lines (or its last lines)."""
    errors = [line.strip() for line in lines if line.startswith(("ERROR:", "FATAL:"))][-3:]
    tail = errors or [line.strip() for line in lines if line.strip()][-3:]
    return f"benchmark_model's output cannot be used: {what}" + (f" ({' | '.join(tail)[:600]})" if tail else "")


def _applied(lines: list[str]) -> list[str]:
    return [m.group(1)[:300] for m in map(_APPLIED.search, lines) if m][:8]


def _delegate(lines: list[str], asked: str) -> str:
    """The delegate the tool's log says it used (a GPU or NNAPI line wins over XNNPACK's); else `asked`."""
    used = [_DELEGATES.get(m.groups()) for m in map(_USES.search, lines) if m]
    return next((d for d in ("gpu", "nnapi") if d in used), None) or next((d for d in used if d), asked)


def parse_benchmark_output(text: str, *, threads: int, delegate: str, model_sha256: str,
                           runtime_version: str = "unknown") -> dict:
    """An agent answer (exporter/hil/result.py, protocol 1) from benchmark_model's stdout.

    Args:
        text: what the tool printed (stdout; ERROR lines from stderr may be appended).
        threads: the thread count asked for (`--num_threads`); the tool's own log line wins when printed.
        delegate: the delegate asked for (cpu, xnnpack, gpu, nnapi); its `Use ...: [1]` lines win when printed.
        model_sha256: the sha256 of the model pushed (checked on the device by the transport).
        runtime_version: what identifies the binary (e.g. its sha256), default "unknown".

    Returns:
        A dict for `parse_agent_output`: latency (ms, with p5/p95/min/max/std), `init_ms`, the model's
        own memory (`footprint_delta`), `threads`, `delegate` and the per-op table `ops`.

    Raises:
        DeviceError: the run did not finish, or its statistics have no median.
    """
    lines = text.replace("\r\n", "\n").splitlines()
    stats = _regular_run(lines)
    answer = {"protocol": 1, "ok": True, "runtime": RUNTIME, "runtime_version": runtime_version[:100],
              "model_sha256": model_sha256, "latency_ms": _latency(stats), "threads": threads,
              "delegate": _delegate(lines, delegate),
              "ops": parse_ops(lines), "device": {"delegate_log": _applied(lines)}}
    for line in lines:
        if (m := _THREADS.search(line)) and int(m.group(1)) > 0:
            answer["threads"] = int(m.group(1))
        if (m := _TIMINGS.search(line)) or (m := _SESSION.search(line)):
            init = _number(m.group(1))
            if init is not None and "init_ms" not in answer:
                answer["init_ms"] = init / 1000 if m.re is _TIMINGS else init
        if (m := _MEMORY.search(line)) and _number(m.group(2)) is not None:
            answer["model_memory_bytes"] = round(max(0.0, _number(m.group(2))) * 1024 * 1024)
            answer["memory_kind"] = "footprint_delta"
        if (m := _PEAK.search(line)) and (_number(m.group(1)) or 0) > 0:
            answer["peak_rss_bytes"] = round(_number(m.group(1)) * 1024 * 1024)
    return answer
