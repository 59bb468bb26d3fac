"""The `edgex hil` commands: run a bundle on a device, summarise stored runs (registered by exporter/cli.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from exporter.cli_show import print_json
from exporter.errors import EXIT_LIMIT


def _cell(value) -> str:
    """Text from a device, a run file or the user, shown literally in a rich table (no markup)."""
    from rich.markup import escape

    return escape(str(value))


@click.group()
def hil():
    """Run bundles on real devices (hardware in the loop)."""


@hil.command("run")
@click.argument("bundle")
@click.option("--device", "-d", required=True,
              help="local | ssh://user@host[:port] | adb://SERIAL | serial:///dev/PORT[?baud=N]")
@click.option("--runs", type=click.IntRange(1, 100000), default=50, show_default=True, help="Timed invokes.")
@click.option("--warmup", type=click.IntRange(0, 10000), default=10, show_default=True, help="Warm-up invokes.")
@click.option("--eval-samples", type=click.IntRange(0, 100000), default=0, show_default=True,
              help="Also run this many of the bundle's eval samples (accuracy on the device).")
@click.option("--timeout", type=click.FloatRange(1, 86400), default=300, show_default=True,
              help="Seconds the whole device run may take.")
@click.option("--connect-timeout", type=click.FloatRange(0.1, 600), default=10, show_default=True,
              help="Seconds to connect.")
@click.option("--retries", type=click.IntRange(0, 10), default=2, show_default=True, help="Connection retries.")
@click.option("--known-hosts", type=click.Path(dir_okay=False), help="SSH known_hosts file.")
@click.option("--accept-unknown-host", is_flag=True, help="SSH: trust a host key not in known_hosts.")
@click.option("--identity", type=click.Path(dir_okay=False), help="SSH private key.")
@click.option("--python", "python_", help="Python that runs the agent on the device (default python3).")
@click.option("--benchmark-binary", type=click.Path(dir_okay=False),
              help="adb: LiteRT's benchmark_model for the phone's ABI (pushed and run; edgex never downloads it). "
                   "Default: the one `edgex hil config` remembers for that ABI.")
@click.option("--use-installed-agent", is_flag=True,
              help="Run this edgex's device agent even though BUNDLE carries a different one (made with another "
                   "edgex). Devices only ever run the installed agent, never code from a bundle.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
def hil_run_command(bundle, device, runs, warmup, eval_samples, timeout, connect_timeout, retries, known_hosts,
                    accept_unknown_host, identity, python_, benchmark_binary, use_installed_agent, as_json):
    """Run BUNDLE on a device; measured figures decide the checks (exit 0, 1, or 5 on a device fault).

    Exit 3 when BUNDLE fails verification or carries an agent other than this edgex's; exit 2 for a
    --benchmark-binary that is missing, no executable or not for the phone's ABI, or a phone with
    neither a Python nor a known benchmark_model.
    """
    from exporter.hil.runner import hil_run
    from exporter.hil.transports.base import RunPlan, TransportOptions

    options = TransportOptions(connect_timeout=connect_timeout, command_timeout=timeout, retries=retries,
                               known_hosts=Path(known_hosts) if known_hosts else None,
                               accept_unknown_host=accept_unknown_host,
                               identity_file=Path(identity) if identity else None,
                               python=python_ or (sys.executable if device == "local" else "python3"),
                               benchmark_binary=Path(benchmark_binary) if benchmark_binary else None)
    run = hil_run(bundle, device, RunPlan(warmup=warmup, runs=runs, eval_samples=eval_samples, timeout=timeout),
                  options, use_installed_agent=use_installed_agent)
    if as_json:
        print_json(run.to_dict())
    else:
        _show_run(run)
    if not run.passed:
        click.echo(f"edgex: device run {run.status}: " + "; ".join(
            [c.summary() for c in run.checks if c.status == "fail"] + run.notes), err=True)
        sys.exit(EXIT_LIMIT)


def _show_run(run) -> None:
    from rich.console import Console
    from rich.table import Table

    from exporter.units import format_value

    table = Table(title=_cell(f"{run.device.get('transport')} device {run.device.get('id')}: {run.status}"))
    for col in ("check", "status", "measured", "limit", "estimated at export", "estimate error", "on"):
        table.add_column(col)
    threads = run.result.get("threads") or run.plan.get("threads") or 1
    for c in run.checks:
        est = run.estimates.get(c.name)
        measured = _cell(c.note) if c.status == "skip" else format_value(c.value, c.unit)
        if c.name == "latency" and c.status != "skip":
            measured += f" ({threads} thread{'s' if threads != 1 else ''}" + (
                f", {run.result['delegate']})" if run.result.get("delegate") else ")")
        table.add_row(c.name, c.status, measured,
                      format_value(c.limit, c.unit), "" if est is None else format_value(est["estimated"], c.unit),
                      "" if est is None else f"{est['error_pct']:+.1f} %", _cell(c.on))
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    _show_extras(run)
    for note in run.notes:
        click.echo(f"note: {note}")
    if run.path:
        click.echo(f"stored: {run.path}")


def _show_extras(run, top: int = 5) -> None:
    """The figures no limit checks (init time, what the memory figure is) and the slowest ops."""
    from exporter.units import format_value

    for name in ("init_time", "ram"):
        figure = run.measurements.get(name)
        if figure is not None:
            click.echo(f"{name}: {format_value(figure.value, figure.unit)} ({figure.note})")
    ops = sorted(run.result.get("ops") or [], key=lambda op: -op["avg_ms"])[:top]
    if ops:
        click.echo(f"slowest ops of {len(run.result['ops'])} (benchmark_model op profile, avg per run):")
    for op in ops:
        click.echo(f"  {op['avg_ms']:9.3f} ms {op['percent']:6.2f} %  {op['node_type']}  {op['name']}")


@hil.command("config")
@click.option("--benchmark-binary", "binaries", multiple=True, metavar="ABI=PATH",
              help="Remember LiteRT's benchmark_model for phones of ABI (arm64-v8a, armeabi-v7a, x86_64, x86).")
def hil_config_command(binaries):
    """Show edgex's device-run settings, or remember a benchmark_model per ABI (exit 2 for a bad ABI or file)."""
    from exporter.errors import UsageError
    from exporter.hil.user_config import config_path, read_config, set_benchmark_binary
    from exporter.option_names import option

    for item in binaries:
        abi, sep, path = item.partition("=")
        if not sep or not abi or not path:
            raise UsageError(f"{option('benchmark_binary')} {item!r}: expected ABI=PATH, e.g. "
                             "arm64-v8a=android_aarch64_benchmark_model")
        click.echo(f"{abi}: {Path(path).resolve()} (written to {set_benchmark_binary(abi, path)})")
    if not binaries:
        click.echo(f"{config_path()}:")
        for abi, path in sorted(read_config().get("benchmark_binary", {}).items()):
            click.echo(f"  benchmark_binary {abi}: {path}")


@hil.command("report")
@click.argument("bundles", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def hil_report_command(bundles, as_json):
    """Summarise the device runs stored in BUNDLES (exit 3 naming a run file that is not a valid run)."""
    from rich.console import Console
    from rich.table import Table

    from exporter.hil.runner import load_runs

    rows = [(b, r) for b in bundles for r in load_runs(b)]
    if as_json:
        print_json([{"bundle": b, **r} for b, r in rows])
        return
    table = Table(title=f"device runs in {len(bundles)} bundle(s)")
    for col in ("bundle", "device", "when", "runtime", "latency p50", "est. error", "ram", "accuracy", "status"):
        table.add_column(col)
    for bundle, r in rows:
        res, m = r.get("result", {}), r.get("measurements", {})
        lat = m.get("latency", {}).get("value")
        threads = res.get("threads") or r.get("plan", {}).get("threads") or 1    # runs before format 2: 1 thread
        threads = threads if isinstance(threads, int) and not isinstance(threads, bool) else "?"
        err = r.get("estimates", {}).get("latency", {}).get("error_pct")
        ram = m.get("ram", {}).get("value")
        device = r.get("device", {})
        table.add_row(_cell(bundle), _cell(f"{device.get('transport')}:{device.get('id')}"),
                      _cell(r.get("created", "")), _cell(f"{res.get('runtime')} {res.get('runtime_version')}"),
                      "" if lat is None else f"{lat:.3f} ms ({threads} thr.)", "" if err is None else f"{err:+.1f} %",
                      "" if ram is None else f"{ram / 1024:.0f} KiB",
                      "" if res.get("accuracy") is None else f"{res['accuracy']:.2f} %", _cell(r.get("status", "")))
    Console(width=None if sys.stdout.isatty() else 180).print(table)
