"""The `edgex` command: parses arguments, calls exporter.api, prints, maps errors to exit codes.

What the group's options set for one run (`--debug`) lives in a `CliState` in the click context
(like Flask's ScriptInfo): `main()` creates it, passes it as the context object and reads it back
when it catches an error. While a command runs, error messages name options as the CLI spells
them (`--zip`, not `make_zip=`: exporter/option_names.py). `edgex export`'s options come in
groups (exporter/cli_options.py); tables are printed by exporter/cli_show.py. Nothing heavy is
imported at module level: `edgex --help` must not import TensorFlow, pydantic or rich.

Example:
    >>> main(["verify", "no-such-bundle"])     # one line on stderr: "edgex: error: ... not a bundle ..."
    3
"""
from __future__ import annotations

import signal
import sys
from dataclasses import dataclass

import click

from exporter import __version__
from exporter import progress
from exporter.cli_options import (SectionedCommand, data_options, device_options, metadata_options, output_options,
                                  stage_options, training_options)
from exporter.cli_show import print_json
from exporter.cli_optimize import optimize as optimize_command
from exporter.errors import (EXIT_CODES, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_LIMIT, EXIT_OK, EXIT_TERMINATED,
                             ExporterError)
from exporter.hil.cli import hil
from exporter.option_names import calling

EXIT_HELP = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()) + "."


@dataclass
class CliState:
    """What the `edgex` group's options set for every command of one run.

    Attributes:
        debug: `--debug` was given: errors are raised with their traceback, native log lines shown.
    """

    debug: bool = False


pass_state = click.make_pass_decorator(CliState, ensure=True)


@click.group(epilog=EXIT_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgex")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@pass_state
def cli(state: CliState, debug: bool) -> None:
    """edgex: export Keras models to validated on-device bundles."""
    state.debug = debug
    ctx = click.get_current_context()
    ctx.with_resource(progress.scoped(debug=debug))   # both restored when the command ends
    ctx.with_resource(calling("cli"))                 # messages name --flags, not parameters


@cli.command(cls=SectionedCommand, epilog=EXIT_HELP)
@click.argument("model", required=False)
@device_options
@data_options
@output_options
@metadata_options
@stage_options
@training_options
def export(model, device, data, output, metadata, stages, training):
    """Convert MODEL (after optional compression stages), check it against a device profile, write a bundle."""
    from exporter import api
    from exporter.cli_show import show_report
    from exporter.input_shapes import from_option

    recipe = stages.recipe_for(training)
    several = len(device.targets) > 1
    chosen = {"targets": list(device.targets)} if several else {"target": device.targets[0]}
    result = api.export(model, **chosen, profile=device.profile, quantize=device.quantize,
                        limits=list(device.limits), target_options=device.target_options(),
                        calib=data.calib, eval=data.eval_, labels=data.labels, train=data.train,
                        trust_model=data.trust_model, demo=data.demo, normalize=data.normalize, recipe=recipe,
                        out=output.out, make_zip=output.make_zip, force=output.force,
                        bundle_samples=output.bundle_samples, sparse_encoding=device.sparse_encoding,
                        input_shapes=from_option(data.input_shapes), label_output=data.label_output,
                        **metadata.to_api())
    if several:
        _finish_targets(result, output.as_json)
        return
    report = result
    if output.as_json:
        print_json(report.to_dict())
    else:
        show_report(report)
    if not report.passed:
        failed = "; ".join(c.summary() for c in report.failed_checks())
        click.echo(f"edgex: limit broken: {failed}", err=True)
        sys.exit(EXIT_LIMIT)


def _finish_targets(reports, as_json: bool) -> None:
    """Print the reports of an export to several targets (JSON list or summary table); exit 1 if any limit broke."""
    from exporter.cli_show import show_targets_summary

    if as_json:
        print_json([r.to_dict() for r in reports])
    else:
        show_targets_summary(reports)
    failed = [r for r in reports if not r.passed]
    for r in failed:
        click.echo(f"edgex: limit broken ({r.target}): " + "; ".join(c.summary() for c in r.failed_checks()), err=True)
    if failed:
        sys.exit(EXIT_LIMIT)


@cli.command()
@click.argument("model")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="[NAME=]SHAPE",
              help="For dynamic input dims: the shape to analyse at, e.g. 1,50,4 or NAME=1,50,4 (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def inspect(model, input_shapes, as_json):
    """Print the op table, MACs, tensor sizes, peak activation memory and I/O contract of a .tflite."""
    from exporter import api
    from exporter.cli_show import show_graph, show_metadata
    from exporter.input_shapes import from_option
    from exporter.io_names import io_record

    from exporter.tflite_metadata.summary import found_in

    graph = api.inspect(model, input_shapes=from_option(input_shapes))
    with open(model, "rb") as fh:                   # api.inspect has checked it is a readable model file
        data = fh.read()
    io = io_record(data, graph, None)              # names, scale and zero point of every input and output
    metadata = found_in(data)                      # TFLite metadata (exporter/tflite_metadata/); None: none
    if as_json:
        print_json({**graph.to_dict(), "io": io, "metadata": metadata})
    else:
        show_graph(model, graph, io)
        show_metadata(metadata)


@cli.command()
@click.argument("bundle")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def verify(bundle, as_json):
    """Re-hash every file of BUNDLE against its manifest (exit 3 on any change)."""
    from exporter import api

    result = api.verify(bundle)
    if as_json:
        print_json(result)
        return
    runs = result.get("runs")
    stored = f"; {runs} device run{'s' if runs != 1 else ''} in hil/" if runs else ""
    click.echo(f"{bundle}: OK, {result['files']} files match the manifest "
               f"(export status: {result['status'] or 'not recorded'}){stored}")


@cli.group()
def profiles():
    """List, show and calibrate device profiles."""


@profiles.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def profiles_list(as_json):
    """List the shipped device profiles."""
    from exporter.cli_show import show_profiles
    from exporter.profile import list_profiles

    items = list_profiles()
    if as_json:
        print_json([p.model_dump(mode="json") for p in items])
    else:
        show_profiles(items)


@profiles.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def profiles_show(name, as_json):
    """Show one profile by NAME or path: each value with its unit and the comment saying where it comes from."""
    from pathlib import Path

    from exporter.cli_show import profile_lines
    from exporter.profile import PROFILE_DIR, load_profile
    from exporter.yaml_comments import YamlComments, read_comments

    profile = load_profile(name)
    if as_json:
        print_json(profile.model_dump(mode="json"))
        return
    path = Path(name) if Path(name).is_file() else PROFILE_DIR / f"{name}.yaml"
    comments = read_comments(path) if path.is_file() else YamlComments()
    click.echo("\n".join(profile_lines(profile.model_dump(mode="json"), comments)))


@profiles.command("calibrate")
@click.argument("profile")
@click.option("--from", "bundles", multiple=True, required=True, help="A bundle with stored device runs (repeat).")
@click.option("--out", "-o", help="Where to write the calibrated profile (default: PROFILE.calibrated.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def profiles_calibrate(profile, bundles, out, as_json):
    """Fit PROFILE's latency cost model to device runs stored in bundles."""
    from exporter.calibrate import calibrate

    result = calibrate(profile, list(bundles))
    path = result.write(out)
    if as_json:
        print_json(result.summary(path))
    else:
        click.echo(f"wrote {path}: latency estimate error {result.error_before_pct:.1f} % -> "
                   f"{result.error_after_pct:.1f} % over {len(result.points)} run(s) ({result.method})")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def targets(as_json):
    """Table of the registered targets and what each supports."""
    from exporter.cli_show import show_targets
    from targets.base import all_targets

    rows = [t.supports() for t in all_targets()]
    if as_json:
        print_json(rows)
    else:
        show_targets(rows)


cli.add_command(hil)
cli.add_command(optimize_command)


def main(argv=None) -> int:
    """Entry point: run the CLI and turn errors into one message and an exit code.

    Args:
        argv: the arguments after `edgex`; None reads sys.argv.

    Returns:
        The exit code (see exporter.errors).

    Raises:
        ExporterError, Exception: only with `--debug`, so that the traceback shows.
    """
    from exporter.session import Terminated, command_session, interrupted_by

    state = CliState()
    try:
        with command_session():
            cli.main(args=argv, prog_name="edgex", standalone_mode=False, obj=state)
    except (KeyboardInterrupt, click.exceptions.Abort) as exc:   # click turns Ctrl-C into Abort
        terminated = isinstance(exc, Terminated) or isinstance(exc.__cause__, Terminated)
        return _interrupted(signal.SIGTERM if terminated else signal.SIGINT)
    except ExporterError as exc:
        if interrupted_by() is not None:       # e.g. a ConversionError wrapping what a signal's exception became
            return _interrupted(interrupted_by())
        if state.debug:
            raise
        click.echo(f"edgex: error: {exc}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except Exception as exc:  # a bug: one line unless --debug
        if interrupted_by() is not None:       # a signal whose exception native code (TensorFlow) replaced
            return _interrupted(interrupted_by())
        if state.debug:
            raise
        click.echo(f"edgex: internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)",
                   err=True)
        return EXIT_INTERNAL
    if interrupted_by() is not None:           # a signal some library swallowed after the output was in place
        return _interrupted(interrupted_by())
    return EXIT_OK


def _interrupted(signum: int) -> int:
    """One line for an interruption; 143 for SIGTERM, 130 for Ctrl-C."""
    if signum == signal.SIGTERM:
        click.echo("edgex: terminated (SIGTERM); temporary files removed", err=True)
        return EXIT_TERMINATED
    click.echo("edgex: interrupted", err=True)
    return EXIT_INTERRUPTED


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
