"""The export report: what was done, every figure with its source, and the checks.

Rendered as JSON (`--json`), Markdown (`report.md` in the bundle) and a rich
table on the terminal.

Example:
    >>> report.status, [c.name for c in report.failed_checks()]     # the demo exported for android
    ('pass', [])
    >>> print(report.to_markdown().splitlines()[0])
    # edgex export report: PASS
    >>> report.to_dict()["measurements"]["model_size"]["source"]
    'measured'
"""
from __future__ import annotations

from dataclasses import dataclass, field

from exporter.checks import Check, Measurement
from exporter.analysis.unique_values import HEADERS as WEIGHT_HEADERS
from exporter.analysis.unique_values import NOTE as WEIGHT_VALUES_NOTE
from exporter.analysis.unique_values import TITLE as WEIGHT_VALUES_TITLE
from exporter.analysis.unique_values import table_rows as weight_cells
from exporter.config_text import config_inline, config_lines
from exporter.sizes import SIZE_HEADERS, size_record, size_rows
from exporter.units import format_value


@dataclass
class Report:
    """The outcome of one export."""

    model: str
    target: str
    profile: str
    device: str
    mode: str
    io_dtype: str
    measurements: dict[str, Measurement]
    checks: list[Check]
    graph: dict
    bundle: str | None = None
    notes: list[str] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    created: str = ""
    stages: list[dict] = field(default_factory=list)
    recipe: dict = field(default_factory=dict)
    data: list[dict] = field(default_factory=list)          # each data set's range (exporter/data_summary.py)
    warnings: list[str] = field(default_factory=list)
    preprocessing: dict | None = None                        # what made image folders into inputs; None: arrays
    bridge: dict | None = None                               # a Keras 3 model bridged into tf_keras (exporter/keras3/)
    io: dict | None = None                                   # every input and output by name (exporter/io_names.py)
    metadata: dict | None = None                             # the model's TFLite metadata (exporter/tflite_metadata/)
    bundle_samples: dict | None = None                       # eval samples for device runs (exporter/bundle_samples.py)
    compression: dict | None = None                          # TFLM weight compression (targets/microcontroller/compression.py)
    sparse_encoding: dict | None = None                      # TFLite sparse weights, android/linux (exporter/sparse/)

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return all(c.status != "fail" for c in self.checks)

    @property
    def status(self) -> str:
        return "pass" if self.passed else "fail"

    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def to_dict(self) -> dict:
        return {
            "status": self.status, "model": self.model, "target": self.target, "profile": self.profile,
            "device": self.device, "mode": self.mode, "io_dtype": self.io_dtype, "bundle": self.bundle,
            "checks": [c.to_dict() for c in self.checks],
            "measurements": {k: m.to_dict() for k, m in self.measurements.items()},
            "graph": self.graph, "notes": self.notes, "versions": self.versions, "created": self.created,
            "recipe": self.recipe, "stages": self.stages, "data": self.data, "warnings": self.warnings,
            "preprocessing": self.preprocessing, "bridge": self.bridge, "io": self.io,
            "bundle_samples": self.bundle_samples, "metadata": self.metadata,
            "sizes": size_record(self.measurements), "weight_values": self.weight_values,
            "compression": self.compression, "sparse_encoding": self.sparse_encoding,
        }

    @property
    def weight_values(self) -> list[dict] | None:
        """Unique values per kernel before and after conversion (the last stage's), None without stages."""
        return self.stages[-1].get("weight_values") if self.stages else None

    def to_markdown(self) -> str:
        lines = [
            f"# edgex export report: {self.status.upper()}", "",
            f"- model: `{self.model}`",
            f"- target: {self.target}, profile `{self.profile}` ({self.device})",
            f"- conversion: {self.mode}, I/O {self.io_dtype}, batch 1",
            f"- created: {self.created}", "",
            *[f"**Warning:** {w}\n" for w in self.warnings],
            "## Checks against the profile's limits", "",
            "| limit | status | value | limit | headroom | source | on |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in self.checks:
            head = "" if c.headroom is None else format_value(c.headroom, c.unit)
            value = c.note if c.status == "skip" else format_value(c.value, c.unit)
            lines.append(f"| {c.name} | {c.status} | {value} | {format_value(c.limit, c.unit)} | {head} "
                         f"| {c.source} | {c.on} |")
        hints = [f"- {c.name} failed: {c.hint}" for c in self.checks if c.hint]
        lines += ["", *hints] if hints else []
        lines += ["", "## Figures", "", "| figure | value | source | on | note |", "|---|---|---|---|---|"]
        for m in self.measurements.values():
            lines.append(f"| {m.name} | {format_value(m.value, m.unit)} | {m.source} | {m.on} | {m.note} |")
        lines += ["", "## Sizes: stored, downloaded, in RAM", ""] + _md_table(SIZE_HEADERS, size_rows(self.measurements))
        lines += ["", "## Graph (estimated from the .tflite flatbuffer)", "",
                  f"- ops: {len(self.graph.get('ops', []))}, MACs: {self.graph.get('total_macs', 0):,}",
                  f"- peak activation memory (tensor liveness): {format_value(self.graph.get('peak_activation_bytes'), 'bytes')}",
                  f"- weights: {format_value(self.graph.get('weight_bytes'), 'bytes')}",
                  *[f"- input `{t['name']}` has dynamic dims (shape signature {t['shape_signature']}): measured at "
                    f"{t['shape']} (manifest.json `input_shapes`)" for t in self.graph.get("inputs", [])
                    if min(t.get("shape_signature") or [0]) < 0], "",
                  "### Inputs and outputs", ""]
        lines += _md_table(*self.io_table()) + self.io_note() + ["", "### Ops", ""] + _md_table(*self.op_table())
        lines += self._data_lines() + self._stage_lines()
        lines += self._compression_lines() + self._sparse_lines()
        if self.skipped_table()[1]:
            lines += ["", "## Layers the stages left alone", ""] + _md_table(*self.skipped_table())
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def io_table(self) -> tuple[list[str], list[list]]:
        """Every input and output as (headers, rows): kind, name, tensor, shape, dtype, scale, zero point and
        q range (exporter/io_contract.py), in the model's order.

        The name is the one data and apps use (the .tflite signature's: exporter/io_names.py); the output
        the labels are for is marked "output (labels)" when the model has several.
        """
        from exporter.io_contract import contract_cells

        if not self.io:      # a report from before names were recorded
            rows = [[kind, t["name"], "x".join(map(str, t["shape"])), t["dtype"]]
                    for kind in ("input", "output") for t in self.graph.get(f"{kind}s", [])]
            return ["I/O", "tensor", "shape", "dtype"], rows
        several = len(self.io["outputs"]) > 1
        rows = [[f"{kind} (labels)" if several and kind == "output" and t["name"] == self.io["label_output"] else kind,
                 t["name"], t["tensor"], "x".join(map(str, t["shape"])), t["dtype"], *contract_cells(t)]
                for kind in ("input", "output") for t in self.io[f"{kind}s"]]
        return ["I/O", "name", "tensor", "shape", "dtype", "scale", "zero point", "q range"], rows

    def io_note(self) -> list[str]:
        """The formulas under the I/O table, when an input or output is quantized."""
        from exporter.io_contract import FORMULA_NOTE

        quantized = self.io and any(t.get("scale") is not None for k in ("inputs", "outputs") for t in self.io[k])
        return ["", FORMULA_NOTE + "; manifest.json `io` holds every figure."] if quantized else []

    def op_table(self) -> tuple[list[str], list[list]]:
        """The graph's ops as (headers, rows): index, op, compute dtype, MACs, first output shape."""
        rows = [[op["index"], op["name"], op["compute_dtype"], f"{op['macs']:,}",
                 "x".join(str(d) for d in (op.get("output_shapes") or [[]])[0])] for op in self.graph.get("ops", [])]
        return ["#", "op", "compute", "MACs", "output shape"], rows

    def skipped_table(self) -> tuple[list[str], list[list]]:
        """Every layer a stage left alone as (headers, rows): stage, layer, class, reason."""
        rows = [[s["stage"], k["layer"], k["class"], k.get("reason", "")]
                for s in self.stages for k in s.get("skipped", [])]
        return ["stage", "layer", "class", "reason"], rows

    def _compression_lines(self) -> list[str]:
        """What TFLM weight compression did: its outcome, the bit-exactness proof and the per-tensor table."""
        if not self.compression:
            return []
        from targets.microcontroller.compression import compression_lines

        return ["", "## Weight compression (TFLM)", ""] + compression_lines(self.compression, _md_table)

    def _sparse_lines(self) -> list[str]:
        """The sparse encoding: setting and reason, bytes and host latency with and without, XNNPACK, tensors."""
        from exporter.sparse.figures import report_lines

        lines = report_lines(self.sparse_encoding, self.measurements, _md_table)
        return ["", "## Sparse encoding", "", *lines] if lines else []

    def _data_lines(self) -> list[str]:
        """The data sets' ranges and the preprocessing of image folders."""
        if not self.data:
            return []
        rows = [[d["role"], d["origin"], f"{d['samples']:,}", "yes" if d["labelled"] else "no", f"{d['min']:.4g}",
                 f"{d['max']:.4g}", f"{d['mean']:.4g}"] for d in self.data]
        lines = ["", "## Data", ""] + _md_table(["data", "from", "samples", "labels", "min", "max", "mean"], rows)
        pre = self.preprocessing
        if pre:
            norm = pre["normalize"]
            lines += ["", f"Image folders ({', '.join(a['role'] for a in pre['applies_to'])}): {pre['color']}, "
                          f"resized to {'x'.join(map(str, pre['resize']['size']))} ({pre['resize']['library']} "
                          f"{pre['resize']['method']}), normalized '{norm['mode']}': {norm['formula']}, mean "
                          f"{norm['mean']}, std {norm['std']} (manifest.json `preprocessing`)"]
        return lines

    def _stage_lines(self) -> list[str]:
        if not self.stages:
            return []
        pct = lambda v: "n/a" if v is None else f"{v:.2f} %"  # noqa: E731
        threads = self.stages[0].get("threads") or {}          # records from before threads were recorded: none
        on = "" if not threads else (f"; est. latency at {threads['est_latency_ms']} thread(s), host latency LiteRT "
                                     f"at {threads['host_latency_ms']} thread(s)")
        lines = ["", f"## Stages (each converted as {self.mode}; measured on this machine, latency estimated{on})", "",
                 "| stage | params | non-zero | unique values | Keras acc | .tflite acc | stored (model_size) "
                 "| downloaded (gzip_size) "
                 "| est. latency | host latency | time |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in self.stages:
            lines.append(f"| {r['stage']} | {r['params']:,} | {r['nonzero']:,} | {r['unique']:,} "
                         f"| {pct(r['keras_accuracy'])} | {pct(r['tflite_accuracy'])} "
                         f"| {format_value(r['model_size'], 'bytes')} | {format_value(r['gzip_size'], 'bytes')} "
                         f"| {format_value(r['est_latency_ms'], 'ms')} | {format_value(r['host_latency_ms'], 'ms')} "
                         f"| {r['seconds']:.1f} s |")
        if self.weight_values:
            lines += ["", f"### {WEIGHT_VALUES_TITLE} (after {self.stages[-1]['stage']})", "",
                      WEIGHT_VALUES_NOTE, ""] + _md_table(WEIGHT_HEADERS, weight_cells(self.weight_values))
        for r in self.stages:
            if r["metrics"]:
                lines.append(f"- {r['stage']}: {config_inline(r['metrics'])}")
        configs = [r for r in self.stages if r.get("config")]
        if configs:
            lines += ["", "### Stage configs", ""]
            for r in configs:
                lines += [f"{r['stage']}:", "", "```yaml", *config_lines(r["config"]), "```", ""]
            lines.pop()
        return lines


def _md_table(headers, rows) -> list[str]:
    """Markdown table lines; `|` inside a cell is escaped."""
    cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    return (["| " + " | ".join(map(cell, headers)) + " |", "|" + "---|" * len(headers)]
            + ["| " + " | ".join(map(cell, row)) + " |" for row in rows])
