"""Trials on a real local Ray head (`ray start --head`, 127.0.0.1, 2 CPUs): they run in Ray worker processes,
and give the in-process run's results for the same seed.

The comparison is with the first trials of the shared in-process run (`optimize_run`, batch 1), while Ray runs
2 at once (the cluster's CPUs): the first 10 trials of TPE are its seeded random start-up samples, drawn in
trial order whatever the batch, so the parameters must be equal. Training is seeded; sizes must be equal too.
Accuracy may differ by a little: the Ray workers' TensorFlow runs with other thread counts (Ray sets
OMP_NUM_THREADS to the task's CPUs), which changes the order of float sums; allowed: 1 point.
"""
from __future__ import annotations

import os

from tests.optimize.conftest import run_search, search_args
from tests.test_cli import run

RAY_TRIALS = 4
ACCURACY_TOLERANCE_PT = 1.0


def test_trials_run_in_ray_workers_and_match_in_process(ray_head, optimize_run, search_space, tmp_path):
    done = run_search(search_args(tmp_path / "opt", search_space, RAY_TRIALS, "--ray", ray_head.address))
    data, result = done.data, done.result
    assert data["runner"] == {"kind": "ray", "address": ray_head.address, "trial_cpus": 1, "cpus": 2, "batch": 2}
    assert data["new_trials"] == RAY_TRIALS and [t.number for t in result.trials] == list(range(RAY_TRIALS))
    for trial in result.trials:                 # a repeat of an earlier trial's parameters is not run again
        ran = result.trials[trial.worker["of"]] if trial.worker["kind"] == "repeat" else trial
        assert ran.worker["kind"] == "ray" and ran.worker["node"], ran.worker
        assert ran.worker["pid"] != os.getpid()
    local = optimize_run.result
    for ray_trial in result.trials:
        here = local.trials[ray_trial.number]
        assert result.plans[ray_trial.number].params == local.plans[here.number].params
        assert ray_trial.state == here.state, (ray_trial.error, here.error)
        if here.state == "complete":
            assert ray_trial.values[1] == here.values[1]                  # the size objective (gzip bytes)
            assert abs(ray_trial.values[0] - here.values[0]) <= ACCURACY_TOLERANCE_PT
    assert run(["verify", str(tmp_path / "opt" / "bundle")]).exit_code == 0
    seconds = [t.seconds for t in result.trials]
    drift = max((abs(t.values[0] - local.trials[t.number].values[0]) for t in result.trials if t.values), default=0)
    print(f"\nRay head ready in {ray_head.startup_s:.1f} s; {RAY_TRIALS} trials on Ray in {done.seconds:.1f} s "
          f"(search {data['seconds']:.1f} s, per trial {sum(seconds) / len(seconds):.1f} s; in-process per trial "
          f"{sum(t.seconds for t in local.trials[:RAY_TRIALS]) / RAY_TRIALS:.1f} s); "
          f"pids {sorted({t.worker['pid'] for t in result.trials})}; accuracy drift {drift:.3f} pt")


def test_more_cpus_per_trial_than_any_node_has_is_refused(ray_head, tmp_path):
    done = run(["optimize", "--demo", "--out", str(tmp_path / "opt"), "--ray", ray_head.address, "--trial-cpus", "3"])
    assert done.exit_code == 2, done.stderr
    assert "--trial-cpus 3: no node of the Ray cluster has that many CPUs (the largest has 2)" in done.stderr
    assert not (tmp_path / "opt").exists()


def test_connecting_keeps_edgex_sigterm_handling(ray_head):
    """`ray.init` installs its own SIGTERM handler (sys.exit(15)); the runner puts the caller's back (exit 143)."""
    import signal

    from exporter.optimize.ray_runner import RayRunner

    def handler(signum, frame):
        raise KeyboardInterrupt

    saved = signal.signal(signal.SIGTERM, handler)
    try:
        with RayRunner(ray_head.address) as runner:
            assert signal.getsignal(signal.SIGTERM) is handler
            assert runner.default_batch() == 2 and runner.describe()["cpus"] == 2
    finally:
        signal.signal(signal.SIGTERM, saved)
