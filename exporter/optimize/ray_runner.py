"""Trials as Ray tasks (`edgex optimize --ray auto|HOST:PORT`): each trial a worker process on a Ray cluster.

The driver (the `edgex optimize` process) keeps Optuna's ask and tell; each trial is one
`ray.remote(num_cpus=trial_cpus)` task calling `exporter.optimize.trial.run_trial(job, plan)` in a Ray
worker process, with the job shipped once per search (`ray.put`). `cluster CPUs // trial_cpus` trials run
at once by default (`--batch`), so every CPU is busy; a freed worker takes the next trial
(exporter/optimize/scheduler.py). Tasks are not retried (`max_retries=0`): a worker that
dies (out of memory, a native crash) gives a failed trial, not a second run. Ray tasks:
https://docs.ray.io/en/latest/ray-core/tasks.html; connecting a driver:
https://docs.ray.io/en/latest/ray-core/api/doc/ray.init.html

A worker's TensorFlow keeps its default thread pools (every core of its node), as the driver's does, so a
trial computes the same floats in a worker as in-process on the same machine. Limiting it to `--trial-cpus`
threads (`TF_NUM_INTRAOP_THREADS`) was tried: 2 trials side by side then contend less, but the sums run in
another order, and the pick exported again on the driver drifted (one trial: within the 1-point limit in its
1-thread worker, 1.11 pt over it on the driver).

Workers import edgex like the driver: this machine's workers get `PYTHONPATH=<the driver's source
root>` and `TF_USE_LEGACY_KERAS=1` through the job's runtime environment; other machines need edgex
installed (the same version, in an environment with the same Ray and Python).

Single machine:

    ray start --head --num-cpus 2                    # prints the address, e.g. 192.168.1.10:6379
    edgex optimize --demo --target android --trials 20 --out build/opt --ray auto
    ray stop

Several machines (install edgex, with the same Python and Ray versions, on every node):

    head$    ray start --head --port 6379
    worker$  ray start --address HEAD_IP:6379        # on each other machine
    head$    edgex optimize MODEL.keras --target android --train train.npz --eval eval.npz \\
                 --out build/opt --ray HEAD_IP:6379 --trial-cpus 2

The driver can run on any machine that reaches the head. The data files are read by the workers at the
same paths: put them on a shared file system, or at the same path on every node.

Example:
    >>> ray_address("auto"), ray_address("10.0.0.2:6379")
    ('auto', '10.0.0.2:6379')
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path

from exporter.errors import UsageError
from exporter.option_names import option
from exporter.optimize.plan import TrialPlan, TrialResult
from exporter.optimize.runner import Runner

__all__ = ["RayRunner", "ray_address", "trial_task"]

CONNECT_TIMEOUT_S = 5.0
"""Seconds to wait for a Ray head's port to answer before `ray.init` (which would retry for minutes)."""


def ray_address(text: str) -> str:
    """`--ray`'s value checked: "auto" or HOST:PORT.

    Raises:
        UsageError: anything else.
    """
    host, sep, port = str(text).rpartition(":")
    if text == "auto" or (sep and host and port.isdigit() and 0 < int(port) < 65536):
        return text
    raise UsageError(f"{option('ray', text)}: give auto (the Ray cluster this machine started) or HOST:PORT of "
                     "a Ray head, e.g. 10.0.0.2:6379")


def _reachable(address: str) -> None:
    """Refuse quickly when nothing listens at HOST:PORT."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            return
    except OSError as exc:
        raise UsageError(f"{option('ray', address)}: no Ray head answers there ({exc.strerror or exc}); start one "
                         "with `ray start --head`") from None


def _runtime_env() -> dict:
    """What every worker's environment needs: tf_keras, quiet TF, this source tree on the path, the demo's cache."""
    import exporter

    root = str(Path(exporter.__file__).resolve().parent.parent)
    env = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "EDGEX_NO_PROGRESS": "1", "PYTHONPATH": root}
    if os.environ.get("EDGEX_CACHE_DIR"):          # the demo: the driver's trained copy, not one per worker
        env["EDGEX_CACHE_DIR"] = os.environ["EDGEX_CACHE_DIR"]
    return {"env_vars": env}


def _connect(address: str) -> None:
    """`ray.init` as a driver of the cluster at `address`, keeping edgex's SIGTERM handling (exit 143).

    `ray.init` installs its own SIGTERM handler (`sys.exit(15)`); the one edgex's command session set is put back.

    Raises:
        UsageError: no cluster there.
    """
    import ray

    main = threading.current_thread() is threading.main_thread()
    saved = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(address=address, runtime_env=_runtime_env(), log_to_driver=False, logging_level=logging.WARNING,
                 configure_logging=True)
    except ConnectionError as exc:
        raise UsageError(f"{option('ray', address)}: {exc}") from None
    finally:
        if main and saved is not None:
            signal.signal(signal.SIGTERM, saved)


def trial_task(job, plan: TrialPlan) -> TrialResult:
    """The Ray task of one trial: `run_trial` in the worker, which records itself as a Ray worker."""
    import ray

    from exporter.optimize.trial import run_trial

    result = run_trial(job, plan)
    context = ray.get_runtime_context()
    result.worker = {**result.worker, "kind": "ray", "pid": os.getpid(), "host": socket.gethostname(),
                     "node": context.get_node_id()}
    return result


class RayRunner(Runner):
    """Runs trials as Ray tasks on the cluster at `address` ("auto" or HOST:PORT)."""

    kind = "ray"

    def __init__(self, address: str, trial_cpus: int = 1):
        super().__init__(ray_address(address), trial_cpus)
        import ray

        self._owned = not ray.is_initialized()       # a caller's own ray.init() is used and left open
        if self._owned:
            if self.address != "auto":
                _reachable(self.address)
            _connect(self.address)
        self._task = ray.remote(num_cpus=trial_cpus, max_retries=0)(trial_task)
        self._check_cpus()

    def _check_cpus(self) -> None:
        """Refuse `--trial-cpus` above every node's CPUs (the task would wait forever)."""
        import ray

        most = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
        if self.trial_cpus > most:
            self.close()
            raise UsageError(f"{option('trial_cpus', self.trial_cpus)}: no node of the Ray cluster has that many "
                             f"CPUs (the largest has {most:g})")

    def cpus(self) -> int:
        """The cluster's CPUs."""
        import ray

        return int(ray.cluster_resources().get("CPU", 1))

    def default_batch(self) -> int:
        """As many trials as the cluster runs at once: its CPUs // `trial_cpus` (at least 1)."""
        return max(1, self.cpus() // self.trial_cpus)

    def describe(self) -> dict:
        return {**super().describe(), "cpus": self.cpus()}

    def start(self, job) -> None:
        import ray

        self._job_ref, self._pending = ray.put(job), {}

    def submit(self, plan: TrialPlan) -> None:
        self._pending[self._task.remote(self._job_ref, plan)] = plan

    def next_done(self) -> TrialResult:
        import ray

        ready, _ = ray.wait(list(self._pending), num_returns=1)
        return _result(ready[0], self._pending.pop(ready[0]))

    def cancel(self) -> None:
        import ray

        for ref in getattr(self, "_pending", {}):
            ray.cancel(ref, force=True)
        self._pending = {}

    def close(self) -> None:
        import ray

        if self._owned and ray.is_initialized():
            ray.shutdown()
        self._owned = False


def _result(ref, plan: TrialPlan) -> TrialResult:
    """A finished task's TrialResult; a task that died (worker crash, out of memory) is a failed trial."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        return TrialResult(number=plan.number, state="failed", error=f"the Ray task failed: {line}",
                           worker={"kind": "ray"})
