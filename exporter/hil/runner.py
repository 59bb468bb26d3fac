"""`edgex hil run`: run a bundle on a device and let the measured figures decide.

The bundle is verified first; the device runs it through a transport; the agent's answer
is validated (exporter/hil/result.py); measured latency and memory replace the export's
estimates in the checks against the profile's limits, and the report gives the error of
each estimate. The run is stored in the bundle under `hil/` (not covered by the manifest's
hashes; `edgex verify` checks that each run file is valid JSON; exporter/hil/run_files.py
reads them back). A run cut short is never a pass.

Host-like devices (local, SSH, adb) run the agent of the installed edgex, never the copy in
the bundle; a bundle whose copy differs is refused unless `use_installed_agent` is set
(exporter/hil/agent_files.py).

Example:
    >>> run = hil_run(bundle, "local", RunPlan(warmup=5, runs=20, eval_samples=100))   # the demo's android bundle
    >>> run.complete, {c.name: c.source for c in run.checks if c.status != "skip"}   # the device's figures decide
    (True, {'model_size': 'measured', 'ram': 'measured', 'latency': 'measured', 'accuracy_drop': 'measured'})
    >>> run.path.startswith(str(bundle / "hil"))
    True
    >>> run = hil_run(bundle, "ssh://pi@raspberrypi.local", RunPlan(runs=50))    # doctest: +SKIP
    >>> run.device["transport"], run.device["id"]                                # doctest: +SKIP
    ('ssh', 'pi@raspberrypi.local:22')
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from exporter.bundle import read_manifest, verify_bundle
from exporter.checks import ESTIMATED, MIXED, Check, Measurement, run_checks
from exporter.errors import DeviceError, UsageError
from exporter.hil.agent_files import check_bundle_agent, eval_samples_note
from exporter.hil.result import parse_agent_output
from exporter.hil.run_figures import device_figures, device_on, run_notes
from exporter.hil.run_files import HIL_DIR, check_path, load_runs, store_run
from exporter.hil.transports.base import HostTransport, RunPlan, TransportOptions, open_transport, transport_class
from exporter.progress import status

__all__ = ["HIL_DIR", "HilRun", "hil_run", "load_runs"]
RUN_FORMAT = 2
"""Version of the stored run: 2 adds `run_format`, the plan's threads and delegate, `result.ops`, `init_ms` and the
model's own memory (`model_memory_bytes`, `memory_kind`); runs without `run_format` (1) stay readable."""


@dataclass
class HilRun:
    """One device run: who ran it, what it measured, and the checks it decided."""

    bundle: str
    device: dict
    created: str
    plan: dict
    result: dict
    measurements: dict[str, Measurement]
    estimates: dict[str, dict]
    checks: list[Check]
    complete: bool
    path: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.complete and all(c.status != "fail" for c in self.checks)

    @property
    def status(self) -> str:
        return "pass" if self.passed else ("incomplete" if not self.complete else "fail")

    def to_dict(self) -> dict:
        return {"run_format": RUN_FORMAT, "status": self.status, "bundle": self.bundle, "device": self.device, "created": self.created,
                "plan": self.plan, "result": self.result, "complete": self.complete,
                "measurements": {k: m.to_dict() for k, m in self.measurements.items()},
                "estimates": self.estimates, "checks": [c.to_dict() for c in self.checks], "notes": self.notes}


def _estimate_errors(manifest: dict, measured: dict[str, Measurement]) -> dict[str, dict]:
    out = {}
    for name, figure in measured.items():
        before = manifest["measurements"].get(name)
        if before is None or before.get("source") not in (ESTIMATED, MIXED) or not figure.value:
            continue
        out[name] = {"estimated": before["value"], "measured": figure.value,
                     "error_pct": (before["value"] - figure.value) / figure.value * 100}
    return out


def _check_tool(device: str, options: TransportOptions | None) -> None:
    """Refuse `benchmark_binary` for a device that does not run it, or a file that is no executable."""
    from exporter.hil.benchmark_binary import elf_machine
    from exporter.option_names import option

    if options is None or options.benchmark_binary is None:
        return
    if not transport_class(device).takes_benchmark_binary:
        raise UsageError(f"{option('benchmark_binary')} is for Android phones (adb://SERIAL); {device} runs the "
                         "Python agent")
    elf_machine(Path(options.benchmark_binary))       # missing or not an executable: exit 2 before connecting


def _prepare(bundle, device: str, use_installed_agent: bool,
             options: TransportOptions | None = None) -> tuple[Path, dict, list[str]]:
    """Check everything that can be checked before connecting: path, integrity, agent, device URI, tool.

    Returns:
        (bundle path, manifest, notes for the run record).
    """
    bundle = check_path(bundle)
    verify_bundle(bundle)
    manifest = read_manifest(bundle)
    _check_tool(device, options)
    notes = []
    if issubclass(transport_class(device), HostTransport):      # devices that run the Python agent
        note = check_bundle_agent(bundle, use_installed_agent)
        notes += [note] if note else []
    return bundle, manifest, notes


def hil_run(bundle, device: str, plan: RunPlan | None = None, options: TransportOptions | None = None,
            *, store: bool = True, use_installed_agent: bool = False) -> HilRun:
    """Run a bundle on a device and check the profile's limits with what it measured.

    Args:
        bundle: the bundle directory (verified before anything is sent).
        device: `local`, `ssh://user@host[:port]`, `adb://SERIAL` or `serial:///dev/PORT`.
        plan: warm-up and timed runs, eval samples, overall timeout (default RunPlan()); its threads and
            delegate default to the bundle profile's `threads` and `delegate`.
        options: transport settings (timeouts, known_hosts, benchmark_binary, ...; default TransportOptions()).
        store: write the run under `<bundle>/hil/` (default True).
        use_installed_agent: run this edgex's agent even if the bundle carries a different one
            (default False: such a bundle is refused). The bundle's agent code never runs.

    Returns:
        The HilRun; `passed` is False when a limit is broken or the run was cut short.

    Raises:
        UsageError: a bundle path the system cannot look up (too long), an unknown device scheme, a
            benchmark_binary that is no executable or not for this device, a phone without Python or tool.
        IntegrityError: the bundle fails verification, or its agent is not this edgex's (exit 3).
        DeviceError: any device or transport fault (exit 5).
    """
    from exporter.profile import DeviceProfile

    bundle, manifest, notes = _prepare(bundle, device, use_installed_agent, options)
    profile = DeviceProfile.model_validate(manifest["profile"])
    plan = plan or RunPlan()
    plan = replace(plan, threads=plan.threads or profile.threads, delegate=plan.delegate or profile.delegate)
    status(f"running {bundle} on {device} ({plan.threads} thread{'s' if plan.threads != 1 else ''}, {plan.delegate})")
    with open_transport(device, options) as transport:
        raw = transport.run_bundle(bundle, plan)
        who, notes, skipped = transport.describe(), notes + transport.notes, dict(transport.skipped)
    result = parse_agent_output(raw)
    if not result.ok:
        raise DeviceError(f"the device could not run the model: {result.error or 'no reason given'}")
    expected = manifest["files"]["model.tflite"]["sha256"]
    if result.model_sha256 != expected:
        raise DeviceError(f"the device ran a model with sha256 {result.model_sha256[:12]}…, "
                          f"not this bundle's {expected[:12]}…")
    complete = result.latency_ms is not None and result.latency_ms.runs >= plan.runs
    measured = device_figures(result, manifest, device_on(who, result), bundle, plan.threads)
    not_on_device = "not measured on the device: the export's report has the host figure"
    checks = run_checks(profile.limits, measured, {
        "accuracy_drop": skipped.get("accuracy_drop", "no eval samples run on the device"),
        "agreement": not_on_device, "fidelity": not_on_device})
    notes += run_notes(result, plan)
    if "accuracy_drop" not in skipped:              # else the transport said why no sample was scored
        notes += [n for n in [eval_samples_note(manifest, plan.eval_samples, result.eval_samples)] if n]
    if not complete:
        notes.append(f"incomplete: {0 if result.latency_ms is None else result.latency_ms.runs} of "
                     f"{plan.runs} timed runs came back")
    run = HilRun(bundle=str(bundle), device=who | {"agent": result.device},
                 created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), plan=asdict(plan),
                 result=result.model_dump(mode="json"), measurements=measured,
                 estimates=_estimate_errors(manifest, measured), checks=checks, complete=complete, notes=notes)
    if store:
        run.path = str(store_run(bundle, run.to_dict()))
    return run
