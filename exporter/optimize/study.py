"""The Optuna study a search lives in: where it is stored, its name, its sampler, and asking and telling trials.

Storage: `sqlite:///<out parent>/<out name>.study.db` beside `--out` by default (build/opt ->
build/opt.study.db), or any SQLAlchemy URL Optuna accepts (`--storage postgresql://...` for a study that
several machines share). The study's name is `edgex-<target>-<profile>-<fingerprint>`: the fingerprint
hashes the model file's bytes (or "demo"), the search space and the objectives, so a changed space starts
a new study in the same database, and the same call resumes the old one (`load_if_exists=True`).

The study is multi-objective (directions from the objectives). Trials are asked and told on the driver
(Optuna's ask-and-tell interface, https://optuna.readthedocs.io/en/stable/tutorial/20_recipes/009_ask_and_tell.html),
whatever runs them. Each trial's TrialResult is stored as the trial's user attribute "edgex" and its plan as
"plan". A complete trial's constraints are set with `trial.set_constraint(limit, value)` before it is told
(Optuna 5.0 stores them as the system attributes "constraints:<limit>", its `_CONSTRAINTS_KEY` prefix, and
deprecates the samplers' `constraints_func` for this), so TPE and NSGA-II steer away from infeasible trials.
Optuna's `trial.report`/pruners do not work for multi-objective studies: early stopping is edgex's own
rule (exporter/optimize/trial.py `prune_rule`), fixed in each plan's `prune_below` when it is asked.

Example:
    >>> default_storage("build/opt").endswith("/build/opt.study.db")
    True
    >>> name = study_name("android", "android-arm64-midrange", None, True, {"prune": ["none"]}, [])
    >>> name.startswith("edgex-android-android-arm64-midrange-"), len(name.rsplit("-", 1)[1])
    (True, 10)
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

from exporter.errors import ConfigError, UsageError
from exporter.option_names import option
from exporter.optimize.plan import TrialPlan, TrialResult

__all__ = ["EDGEX_ATTR", "PLAN_ATTR", "SAMPLERS", "check_sampler", "default_storage", "discard", "finished",
           "open_study", "study_name", "tell"]

EDGEX_ATTR = "edgex"
"""The trial user attribute holding its TrialResult (`to_dict()`)."""
PLAN_ATTR = "plan"
"""The trial user attribute holding its TrialPlan (`to_dict()`)."""


def default_storage(out) -> str:
    """The SQLite URL beside the output folder: `<out parent>/<out name>.study.db` (absolute)."""
    path = Path(out).expanduser().absolute()
    return f"sqlite:///{path.parent / (path.name + '.study.db')}"


def _model_hash(model, demo: bool) -> str:
    """The model's fingerprint part: "demo", or a hash of its file (or of a SavedModel folder's files)."""
    if demo or model is None:
        return "demo"
    digest = hashlib.sha256()
    path = Path(model)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def study_name(target: str, profile: str, model, demo: bool, space: dict, objectives: list) -> str:
    """`edgex-<target>-<profile>-<fingerprint>`: the same model, space and objectives give the same study.

    Args:
        target, profile: the target and the profile's name.
        model: the model path (None with `demo`).
        demo: the built-in demo model.
        space: the search space (`SearchSpace.to_dict()`).
        objectives: the Objectives (or their dicts).

    Returns:
        The name; its fingerprint is the first 10 hex digits of a SHA-256.
    """
    record = {"model": _model_hash(model, demo), "space": space,
              "objectives": [o if isinstance(o, dict) else o.to_dict() for o in objectives]}
    digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"edgex-{target}-{Path(str(profile)).stem}-{digest}"


def _tpe(seed: int):
    import optuna

    return optuna.samplers.TPESampler(seed=seed, multivariate=True)


def _nsga2(seed: int):
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed)


SAMPLERS = {"tpe": _tpe, "nsga2": _nsga2}
"""`--sampler` name -> a factory (seed) -> Optuna sampler (both read the trials' constraints)."""


def check_sampler(name: str) -> str:
    """`name` when it is a `SAMPLERS` name; UsageError naming the known ones otherwise."""
    if name not in SAMPLERS:
        raise UsageError(f"{option('sampler', name)} is not a sampler; known: {', '.join(SAMPLERS)}")
    return name


def open_study(storage: str, name: str, objectives: list, *, sampler: str = "tpe", seed: int = 7):
    """Create the study, or load it when it exists (resume).

    Args:
        storage: the SQLAlchemy URL.
        name: the study name.
        objectives: the Objectives; their directions are the study's.
        sampler: a `SAMPLERS` name. Default "tpe".
        seed: the sampler's seed. Default 7.

    Returns:
        The optuna.Study.

    Raises:
        UsageError: a storage URL Optuna cannot open, or an existing study of that name with other directions.
    """
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = [o.direction for o in objectives]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)   # TPE's multivariate
        made = SAMPLERS[check_sampler(sampler)](seed)
        try:
            study = optuna.create_study(storage=storage, study_name=name, directions=directions, sampler=made,
                                        load_if_exists=True)
        except (ImportError, ValueError, OSError, SQLAlchemyError) as exc:   # bad URL, no driver, unreachable
            raise UsageError(f"{option('storage', storage)}: cannot open the study there: "
                             f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}") from None
    if list(study.directions) != [getattr(optuna.study.StudyDirection, d.upper()) for d in directions]:
        raise ConfigError(f"study {name!r} in {storage} optimizes other objectives; give another {option('study')}")
    return study


def finished(study) -> tuple[list[TrialResult], dict[int, TrialPlan]]:
    """The study's finished edgex trials (those told with a result) and their plans, by trial number."""
    results, plans = [], {}
    for trial in study.get_trials(deepcopy=False):
        data = trial.user_attrs.get(EDGEX_ATTR)
        if data is None or not trial.state.is_finished():
            continue
        results.append(TrialResult.from_dict(data))
        if PLAN_ATTR in trial.user_attrs:
            plans[trial.number] = TrialPlan.from_dict(trial.user_attrs[PLAN_ATTR])
    results.sort(key=lambda r: r.number)
    return results, plans


def tell(study, trial, plan: TrialPlan, result: TrialResult, limits: list[str]) -> None:
    """Store a trial's plan and result and tell Optuna how it ended (complete, pruned or failed).

    Args:
        study: the optuna.Study.
        trial: the optuna.Trial asked for it.
        plan: its TrialPlan.
        result: its TrialResult.
        limits: the names of the limits the constraints stand for, in the order of `result.constraints`.
    """
    from optuna.trial import TrialState

    trial.set_user_attr(PLAN_ATTR, plan.to_dict())
    trial.set_user_attr(EDGEX_ATTR, json.loads(json.dumps(result.to_dict(), default=str)))
    if result.state == "complete":
        for name, value in zip(limits, result.constraints):
            trial.set_constraint(name, value)
        study.tell(trial, list(result.values))
    else:
        study.tell(trial, state=TrialState.PRUNED if result.state == "pruned" else TrialState.FAIL)


def discard(study, trial) -> None:
    """Mark a trial that was asked but will not finish (Ctrl-C) as failed, without a result."""
    from optuna.trial import TrialState

    try:
        study.tell(trial, state=TrialState.FAIL)
    except Exception:   # already finished, or the storage is gone: nothing left to mark
        pass
