"""`exporter.optimize`: search the recipes a device profile allows for the smallest model that passes.

One call runs: the job's model and data loaded and checked as an export would (exporter/optimize/sensitivity.py
`job_inputs`) -> a quick per-layer sensitivity pass -> the search space (exporter/optimize/space.py, narrowed
or widened by `space=`) -> the Optuna study (exporter/optimize/study.py), resumed when it exists -> trials,
`batch` at a time (asked on this process: exporter/optimize/scheduler.py; run in-process or on Ray:
exporter/optimize/runner.py) until the budget (exporter/optimize/budget.py) is spent -> the results and
the pick's bundle (exporter/optimize/results.py).

Example (a one-point space, so that it runs in seconds: a plain int8 export):
    >>> import exporter
    >>> plain = {"quantize": ["int8"], "distill": ["none"], "prune": ["none"], "cluster": ["none"], "qat": [False],
    ...          "weight_bits": [8]}
    >>> result = exporter.optimize(demo=True, target="android", trials=1, out="build/opt", space=plain, progress=False)
    >>> result.new_trials, result.pick.number, result.storage.endswith("build/opt.study.db")
    (1, 0, True)
    >>> exporter.verify("build/opt/bundle")["status"]
    'pass'
    >>> exporter.optimize(demo=True, target="android", trials=1, out="build/opt", space=plain,
    ...                   progress=False).new_trials                  # the study already holds 1 trial
    0
"""
from __future__ import annotations

import os
import time as _time
from pathlib import Path

from exporter.errors import LimitError, UsageError
from exporter.option_names import option
from exporter.optimize.budget import Budget, parse_duration, positive
from exporter.optimize.result import OptimizeResult

__all__ = ["optimize"]

def optimize(model=None, *, target: str, profile=None, train=None, calib=None, eval=None, labels=None,  # noqa: A002
             out, demo: bool = False, trials: int = 20, time=None, storage: str | None = None,
             study: str | None = None, space=None, ray: str | None = None, trial_cpus: int = 1,
             batch: int | None = None, pick: str = "smallest", sampler: str = "tpe", seed: int = 7,
             epochs: int = 2, limits=None, progress: bool = True, normalize: str | None = None,
             input_shapes=None, label_output: str | None = None, trust_model: bool = False,
             batch_size: int = 32) -> OptimizeResult:
    """Search compression recipes for `model` on `target`'s profile; write the results and the pick's bundle.

    Args:
        model: a .keras/.h5/SavedModel path (not a .tflite: nothing is left to search); None with `demo=True`.
        target, profile: the registered target (`edgex targets`); profile name or YAML path (default: the target's).
        train, calib, eval, labels: as `exporter.export`; `train` (labelled) lets trials fine-tune, `eval` is needed.
        out: the results folder (optimize.json, report.html, pareto.png, pareto/*.yaml, bundle/).
        demo: search on the built-in digits CNN and its data.
        trials: the finished trials the study should hold (old ones count: 12 then 14 runs 2). Default 20.
        time: stop asking new trials after this wall time: "30m", "45s", "2h" or seconds. Default None.
        storage: the study's SQLAlchemy URL. Default `sqlite:///<out>.study.db` beside `out`.
        study: the study name. Default `edgex-<target>-<profile>-<fingerprint of model, space, objectives>`.
        space: a --space YAML path, or a dict of dimensions, narrowing or widening the default space.
        ray, trial_cpus: None runs trials here one at a time; "auto" or HOST:PORT runs them as Ray tasks of
            `trial_cpus` CPUs each (default 1) on that cluster (exporter/optimize/ray_runner.py).
        batch: trials in flight (running or queued). Default 1 in-process, cluster CPUs // trial_cpus + 1 on Ray.
        pick: which Pareto trial becomes the bundle: "smallest" (default), "fastest", "most-accurate".
        sampler: "tpe" (default, multivariate TPE) or "nsga2" (NSGA-II); both honour the limits as constraints.
        seed, epochs: the sampler's and every trial's training seed (default 7); fine-tuning epochs per stage (2).
        limits: limit overrides, {"model_size": "40KB"} or ["latency=12ms"].
        progress: a progress bar over trials on stderr. Default True.
        normalize, input_shapes, label_output, trust_model: as `exporter.export`; batch_size: fine-tuning's (32).

    Returns:
        The OptimizeResult (study, every trial, the Pareto front, the pick and its bundle).

    Raises:
        LimitError: no trial passes every limit (exit 1; the results are written, no bundle); its `result`
            attribute holds the OptimizeResult.
        UsageError, ConfigError: bad arguments, a bad --space file, a storage or Ray cluster that cannot be reached.
        ExporterError: what `exporter.export` raises for the model and data (before any trial runs).
    """
    from exporter.optimize import results
    from exporter.optimize.job import OptimizeJob
    from exporter.optimize.runner import runner_for

    budget = _budget(model, out, trials, time, trial_cpus, batch, epochs, seed, pick, sampler)
    results.check_out(out)
    job = OptimizeJob(target=target, model=None if model is None else os.fspath(model), demo=demo,
                      profile=profile, train=train, calib=calib, eval=eval, labels=labels, limits=limits,
                      normalize=normalize, input_shapes=input_shapes, label_output=label_output,
                      trust_model=trust_model, epochs=epochs, seed=seed, batch_size=batch_size)
    with runner_for(ray, trial_cpus) as runner:         # a Ray cluster that cannot be reached: refused before work
        setup = _setup(job, space)
        result = _run(job, setup, budget, runner, out=out, storage=storage, study=study, batch=batch,
                      sampler=sampler, progress=progress)
        try:                                # the pick is exported where trials ran (on Ray: in a worker)
            return results.write(out, result, job, pick=pick, progress=progress, runner=runner)
        except LimitError as exc:
            exc.result = result             # the CLI still prints the trials (--json) before exiting 1
            raise


def _budget(model, out, trials, time, trial_cpus, batch, epochs, seed, pick, sampler) -> Budget:
    """Check the arguments that need no model loaded (before any work); the Budget of `trials` and `time`."""
    from exporter.optimize.pick import check_pick
    from exporter.optimize.study import check_sampler

    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise UsageError(f"give {option('model')} as a file path: every trial loads it afresh (in its own process "
                         "on Ray); save the model first (model.save('model.keras'))")
    if out is None:
        raise UsageError(f"give {option('out')}: the folder for the results and the picked bundle")
    positive("trials", trials)
    positive("trial_cpus", trial_cpus)
    positive("batch", batch, allow_none=True)
    positive("epochs", epochs)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"{option('seed', seed)}: give a whole number, 0 or more")
    check_pick(pick)
    check_sampler(sampler)
    return Budget(trials=trials, seconds=parse_duration(time))


def _setup(job, space) -> dict:
    """Load and check the model and data; the profile, objectives, limits, sensitivity and search space."""
    from exporter.limits import LIMITS
    from exporter.optimize.objectives import objectives_for
    from exporter.optimize.sensitivity import job_inputs, model_info, sensitivity
    from exporter.optimize.space import SearchSpace, check_float_layers, default_space, load_space

    inputs, request = job_inputs(job)
    if inputs.is_tflite:
        raise UsageError(f"{option('model', job.model)} is a .tflite, converted already: optimize searches the "
                         "stages before conversion, so give the Keras model (.keras, .h5 or SavedModel)")
    if inputs.eval is None:
        raise UsageError(f"give {option('eval')}: every trial is judged on the evaluation data")
    profile, model = request.profile, inputs.loaded.model
    label = inputs.signature.label if inputs.signature is not None else 0
    rows = sensitivity(model, inputs.eval, profile, output=label)
    chosen = default_space(profile, model_info(model), job.has_train, rows)
    if isinstance(space, dict):
        chosen = _space_from_dict(space, chosen, SearchSpace)
    elif space is not None:
        chosen = load_space(space, chosen)
    origin = "space" if space is None or isinstance(space, dict) else str(space)
    check_float_layers(chosen, request.target, [layer.name for layer in model.layers], origin)
    return {"profile": profile, "objectives": objectives_for(profile, job.has_labels), "sensitivity": rows,
            "limits": [name for name in LIMITS if getattr(profile.limits, name, None) is not None],
            "space": chosen}


def _space_from_dict(data: dict, base, cls):
    """A space given as a dict (the Python form of a --space file) applied to `base`, validated the same way."""
    from pydantic import ValidationError

    from exporter.errors import ConfigError
    from exporter.validation import validation_lines

    try:
        return cls.model_validate({**base.model_dump(), **data})
    except ValidationError as exc:
        raise ConfigError("invalid search space\n  " + "\n  ".join(validation_lines(exc, "space"))) from None


def _run(job, setup: dict, budget: Budget, runner, *, out, storage, study, batch, sampler,
         progress) -> OptimizeResult:
    """Open (or resume) the study and run trials on `runner` until the budget is spent."""
    from exporter.optimize.scheduler import run_trials
    from exporter.optimize.study import default_storage, finished, open_study, study_name
    from exporter.optimize.warm_start import enqueue_corners

    profile, objectives, space = setup["profile"], setup["objectives"], setup["space"]
    if storage is None:
        storage = default_storage(out)
        Path(out).expanduser().absolute().parent.mkdir(parents=True, exist_ok=True)    # build/ of build/opt
    name = study or study_name(job.target, profile.name, job.model, job.demo, space.to_dict(), objectives)
    opened = open_study(storage, name, objectives, sampler=sampler, seed=job.seed)
    enqueue_corners(opened, space, setup["sensitivity"])             # a new study's first trials
    start, size = _time.monotonic(), batch or runner.default_batch()
    new, stopped = run_trials(opened, runner, job, setup, budget, size, progress=progress)
    where = {**runner.describe(), "batch": size}
    results, plans = finished(opened)
    return OptimizeResult(study=name, storage=storage, trials=results, new_trials=new, objectives=objectives,
                          sensitivity=setup["sensitivity"], plans=plans, space=space.to_dict(),
                          target=job.target, profile=profile.name, out=str(out), runner=where,
                          seconds=_time.monotonic() - start, stopped=stopped)
