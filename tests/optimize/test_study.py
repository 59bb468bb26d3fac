"""The issue's done-when: `edgex optimize --demo --target android --trials 12 --out build/opt --json` exits 0 with
a Pareto list and a bundle that verifies; re-running with `--trials 14` runs only 2 new trials (from the JSON and
from the SQLite study). Plus the budget, the study's name and storage, and bad input refused before any work.
"""
from __future__ import annotations

import os
import shutil
import time

import pytest

from exporter.optimize.budget import Budget, parse_duration
from exporter.optimize.pick import PICKS
from exporter.optimize.study import SAMPLERS, default_storage, study_name
from tests.optimize.conftest import TRIALS, run_search, search_args
from tests.test_cli import help_without_imports, run


def _study(storage: str, name: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=storage)


def test_the_done_when_search(optimize_run):
    result, out = optimize_run
    data = optimize_run.data
    assert data["new_trials"] == TRIALS and sum(data["counts"].values()) == TRIALS
    assert [t["number"] for t in data["trials"]] == list(range(TRIALS))
    assert data["pareto"], "a Pareto list"
    assert all(t["feasible"] for t in data["pareto"])
    assert data["pick"]["number"] in {t["number"] for t in data["pareto"]}
    assert data["storage"] == f"sqlite:///{out.parent / 'opt.study.db'}" and data["stopped"] == "trials"
    assert data["study"].startswith("edgex-android-android-arm64-midrange-")
    assert data["runner"] == {"kind": "in-process", "address": None, "trial_cpus": 1, "batch": 1}
    assert data["bundle"] == str(out / "bundle")
    verified = run(["verify", data["bundle"]])
    assert verified.exit_code == 0, verified.stderr
    for trial in result.trials:                 # ran here, one at a time, each with its own plan (or a repeat)
        ran = result.trials[trial.worker["of"]] if trial.worker["kind"] == "repeat" else trial
        assert ran.worker["kind"] == "in-process" and ran.worker["pid"] == os.getpid()
        assert result.plans[trial.number].params == data["trials"][trial.number]["params"]
        assert trial.state in ("complete", "pruned", "failed") and (trial.state != "failed" or trial.error)
    names = [o.name for o in result.objectives]
    assert names[:2] == ["accuracy", "size"] and result.objectives[1].figure == "gzip_size"
    stored = _study(data["storage"], data["study"])
    assert len([t for t in stored.trials if t.state.is_finished() and "edgex" in t.user_attrs]) == TRIALS
    complete = [t for t in stored.trials if t.state.name == "COMPLETE"]
    assert complete and all(set(t.constraints) == {"model_size", "ram", "latency", "accuracy_drop", "agreement"}
                            for t in complete)   # one Optuna constraint per limit of the profile
    print(f"\n{TRIALS} trials in {optimize_run.seconds:.1f} s (search {data['seconds']:.1f} s; per trial "
          f"{sum(t.seconds for t in result.trials) / TRIALS:.1f} s)")


def test_a_larger_budget_runs_only_the_difference(optimize_run, search_space, tmp_path):
    first, out = optimize_run
    copy = tmp_path / "build" / "opt"
    shutil.copytree(out, copy, symlinks=True)
    shutil.copy2(out.parent / "opt.study.db", copy.parent / "opt.study.db")
    again = run_search(search_args(copy, search_space, TRIALS + 2))
    assert again.data["new_trials"] == 2 and again.data["study"] == first.study
    assert [t["number"] for t in again.data["trials"]] == list(range(TRIALS + 2))
    for old, new in zip(first.trials, again.result.trials):      # the old trials are read back, not re-run
        assert (old.number, old.state, old.values) == (new.number, new.state, new.values)
        assert again.result.plans[old.number].params == first.plans[old.number].params
    stored = _study(again.data["storage"], again.data["study"])
    assert len([t for t in stored.trials if t.state.is_finished()]) == TRIALS + 2
    assert run(["verify", str(copy / "bundle")]).exit_code == 0


def test_the_study_name_follows_the_model_space_and_objectives(tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(b"one")
    base = study_name("android", "android-arm64-midrange", model, False, {"prune": ["none"]}, [])
    assert base == study_name("android", "android-arm64-midrange", model, False, {"prune": ["none"]}, [])
    assert base != study_name("android", "android-arm64-midrange", model, False, {"prune": [0.8]}, [])
    model.write_bytes(b"two")
    assert base != study_name("android", "android-arm64-midrange", model, False, {"prune": ["none"]}, [])
    assert default_storage(tmp_path / "build" / "opt") == f"sqlite:///{tmp_path / 'build' / 'opt.study.db'}"


def test_the_budget_counts_finished_trials_and_stops_asking_after_the_time():
    assert Budget(trials=14).remaining(finished=12) == 2 and Budget(trials=12).remaining(finished=12) == 0
    budget = Budget(trials=100, seconds=parse_duration("0.2s"))
    assert not budget.expired()
    time.sleep(0.25)
    assert budget.expired() and budget.remaining(finished=0) == 100
    assert [parse_duration(t) for t in ("2h", "30m", "45s", 12)] == [7200.0, 1800.0, 45.0, 12.0]


@pytest.mark.parametrize("args, expected", [
    (["--trials", "0"], "--trials 0: give a whole number, 1 or more"),
    (["--time", "5x"], "--time 5x: give a duration such as 45s, 30m or 2h"),
    (["--pick", "tiniest"], "--pick tiniest is not a pick rule; known: smallest, fastest, most-accurate"),
    (["--sampler", "grid"], "--sampler grid is not a sampler; known: tpe, nsga2"),
    (["--ray", "no-port"], "--ray no-port: give auto"),
    (["--ray", "127.0.0.1:1"], "--ray 127.0.0.1:1: no Ray head answers there"),
    (["--batch", "0"], "--batch 0: give a whole number, 1 or more"),
])
def test_bad_input_is_refused_before_any_work(args, expected, tmp_path):
    out = tmp_path / "opt"
    done = run(["optimize", "--demo", "--out", str(out), *args])
    assert done.exit_code == 2, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert not out.exists() and not (tmp_path / "opt.study.db").exists()


def test_a_tflite_model_is_refused(tiny_tflite, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(tiny_tflite)
    done = run(["optimize", str(model), "--out", str(tmp_path / "opt")])
    assert done.exit_code == 2 and "is a .tflite, converted already" in done.stderr, done.stderr


def test_help_lists_every_rule_and_imports_nothing_heavy():
    text = help_without_imports(["optimize", "--help"])
    flat = " ".join(text.split())
    assert all(name in flat for name in PICKS) and all(name in flat for name in SAMPLERS)
    for flag in ("--trials", "--time", "--storage", "--study", "--space", "--ray", "--trial-cpus", "--batch",
                 "--pick", "--sampler", "--seed", "--epochs", "--limit", "--json", "--demo", "--train", "--eval"):
        assert flag in text, flag


INTERRUPT_AFTER_S = 3.0


def test_ctrl_c_keeps_finished_trials_and_fails_the_running_one(demo, search_space, tmp_path):
    """A real SIGINT to `edgex optimize` while its second trial runs: exit 130, the first kept, none left running."""
    import signal
    import sqlite3
    import subprocess
    import sys

    out = tmp_path / "opt"
    db = tmp_path / "opt.study.db"
    args = search_args(out, search_space, 5)[:-1]          # no --json
    proc = subprocess.Popen([sys.executable, "-m", "exporter", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "EDGEX_NO_PROGRESS": "1"})
    deadline = time.monotonic() + 240
    try:
        while _finished_in(db) < 1:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no trial finished in 240 s"
            time.sleep(0.3)
        time.sleep(INTERRUPT_AFTER_S)                  # into the next trial's export (a trial takes ~8 s here)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip().endswith("edgex: interrupted") and "Traceback" not in stderr
    with sqlite3.connect(db) as con:
        states = dict(con.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())
    assert states.get("RUNNING", 0) == 0 and states.get("WAITING", 0) == 0, states
    assert _finished_in(db) >= 1 and not out.exists()


def _finished_in(db) -> int:
    """Trials of the study in `db` told with an edgex result (0 while the database does not exist yet)."""
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute("SELECT COUNT(*) FROM trial_user_attributes WHERE key = 'edgex'").fetchone()[0]
    except sqlite3.OperationalError:          # the tables are being created
        return 0


def test_a_trial_with_the_parameters_of_an_earlier_one_is_not_run_again(demo, tmp_path):
    """A one-point space: the second trial has the first one's parameters, and takes its result."""
    import exporter

    plain = {"quantize": ["int8"], "distill": ["none"], "prune": ["none"], "cluster": ["none"], "qat": [False],
             "weight_bits": [8], "skip_layers": [], "float_layers": []}
    result = exporter.optimize(demo=True, target="android", trials=2, out=tmp_path / "opt", space=plain,
                               progress=False)
    first, second = result.trials
    assert first.worker["kind"] == "in-process" and first.seconds > 0
    assert second.worker == {"kind": "repeat", "of": 0} and second.seconds == 0
    assert second.values == first.values and second.state == first.state == "complete"
