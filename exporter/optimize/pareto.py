"""The Pareto front of a search, the trial closest to passing when none does, and the rows that show them.

A trial is on the front when it is feasible (complete, every limit held: `TrialResult.feasible`) and no
other feasible trial is at least as good on every objective and better on one (`dominates`). Infeasible,
pruned and failed trials are never on it; they are listed in the report with the limits they broke.
When no trial is feasible, `closest` names the complete trial with the smallest total constraint violation
(Optuna's convention: a constraint value > 0 is violated by that much, normalised by its limit), which is
what `--pick` reports before exiting 1 (exporter/optimize/pick.py).

Example:
    >>> from exporter.optimize.objectives import Objective
    >>> objectives = [Objective("accuracy", "accuracy", "maximize", "%"),
    ...               Objective("size", "gzip_size", "minimize", "bytes")]
    >>> results = [TrialResult(0, "complete", [98.0, 40000.0], [-0.1]),
    ...            TrialResult(1, "complete", [97.5, 9000.0], [-0.2]),
    ...            TrialResult(2, "complete", [97.0, 12000.0], [-0.2]),     # dominated by trial 1
    ...            TrialResult(3, "complete", [99.0, 5000.0], [0.4]),       # breaks a limit
    ...            TrialResult(4, "pruned")]
    >>> [r.number for r in pareto_front(results, objectives)]
    [1, 0]
    >>> closest(results, objectives)[0] is None      # trials 0-2 pass: nobody is "closest"
    True
"""
from __future__ import annotations

from exporter.limits import LIMITS
from exporter.optimize.plan import TrialPlan, TrialResult

__all__ = ["closest", "dominates", "pareto_front", "recipe_summary", "table_rows", "violation"]

STAGE_KEYS = {"distill": "width", "prune": "sparsity", "sparsify": "l1", "cluster": "clusters", "lowbit": "bits"}
"""stage type -> the config key its one-line summary shows (a stage not here shows its name alone)."""


def dominates(a: list, b: list, directions: list[str]) -> bool:
    """True when values `a` are at least as good as `b` on every objective and better on one.

    Args:
        a, b: objective values in the same order as `directions`.
        directions: "maximize" or "minimize" per objective.
    """
    signs = [1.0 if d == "maximize" else -1.0 for d in directions]
    better = [s * x for s, x in zip(signs, a)]
    worse = [s * y for s, y in zip(signs, b)]
    return all(x >= y for x, y in zip(better, worse)) and any(x > y for x, y in zip(better, worse))


def pareto_front(results: list[TrialResult], objectives: list) -> list[TrialResult]:
    """The non-dominated feasible trials, smallest size first (the first minimized objective).

    Args:
        results: every trial of the study.
        objectives: the study's `Objective`s, in the order of each trial's values.

    Returns:
        The Pareto front; empty when no trial is feasible. Trials with equal values are all kept, except
        repeats (a trial given an earlier trial's result for the same parameters: its worker kind "repeat").
    """
    directions = [o.direction for o in objectives]
    feasible = [r for r in results if r.feasible and len(r.values) == len(objectives)
                and r.worker.get("kind") != "repeat"]
    front = [r for r in feasible if not any(dominates(o.values, r.values, directions) for o in feasible)]
    return sorted(front, key=lambda r: (_sort_key(r, objectives), r.number))


def _sort_key(result: TrialResult, objectives: list) -> tuple:
    """Size first (ascending), then quality (descending): how the front is listed."""
    signs = [1.0 if o.direction == "minimize" else -1.0 for o in objectives]
    order = sorted(range(len(objectives)), key=lambda i: objectives[i].direction != "minimize")
    return tuple(signs[i] * result.values[i] for i in order)


def violation(result: TrialResult) -> float:
    """The total constraint violation of a trial: the sum of its positive constraint values (0 = feasible)."""
    return sum(max(0.0, float(c)) for c in result.constraints)


def closest(results: list[TrialResult], objectives: list) -> tuple[TrialResult | None, dict]:
    """When no trial is feasible: the complete trial nearest to passing, and the limits it broke.

    Args:
        results: every trial of the study.
        objectives: the study's objectives (ties in violation go to the smaller size).

    Returns:
        (trial, its `broken` limits) with the smallest total violation among complete infeasible trials;
        (None, {}) when some trial is feasible or no trial completed.
    """
    complete = [r for r in results if r.state == "complete"]
    if not complete or any(r.feasible for r in complete):
        return None, {}
    best = min(complete, key=lambda r: (violation(r), _sort_key(r, objectives) if r.values else (), r.number))
    return best, dict(best.broken)


def recipe_summary(plan: TrialPlan | dict | None) -> str:
    """A trial's recipe in one line: "prune 0.8 · int8 · skip conv2d · float probs"; "?" without a plan.

    Example:
        >>> recipe_summary(TrialPlan(0, {}, {"stages": [{"type": "prune", "config": {"sparsity": 0.8}},
        ...                                             {"type": "qat"}]}, "int8", {"compress": False}))
        'prune 0.8 · qat · int8 · compress off'
        >>> recipe_summary(TrialPlan(1, {}, {"stages": [], "float_layers": ["probs", "conv2d"]}, "int8", {}))
        'int8 · float probs, conv2d'
    """
    if plan is None:
        return "?"
    plan = TrialPlan.from_dict(plan) if isinstance(plan, dict) else plan
    parts, skipped = [], list(plan.recipe.get("skip_layers") or [])
    for stage in plan.recipe.get("stages") or []:
        config = stage.get("config") or {}
        key = STAGE_KEYS.get(stage["type"])
        parts.append(stage["type"] if config.get(key) is None else f"{stage['type']} {config[key]:g}")
        if config.get("structure"):
            parts[-1] += f" {config['structure']}"
        skipped += [n for n in config.get("skip_layers") or [] if n not in skipped]
    parts += [plan.quantize] if plan.quantize else []
    parts += [f"{name} {'on' if value else 'off'}" if isinstance(value, bool) else f"{name} {value}"
              for name, value in sorted(plan.target_options.items())]
    parts += [f"skip {', '.join(skipped)}"] if skipped else []
    floats = plan.recipe.get("float_layers") or []
    parts += [f"float {', '.join(floats)}"] if floats else []
    return " · ".join(parts) or "no stages"


def broken_text(broken: dict) -> str:
    """The broken limits in words.

    Example:
        >>> broken_text({"model_size": {"measured": 20600, "limit": 16000, "unit": "bytes"},
        ...              "accuracy_drop": {"measured": 2.5, "limit": 1, "unit": "points"}})
        'model_size 20,600 B > 16,000 B; accuracy_drop 2.50 pt > 1.00 pt'
    """
    out = []
    for name, b in broken.items():
        unit = b.get("unit") or (LIMITS[name].unit if name in LIMITS else "")
        sign = "<" if name in LIMITS and LIMITS[name].minimum else ">"
        out.append(f"{name} {value_text(b.get('measured'), unit)} {sign} {value_text(b.get('limit'), unit)}")
    return "; ".join(out)


def value_text(value, unit: str) -> str:
    """An objective value for a table: exact bytes for sizes ("9,000 B"), else `format_value`."""
    from exporter.units import format_value

    if value is None:
        return "-"
    return f"{value:,.0f} B" if unit == "bytes" else format_value(value, unit)


def table_rows(results: list[TrialResult], objectives: list, plans: dict | None = None,
               front: list[TrialResult] | None = None, pick: int | None = None) -> tuple[list[str], list[list[str]]]:
    """The headers and rows of a trials table (the console's Pareto table, the report's tables).

    Args:
        results: the trials to list, in the order given.
        objectives: the study's objectives: one column each ("size: gzip_size").
        plans: trial number -> its TrialPlan (or plan dict), for the recipe column. Default: none ("?").
        front: the Pareto front, marked in the "Pareto" column. Default: not shown.
        pick: the number of the picked trial, marked "pick". Default: none.

    Returns:
        (headers, rows): trial, recipe, one column per objective, state, feasible, broken limits.

    Example:
        >>> from exporter.optimize.objectives import Objective
        >>> headers, rows = table_rows([TrialResult(3, "complete", [97.5, 9000.0], [0.2],
        ...                            {"model_size": {"measured": 12000, "limit": 10000, "unit": "bytes"}})],
        ...                            [Objective("accuracy", "accuracy", "maximize", "%"),
        ...                             Objective("size", "gzip_size", "minimize", "bytes")])
        >>> headers
        ['trial', 'recipe', 'accuracy', 'size: gzip_size', 'state', 'feasible', 'broken limits']
        >>> rows[0]
        ['3', '?', '97.50 %', '9,000 B', 'complete', 'no', 'model_size 12,000 B > 10,000 B']
    """
    plans = plans or {}
    headers = ["trial", "recipe"] + [o.name if o.name == o.figure else f"{o.name}: {o.figure}" for o in objectives]
    headers += ["state", "feasible", "broken limits"] + (["Pareto"] if front is not None else [])
    on_front = {r.number for r in front or []}
    rows = []
    for r in results:
        values = list(r.values) + [None] * (len(objectives) - len(r.values))
        row = [str(r.number) + (" (pick)" if r.number == pick else ""), recipe_summary(plans.get(r.number))]
        row += [value_text(v, o.unit) for v, o in zip(values, objectives)]
        row += [r.state, "yes" if r.feasible else "no", broken_text(r.broken) or (r.error or "")[:120]]
        row += (["yes" if r.number in on_front else ""] if front is not None else [])
        rows.append(row)
    return headers, rows
