"""The Pareto front, the closest infeasible trial, the pick rules and the table rows, on hand-built trials."""
from __future__ import annotations

import itertools
import random

import pytest

from exporter.errors import LimitError, UsageError
from exporter.optimize.objectives import Objective
from exporter.optimize.pareto import closest, dominates, pareto_front, recipe_summary, table_rows, violation
from exporter.optimize.pick import PICKS, choose, no_pass_error, provenance, safe_storage
from exporter.optimize.plan import TrialPlan, TrialResult

ACC = Objective("accuracy", "accuracy", "maximize", "%")
SIZE = Objective("size", "gzip_size", "minimize", "bytes")
LATENCY = Objective("latency", "latency", "minimize", "ms")
TWO = [ACC, SIZE]


def trial(number, acc, size, constraints=(-0.1,), state="complete", **kw):
    return TrialResult(number, state, [acc, size] if state == "complete" else [], list(constraints), **kw)


def brute_front(results, objectives):
    """The definition, spelled out: feasible trials no other feasible trial beats on all and strictly on one."""
    sign = [1 if o.direction == "maximize" else -1 for o in objectives]
    ok = [r for r in results if r.feasible]

    def beats(a, b):
        pairs = [(s * x, s * y) for s, x, y in zip(sign, a.values, b.values)]
        return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)

    return {r.number for r in ok if not any(beats(o, r) for o in ok)}


def test_dominates_respects_directions():
    assert dominates([98, 100], [97, 200], ["maximize", "minimize"])
    assert not dominates([98, 300], [97, 200], ["maximize", "minimize"])       # a trade-off
    assert not dominates([98, 100], [98, 100], ["maximize", "minimize"])       # equal: neither
    assert dominates([98, 100], [98, 101], ["maximize", "minimize"])


def test_front_is_feasible_non_dominated_and_sorted_by_size():
    results = [trial(0, 98.0, 40000), trial(1, 97.5, 9000), trial(2, 97.0, 12000),   # 2: dominated by 1
               trial(3, 99.9, 1000, constraints=(0.3,)),                               # best on both, infeasible
               trial(4, 0, 0, state="pruned"), trial(5, 0, 0, state="failed", error="boom"),
               trial(6, 97.5, 9000)]                                                    # ties with 1: both stay
    front = pareto_front(results, TWO)
    assert [t.number for t in front] == [1, 6, 0]
    assert all(t.feasible for t in front)
    repeat = trial(7, 97.5, 9000, worker={"kind": "repeat", "of": 1})             # trial 1's result, not run
    assert [t.number for t in pareto_front(results + [repeat], TWO)] == [1, 6, 0]


@pytest.mark.parametrize("seed", range(5))
def test_front_matches_the_definition_on_random_trials(seed):
    rng = random.Random(seed)
    objectives = [ACC, SIZE, LATENCY]
    results = [TrialResult(n, "complete", [rng.choice([90, 95, 97, 98]), rng.choice([5e3, 1e4, 2e4]),
                                           rng.choice([1.0, 2.0, 3.0])], [rng.choice([-0.2, 0.1])])
               for n in range(40)]
    front = pareto_front(results, objectives)
    assert {t.number for t in front} == brute_front(results, objectives)
    sizes = [t.values[1] for t in front]
    assert sizes == sorted(sizes)
    for a, b in itertools.permutations(front, 2):
        assert not dominates(a.values, b.values, [o.direction for o in objectives])


def test_no_feasible_trial_gives_an_empty_front_and_the_closest():
    broken_small = {"model_size": {"measured": 11000, "limit": 10000, "unit": "bytes"}}
    broken_big = {"model_size": {"measured": 30000, "limit": 10000, "unit": "bytes"},
                  "accuracy_drop": {"measured": 3.0, "limit": 1.0, "unit": "points"}}
    results = [trial(0, 97.0, 30000, constraints=(2.0, 2.0), broken=broken_big),
               trial(1, 96.0, 11000, constraints=(0.1, -0.5), broken=broken_small),
               trial(2, 0, 0, state="failed", error="conversion failed")]
    assert pareto_front(results, TWO) == []
    best, broken = closest(results, TWO)
    assert best.number == 1 and broken == broken_small
    assert violation(results[0]) == 4.0 and violation(results[1]) == pytest.approx(0.1)
    error = no_pass_error(results, TWO, {1: TrialPlan(1, {}, {"stages": [{"type": "prune",
                                                                         "config": {"sparsity": 0.9}}]}, "int8")})
    assert isinstance(error, LimitError) and error.exit_code == 1
    assert "3 trials: 2 complete, 1 failed" in str(error)
    assert "closest is trial 1 (prune 0.9 · int8)" in str(error)
    assert "model_size 11,000 B > 10,000 B" in str(error) and "accuracy_drop" not in str(error)


def test_no_completed_trial_says_so():
    results = [trial(0, 0, 0, state="failed", error="x"), trial(1, 0, 0, state="pruned")]
    assert closest(results, TWO) == (None, {})
    assert "none completed" in str(no_pass_error(results, TWO))


def test_pick_rules():
    front = [TrialResult(1, "complete", [97.5, 9000.0, 3.0]), TrialResult(0, "complete", [98.0, 40000.0, 1.0]),
             TrialResult(2, "complete", [97.5, 9000.0, 2.0])]
    objectives = [ACC, SIZE, LATENCY]
    assert set(PICKS) == {"smallest", "fastest", "most-accurate"}
    assert choose(front, objectives).number == 1                 # smallest; tie on size and accuracy -> lower number
    assert choose(front, objectives, "fastest").number == 0
    assert choose(front, objectives, "most-accurate").number == 0
    two = [TrialResult(3, "complete", [97.0, 5000.0], figures={"latency": {"value": 4.0}}),
           TrialResult(4, "complete", [96.0, 4000.0], figures={"latency": {"value": 2.5}})]
    assert choose(two, TWO, "fastest").number == 4                # latency from the figures when not an objective
    with pytest.raises(UsageError, match="known: smallest, fastest, most-accurate"):
        choose(front, objectives, "cheapest")


def test_table_rows_and_recipe_summary():
    plan = TrialPlan(7, {"prune": 0.8}, {"stages": [{"type": "prune", "config": {"sparsity": 0.8, "skip_layers": ["d"]}},
                                                    {"type": "cluster", "config": {"clusters": 16}},
                                                    {"type": "qat"}]}, "int8", {"compress": True})
    assert recipe_summary(plan) == "prune 0.8 · cluster 16 · qat · int8 · compress on · skip d"
    assert recipe_summary(plan.to_dict()) == recipe_summary(plan)
    results = [TrialResult(7, "complete", [97.25, 12345.0, 0.5], [-0.1]),
               TrialResult(8, "failed", error="TFLite conversion failed")]
    headers, rows = table_rows(results, [ACC, SIZE, LATENCY], {7: plan}, front=results[:1], pick=7)
    assert headers == ["trial", "recipe", "accuracy", "size: gzip_size", "latency", "state", "feasible",
                       "broken limits", "Pareto"]
    assert rows[0] == ["7 (pick)", recipe_summary(plan), "97.25 %", "12,345 B", "0.500 ms", "complete", "yes", "",
                       "yes"]
    assert rows[1][2:] == ["-", "-", "-", "failed", "no", "TFLite conversion failed", ""]


def test_provenance_hides_passwords():
    plan = TrialPlan(3, {"prune": 0.8}, {"stages": []}, "int8")
    record = provenance("edgex-x", "postgresql://me:secret@db:5432/edgex", TrialResult(3, "complete"), plan)
    assert record == {"optimize": {"study": "edgex-x", "storage": "postgresql://me:***@db:5432/edgex", "trial": 3,
                                   "params": {"prune": 0.8}}}
    assert safe_storage("sqlite:///build/opt.study.db") == "sqlite:///build/opt.study.db"
