"""One search trial: export with the plan's recipe, score the report, stop early when the curve falls behind.

`run_trial` runs in-process or in a Ray worker (the same code: exporter/optimize/ray_runner.py calls it in
a task). It never raises for the trial's own failure: an error gives a "failed" TrialResult with the one-line
message, and a trial whose per-epoch accuracy falls below `plan.prune_below` gives a "pruned" one (Ctrl-C,
`KeyboardInterrupt`, still propagates). The curve comes from a hook in `exporter.stages.training.fit`
(`EPOCH_HOOK`): the validation accuracy after each fine-tuning epoch, every stage's epochs in a row.

Early stopping asks whether a trial can still catch up with the trials that pass: it stops at a step
when its accuracy is more than `SLACK_PT` points below that of every feasible trial (complete, within every
limit) at the same step, once at least `MIN_CURVES` feasible curves reach it, after `warmup` steps. Optuna's MedianPruner (the
median of all completed trials, optuna/pruners/_median.py) was the first rule; in a search on the demo it
stopped 11 of the first 33 trials, among them every trial with sparsity 0.9 or more, whose accuracy
recovers only in their last epochs: it biased the search against the small models it is for. Optuna's `trial.report`/
`should_prune` do not work in multi-objective studies anyway, so `prune_rule` computes the bounds from
the stored curves on the driver and the plan carries them.

Example:
    >>> done = [TrialResult(number=i, state="complete", curve=[90.0 + i, 95.0 + i]) for i in range(3)]
    >>> prune_rule(done, warmup=1)                   # complete, no constraint broken: all three feasible
    {1: 90.0}
    >>> from exporter.optimize.job import OptimizeJob
    >>> from exporter.optimize.space import default_space, plan_for
    >>> job = OptimizeJob(target="android", demo=True, epochs=1)
    >>> plan = plan_for(default_space(job.resolved_profile(), None, True, None), {"quantize": "int8"},
    ...                 number=0, epochs=1, seed=7)
    >>> result = run_trial(job, plan)            # plain int8: no stage, so no training
    >>> result.state, result.values[1] == result.figures["gzip_size"]["value"], result.worker["kind"]
    ('complete', True, 'in-process')
"""
from __future__ import annotations

import os
import socket
import time

from exporter.optimize.plan import TrialPlan, TrialResult

SLACK_PT = 5.0
"""How far below the lowest passing curve a trial may fall before it stops. The curve is Keras' accuracy on
the 10 % of --train held out, which saturates on small data (100 % on the demo's 143 samples after a few
epochs): without slack, a trial at 99.3 % was stopped there."""
MIN_CURVES = 3
"""Feasible curves that must reach a step before it has a bound (like Optuna's n_startup_trials, per step)."""
CURVE_KEYS = ("val_accuracy", "accuracy")
"""The Keras log a curve point reads, first found (`accuracy` when no validation split is held out)."""


class Pruned(Exception):
    """A trial's accuracy curve fell below the early-stop rule at a step."""

    def __init__(self, step: int, value: float, bound: float):
        super().__init__(f"stopped early at epoch {step + 1}: accuracy {value:.2f} % below {bound:.2f} % (the "
                         f"lowest of the trials that passed at that epoch, less {SLACK_PT:g} points)")
        self.step, self.value, self.bound = step, value, bound


def prune_rule(results: list[TrialResult], warmup: int) -> dict:
    """The early-stop rule for the next trials: {step: lowest accuracy % of a feasible trial there - SLACK_PT}.

    Args:
        results: the study's trials so far (only feasible ones count: complete and within every limit).
        warmup: steps (epochs, 0-based) before which no trial stops (Optuna's n_warmup_steps).

    Returns:
        Steps from `warmup` on that at least `MIN_CURVES` feasible curves reach, with their minimum less SLACK_PT.
    """
    curves = [r.curve for r in results if r.feasible and r.curve]
    rule, step = {}, max(0, warmup)
    while True:
        values = [c[step] for c in curves if len(c) > step]
        if len(values) < MIN_CURVES:
            return rule
        rule[step] = float(min(values)) - SLACK_PT
        step += 1


def worker_info() -> dict:
    """Where this trial runs: {"kind": "ray" | "in-process", "pid", "host", "node" (Ray's node id or None)}."""
    kind, node = "in-process", None
    import sys

    if "ray" in sys.modules:     # only a Ray worker (or a driver that imported it) can be in Ray
        try:
            import ray

            if ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE:
                kind, node = "ray", ray.get_runtime_context().get_node_id()
        except Exception:  # noqa: BLE001 - a Ray API change must not fail the trial; it only names the worker
            pass
    return {"kind": kind, "pid": os.getpid(), "host": socket.gethostname(), "node": node}


def run_trial(job, plan: TrialPlan) -> TrialResult:
    """Export with the plan, score the report, and return what the trial measured.

    Args:
        job: the OptimizeJob (exporter/optimize/job.py).
        plan: the TrialPlan (recipe, mode, target options, early-stop rule).

    Returns:
        The TrialResult: "complete" with values, constraints and broken limits; "pruned" with the curve so
        far; or "failed" with the error's first line.

    Raises:
        KeyboardInterrupt: Ctrl-C (the runner marks running trials as failed).
    """
    import exporter
    from exporter.session import raise_if_interrupted, signals_raise
    from exporter.stages.training import EPOCH_HOOK

    start, cpu, curve = time.monotonic(), time.process_time(), []
    result = TrialResult(number=plan.number, state="failed", curve=curve, worker=worker_info())
    token = EPOCH_HOOK.set(_epoch_hook(curve, plan.prune_below))
    try:
        with signals_raise():      # records Ctrl-C: TensorFlow's native code may turn its exception into another
            try:
                report = exporter.export(**job.export_kwargs(), recipe=plan.recipe, quantize=plan.quantize,
                                         target_options=plan.target_options or None, out=None, progress=False,
                                         bundle_samples=0)
                raise_if_interrupted()        # one the converter swallowed: the trial did not finish
                _fill(result, report, job)
            except Pruned as stop:
                result.state, result.error = "pruned", str(stop)
            except Exception as exc:  # noqa: BLE001 - a trial's own failure is a result, not the search's end
                raise_if_interrupted(exc)     # a Ctrl-C native code turned into `exc`: never a failed trial
                result.state, result.error = "failed", _one_line(exc)
    finally:
        EPOCH_HOOK.reset(token)
        result.seconds = round(time.monotonic() - start, 3)
        result.cpu_seconds = round(time.process_time() - cpu, 3)
    return result


def repeat_of(earlier: TrialResult, number: int) -> TrialResult:
    """Trial `number`'s result when its parameters equal those of the complete trial `earlier`: not run again.

    A trial is deterministic (the same recipe, seed and data give the same model; two such trials measured
    identical figures), and TPE proposes a point twice now and then; the copy costs no training. Its worker
    says so: {"kind": "repeat", "of": earlier.number}; latency figures are those measured for `earlier`.
    """
    from dataclasses import replace

    return replace(earlier, number=number, worker={"kind": "repeat", "of": earlier.number}, seconds=0.0,
                   cpu_seconds=0.0, values=list(earlier.values), constraints=list(earlier.constraints),
                   curve=list(earlier.curve), broken=dict(earlier.broken), figures=dict(earlier.figures))


def _fill(result: TrialResult, report, job) -> None:
    """Score a finished export into `result` (state "complete")."""
    from exporter.optimize.objectives import objectives_for, report_figures, score

    data = report.to_dict()
    profile = job.resolved_profile()
    result.values, result.constraints, result.broken = score(data, objectives_for(profile, job.has_labels),
                                                             profile.limits)
    result.figures, result.passed, result.state = report_figures(data), report.passed, "complete"


def _epoch_hook(curve: list, prune_below: dict):
    """The `EPOCH_HOOK` of a trial: append the epoch's accuracy (%) to `curve`; raise Pruned below the rule.

    `prune_below`'s keys may be ints or, after a JSON round trip (Optuna user attributes), strings.
    """
    rule = {int(step): float(bound) for step, bound in prune_below.items()}

    def hook(logs: dict) -> None:
        value = next((logs[k] for k in CURVE_KEYS if logs.get(k) is not None), None)
        if value is None:
            return
        step = len(curve)
        curve.append(round(float(value) * 100, 4))
        if step in rule and curve[-1] < rule[step]:
            raise Pruned(step, curve[-1], rule[step])

    return hook


def _one_line(exc: BaseException) -> str:
    """`Type: first line of the message` (the whole traceback stays out of the study)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
