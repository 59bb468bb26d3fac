"""`edgex profiles calibrate`: fit a profile's latency cost model to measured device runs.

Each stored HIL run of a bundle exported for the profile gives one point: the model's int8
MACs, float MACs and op count (from its .tflite) against the latency the device measured
(on the profile's `threads`: the MAC terms are divided by the cost model's thread speed-up, so the
fitted rates stay single-thread rates, exporter/analysis/cost_model.py).
With three or more points that vary, the per-MAC and per-op costs are fitted by
non-negative least squares; otherwise the cost model is scaled by the median ratio of
measured to estimated latency. A cost model's int16 rate (int16x8 ops) is scaled with the others
but not fitted: the time of int16 MACs at that rate is taken off each measured latency before the fit.
The result is a new profile file whose header states the estimate's error before and after.

Example (one run on this machine as the device; with a single run the cost model is scaled):
    >>> import sys
    >>> from exporter.hil.runner import hil_run
    >>> from exporter.hil.transports.base import RunPlan, TransportOptions
    >>> run = hil_run(bundle, "local", RunPlan(runs=5, warmup=1), TransportOptions(python=sys.executable))
    >>> result = calibrate("android-arm64-midrange", [bundle])
    >>> len(result.points), result.method.startswith("scaled by the median"), result.error_after_pct < 1
    (1, True, True)
    >>> result.write("phone.yaml").name
    'phone.yaml'
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from exporter.analysis.cost_model import estimate_latency_ms, rate_class, speedup
from exporter.analysis.graph import Graph
from exporter.errors import DataError
from exporter.hil.runner import load_runs
from exporter.profile import CostModel, load_profile
from targets.base import get_target


@dataclass
class Calibration:
    """The calibrated profile and how much closer its estimates come."""

    profile: object
    points: list[dict]
    method: str
    error_before_pct: float
    error_after_pct: float

    def to_yaml(self) -> str:
        header = (f"# Calibrated by edgex on {_dt.date.today().isoformat()} from {len(self.points)} device run(s) "
                  f"({self.method}).\n# Latency estimate error (mean |estimated - measured| / measured): "
                  f"{self.error_before_pct:.1f} % before, {self.error_after_pct:.1f} % after.\n"
                  "# Every other figure is as in the original profile, whose comments give the sources.\n")
        data = self.profile.model_dump(mode="json")   # keep nulls: `toolchain: null` must not fall back to its default
        return header + yaml.safe_dump(data, sort_keys=False)

    def write(self, out: str | Path | None = None) -> Path:
        """Write the calibrated profile as YAML (fsynced) and return its path.

        Args:
            out: where to write it. Default: `<profile name>.calibrated.yaml` in the current folder.
        """
        from exporter.bundle import _write_file

        path = Path(out or f"{self.profile.name}.calibrated.yaml")
        _write_file(path, self.to_yaml().encode("utf-8"))
        return path

    def summary(self, path: str | Path) -> dict:
        """What `edgex profiles calibrate --json` prints: the profile written, runs, method, errors."""
        return {"profile": str(path), "runs": len(self.points), "method": self.method,
                "latency_error_before_pct": self.error_before_pct, "latency_error_after_pct": self.error_after_pct}


def _features(graph: Graph) -> dict[str, float]:
    """MACs per rate class ("int8", "int16", "float") and the op count ("ops")."""
    out = {"int8": 0.0, "int16": 0.0, "float": 0.0, "ops": float(len(graph.ops))}
    for op in graph.ops:
        out[rate_class(op.compute_dtype)] += op.macs or 0
    return out


def _bundle_graph(bundle: Path) -> Graph:
    """The bundle's model at the input shapes it was measured at (dynamic input dims fixed; manifest.json)."""
    from exporter.bundle import read_manifest
    from exporter.input_shapes import graph_at, recorded

    path = bundle / "model.tflite"
    graph = Graph.from_file(path)
    return graph_at(path.read_bytes(), recorded(read_manifest(bundle)), graph) if graph.dynamic_inputs() else graph


def _points(bundles) -> list[dict]:
    points = []
    for bundle in bundles:
        graph = _bundle_graph(Path(bundle))
        for run in load_runs(bundle):
            latency = run.get("measurements", {}).get("latency")
            if not run.get("complete") or latency is None:
                continue
            points.append({"bundle": str(bundle), "run": run["path"], "measured_ms": float(latency["value"]),
                           "features": _features(graph), "graph": graph})
    return points


def _error(cost: CostModel, points, threads: int = 1) -> float:
    errors = [abs(estimate_latency_ms(p["graph"], cost, threads) - p["measured_ms"]) / p["measured_ms"]
              for p in points]
    return float(np.mean(errors) * 100)


def _scaled(cost: CostModel, k: float) -> CostModel:
    update = {"per_op_overhead_us": cost.per_op_overhead_us * k}
    if cost.int8_gmacs is not None:
        update |= {name: getattr(cost, name) / k for name in ("int8_gmacs", "float_gmacs", "int16_gmacs")
                   if getattr(cost, name) is not None}
    else:
        update |= {name: getattr(cost, name) * k
                   for name in ("int8_cycles_per_mac", "float_cycles_per_mac", "int16_cycles_per_mac")
                   if getattr(cost, name) is not None}
    return cost.model_copy(update=update)


def _fitted(cost: CostModel, points, threads: int = 1) -> CostModel | None:
    """The cost model fitted to `points`; its MAC rates stay single-thread rates (MAC time x the speed-up)."""
    from scipy.optimize import nnls

    s = speedup(cost, threads)
    int16_rate = cost.macs_per_second("int16")
    features = [p["features"] for p in points]
    if not cost.has_int16_rate:      # int16 ops run at the int8 rate: fit them with it
        features = [f | {"int8": f["int8"] + f["int16"], "int16": 0.0} for f in features]
    a = np.array([(f["int8"] / s, f["float"] / s, f["ops"]) for f in features])
    b = np.array([p["measured_ms"] * 1e-3 - f["int16"] / int16_rate / s for p, f in zip(points, features)])
    if len(points) < 3 or np.linalg.matrix_rank(a) < 3:
        return None
    (int8_s, float_s, op_s), _ = nnls(a, b)
    if int8_s <= 0 or float_s <= 0:
        return None
    update = {"per_op_overhead_us": op_s * 1e6}
    if cost.int8_gmacs is not None:
        update |= {"int8_gmacs": 1e-9 / int8_s, "float_gmacs": 1e-9 / float_s}
    else:
        hz = cost.clock_mhz * 1e6
        update |= {"int8_cycles_per_mac": int8_s * hz, "float_cycles_per_mac": float_s * hz}
    return cost.model_copy(update=update)


def calibrate(profile_name, bundles) -> Calibration:
    """Fit `profile_name`'s cost model to the complete HIL runs stored in `bundles`.

    Raises:
        DataError: no bundle holds a complete run to fit to.
    """
    profile = load_profile(profile_name)
    points = _points(bundles)
    if not points:
        raise DataError("no complete device runs in the given bundles: run `edgex hil run BUNDLE --device ...` first")
    cost = profile.cost_model
    threads = get_target(profile.target).latency_threads(profile)      # as the export's estimate used them
    fitted = _fitted(cost, points, threads)
    method = "non-negative least squares on int8 MACs, float MACs and ops"
    if fitted is None:
        ratios = [p["measured_ms"] / estimate_latency_ms(p["graph"], cost, threads) for p in points]
        fitted = _scaled(cost, float(np.median(ratios)))
        method = f"scaled by the median measured/estimated ratio {float(np.median(ratios)):.3f}"
    before, after = _error(cost, points, threads), _error(fitted, points, threads)
    new = profile.model_copy(update={"cost_model": fitted,
                                     "notes": f"{profile.notes} calibrated: {method}; error {before:.1f}% -> "
                                              f"{after:.1f}%".strip()})
    for p in points:
        p.pop("graph")
    return Calibration(new, points, method, before, after)
