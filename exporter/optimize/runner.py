"""Who runs trials: in this process, one at a time (the default), or as Ray tasks (`--ray`).

The driver (exporter/optimize/scheduler.py) asks the study for trials and `submit`s their plans; `next_done`
waits for whichever submitted trial finishes first. The driver tells the study in trial-number order, so the
same seed and `--batch` ask the same parameters whichever runner runs them. `RUNNERS` maps a runner's kind to
its class; `runner_for` picks one from `--ray`.

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
        """Trials running at once when `--batch` is not given."""
        return 1

    def start(self, job) -> None:
        """Get ready to run trials of `job` (every trial submitted next shares it)."""
        raise NotImplementedError

    def submit(self, plan: TrialPlan) -> None:
        """Start the trial `plan` (or queue it: in-process trials run inside `next_done`)."""
        raise NotImplementedError

    def next_done(self) -> TrialResult:
        """Wait for the first submitted trial to finish that has not been returned yet; its TrialResult.

        Raises:
            KeyboardInterrupt: Ctrl-C (the driver then calls `cancel` and marks unfinished trials failed).
        """
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop the submitted trials that have not been returned; safe to call twice."""

    def export_pick(self, out, job, trial: TrialResult, plan: TrialPlan, **kwargs):
        """Export the picked trial as a bundle at `out` where its trial ran (exporter/optimize/pick.py `export_pick`).

        A Ray runner exports it in a worker with the trial's thread count, so that it computes the same floats.
        """
        from exporter.optimize.pick import export_pick

        return export_pick(out, job, trial, plan, **kwargs)

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
    """Trials one after another in this process (`exporter.optimize.trial.run_trial`), in submission order."""

    kind = "in-process"

    def start(self, job) -> None:
        self._job, self._queue = job, []

    def submit(self, plan: TrialPlan) -> None:
        self._queue.append(plan)

    def next_done(self) -> TrialResult:
        from exporter.optimize.trial import run_trial

        return run_trial(self._job, self._queue.pop(0))

    def cancel(self) -> None:
        self._queue = []


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
