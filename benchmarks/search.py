"""What `edgex optimize` finds on the demo digits CNN, beside the best hand-picked recipes and the anchors.

Three parts, each a real run on this machine (`exporter.optimize(demo=True, ...)`, studies in a temp folder):

1. android: a search of `--android-trials` trials (40). Printed: the float .tflite's gzip bytes (a plain
   float32 export), the feasible trial with the smallest download within 1 point of the float Keras model
   (its ratio and drop), the pick, and beside them the two best hand-picked rows of benchmarks/compression.py
   (re-run here with its settings: PCQAT prune 0.8 + cluster 16 + QAT, and prune 0.9 + cluster 8 + QAT) and
   the published anchors (TF-MOT tutorials, Deep Compression 39-40x). The issue's goal: >= 40x at <= 1 pt.
2. arduino-nano-33-ble: a search of `--nano-trials` trials (20). Printed: the smallest `model_flash` of a trial
   that passes every limit, beside the plain int8 export's `model_flash`.
3. Ray: the same trials (same seed, same batch: `--ray-batch`, 3) on a real local Ray head with 1 CPU and with 2 CPUs
   (`ray start --head --num-cpus N`, one trial per CPU, `--trial-cpus 1`): the wall-clock ratio, `--ray-repeats`
   pairs (3) and their median. Goal: >= 1.6x.

`--quick` is a smoke run of all three with tiny budgets (a handful of trials, 1 epoch, no hand-picked rows);
its figures mean nothing.

Usage: .venv/bin/python benchmarks/search.py [--quick] [--android-trials 40] [--nano-trials 20]
       [--ray-trials 12] [--ray-batch 3] [--ray-repeats 3] [--epochs 2] [--parts android,nano,ray] [--no-ray]
       [--workers 1] [--distill-epochs N]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MCU = "arduino-nano-33-ble"
GOAL = "issue 15 goal: >= 40x smaller (gzip) than float at <= 1 pt drop (android, 40 trials); " \
       "2 Ray workers >= 1.6x faster than 1"


def figure(trial, name: str):
    """A trial's figure value, or None."""
    return (trial.figures.get(name) or {}).get("value")


def drop(trial) -> float | None:
    """Points of top-1 lost against the float Keras model (the report's accuracy_original)."""
    original, accuracy = figure(trial, "accuracy_original"), figure(trial, "accuracy")
    return None if original is None or accuracy is None else original - accuracy


SETTINGS: dict = {"workers": 1, "distill_epochs": None}
"""--workers and --distill-epochs, for the android and nano searches."""


def search(folder: Path, name: str, **kwargs):
    """One `exporter.optimize` run on the demo, its study in `folder`; the OptimizeResult (exit 1 is a result).

    With `--workers N` (N > 1, and no `ray` in kwargs) the trials run on a local Ray head of N CPUs, N at once.
    """
    from contextlib import nullcontext

    from exporter.errors import LimitError
    from exporter.optimize.api import optimize
    from exporter.optimize.local_head import local_ray_head

    if SETTINGS["distill_epochs"]:
        kwargs.setdefault("space", {"distill_epochs": SETTINGS["distill_epochs"]})
    workers = 1 if "ray" in kwargs else SETTINGS["workers"]
    out = folder / name
    started = time.perf_counter()
    try:
        with local_ray_head(workers) if workers > 1 else nullcontext() as address:
            if address:
                kwargs.update(ray=address, trial_cpus=1)
            result = optimize(demo=True, out=out, storage=f"sqlite:///{folder / name}.study.db",
                              progress=False, **kwargs)
    except LimitError as exc:      # no trial passed, or the pick exported again broke a limit: the trials stand
        print(f"{name}: {exc}", file=sys.stderr)
        result = getattr(exc, "result", None)
    print(f"{name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return result


def android(folder: Path, trials: int, epochs: int, hand_picked: bool) -> list[str]:
    """Part 1: the android search beside the float model, the best hand-picked rows and the anchors."""
    import exporter

    float_report = exporter.export(demo=True, target="android", quantize="float32", progress=False)
    float_gzip = float_report.measurements["gzip_size"].value
    stripped = exporter.export(demo=True, target="android", quantize="float32", recipe={"strip_names": True},
                               progress=False).measurements["gzip_size"].value
    result = search(folder, "android", target="android", trials=trials, epochs=epochs)
    lines = [f"android: {trials} trials, {epochs} epoch(s) per stage; float .tflite {float_gzip:,.0f} B gzip "
             f"({stripped:,.0f} B with its inner tensor names stripped, as the search's trials are: ratios "
             f"against it are {stripped / float_gzip:.4f} of those shown), "
             f"float Keras accuracy {float_report.measurements['accuracy_original'].value:.2f} %"]
    if result is None:
        return lines + ["android: no trial passed every limit"]
    lines.append(f"android: {result.counts()} in {result.seconds:.0f} s")
    lines += failures("android", result)
    near = [t for t in result.trials if t.feasible and drop(t) is not None and drop(t) <= 1.0]
    if near:
        best = min(near, key=lambda t: figure(t, "gzip_size"))
        lines.append(_row("best found within 1 pt", best, result, float_gzip))
    if result.pick is not None:
        lines.append(_row("pick (smallest that passes)", result.pick, result, float_gzip))
    if hand_picked:
        lines += _hand_picked(float_gzip)
    from benchmarks.compression import ANCHORS

    lines += [f"anchor: {ref}: {fig} ({src})" for ref, fig, src in ANCHORS[:4]]
    return lines


def _row(label: str, trial, result, float_gzip: float) -> str:
    from exporter.optimize.pareto import recipe_summary

    gz = figure(trial, "gzip_size")
    return (f"| {label}: trial {trial.number} ({recipe_summary(result.plans.get(trial.number))}) | "
            f"{figure(trial, 'accuracy'):.2f} % | {drop(trial):+.2f} pt | {gz:,.0f} B | {float_gzip / gz:.1f}x |")


def _hand_picked(float_gzip: float) -> list[str]:
    """The two best hand-picked rows of benchmarks/compression.py, re-run with its settings (3 epochs)."""
    from benchmarks.compression import rows, run_rows

    specs, training = rows(3)
    best = [s for s in specs if s[1] == "android" and s[0].startswith("PCQAT")]
    results, _ = run_rows(best, training, None)
    out = []
    for row in results:
        m = row["report"].measurements
        gz = m["gzip_size"].value
        out.append(f"| hand-picked: {row['name']} | {m['accuracy'].value:.2f} % | "
                   f"{m['accuracy_original'].value - m['accuracy'].value:+.2f} pt | {gz:,.0f} B | "
                   f"{float_gzip / gz:.1f}x |")
    return out


def nano(folder: Path, trials: int, epochs: int) -> list[str]:
    """Part 2: the smallest flash that passes on the nano, beside the plain int8 export's."""
    import exporter

    plain = exporter.export(demo=True, target="microcontroller", profile=MCU, progress=False)
    plain_flash = plain.measurements["model_flash"].value
    result = search(folder, "nano", target="microcontroller", profile=MCU, trials=trials, epochs=epochs)
    lines = [f"{MCU}: plain int8 model_flash {plain_flash:,.0f} B ({plain.status})"]
    if result is None:
        return lines + [f"{MCU}: no trial of {trials} passed every limit"]
    passing = [t for t in result.trials if t.feasible and figure(t, "model_flash") is not None]
    if passing:
        best = min(passing, key=lambda t: figure(t, "model_flash"))
        flash = figure(best, "model_flash")
        lines.append(_row_mcu(best, result, flash, plain_flash))
    return lines + [f"{MCU}: {result.counts()} in {result.seconds:.0f} s"] + failures(MCU, result)


def failures(name: str, result) -> list[str]:
    """One line per failed trial, with its error (a failed trial may be a bug: it is never hidden)."""
    from exporter.optimize.pareto import recipe_summary

    return [f"{name}: trial {t.number} failed ({recipe_summary(result.plans.get(t.number))}): {t.error}"
            for t in result.trials if t.state == "failed"]


def _row_mcu(trial, result, flash: float, plain_flash: float) -> str:
    from exporter.optimize.pareto import recipe_summary

    return (f"{MCU}: smallest passing flash: trial {trial.number} ({recipe_summary(result.plans.get(trial.number))}) "
            f"{flash:,.0f} B vs plain int8 {plain_flash:,.0f} B: {plain_flash / flash:.2f}x less, drop "
            f"{drop(trial):+.2f} pt")


def ray_speedup(folder: Path, trials: int, epochs: int, batch: int, repeats: int = 3) -> list[str]:
    """Part 3: the same trials (seed 7, the same batch) with 1 Ray worker and with 2; the wall-clock ratio.

    A freed worker takes the next trial (exporter/optimize/scheduler.py); each trial's TensorFlow runs 1 thread
    (`--trial-cpus 1`). The pair of runs is repeated `repeats` times (1 worker, 2 workers, 1, 2, ...), each
    ratio printed and their median: this VM's speed drifts by a third between identical runs minutes apart
    (12 trials on 1 worker took 103.5, 127.6 and 139.0 s on 2026-12-03), so one pair proves little. Printed
    beside the wall clock: the time inside trials and the CPU seconds the trials' processes used
    (`TrialResult.cpu_seconds`). The trials are the same in both runs, so their CPU seconds differ only by the
    machine's speed at the time: the ratio "at equal speed" divides each run's wall clock by its trials' CPU
    seconds first.
    """
    from statistics import median

    lines, ratios, even = [], [], []
    for run in range(1, repeats + 1):
        seconds, results = {}, {}
        for cpus in (1, 2):
            seconds[cpus], results[cpus] = _ray_run(folder / f"run{run}", cpus, trials, epochs, batch)
        if any(r is None for r in results.values()):
            return lines + ["ray: a run had no result; see above"]
        same = [t.values[1:] for t in results[1].trials] == [t.values[1:] for t in results[2].trials]
        workers = sorted({t.worker.get("kind", "?") for r in results.values() for t in r.trials})
        inside = {c: sum(t.seconds for t in r.trials) for c, r in results.items()}
        cpu = {c: sum(t.cpu_seconds for t in r.trials) for c, r in results.items()}
        ratios.append(seconds[1] / seconds[2])
        even.append(seconds[1] / cpu[1] / (seconds[2] / cpu[2]))
        lines.append(f"ray run {run}: {trials} trials (batch {batch}): 1 worker {seconds[1]:.1f} s, 2 workers "
                     f"{seconds[2]:.1f} s: {ratios[-1]:.2f}x; sizes identical: {same}; workers: {workers}; inside "
                     f"trials {inside[1]:.1f} s / {inside[2]:.1f} s (2 workers busy {inside[2] / (2 * seconds[2]):.0%}"
                     f"); trials' CPU {cpu[1]:.1f} s / {cpu[2]:.1f} s: {even[-1]:.2f}x at equal speed")
    return lines + [f"ray: median of {len(ratios)} runs {median(ratios):.2f}x (goal >= 1.6x); runs: "
                    + ", ".join(f"{r:.2f}x" for r in ratios) + f"; at equal speed: median {median(even):.2f}x, runs "
                    + ", ".join(f"{r:.2f}x" for r in even)]


def _ray_run(folder: Path, cpus: int, trials: int, epochs: int, batch: int):
    """One search on a fresh local Ray head of `cpus` CPUs: (wall-clock seconds, the OptimizeResult or None)."""
    from exporter.optimize.local_head import local_ray_head

    folder.mkdir(parents=True, exist_ok=True)
    with local_ray_head(cpus) as address:
        started = time.perf_counter()
        result = search(folder, f"ray{cpus}", target="android", trials=trials, epochs=epochs, ray=address,
                        batch=batch, trial_cpus=1)
        return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny budgets, 1 epoch, no hand-picked rows")
    parser.add_argument("--android-trials", type=int, default=40)
    parser.add_argument("--nano-trials", type=int, default=20)
    parser.add_argument("--ray-trials", type=int, default=12, help="trials of each Ray run (default 12)")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs per stage (default 2)")
    parser.add_argument("--ray-batch", type=int, default=3,
                        help="trials in flight in the Ray comparison (default 3: the default on 2 CPUs)")
    parser.add_argument("--ray-repeats", type=int, default=3,
                        help="pairs of Ray runs (1 worker, then 2); the median ratio is the figure (default 3)")
    parser.add_argument("--parts", default="android,nano,ray", help="which parts to run (default: all three)")
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray comparison")
    parser.add_argument("--workers", type=int, default=1,
                        help="run the android and nano searches on a local Ray head of this many CPUs (default 1: "
                             "in-process)")
    parser.add_argument("--distill-epochs", type=int, default=None,
                        help="the space's distill_epochs (default: the space's own, 25)")
    args = parser.parse_args()
    SETTINGS.update(workers=args.workers, distill_epochs=args.distill_epochs)
    if args.quick:
        args.android_trials, args.nano_trials, args.ray_trials, args.epochs, args.ray_repeats = 2, 1, 2, 1, 1
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    with tempfile.TemporaryDirectory(prefix="edgex-search-") as folder:
        parts, lines = set(args.parts.split(",")) - ({"ray"} if args.no_ray else set()), []
        if "android" in parts:
            lines += android(Path(folder), args.android_trials, args.epochs, hand_picked=not args.quick)
        if "nano" in parts:
            lines += nano(Path(folder), args.nano_trials, args.epochs)
        if "ray" in parts:
            lines += ray_speedup(Path(folder), args.ray_trials, args.epochs, args.ray_batch, args.ray_repeats)
    for line in [line for line in lines if not line.startswith("|")] + [GOAL, ""]:
        print(line)
    print("| android recipe | accuracy | drop | gzip | smaller (gzip) than float |")
    print("|---|---|---|---|---|")
    for line in [line for line in lines if line.startswith("|")]:
        print(line)


if __name__ == "__main__":
    main()
