"""Who runs a round of trials: in this process, one at a time (the default), or Ray tasks (`--ray`).

A search runs in rounds (exporter/optimize/api.py): the driver asks the study for `batch` trials, a runner
runs their plans and calls `on_done(result)` as each one finishes (in any order), then the driver tells the
study the results in trial-number order. So the same seed and batch ask the same parameters whichever
runner runs them. `RUNNERS` maps a runner's kind to its class; `runner_for` picks one from `--ray`.

Example:
    >>> runner = runner_for(None, trial_cpus=1)
    >>> runner.kind, runner.default_batch(), runner.describe()
    ('in-process', 1, {'kind': 'in-process', 'address': None, 'trial_cpus': 1})
"""
from __future__ import annotations

from typing import Callable

from exporter.optimize.plan import TrialPlan, TrialResult

__all__ = ["InProcessRunner", "RUNNERS", "Runner", "runner_for"]


class Runner:
    """What every runner does: run plans, report each result as it finishes, say where trials run.

    Attributes:
        kind: "in-process" or "ray" (a trial's `worker["kind"]`).
        address: the Ray address given (None in-process).
        trial_cpus: CPUs each trial asks for.
    """

    kind = "runner"

    def __init__(self, address: str | None = None, trial_cpus: int = 1):
        self.address, self.trial_cpus = address, trial_cpus

    def default_batch(self) -> int:
        """Trials per round when `--batch` is not given."""
        return 1

    def run(self, job, plans: list[TrialPlan], on_done: Callable[[TrialResult], None]) -> None:
        """Run `plans` for `job`; call `on_done` with each TrialResult as it finishes.

        Raises:
            KeyboardInterrupt: Ctrl-C; trials not yet reported are abandoned (the driver marks them failed).
        """
        raise NotImplementedError

    def describe(self) -> dict:
        """Where trials run, for the result: {"kind", "address", "trial_cpus"} (+ a runner's own keys)."""
        return {"kind": self.kind, "address": self.address, "trial_cpus": self.trial_cpus}

    def close(self) -> None:
        """Release what the runner holds (a Ray connection); safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InProcessRunner(Runner):
    """Trials one after another in this process (`exporter.optimize.trial.run_trial`)."""

    kind = "in-process"

    def run(self, job, plans: list[TrialPlan], on_done: Callable[[TrialResult], None]) -> None:
        from exporter.optimize.trial import run_trial

        for plan in plans:
            on_done(run_trial(job, plan))


def _ray_runner(address, trial_cpus):
    from exporter.optimize.ray_runner import RayRunner

    return RayRunner(address, trial_cpus)


RUNNERS: dict[str, Callable[..., Runner]] = {"in-process": InProcessRunner, "ray": _ray_runner}
"""Runner kind -> a factory (address, trial_cpus) -> Runner."""


def runner_for(ray: str | None, trial_cpus: int = 1) -> Runner:
    """The runner for `--ray`: None runs in-process; "auto" or HOST:PORT connects to a Ray cluster.

    Raises:
        UsageError: no Ray cluster at that address (exporter/optimize/ray_runner.py).
    """
    return RUNNERS["in-process" if ray is None else "ray"](ray, trial_cpus)
