"""The order of a search: ask, run and tell trials, up to `window` (`--batch`) of them in flight at once.

In flight means submitted to the runner and not yet told: running, or waiting for a free worker (on Ray the
default window is one more than the workers, exporter/optimize/ray_runner.py).

Trial k is asked right after trial k - window is told, and before any later trial is: a trial that finishes
early keeps its result until its turn. So every ask sees the same told trials for the same seed and window,
however long each trial takes and whichever runner runs it, and the sampler asks the same parameters. A worker
that frees starts the next trial at once, unless that trial waits for an earlier one still running (before,
trials ran in rounds of `window`, and a whole round waited for its slowest trial).

With window 1 this is ask, run, tell, one trial after another. On Ctrl-C the trials that finished are told,
the others marked failed, and the interrupt goes on.

Example (the trial numbers told before each ask, window 2, when trial 1 finishes before trial 0):
    >>> told_before_ask(6, window=2)
    {0: [], 1: [], 2: [0], 3: [0, 1], 4: [0, 1, 2], 5: [0, 1, 2, 3]}
"""
from __future__ import annotations

from typing import Callable

from exporter.optimize.plan import TrialResult

__all__ = ["WARMUP_STAGES", "run_trials", "told_before_ask"]

WARMUP_STAGES = 1
"""Fine-tuning stages (of `epochs` epochs each) a trial always runs before it can be stopped early."""


def told_before_ask(count: int, window: int) -> dict[int, list[int]]:
    """For each of `count` trials numbered from 0, the trials told before it is asked (see the module)."""
    return {k: list(range(max(0, k - window + 1))) for k in range(count)}


def run_trials(opened, runner, job, setup: dict, budget, window: int, *, progress: bool = True) -> tuple[int, str]:
    """Run trials on `runner` until `budget` is spent, `window` at a time; each told in trial-number order.

    Args:
        opened: the optuna.Study.
        runner: a Runner (exporter/optimize/runner.py).
        job: the OptimizeJob.
        setup: the search's setup (space, limits) from exporter/optimize/api.py.
        budget: the Budget (--trials counts the study's finished trials, --time stops asking).
        window: trials running at once.
        progress: a progress bar over the trials on stderr.

    Returns:
        (trials told, why it stopped: "trials" or "time").

    Raises:
        KeyboardInterrupt: Ctrl-C (the finished trials are told first, the others marked failed).
    """
    from exporter import progress as progress_mod
    from exporter.optimize.study import finished

    before = len(finished(opened)[0])
    allowed = budget.remaining(before)
    with progress_mod.scoped(enabled=progress), progress_mod.progress("trials", allowed) as advance:
        return _loop(opened, runner, job, setup, budget, window, advance, before)


def _loop(opened, runner, job, setup: dict, budget, window: int, advance: Callable[[], None],
          before: int) -> tuple[int, str]:
    """`run_trials` once the progress bar is up; `before`: the study's finished trials at the start."""
    allowed, asked, done, told = budget.remaining(before), {}, {}, 0
    runner.start(job)
    try:
        while True:
            more = len(asked) + told < allowed and not budget.expired()
            if asked and (len(asked) >= window or not more):
                oldest = min(asked)
                while oldest not in done:
                    _finished(runner.next_done(), done, advance)
                _tell(opened, *asked.pop(oldest), done.pop(oldest), setup)
                told += 1
            elif more:
                _ask(opened, runner, job, setup, asked, done, advance)
            else:
                return told, "time" if budget.expired() and budget.remaining(before + told) else "trials"
    except BaseException:
        runner.cancel()
        raise
    finally:
        for number, (trial, plan) in asked.items():         # only after Ctrl-C (or a bug)
            _tell(opened, trial, plan, done.get(number), setup)


def _finished(result: TrialResult, done: dict, advance) -> None:
    done[result.number] = result
    advance()


def _tell(opened, trial, plan, result: TrialResult | None, setup: dict) -> None:
    """Tell the study how `trial` ended; without a plan or result (interrupted) it is marked failed."""
    from exporter.optimize.study import discard, tell

    if plan is None or result is None:
        discard(opened, trial)
    else:
        tell(opened, trial, plan, result, setup["limits"])


def _ask(opened, runner, job, setup: dict, asked: dict, done: dict, advance) -> None:
    """Ask the next trial and start it on `runner`, or finish it at once as a repeat of an earlier trial.

    A trial whose parameters equal those of an earlier complete trial is not run again (trials are
    deterministic: same recipe, seed and data): it gets that trial's result (`trial.repeat_of`).
    """
    from exporter.optimize.space import plan_for, suggest
    from exporter.optimize.study import finished
    from exporter.optimize.trial import prune_rule, repeat_of
    from exporter.session import signals_deferred

    results, plans = finished(opened)
    space = setup["space"]
    with signals_deferred():            # a Ctrl-C inside ask() waits until the trial is kept: then it is
        trial = opened.ask()            # marked failed, never left RUNNING in the study
        asked[trial.number] = (trial, None)
    plan = plan_for(space, suggest(space, trial), trial.number, job.epochs, job.seed, job.batch_size)
    plan.prune_below = dict(prune_rule(results, WARMUP_STAGES * job.epochs))
    asked[trial.number] = (trial, plan)
    same = [r for r in results if r.state == "complete" and plans.get(r.number) is not None
            and plans[r.number].params == plan.params]
    if same:
        _finished(repeat_of(same[0], plan.number), done, advance)
    else:
        runner.submit(plan)
