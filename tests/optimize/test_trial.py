"""One trial: a real export of the demo scored into a TrialResult; failures, early stops and Ctrl-C."""
from __future__ import annotations

import os
import signal
import threading

import pytest

from exporter.optimize.job import OptimizeJob
from exporter.optimize.objectives import objectives_for, score
from exporter.optimize.plan import TrialPlan, TrialResult
from exporter.optimize.trial import prune_rule, run_trial


def _plan(stages=(), prune_below=None, number=0, **recipe) -> TrialPlan:
    recipe = {"stages": list(stages), "training": {"epochs": 1, "seed": 7}, "quantize": "int8", **recipe}
    return TrialPlan(number=number, params={}, recipe=recipe, quantize="int8", prune_below=prune_below or {})


def test_prune_rule_is_the_lowest_feasible_curve():
    done = [TrialResult(number=i, state="complete", curve=c, constraints=[-0.5]) for i, c in
            enumerate([[50, 80, 90], [60, 70], [70, 90, 95, 99], [10, 20]])]
    infeasible = TrialResult(number=7, state="complete", curve=[1, 1, 1], constraints=[0.2])    # broke a limit
    other = [TrialResult(number=9, state="pruned", curve=[0, 0, 0]), TrialResult(number=8, state="failed"), infeasible]
    assert prune_rule(done + other, warmup=0) == {0: 5.0, 1: 15.0}      # step 2: two feasible curves only
    assert prune_rule(done, warmup=1) == {1: 15.0}                             # the lowest less SLACK_PT (5)
    assert prune_rule(done + done[:1], warmup=0) == {0: 5.0, 1: 15.0, 2: 85.0}
    assert prune_rule(done[:2] + other, warmup=0) == {}                        # fewer than 3 feasible


def test_complete_trial_matches_its_report():
    job = OptimizeJob(target="android", demo=True, epochs=1)
    result = run_trial(job, _plan())
    assert result.state == "complete" and result.error is None and result.passed and result.feasible
    assert result.values == [result.figures[o.figure]["value"] for o in objectives_for(job.resolved_profile(), True)]
    assert result.worker == {**result.worker, "kind": "in-process", "pid": os.getpid(), "node": None}
    assert len(result.constraints) == 5 and result.broken == {} and result.curve == [] and result.seconds > 0
    assert TrialResult.from_dict(result.to_dict()) == result


def test_broken_limit_is_a_positive_constraint():
    job = OptimizeJob(target="microcontroller", demo=True, epochs=1, limits=["flash=100KB"])
    result = run_trial(job, _plan())
    assert result.state == "complete" and not result.feasible and not result.passed
    assert list(result.broken) == ["flash"] and result.broken["flash"]["limit"] == 100_000
    flash = result.figures["flash"]["value"]
    assert result.constraints[0] == pytest.approx((flash - 100_000) / 100_000) and result.constraints[0] > 0
    assert result.values[1] == result.figures["model_flash"]["value"]       # the size objective on an MCU


def test_failed_trial_keeps_the_message():
    result = run_trial(OptimizeJob(target="android", demo=True, epochs=1),
                       _plan([{"type": "prune", "config": {"sparsity": 0.5, "layers": ["nope"]}}]))
    assert result.state == "failed" and result.values == []
    assert result.error.startswith("ConfigError: ") and "nope" in result.error and "\n" not in result.error


def test_early_stop_below_the_rule():
    plan = _plan([{"type": "prune", "config": {"sparsity": 0.9}}], prune_below={"0": 100.5}, number=3)
    result = run_trial(OptimizeJob(target="android", demo=True, epochs=1), plan)
    assert result.state == "pruned" and len(result.curve) == 1 and result.values == []
    assert "epoch 1" in result.error and "100.50" in result.error
    kept = run_trial(OptimizeJob(target="android", demo=True, epochs=1), _plan(plan.recipe["stages"],
                                                                             prune_below={0: 1.0}))
    assert kept.state == "complete" and len(kept.curve) == 1 and 0 < kept.curve[0] <= 100


def test_ctrl_c_propagates():
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_trial(OptimizeJob(target="android", demo=True, epochs=20),
                      _plan([{"type": "prune", "config": {"sparsity": 0.5}}], training={"epochs": 20, "seed": 7}))
    finally:
        timer.cancel()


def test_score_reads_report_dicts():
    from exporter.profile import load_profile

    profile = load_profile("arduino-nano-33-ble")
    report = {"measurements": {"top1_agreement": {"value": 90.0, "unit": "%", "source": "measured"},
                               "model_flash": {"value": 5000, "unit": "bytes", "source": "measured"},
                               "latency": {"value": 5.0, "unit": "ms", "source": "estimated"},
                               "ram": {"value": 1000, "unit": "bytes", "source": "mixed"},
                               "flash": {"value": 2 * 1024**2, "unit": "bytes", "source": "mixed"}},
              "checks": [{"name": "flash", "status": "fail", "value": 2 * 1024**2, "limit": 1024**2, "unit": "bytes"}]}
    objectives = objectives_for(profile, has_labels=False)
    assert [o.name for o in objectives] == ["agreement", "size", "latency", "ram"]
    values, constraints, broken = score(report, objectives, profile.limits)
    assert values == [90.0, 5000.0, 5.0, 1000.0]
    assert constraints[0] == pytest.approx(1.0)                               # flash twice its limit
    assert constraints[-1] == pytest.approx((95 - 90) / 95)                   # agreement 90 below minimum 95
    assert broken == {"flash": {"measured": 2 * 1024**2, "limit": 1024**2, "unit": "bytes"}}
