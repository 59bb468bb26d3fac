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
from dataclasses import asdict, dataclass, field
from pathlib import Path

from exporter.bundle import read_manifest, verify_bundle
from exporter.checks import ESTIMATED, MEASURED, MIXED, Check, Measurement, run_checks
from exporter.errors import DeviceError
from exporter.hil.agent_files import check_bundle_agent
from exporter.hil.result import AgentResult, parse_agent_output
from exporter.hil.run_files import HIL_DIR, check_path, load_runs, store_run
from exporter.hil.transports.base import HostTransport, RunPlan, TransportOptions, open_transport, transport_class
from exporter.progress import status

__all__ = ["HIL_DIR", "HilRun", "hil_run", "load_runs"]


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
        return {"status": self.status, "bundle": self.bundle, "device": self.device, "created": self.created,
                "plan": self.plan, "result": self.result, "complete": self.complete,
                "measurements": {k: m.to_dict() for k, m in self.measurements.items()},
                "estimates": self.estimates, "checks": [c.to_dict() for c in self.checks], "notes": self.notes}


def _figures(result: AgentResult, manifest: dict, on: str, bundle: Path) -> dict[str, Measurement]:
    profile = manifest["profile"]
    out = {}
    if result.latency_ms is not None:
        out["latency"] = Measurement("latency", result.latency_ms.p50, "ms", MEASURED, on,
                                     f"p50 of {result.latency_ms.runs} invokes; p90 {result.latency_ms.p90:.3f} ms")
    if result.arena_bytes is not None:
        overhead = int(profile["cost_model"].get("runtime_ram_bytes", 0))
        out["ram"] = Measurement("ram", result.arena_bytes + overhead, "bytes", MIXED, f"{on} + profile runtime",
                                 f"arena {result.arena_bytes:,} B (measured on the device) + runtime {overhead:,} B "
                                 "(profile estimate)")
    elif result.peak_rss_bytes is not None:
        out["ram"] = Measurement("ram", result.peak_rss_bytes, "bytes", MEASURED, on,
                                 "peak RSS of the agent process (includes the Python interpreter)")
    model_bytes = manifest["files"]["model.tflite"]["bytes"]
    out["model_size"] = Measurement("model_size", model_bytes, "bytes", MEASURED, on, "pushed and hash-checked")
    if result.accuracy is not None and result.eval_samples:
        original = _original_accuracy(bundle, result.eval_samples)
        if original is not None:
            out["accuracy_drop"] = Measurement(
                "accuracy_drop", max(0.0, original - result.accuracy), "points", MEASURED, on,
                f"device {result.accuracy:.2f} % vs original {original:.2f} % on the same {result.eval_samples} samples")
    return out


def _original_accuracy(bundle: Path, count: int) -> float | None:
    """The original model's top-1 % on the bundle's first `count` eval samples (stored at export)."""
    import numpy as np

    path = bundle / "agent" / "eval_samples.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        if "ref" not in data.files:
            return None
        return float((data["ref"][:count] == data["y"][:count]).mean() * 100)


def _estimate_errors(manifest: dict, measured: dict[str, Measurement]) -> dict[str, dict]:
    out = {}
    for name, figure in measured.items():
        before = manifest["measurements"].get(name)
        if before is None or before.get("source") not in (ESTIMATED, MIXED) or not figure.value:
            continue
        out[name] = {"estimated": before["value"], "measured": figure.value,
                     "error_pct": (before["value"] - figure.value) / figure.value * 100}
    return out


def _prepare(bundle, device: str, use_installed_agent: bool) -> tuple[Path, dict, list[str]]:
    """Check everything that can be checked before connecting: path, integrity, agent, device URI.

    Returns:
        (bundle path, manifest, notes for the run record).
    """
    bundle = check_path(bundle)
    verify_bundle(bundle)
    manifest = read_manifest(bundle)
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
        plan: warm-up and timed runs, eval samples, overall timeout (default RunPlan()).
        options: transport settings (timeouts, known_hosts, ...; default TransportOptions()).
        store: write the run under `<bundle>/hil/` (default True).
        use_installed_agent: run this edgex's agent even if the bundle carries a different one
            (default False: such a bundle is refused). The bundle's agent code never runs.

    Returns:
        The HilRun; `passed` is False when a limit is broken or the run was cut short.

    Raises:
        UsageError: a bundle path the system cannot look up (too long), an unknown device scheme.
        IntegrityError: the bundle fails verification, or its agent is not this edgex's (exit 3).
        DeviceError: any device or transport fault (exit 5).
    """
    plan = plan or RunPlan()
    bundle, manifest, notes = _prepare(bundle, device, use_installed_agent)
    status(f"running {bundle} on {device}")
    with open_transport(device, options) as transport:
        raw = transport.run_bundle(bundle, plan)
        who = transport.describe()
    result = parse_agent_output(raw)
    if not result.ok:
        raise DeviceError(f"the device could not run the model: {result.error or 'no reason given'}")
    expected = manifest["files"]["model.tflite"]["sha256"]
    if result.model_sha256 != expected:
        raise DeviceError(f"the device ran a model with sha256 {result.model_sha256[:12]}…, "
                          f"not this bundle's {expected[:12]}…")
    complete = result.latency_ms is not None and result.latency_ms.runs >= plan.runs
    on = f"{who.get('transport')} device {who.get('id')} ({result.runtime} {result.runtime_version})"
    measured = _figures(result, manifest, on, bundle)
    from exporter.profile import DeviceProfile

    profile = DeviceProfile.model_validate(manifest["profile"])
    not_on_device = "not measured on the device: the export's report has the host figure"
    checks = run_checks(profile.limits, measured, {"accuracy_drop": "no eval samples run on the device",
                                                   "agreement": not_on_device, "fidelity": not_on_device})
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
