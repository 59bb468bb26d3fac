"""How the `edgex` commands print: JSON on stdout, or rich tables.

rich is imported inside each function, never at module level: `edgex --help` must not import it.
Text from outside (model paths, layer, op and tensor names) is printed literally: markup is off.

Example:
    >>> print_json({"status": "pass"})
    {
      "status": "pass"
    }
"""
from __future__ import annotations

import json
import sys

import click


def console():
    """A rich Console on stdout: 160 columns when not a terminal, markup and highlighting off."""
    from rich.console import Console

    # markup off: model paths, layer, op and tensor names come from outside and may hold "[...]"
    return Console(width=None if sys.stdout.isatty() else 160, markup=False, highlight=False)


def print_json(data) -> None:
    """Print `data` as indented JSON on stdout (anything not JSON-ready as its str)."""
    click.echo(json.dumps(data, indent=2, default=str))


def _table(title: str, columns):
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    return table


def _stage_table(report):
    from exporter.units import format_value

    threads = report.stages[0].get("threads") or {}
    on = f" at {threads['est_latency_ms']} / {threads['host_latency_ms']} thread(s)" if threads else ""
    table = _table(f"stages (each converted as {report.mode}; latency: device estimated / host measured{on})",
                   ("stage", "params", "non-zero", "unique", "Keras acc", ".tflite acc", "stored (model_size)",
                    "downloaded (gzip_size)", "est. latency", "host latency"))
    pct = lambda v: "n/a" if v is None else f"{v:.2f} %"  # noqa: E731
    for r in report.stages:
        table.add_row(r["stage"], f"{r['params']:,}", f"{r['nonzero']:,}", f"{r['unique']:,}",
                      pct(r["keras_accuracy"]), pct(r["tflite_accuracy"]), format_value(r["model_size"], "bytes"),
                      format_value(r["gzip_size"], "bytes"), format_value(r["est_latency_ms"], "ms"),
                      format_value(r["host_latency_ms"], "ms"))
    return table


def show_report(report) -> None:
    """Print an export's checks, figures, stages, notes and bundle as tables."""
    from rich.text import Text

    from exporter.sizes import size_line
    from exporter.units import format_value

    out = console()
    table = _table(f"{report.target} · {report.profile} · {report.mode} (I/O {report.io_dtype})",
                   ("check", "status", "value", "limit", "headroom", "source", "on"))
    colours = {"pass": "green", "fail": "bold red", "skip": "yellow"}
    for c in report.checks:
        value = c.note if c.status == "skip" else format_value(c.value, c.unit)
        head = "" if c.headroom is None else format_value(c.headroom, c.unit)
        table.add_row(c.name, Text(c.status, style=colours[c.status]), value, format_value(c.limit, c.unit),
                      head, c.source, c.on)
    out.print(table)
    figures = _table("figures", ("figure", "value", "source", "on"))
    for m in report.measurements.values():
        figures.add_row(m.name, m.pretty(), m.source, m.on)
    out.print(figures)
    out.print(size_line(report.measurements))
    if report.stages:
        out.print(_stage_table(report))
    for line in io_lines(report.io):
        out.print(line)
    for note in report.notes:
        out.print(f"note: {note}")
    for warning in report.warnings:
        out.print(Text.assemble(("warning: ", "bold yellow"), warning))
    if report.bundle:
        out.print(Text.assemble(f"bundle: {report.bundle} (", (report.status, "bold"), ")"))


def io_lines(io: dict | None) -> list[str]:
    """One line per input and output: name, dtype, shape and its I/O contract; then the formulas when quantized.

    Example:
        >>> io = {"inputs": [{"name": "image", "dtype": "int8", "shape": [1, 8, 8, 1], "scale": 0.5, "zero_point": -128,
        ...                   "qmin": -128, "qmax": 127, "per_channel": False, "axis": None}], "outputs": []}
        >>> print("\\n".join(io_lines(io)))  # doctest: +ELLIPSIS
        input 'image' [1, 8, 8, 1]: int8, scale 0.5, zero point -128, q in -128..127
        Quantized inputs and outputs: an app feeds a real value x as q = clamp(round(x / scale) + zero_point, ...
    """
    from exporter.io_contract import FORMULA_NOTE, contract_text

    if not io:
        return []
    entries = [(kind, t) for kind in ("input", "output") for t in io[f"{kind}s"] if "scale" in t]
    lines = [f"{kind} {t['name']!r} {list(t['shape'])}: {contract_text(t)}" for kind, t in entries]
    return lines + ([FORMULA_NOTE] if any(t["scale"] is not None for _, t in entries) else [])


def show_targets_summary(reports) -> None:
    """Print one row per target of an export to several targets: profile, mode, status, failed checks, bundle."""
    from rich.text import Text

    table = _table("targets", ("target", "profile", "mode", "status", "failed checks", "bundle"))
    colours = {"pass": "green", "fail": "bold red"}
    for r in reports:
        status = "pass" if r.passed else "fail"
        table.add_row(r.target, r.profile, f"{r.mode} (I/O {r.io_dtype})", Text(status, style=colours[status]),
                      ", ".join(c.name for c in r.failed_checks()) or "-", r.bundle or "-")
    out = console()
    out.print(table)
    for warning in dict.fromkeys(w for r in reports for w in r.warnings):      # the same data: once each
        out.print(Text.assemble(("warning: ", "bold yellow"), warning))


def show_graph(model: str, graph, io: dict | None = None) -> None:
    """Print the op table of a .tflite, its inputs and outputs (with `io`: their I/O contract) and a line of totals."""
    from exporter.units import format_bytes

    out = console()
    table = _table(f"{model} (estimated from the flatbuffer)", ("#", "op", "v", "compute", "MACs", "outputs"))
    for op in graph.ops:
        size = lambda t: "? B" if min(t.shape, default=0) < 0 else format_bytes(t.nbytes)  # noqa: E731
        outs = ", ".join(f"{graph.tensors[i].dtype}{list(graph.tensors[i].shape)} {size(graph.tensors[i])}"
                         for i in op.outputs if i >= 0)
        table.add_row(str(op.index), op.name, str(op.version), op.compute_dtype,
                      "unknown" if op.macs is None else f"{op.macs:,}", outs)
    out.print(table)
    for kind, tensors in (("inputs", graph.input_details()), ("outputs", graph.output_details())):   # every one
        out.print(f"{kind}: " + ", ".join(f"{t.name} {t.dtype}{list(t.shape)}" for t in tensors))
    for line in [*io_lines(io), *dynamic_lines(graph)]:
        out.print(line)
    macs, peak = graph.total_macs, graph.peak_activation_bytes
    out.print(f"ops {len(graph.ops)} · MACs {'unknown' if macs is None else f'{macs:,}'} · weights "
              f"{format_bytes(graph.weight_bytes)} · peak activation memory "
              f"{'unknown' if peak is None else format_bytes(peak)} (tensor liveness, estimated) · "
              f"subgraphs {graph.subgraph_count}")


def dynamic_lines(graph) -> list[str]:
    """What `inspect` says about dynamic input dims: each such input, and which figures they leave unknown."""
    from exporter.option_names import option

    lines = [f"input {t.name!r} has dynamic dims: shape signature {list(t.shape_signature)}, "
             + (f"analysed at {list(t.shape)}" if min(t.shape, default=0) >= 0 else "sizes unknown")
             for t in graph.dynamic_inputs()]
    unknown = [op.index for op in graph.ops if op.macs is None]
    if unknown:
        lines.append(f"MACs unknown for op{'s' if len(unknown) > 1 else ''} {', '.join(map(str, unknown))} "
                     f"(their sizes depend on the dynamic dims), and so the total and the peak activation memory; "
                     f"give a shape with {option('input_shapes')} to count them")
    return lines


def show_profiles(items) -> None:
    """Print a table of device profiles: limits and quantization modes."""
    from exporter.units import format_value

    table = _table("device profiles", ("name", "target", "model_size", "ram", "latency", "accuracy_drop",
                                       "quantization"))
    for p in items:
        lim = p.limits
        table.add_row(p.name, p.target, format_value(lim.model_size, "bytes"), format_value(lim.ram, "bytes"),
                      format_value(lim.latency, "ms"), format_value(lim.accuracy_drop, "points"),
                      ", ".join(p.quantization.allowed) + f" (default {p.quantization.preferred})")
    console().print(table)


_SUFFIX_UNITS = (("_bytes", "bytes"), ("_us", "us"), ("_ms", "ms"), ("_gmacs", "GMAC/s"), ("_mhz", "MHz"))


def _profile_unit(path: str) -> str | None:
    """The unit a profile field is printed in: limits by their LimitSpec, others by their name's suffix."""
    from exporter.profile import LIMIT_UNITS

    section, _, key = path.rpartition(".")
    if section == "limits":
        return LIMIT_UNITS.get(key)
    return next((unit for suffix, unit in _SUFFIX_UNITS if key.endswith(suffix)), None)


def _profile_value(value, unit: str | None) -> str:
    from exporter.units import format_quantity

    if isinstance(value, bool) or value is None:
        return "null" if value is None else str(value).lower()
    if isinstance(value, (int, float)) and unit:
        return format_quantity(value, "pt" if unit == "points" else unit)
    if value == {}:
        return "{}"
    if isinstance(value, list):
        return "[" + ", ".join(_profile_value(v, None) for v in value) + "]"
    return str(value)


def profile_lines(data: dict, comments) -> list[str]:
    """A resolved profile as YAML-like lines: values with units, each with the comments of its file line.

    Args:
        data: the profile's `model_dump(mode="json")`.
        comments: the file's YamlComments (exporter/yaml_comments.py).

    Returns:
        The lines; a field the file does not set says so ("default" or "from the file name").
    """
    lines = [f"# {c}" for c in comments.header]

    def walk(mapping: dict, prefix: str, indent: str) -> None:
        for key, value in mapping.items():
            path = f"{prefix}{key}"
            notes = comments.fields.get(path)
            if notes is None and not isinstance(value, dict):
                notes = ["from the file name"] if path == "name" else ["default (not set in the file)"]
            notes = notes or []
            above, last = (notes, "") if len(notes) > 1 else ([], "".join(notes))   # one line: at the end
            lines.extend(f"{indent}# {c}" for c in above)
            if isinstance(value, dict) and value:
                lines.append(f"{indent}{key}:" + (f"  # {last}" if last else ""))
                walk(value, f"{path}.", indent + "  ")
            else:
                text = f"{indent}{key}: {_profile_value(value, _profile_unit(path))}"
                lines.append(text + (f"  # {last}" if last else ""))

    walk(data, "", "")
    return lines


def show_targets(rows) -> None:
    """Print the `edgex targets` table from the targets' `supports()` rows."""
    table = _table("targets", ("target", "runtime", "quantization", "default profile", "profiles", "ram", "latency"))
    for r in rows:
        table.add_row(r["target"], r["runtime"], ", ".join(r["quantization"]), r["default_profile"],
                      ", ".join(r["profiles"]), r["ram"], r["latency"])
    console().print(table)


def show_metadata(found) -> None:
    """Print what `edgex inspect` found of a .tflite's TFLite metadata (exporter/tflite_metadata/summary.py)."""
    from exporter.tflite_metadata.summary import lines

    out = console()
    for line in lines(found):
        out.print(line)
