"""`report.html`: a self-contained page (tables and matplotlib charts embedded as PNG).

Charts (when the recipe has stages): size (stored and downloaded), accuracy (Keras and
.tflite) and latency (estimated on the device, measured on this host) across the
stages, and the per-layer sparsity of the weights that ship.

Example:
    >>> page = render_html(report)                       # the demo exported for android
    >>> page.startswith("<!doctype html>"), "data:image/png" in page    # no stages ran: no charts
    (True, False)
    >>> _ = Path("report.html").write_text(page, encoding="utf-8")
"""
from __future__ import annotations

import base64
import html
import io

from exporter.analysis import unique_values as uv
from exporter.sizes import SIZE_HEADERS, size_rows
from exporter.units import format_value


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _bars(plt, title, labels, series: dict, unit: str) -> str:
    fig, ax = plt.subplots(figsize=(6, 3))
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        xs = [j + i * width for j in range(len(labels))]
        ax.bar(xs, [0 if v is None else v for v in values], width, label=name)
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(labels))], labels, rotation=20)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.legend(fontsize=8)
    data = _png(fig)
    plt.close(fig)
    return data


def charts(report) -> dict[str, str]:
    """Base64 PNGs keyed by chart title, for a report with stages."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.stages
    labels = [r["stage"] for r in rows]
    kib = lambda key: [None if r.get(key) is None else r[key] / 1024 for r in rows]  # noqa: E731
    out = {
        "Size across stages (measured)": _bars(plt, "size", labels,
                                               {"stored (model_size)": kib("model_size"),
                                                "downloaded (gzip_size)": kib("gzip_size")}, "KiB"),
        "Accuracy across stages (measured)": _bars(plt, "top-1 accuracy", labels,
                                                   {"Keras": [r.get("keras_accuracy") for r in rows],
                                                    ".tflite": [r.get("tflite_accuracy") for r in rows]}, "%"),
        "Latency across stages": _bars(plt, "latency", labels,
                                       {f"device (estimated, {report.profile})": [r.get("est_latency_ms") for r in rows],
                                        "this host (measured, LiteRT)": [r.get("host_latency_ms") for r in rows]},
                                       "ms"),
    }
    weights = rows[-1]["tflite_weights"]
    names = [_layer_label(n, i) for i, n in enumerate(weights)]
    out["Per-layer sparsity of the shipped weights (measured in the .tflite)"] = _bars(
        plt, "sparsity", names, {"zeros": [w["sparsity"] * 100 for w in weights.values()]}, "%")
    return out


def _layer_label(tensor: str, index: int) -> str:
    """A short chart label for a weight tensor: the layer part of 'model/layer/Op/...' names."""
    parts = [p for p in tensor.split("/") if p]
    return f"{index}:{parts[1] if len(parts) > 2 else parts[-1]}"[:24]


def _table(headers, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _compression_html(report) -> str:
    """TFLM weight compression: outcome, proof and per-tensor table (targets/microcontroller/compression.py)."""
    if not report.compression:
        return ""
    from targets.microcontroller.compression import compression_lines

    return "<h2>Weight compression (TFLM)</h2>" + "".join(
        f"<p>{html.escape(x)}</p>" if isinstance(x, str) else _table(*x)
        for x in compression_lines(report.compression, lambda h, r: [(h, r)]) if x)


def render_html(report) -> str:
    """The whole page as a string; needs nothing but a browser to view."""
    checks = _table(["limit", "status", "value", "limit", "headroom", "source", "on"],
                    [[c.name, c.status, c.note if c.status == "skip" else format_value(c.value, c.unit),
                      format_value(c.limit, c.unit), "" if c.headroom is None else format_value(c.headroom, c.unit),
                      c.source, c.on] for c in report.checks])
    figures = _table(["figure", "value", "source", "on", "note"],
                     [[m.name, m.pretty(), m.source, m.on, m.note] for m in report.measurements.values()])
    stages = ""
    if report.stages:
        pct = lambda v: "n/a" if v is None else f"{v:.2f} %"  # noqa: E731
        threads = report.stages[0].get("threads") or {}
        on = f" (latency at {threads['est_latency_ms']} / {threads['host_latency_ms']} thread(s))" if threads else ""
        stages = f"<h2>Stages{on}</h2>" + _table(
            ["stage", "params", "non-zero", "unique", "Keras acc", ".tflite acc", "stored (model_size)",
             "downloaded (gzip_size)", "est. latency", "host latency"],
            [[r["stage"], f"{r['params']:,}", f"{r['nonzero']:,}", r["unique"], pct(r["keras_accuracy"]),
              pct(r["tflite_accuracy"]), format_value(r["model_size"], "bytes"),
              format_value(r["gzip_size"], "bytes"), format_value(r["est_latency_ms"], "ms"),
              format_value(r["host_latency_ms"], "ms")] for r in report.stages])
    if report.stages:
        images = "".join(f"<figure><img alt='{html.escape(t)}' src='data:image/png;base64,{d}'>"
                         f"<figcaption>{html.escape(t)}</figcaption></figure>" for t, d in charts(report).items())
    else:   # nothing to compare across: the tables say it all, and matplotlib is not loaded
        images = "<p>No compression stages ran, so there is nothing to chart across stages.</p>"
    g = report.graph
    graph = (f"<h2>Graph (estimated from the .tflite flatbuffer)</h2><ul><li>ops: {len(g.get('ops', []))}, "
             f"MACs: {g.get('total_macs', 0):,}</li><li>peak activation memory (tensor liveness): "
             f"{format_value(g.get('peak_activation_bytes'), 'bytes')}</li><li>weights: "
             f"{format_value(g.get('weight_bytes'), 'bytes')}</li></ul>"
             f"<h3>Inputs and outputs</h3>{_table(*report.io_table())}"
             f"{''.join(f'<p>{html.escape(line)}</p>' for line in report.io_note() if line)}"
             f"<h3>Ops</h3>{_table(*report.op_table())}")
    if report.weight_values:
        stages += (f"<h2>{html.escape(uv.TITLE)}</h2><p>{html.escape(uv.NOTE)}</p>"
                   + _table(uv.HEADERS, uv.table_rows(report.weight_values)))
    stages += _compression_html(report)
    from exporter.sparse.figures import report_lines

    sparse = report_lines(report.sparse_encoding, report.measurements, lambda h, r: [(h, r)])
    stages += "<h2>Sparse encoding</h2>" if sparse else ""
    stages += "".join(f"<p>{html.escape(x.removeprefix('- '))}</p>" if isinstance(x, str) else _table(*x)
                      for x in sparse if x)
    skipped = report.skipped_table()
    if skipped[1]:
        stages += "<h2>Layers the stages left alone</h2>" + _table(*skipped)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
    warnings = "".join(f"<p class='fail'><b>Warning:</b> {html.escape(w)}</p>" for w in report.warnings)
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
             "figure{display:inline-block;margin:8px}.pass{color:#070}.fail{color:#b00}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>edgex report: {html.escape(report.model)}"
            f"</title><style>{style}</style></head><body>"
            f"<h1>edgex export report: <span class='{report.status}'>{report.status.upper()}</span></h1>"
            f"<p>{html.escape(report.model)} → {html.escape(report.target)} · {html.escape(report.profile)} "
            f"({html.escape(report.device)}) · {html.escape(report.mode)}, I/O {html.escape(report.io_dtype)} · "
            f"{html.escape(report.created)}</p>{warnings}<h2>Checks</h2>{checks}{stages}<h2>Charts</h2>{images}"
            f"<h2>Figures</h2>{figures}<h2>Sizes: stored, downloaded, in RAM</h2>"
            f"{_table(SIZE_HEADERS, size_rows(report.measurements))}{graph}<h2>Notes</h2><ul>{notes}</ul></body></html>")
