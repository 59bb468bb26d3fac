"""Trials on a real local Ray head (`ray start --head`, 127.0.0.1, 2 CPUs): they run in Ray worker processes,
and give the in-process run's results for the same seed.

A Ray worker's TensorFlow runs with as many threads as its task has CPUs (`--trial-cpus`, 1 here), and the
number of threads changes the order of float sums (a gradient summed over a batch in 1 or 2 parts), hence
the trained weights, by a little. So the in-process search this is compared with runs in a child process
with the same thread counts (`thread_env(1)`), and with the same batch (3 trials in flight), so that
the sampler asks the same parameters and early stopping sees the same trials: every figure must be equal.
The pick's bundle is exported in a worker with the same threads, so it measures what its trial measured.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from exporter.optimize.ray_runner import thread_env
from exporter.optimize.result import OptimizeResult
from tests.optimize.conftest import run_search, search_args
from tests.test_cli import run

RAY_TRIALS = 4


def in_process(args: list[str], threads: int) -> OptimizeResult:
    """`edgex ARGS` (an optimize with --json) in a child process whose TensorFlow uses `threads` threads."""
    env = {**os.environ, **thread_env(threads)}
    done = subprocess.run([sys.executable, "-m", "exporter", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return OptimizeResult.from_dict(json.loads(done.stdout))


def test_trials_run_in_ray_workers_and_match_in_process(ray_head, search_space, tmp_path):
    done = run_search(search_args(tmp_path / "opt", search_space, RAY_TRIALS, "--ray", ray_head.address))
    data, result = done.data, done.result
    warmed = data["runner"].pop("warmed")
    assert data["runner"] == {"kind": "ray", "address": ray_head.address, "trial_cpus": 1, "cpus": 2, "batch": 3}
    assert len(warmed) == 2 and os.getpid() not in warmed           # one worker readied per CPU, before trials
    assert data["new_trials"] == RAY_TRIALS and [t.number for t in result.trials] == list(range(RAY_TRIALS))
    for trial in result.trials:                 # a repeat of an earlier trial's parameters is not run again
        ran = result.trials[trial.worker["of"]] if trial.worker["kind"] == "repeat" else trial
        assert ran.worker["kind"] == "ray" and ran.worker["node"] and ran.worker["threads"] == "1", ran.worker
        assert ran.worker["pid"] in warmed                            # trials ran in the readied workers
    local = in_process(search_args(tmp_path / "here", search_space, RAY_TRIALS, "--batch", "3"), threads=1)
    assert {t.worker["kind"] for t in local.trials} <= {"in-process", "repeat"}
    for ray_trial, here in zip(result.trials, local.trials, strict=True):
        assert result.plans[ray_trial.number].params == local.plans[here.number].params
        assert (ray_trial.state, ray_trial.values, ray_trial.constraints) == (here.state, here.values,
                                                                              here.constraints), ray_trial.number
    assert run(["verify", str(tmp_path / "opt" / "bundle")]).exit_code == 0
    manifest = json.loads((tmp_path / "opt" / "bundle" / "manifest.json").read_text())
    assert manifest["measurements"]["accuracy"]["value"] == result.pick.figures["accuracy"]["value"]
    assert manifest["measurements"]["gzip_size"]["value"] == result.pick.figures["gzip_size"]["value"]
    seconds = [t.seconds for t in result.trials if t.worker["kind"] != "repeat"]
    print(f"\nRay head ready in {ray_head.startup_s:.1f} s; {RAY_TRIALS} trials on Ray in {done.seconds:.1f} s "
          f"(search {data['seconds']:.1f} s, per trial {sum(seconds) / len(seconds):.1f} s); "
          f"pids {sorted({t.worker['pid'] for t in result.trials if t.worker.get('pid')})}")


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
            assert runner.default_batch() == 3 and runner.describe()["cpus"] == 2       # 2 running, 1 queued
    finally:
        signal.signal(signal.SIGTERM, saved)
