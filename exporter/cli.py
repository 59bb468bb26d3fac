"""The `edgex` command: parses arguments, calls exporter.api, prints, maps errors to exit codes.

Nothing heavy is imported at module level: `edgex --help` must not import TensorFlow.
"""
from __future__ import annotations

import json
import sys

import click

from exporter import __version__
from exporter.errors import (EXIT_CODES, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_LIMIT, EXIT_OK, EXIT_TERMINATED,
                             ExporterError)

_state = {"debug": False}
EXIT_HELP = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()) + "."


def _console():
    from rich.console import Console

    # markup off: model paths, layer, op and tensor names come from outside and may hold "[...]"
    return Console(width=None if sys.stdout.isatty() else 160, markup=False, highlight=False)


def _print_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(epilog=EXIT_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgex")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def cli(debug):
    """edgex: export Keras models to validated on-device bundles."""
    _state["debug"] = debug
    from exporter.progress import set_debug

    set_debug(debug)


@cli.command(epilog=EXIT_HELP)
@click.argument("model", required=False)
@click.option("--target", "-t", default="android", show_default=True, help="Target kind (see `edgex targets`).")
@click.option("--profile", "-p", help="Profile name or YAML path; default: the target's default profile.")
@click.option("--calib", help="Calibration data (.npz with x, or .npy) for int8.")
@click.option("--eval", "eval_", help="Evaluation data (.npz with x and optional y).")
@click.option("--labels", help="labels.txt with one class name per line, copied into the bundle.")
@click.option("--out", "-o", required=True,
              help="Bundle directory to write. An existing edgex bundle there is replaced atomically (its hil/ "
                   "device runs kept); any other file or folder is refused (exit 2), never replaced.")
@click.option("--quantize", "-q", type=click.Choice(["float32", "float16", "dynamic", "int8"]),
              help="Conversion mode; default: the profile's preferred mode.")
@click.option("--limit", "limits", multiple=True, metavar="NAME=VALUE",
              help="Override a limit for this run, e.g. model_size=1KB, latency=12ms (repeatable).")
@click.option("--trust-model", is_flag=True, help="Allow models whose loading can run code (Lambda, SavedModel).")
@click.option("--zip", "make_zip", is_flag=True,
              help="Also write OUT.zip: OUT's full name plus .zip (--out android-1.2 gives android-1.2.zip).")
@click.option("--force", is_flag=True,
              help="Replace the bundle at --out even though you added files to it: they are kept (carried into "
                   "the new bundle, never deleted). Without it such a bundle is refused, naming the files.")
@click.option("--demo", is_flag=True, help="Use the built-in digits CNN and its data.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--train", help="Labelled training data (.npz with x, y) for stages that fine-tune.")
@click.option("--recipe", help="Recipe YAML, or a bundle / manifest.json to re-run its recipe.")
@click.option("--prune", type=float, metavar="SPARSITY", help="Magnitude pruning to this sparsity, e.g. 0.8.")
@click.option("--prune-structured", metavar="M:N", help="Structured m:n sparsity, e.g. 2:4.")
@click.option("--sparsify", metavar="L1", help="Sparsity-based pruning: L1 regularisation, then thresholding.")
@click.option("--cluster", type=int, metavar="N", help="Weight clustering to N shared values per layer.")
@click.option("--qat", is_flag=True, help="Quantization-aware training (PQAT/CQAT/PCQAT after prune/cluster).")
@click.option("--weight-bits", type=click.Choice(["4", "2", "1"]), help="Low-bit (4, 2) or binary (1) weights.")
@click.option("--distill", type=float, metavar="WIDTH", help="Distil into a student of this width multiplier.")
@click.option("--student", help="Distil into this student model (.keras).")
@click.option("--distill-mode", type=click.Choice(["soft", "hard"]), help="Soft (KL on logits) or hard labels.")
@click.option("--epochs", type=int, help="Fine-tuning epochs per stage.")
@click.option("--batch-size", type=int, help="Fine-tuning batch size.")
@click.option("--learning-rate", type=float, help="Fine-tuning learning rate (Adam).")
@click.option("--patience", type=int, help="Early-stopping patience on the validation split (0: off).")
@click.option("--seed", type=int, help="Seed for training (same inputs give the same model).")
@click.option("--skip-layer", "skip_layers", multiple=True, metavar="NAME", help="Leave this layer alone.")
@click.option("--require-compiled", is_flag=True,
              help="Edge TPU: fail (exit 4) when edgetpu_compiler is missing instead of writing an uncompiled "
                   "bundle (an option of the edgetpu target; other targets refuse it).")
def export(model, target, profile, calib, eval_, labels, out, quantize, limits, trust_model, make_zip, force, demo,
           as_json, train, recipe, prune, prune_structured, sparsify, cluster, qat, weight_bits, distill, student,
           distill_mode, epochs, batch_size, learning_rate, patience, seed, skip_layers, require_compiled):
    """Convert MODEL (after optional compression stages), check it against a device profile, write a bundle."""
    from exporter import api
    from exporter.errors import UsageError
    from exporter.recipe import recipe_from_flags

    training = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                                  "patience": patience, "seed": seed}.items() if v is not None}
    flags = recipe_from_flags(prune=prune, prune_structured=prune_structured, sparsify=sparsify, cluster=cluster,
                              qat=qat, weight_bits=weight_bits, distill=distill, student=student,
                              distill_mode=distill_mode, training=training, skip_layers=skip_layers)
    if flags is not None and recipe is not None:
        raise UsageError("give either --recipe or stage flags (--prune, --cluster, ...), not both")
    report = api.export(model, target=target, profile=profile, calib=calib, eval=eval_, labels=labels, out=out,
                        quantize=quantize, limits=list(limits), trust_model=trust_model, make_zip=make_zip,
                        demo=demo, recipe=flags if flags is not None else recipe, train=train,
                        target_options={"require_compiled": True} if require_compiled else None, force=force)
    if as_json:
        _print_json(report.to_dict())
    else:
        _show_report(report)
    if not report.passed:
        failed = "; ".join(c.summary() for c in report.failed_checks())
        click.echo(f"edgex: limit broken: {failed}", err=True)
        sys.exit(EXIT_LIMIT)


def _show_report(report) -> None:
    from rich.table import Table
    from rich.text import Text

    from exporter.units import format_value

    console = _console()
    table = Table(title=f"{report.target} · {report.profile} · {report.mode} (I/O {report.io_dtype})")
    for col in ("check", "status", "value", "limit", "headroom", "source", "on"):
        table.add_column(col)
    colours = {"pass": "green", "fail": "bold red", "skip": "yellow"}
    for c in report.checks:
        value = c.note if c.status == "skip" else format_value(c.value, c.unit)
        head = "" if c.headroom is None else format_value(c.headroom, c.unit)
        table.add_row(c.name, Text(c.status, style=colours[c.status]), value, format_value(c.limit, c.unit),
                      head, c.source, c.on)
    console.print(table)
    figures = Table(title="figures")
    for col in ("figure", "value", "source", "on"):
        figures.add_column(col)
    for m in report.measurements.values():
        figures.add_row(m.name, m.pretty(), m.source, m.on)
    console.print(figures)
    if report.stages:
        stages = Table(title=f"stages (each converted as {report.mode}; latency: device estimated / host measured)")
        for col in ("stage", "params", "non-zero", "unique", "Keras acc", ".tflite acc", ".tflite", "gzip",
                    "est. latency", "host latency"):
            stages.add_column(col)
        pct = lambda v: "n/a" if v is None else f"{v:.2f} %"  # noqa: E731
        for r in report.stages:
            stages.add_row(r["stage"], f"{r['params']:,}", f"{r['nonzero']:,}", f"{r['unique']:,}",
                           pct(r["keras_accuracy"]), pct(r["tflite_accuracy"]), format_value(r["tflite_bytes"], "bytes"),
                           format_value(r["gzip_bytes"], "bytes"), format_value(r["est_latency_ms"], "ms"),
                           format_value(r["host_latency_ms"], "ms"))
        console.print(stages)
    for note in report.notes:
        console.print(f"note: {note}")
    if report.bundle:
        console.print(Text.assemble(f"bundle: {report.bundle} (", (report.status, "bold"), ")"))


@cli.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def inspect(model, as_json):
    """Print the op table, MACs, tensor sizes and peak activation memory of a .tflite."""
    from rich.table import Table

    from exporter import api
    from exporter.units import format_bytes

    graph = api.inspect(model)
    if as_json:
        _print_json(graph.to_dict())
        return
    console = _console()
    table = Table(title=f"{model} (estimated from the flatbuffer)")
    for col in ("#", "op", "v", "compute", "MACs", "outputs"):
        table.add_column(col)
    for op in graph.ops:
        outs = ", ".join(f"{graph.tensors[i].dtype}{list(graph.tensors[i].shape)} {format_bytes(graph.tensors[i].nbytes)}"
                         for i in op.outputs if i >= 0)
        table.add_row(str(op.index), op.name, str(op.version), op.compute_dtype, f"{op.macs:,}", outs)
    console.print(table)
    console.print(f"ops {len(graph.ops)} · MACs {graph.total_macs:,} · weights {format_bytes(graph.weight_bytes)} · "
                  f"peak activation memory {format_bytes(graph.peak_activation_bytes)} (tensor liveness, estimated) · "
                  f"subgraphs {graph.subgraph_count}")


@cli.command()
@click.argument("bundle")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def verify(bundle, as_json):
    """Re-hash every file of BUNDLE against its manifest (exit 3 on any change)."""
    from exporter import api

    result = api.verify(bundle)
    if as_json:
        _print_json(result)
        return
    runs = result.get("runs")
    stored = f"; {runs} device run{'s' if runs != 1 else ''} in hil/" if runs else ""
    click.echo(f"{bundle}: OK, {result['files']} files match the manifest "
               f"(export status: {result['status'] or 'not recorded'}){stored}")


@cli.group()
def profiles():
    """List and show device profiles."""


@profiles.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def profiles_list(as_json):
    """List the shipped device profiles."""
    from rich.table import Table

    from exporter.profile import list_profiles
    from exporter.units import format_value

    items = list_profiles()
    if as_json:
        _print_json([p.model_dump(mode="json") for p in items])
        return
    table = Table(title="device profiles")
    for col in ("name", "target", "model_size", "ram", "latency", "accuracy_drop", "quantization"):
        table.add_column(col)
    for p in items:
        lim = p.limits
        table.add_row(p.name, p.target, format_value(lim.model_size, "bytes"), format_value(lim.ram, "bytes"),
                      format_value(lim.latency, "ms"), format_value(lim.accuracy_drop, "points"),
                      ", ".join(p.quantization.allowed) + f" (default {p.quantization.preferred})")
    _console().print(table)


@profiles.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def profiles_show(name, as_json):
    """Show one profile by NAME or path."""
    from exporter.profile import load_profile

    profile = load_profile(name)
    if as_json:
        _print_json(profile.model_dump(mode="json"))
        return
    import yaml

    click.echo(yaml.safe_dump(profile.model_dump(mode="json"), sort_keys=False))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def targets(as_json):
    """Table of the registered targets and what each supports."""
    from rich.table import Table

    from targets.base import all_targets

    rows = [t.supports() for t in all_targets()]
    if as_json:
        _print_json(rows)
        return
    table = Table(title="targets")
    for col in ("target", "runtime", "quantization", "default profile", "profiles", "ram", "latency"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["target"], r["runtime"], ", ".join(r["quantization"]), r["default_profile"],
                      ", ".join(r["profiles"]), r["ram"], r["latency"])
    _console().print(table)


def _register_subcommands() -> None:
    from exporter.hil.cli import calibrate_command, hil

    cli.add_command(hil)
    profiles.add_command(calibrate_command)


_register_subcommands()


def main(argv=None) -> int:
    """Entry point: run the CLI and turn errors into one message and an exit code."""
    from exporter.session import Terminated, command_session

    try:
        with command_session():
            cli.main(args=argv, prog_name="edgex", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort) as exc:   # click turns Ctrl-C into Abort
        if isinstance(exc, Terminated) or isinstance(exc.__cause__, Terminated):
            click.echo("edgex: terminated (SIGTERM); temporary files removed", err=True)
            return EXIT_TERMINATED
        click.echo("edgex: interrupted", err=True)
        return EXIT_INTERRUPTED
    except ExporterError as exc:
        if _state["debug"]:
            raise
        click.echo(f"edgex: error: {exc}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except Exception as exc:  # a bug: one line unless --debug
        if _state["debug"]:
            raise
        click.echo(f"edgex: internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)",
                   err=True)
        return EXIT_INTERNAL
    return EXIT_OK


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
