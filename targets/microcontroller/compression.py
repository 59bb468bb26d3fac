"""TFLM weight compression of a microcontroller bundle, proved bit-exact on TFLM.

After conversion, for microcontroller profiles whose TFLM build has the DECODE op (`tflm_compression`
in the profile's `microcontroller:` section) and unless `compress=False` (`--no-compress`), every
constant tensor with few enough unique values per tensor or per channel is stored as b-bit indices plus a
value table (`compression_spec.choose`: the table mode follows the tensor's quantization), and the
compressed model is run against the uncompressed one on TFLM, sample by sample, in a child process
(`tflm_compress`): a tensor whose compression changes any output is dropped and reported. The bundle's
`mcu/` C array holds the compressed model; `model.tflite` stays the uncompressed model LiteRT runs.

Not for Ethos-U or the Edge TPU: Vela and edgetpu_compiler do not know the `TFLM_DECODE` custom op.

Samples: the eval data, else the calibration data, at most `MAX_SAMPLES`, quantized as the model's
inputs are (io_contract's formula); without either (a .tflite given alone), `RANDOM_SAMPLES` uniform
random inputs over each input dtype's range, seeded, which the report says.

Example:
    >>> from exporter.analysis.graph import Graph
    >>> result = compress_for_tflm(tiny_tflite, random_samples(Graph.from_bytes(tiny_tflite), 8))
    >>> result.total, [p.status for p in result.plans if p.status != "skipped"]   # nothing shrinks in tiny
    (8, [])
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from targets.microcontroller.compression_spec import TensorPlan

MAX_SAMPLES = 1000
RANDOM_SAMPLES = 64
NOT_FOR = ("Ethos-U (Vela) and the Edge TPU (edgetpu_compiler) are never compressed: their compilers do not "
           "know TFLM's DECODE op")


@dataclass(frozen=True)
class CompressionResult:
    """What compression did to one model.

    `tflite`: the model for the C array (compressed, or as converted); `attempted`: compression ran;
    `reason`: why it did not, or what it did; `plans`: one per constant tensor; `identical` of `total`
    samples gave bit-identical outputs on TFLM (None when not attempted); `samples`: which; `finding`:
    what went wrong in the child (then `tflite` is the model as converted).
    """

    tflite: bytes
    attempted: bool
    reason: str
    plans: list[TensorPlan] = field(default_factory=list)
    identical: int | None = None
    total: int | None = None
    samples: str = ""
    bytes_before: int = 0
    finding: str | None = None

    @property
    def compressed(self) -> bool:
        """At least one tensor is compressed in `tflite`."""
        return any(p.status == "compressed" for p in self.plans)

    def record(self) -> dict:
        """The report's and manifest's `compression` entry."""
        return {"attempted": self.attempted, "compressed": self.compressed, "reason": self.reason,
                "model_bytes": self.bytes_before, "model_bytes_compressed": len(self.tflite),
                "bit_exact": None if self.total is None else {"identical": self.identical, "total": self.total,
                                                              "on": f"TFLM interpreter on this host, {self.samples}"},
                "finding": self.finding, "tensors": [p.to_dict() for p in self.plans], "not_for": NOT_FOR}


def not_attempted(tflite: bytes, reason: str) -> CompressionResult:
    """The result when compression does not run (`reason` says why)."""
    return CompressionResult(bytes(tflite), False, reason, bytes_before=len(tflite))


def random_samples(graph, count: int = RANDOM_SAMPLES, seed: int = 0) -> list[np.ndarray]:
    """`count` uniform random samples per input (subgraph input order) over its dtype's range."""
    rng = np.random.default_rng(seed)
    out = []
    for t in graph.input_details():
        shape = (count, *[max(int(d), 1) for d in t.shape[1:]])
        if np.issubdtype(np.dtype(t.dtype), np.integer):
            info = np.iinfo(t.dtype)
            out.append(rng.integers(info.min, int(info.max) + 1, shape).astype(t.dtype))
        else:
            out.append(rng.standard_normal(shape).astype(t.dtype))
    return out


def proof_samples(artifacts, calib=None) -> tuple[list[np.ndarray], str]:
    """The samples to prove bit-exactness on, one array per input slot in the model's dtypes, and what they are.

    Args:
        artifacts: the export's Artifacts (its eval data, graph, .tflite and IO signature).
        calib: the calibration Dataset, used when there is no eval data.
    """
    from exporter.io_names import io_record

    data, role = (artifacts.eval_ds, "eval") if artifacts.eval_ds is not None else (calib, "calibration")
    if data is None:
        return random_samples(artifacts.graph), f"{RANDOM_SAMPLES} random inputs (no eval or calibration data)"
    n = min(len(data), MAX_SAMPLES)
    record = io_record(artifacts.tflite, artifacts.graph, artifacts.io)
    slots: list = [None] * len(record["inputs"])
    for x, entry in zip(data.inputs, record["inputs"]):
        dtype, scale = np.dtype(entry["dtype"]), entry.get("scale")
        rows = np.asarray(x[:n], dtype=np.float64)
        if np.issubdtype(dtype, np.integer) and scale:
            info = np.iinfo(dtype)
            rows = np.clip(np.round(rows / scale + entry["zero_point"]), info.min, info.max)
        slots[entry["slot"]] = rows.astype(dtype)
    of = f" (the first {n:,} of {len(data):,})" if n < len(data) else ""
    return slots, f"{n:,} {role} samples{of}"


def compress_for_tflm(tflite: bytes, samples: list[np.ndarray], *, description: str = "",
                      plans: list[TensorPlan] | None = None, timeout: float = 900) -> CompressionResult:
    """Compress a model for TFLM and prove it bit-exact on `samples`, in a child process.

    Args:
        tflite: the converted int8 model.
        samples: one array per input slot, batch first, in the inputs' dtypes.
        description: what the samples are, for the report.
        plans: the specs to use instead of `compression_spec.choose`'s (tests force a wrong one with it).
        timeout: seconds the child may take.

    Returns:
        A `CompressionResult`; a child that fails or crashes gives the model uncompressed with a `finding`.
    """
    from targets.microcontroller.child import run_child

    with tempfile.TemporaryDirectory(prefix="edgex-lut-") as tmp:
        paths = {k: str(Path(tmp) / k) for k in ("model.tflite", "samples.npz", "out.tflite", "plans.json")}
        Path(paths["model.tflite"]).write_bytes(tflite)
        np.savez(paths["samples.npz"], **{f"slot{i}": x for i, x in enumerate(samples)})
        args = [paths["model.tflite"], paths["samples.npz"], paths["out.tflite"]]
        if plans is not None:
            Path(paths["plans.json"]).write_text(json.dumps([p.to_dict() for p in plans]), encoding="utf-8")
            args.append(paths["plans.json"])
        run = run_child("targets.microcontroller.tflm_compress", args, timeout)
        res = run.result or {}
        out = Path(paths["out.tflite"]).read_bytes() if res.get("compressed") else bytes(tflite)
    if run.returncode != 0 or not res.get("ok"):
        said = res.get("error") or (run.stderr.strip().splitlines() or ["no output"])[-1]
        how = "was stopped at the time-out" if run.returncode is None else f"exited with code {run.returncode}"
        finding = f"TFLM weight compression failed while {res.get('stage', run.stage)} ({how}): {said}"
        return CompressionResult(bytes(tflite), True, "not compressed: " + finding, samples=description,
                                 bytes_before=len(tflite), finding=finding)
    done = [TensorPlan.from_dict(d) for d in res["plans"]]
    count = sum(p.status == "compressed" for p in done)
    reason = (f"{count} of {len(done)} constant tensors compressed" if count
              else "no tensor compressed: none has few enough unique values to shrink")
    return CompressionResult(out, True, reason, done, res["identical"], res["total"], description, len(tflite))


def compression_table(record: dict) -> tuple[list[str], list[list]]:
    """The per-tensor table of a `record()`: (headers, rows)."""
    rows = [[t["name"], "x".join(map(str, t["shape"])) or "scalar", t["dtype"], t["quantization"],
             f"{t['uniques']} / {t['uniques_per_channel'] if t['uniques_per_channel'] is not None else '-'}",
             t["bits"] if t["bits"] is not None else "-", t["table"] or "-", f"{t['bytes_before']:,}",
             f"{t['bytes_after']:,}" if t["bytes_after"] is not None else "-",
             t["status"] + (f": {t['reason']}" if t["reason"] else "")] for t in record["tensors"]]
    return ["tensor", "shape", "dtype", "quantization", "unique (tensor / max per channel)", "bits", "table",
            "bytes before", "bytes after", "status"], rows


def compression_lines(record: dict, table) -> list:
    """The report's lines on a `record()`: outcome, model bytes, the proof, then `table(headers, rows)`'s output.

    Args:
        record: a `CompressionResult.record()`.
        table: renders (headers, rows) into a list (markdown lines, or one HTML table).
    """
    bit = record["bit_exact"]
    lines = [f"- {record['reason']}",
             f"- model bytes: {record['model_bytes']:,} B as converted (model.tflite), "
             f"{record['model_bytes_compressed']:,} B in mcu/model_data.cc"]
    if bit:
        lines.append(f"- bit-exact: {bit['identical']:,} of {bit['total']:,} samples gave identical outputs, "
                     f"compressed against uncompressed ({bit['on']})")
    lines += [f"- {record['not_for']}", ""]
    return lines + (table(*compression_table(record)) if record["tensors"] else [])
