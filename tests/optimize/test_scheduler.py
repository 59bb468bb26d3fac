"""Up to `--batch` trials run at once, and each trial is asked after the same told trials whatever order the
trials finish in (exporter/optimize/scheduler.py): trial k right after trial k - batch is told, before any later
one is. Real trials (plain exports, no fine-tuning), run by an in-process runner that finishes the newest
submitted trial first, as a cluster may.
"""
from __future__ import annotations

import exporter
from exporter.optimize import runner as runner_mod
from exporter.optimize.scheduler import told_before_ask

PLAIN = {"quantize": ["int8", "float16", "dynamic", "float32"], "distill": ["none"], "prune": ["none"],
         "cluster": ["none"], "qat": [False], "weight_bits": [8]}
TRIALS, BATCH = 7, 3


class NewestFirst(runner_mod.InProcessRunner):
    """Runs the newest submitted trial first, and records the order trials finished in."""

    finished: list[int] = []

    def next_done(self):
        from exporter.optimize.trial import run_trial

        result = run_trial(self._job, self._queue.pop())
        NewestFirst.finished.append(result.number)
        return result


def test_trials_are_told_in_order_and_asked_after_the_same_trials_when_later_ones_finish_first(
        demo, tmp_path, monkeypatch):
    import optuna

    monkeypatch.setitem(runner_mod.RUNNERS, "in-process", NewestFirst)
    result = exporter.optimize(demo=True, target="android", trials=TRIALS, batch=BATCH, out=tmp_path / "opt",
                               space=PLAIN, progress=False)
    assert result.new_trials == TRIALS and [t.number for t in result.trials] == list(range(TRIALS))
    ran = NewestFirst.finished
    assert ran != sorted(ran), ran                       # later trials did finish first
    stored = optuna.load_study(study_name=result.study, storage=result.storage).get_trials(deepcopy=False)
    assert all(t.state.is_finished() for t in stored) and len(stored) == TRIALS
    told_at = sorted(stored, key=lambda t: t.datetime_complete)
    assert [t.number for t in told_at] == list(range(TRIALS))           # told in trial-number order
    for trial in stored:
        told = [t.number for t in stored if t.datetime_complete < trial.datetime_start]
        assert told == told_before_ask(TRIALS, BATCH)[trial.number], trial.number
    running = {t.number for t in result.trials if t.worker["kind"] != "repeat"}
    assert running and all(t.state == "complete" for t in result.trials)
