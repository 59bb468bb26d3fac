"""Trials as Ray tasks (`edgex optimize --ray auto|HOST:PORT`): each trial a worker process on a Ray cluster.

The driver (the `edgex optimize` process) keeps Optuna's ask and tell; each trial is one
`ray.remote(num_cpus=trial_cpus)` task calling `exporter.optimize.trial.run_trial(job, plan)` in a Ray
worker process, with the job shipped once per search (`ray.put`). By default (`--batch`) `cluster CPUs //
trial_cpus` trials run at once, so every CPU is busy, and one more waits in Ray's queue, so that a freed
worker starts the next trial at once (exporter/optimize/scheduler.py): on 2 CPUs, 12 demo trials with 2 in
flight kept the workers busy 84 % of the time, with 3 in flight 84-93 %. With workers readied before the
first trial (`warm_task`), 2 workers ran them 1.47x to 2.10x as fast as 1 in 6 runs (median 1.84x); this
VM's speed drifts between runs, and at equal speed (each run's wall clock divided by its trials' CPU
seconds) the 6 ratios were 1.61x to 1.76x (benchmarks/search.py, 2026-12-03).
Tasks are not retried (`max_retries=0`): a worker that dies (out of memory, a native crash) gives a failed
trial, not a second run. Ray tasks: https://docs.ray.io/en/latest/ray-core/tasks.html; connecting a driver:
https://docs.ray.io/en/latest/ray-core/api/doc/ray.init.html

A trial's TensorFlow uses as many threads as its task has CPUs (`TF_NUM_INTRAOP_THREADS`,
`TF_NUM_INTEROP_THREADS` and `OMP_NUM_THREADS` = `--trial-cpus`, set in the task's runtime environment).
Left to itself every TensorFlow sizes its thread pools to the whole node: two trials side by side on 2
cores then spent 30 % more time inside trials than one at a time (15-37 % with 1 thread each). The thread
count changes the order of float sums, so a trial's figures (its gzip bytes too, by a few) can differ from
the same trial in-process with every core, and equal those of an in-process run with the same counts. The
pick is therefore exported again in a worker as well (`pick_task`, the same threads), not on the driver:
exported on the driver, one pick within the 1-point limit in its trial drifted 1.11 pt over it. The worker
sends the bundle back as a tar archive, so the driver need not share a file system with it.

Each worker is readied before the first trial (`warm_task`: TensorFlow, tf_keras, TF-MOT and LiteRT
imported, about 5 s a worker here) while the driver loads the model and runs the sensitivity pass; Ray runs
later tasks of the same resources and runtime environment in those idle workers, so trials find them ready.
The runner's description lists the readied workers' pids (`warmed`).

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

import io
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

__all__ = ["RayRunner", "pick_task", "ray_address", "thread_env", "trial_task", "warm_task"]

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


def thread_env(trial_cpus: int) -> dict:
    """The environment that sizes a task's TensorFlow thread pools to its CPUs.

    >>> thread_env(2)
    {'TF_NUM_INTRAOP_THREADS': '2', 'TF_NUM_INTEROP_THREADS': '2', 'OMP_NUM_THREADS': '2'}
    """
    return {name: str(trial_cpus) for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")}


def warm_task() -> int:
    """The Ray task that readies a worker for trials: the heavy imports done once; the worker's pid."""
    from exporter import tf as tfmod

    for load in (tfmod.tensorflow, tfmod.keras, tfmod.tfmot, tfmod.litert_interpreter_class):
        load()
    return os.getpid()


def trial_task(job, plan: TrialPlan) -> TrialResult:
    """The Ray task of one trial: `run_trial` in the worker, which records itself as a Ray worker."""
    import ray

    from exporter.optimize.trial import run_trial

    result = run_trial(job, plan)
    context = ray.get_runtime_context()
    result.worker = {**result.worker, "kind": "ray", "pid": os.getpid(), "host": socket.gethostname(),
                     "node": context.get_node_id(), "threads": os.environ.get("TF_NUM_INTRAOP_THREADS")}
    return result


def pick_task(job, trial: TrialResult, plan: TrialPlan, study: str, storage: str) -> tuple[bytes, object]:
    """The Ray task exporting the pick: its bundle as the bytes of a tar archive, and the export's Report."""
    import tarfile
    import tempfile

    from exporter.optimize.pick import export_pick

    with tempfile.TemporaryDirectory(prefix="edgex-pick-") as folder:
        bundle = Path(folder) / "bundle"
        report = export_pick(bundle, job, trial, plan, study=study, storage=storage)
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.add(bundle, arcname=".")
    return archive.getvalue(), report


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
        options = {"num_cpus": trial_cpus, "max_retries": 0, "runtime_env": {"env_vars": thread_env(trial_cpus)}}
        self._task, self._pick = ray.remote(**options)(trial_task), ray.remote(**options)(pick_task)
        self._check_cpus()
        warm = ray.remote(**options)(warm_task)
        self._warming = [warm.remote() for _ in range(self.slots())]     # while the driver sets up the search

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

    def slots(self) -> int:
        """Trials the cluster runs at once: its CPUs // `trial_cpus`, at least 1."""
        return max(1, self.cpus() // self.trial_cpus)

    def default_batch(self) -> int:
        """As many trials as the cluster runs at once, and one queued."""
        return self.slots() + 1

    def describe(self) -> dict:
        return {**super().describe(), "cpus": self.cpus(), "warmed": self._warmed()}

    def _warmed(self) -> list[int]:
        """The pids of the workers `warm_task` readied (those finished by now; a failed one is left out)."""
        import ray

        ready, _ = ray.wait(self._warming, num_returns=len(self._warming), timeout=0)
        pids = []
        for ref in ready:
            try:
                pids.append(ray.get(ref))
            except ray.exceptions.RayError:       # its trials fail with the reason
                pass
        return sorted(pids)

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

    def export_pick(self, out, job, trial: TrialResult, plan: TrialPlan, *, study: str, storage: str,
                    progress: bool = False):
        """Export the pick in a worker with its trial's threads (`pick_task`); unpack the bundle at `out`.

        Raises:
            ExporterError: what the export raised in the worker.
            ConversionError: the task failed otherwise (an unexpected error, or the worker died).
        """
        import ray

        from exporter.errors import ConversionError, ExporterError

        ref = self._pick.remote(job, trial, plan, study, storage)
        try:
            data, report = ray.get(ref)
        except ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ExporterError):
                raise cause from None
            line = (str(cause or exc).strip().splitlines() or [type(exc).__name__])[-1]
            raise ConversionError(f"exporting the pick (trial {trial.number}) failed in its Ray worker: "
                                  f"{line}") from None
        except BaseException:
            ray.cancel(ref, force=True)
            raise
        _unpack(data, Path(out))
        report.bundle = str(out)
        return report

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


def _unpack(data: bytes, out: Path) -> None:
    """Write the bundle archived by `pick_task` at `out` (a new folder); only plain files and folders inside it."""
    import tarfile

    out.mkdir()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(out, filter="data")
