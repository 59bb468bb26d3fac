"""The first trials of a new study: the space's smallest corner, once per distillation width (a warm start).

TPE learns where the limits bind from the trials it has seen, and its first 10 trials are random: in a
space of a dozen dimensions few of them land at the small end, where the smallest model that passes is.
A new study therefore starts with the corner that Deep Compression's pipeline takes (Han et al. 2016:
prune, share weights, quantize, retraining after each step; the first and last layers, small and sensitive,
pruned less), once for each distillation width the space offers (and once without): the highest pruning
sparsity, the fewest shared values that keep pruned zeros (3 or more), int8 with 8-bit weights trained
with QAT where the space offers it (after prune and cluster that is TF-MOT's PCQAT, which keeps the zeros
and the shared values: the end of its collaborative-optimization pipeline), TFLM compression where it is
searched, no float layers, and the sensitive layers that hold a small share of the kernel weights (less
than `SMALL_SHARE`) left out of pruning and clustering: keeping them costs few bytes.

The corner first took no QAT (the cheaper trial). On the demo for android (30 epochs per stage, students
60) its width-0.5 corner then passed or failed the 1-point limit by the thread count TensorFlow trained
with: +0.28 pt on 2 threads, +1.39 pt on 1 (a Ray worker with `--trial-cpus 1`). With PCQAT it passes
on both, smaller still: 3,212 B gzip (-0.56 pt) on 2 threads, 3,268 B (+0.83 pt) on 1, against 3,388 and
3,373 B without.

These trials are asked first (Optuna's `enqueue_trial`) and judged like any other; whether they pass
or break a limit, TPE then searches from there. `warm_start: false` in a --space file turns them off.

Example (the demo CNN's sensitivity rows: probs and conv2d hold 2 % of its kernel weights):
    >>> from exporter.optimize.space import SearchSpace
    >>> space = SearchSpace(quantize=("int8", "float32"), distill=("none", 0.5), prune=("none", 0.8, 0.97),
    ...                     cluster=("none", 2, 4, 16), qat=(False, True), skip_layers=("probs", "conv2d_1", "conv2d"))
    >>> rows = [{"layer": "probs", "params": 640}, {"layer": "conv2d_1", "params": 4608},
    ...         {"layer": "conv2d", "params": 144}, {"layer": "dense", "params": 32768}]
    >>> for params in corner_trials(space, rows):
    ...     print(params)           # doctest: +NORMALIZE_WHITESPACE
    {'quantize': 'int8', 'distill': 'none', 'prune': 0.97, 'cluster': 4, 'qat': True, 'skip:probs': True,
     'skip:conv2d_1': False, 'skip:conv2d': True}
    {'quantize': 'int8', 'distill': 0.5, 'prune': 0.97, 'cluster': 4, 'qat': True, 'skip:probs': True,
     'skip:conv2d_1': False, 'skip:conv2d': True}
"""
from __future__ import annotations

from exporter.optimize.space import FLOAT_PREFIX, NONE, SKIP_PREFIX, SearchSpace, suggest

__all__ = ["SMALL_SHARE", "corner_trials", "enqueue_corners"]

SMALL_SHARE = 0.05
"""A sensitive layer holding less than this share of all kernel weights is left out of pruning and clustering."""
MIN_KEPT_CLUSTERS = 3
"""The fewest shared values that keep pruned zeros after pruning (exporter/optimize/space.py `_cluster`)."""


class _Corner:
    """Stands in for an optuna.Trial in `space.suggest`: each `suggest_categorical` picks the corner's value."""

    def __init__(self, width, small_layers: set[str]):
        self.width, self.small = width, small_layers

    def suggest_categorical(self, name: str, choices: list):
        if name.startswith(SKIP_PREFIX):
            return name[len(SKIP_PREFIX):] in self.small
        if name.startswith(FLOAT_PREFIX):
            return False
        return _RULES[name](self, choices)


def _numbers(choices: list) -> list:
    return [c for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]


def _fewest_clusters(choices: list):
    counts = _numbers(choices)
    keeping = [c for c in counts if c >= MIN_KEPT_CLUSTERS]
    return min(keeping or counts) if counts else NONE


_RULES = {
    "quantize": lambda corner, choices: "int8" if "int8" in choices else choices[0],
    "distill": lambda corner, choices: corner.width,
    "prune": lambda corner, choices: max(_numbers(choices), default=NONE),
    "cluster": lambda corner, choices: _fewest_clusters(choices),
    "weight_bits": lambda corner, choices: 8 if 8 in choices else max(choices),
    "qat": lambda corner, choices: True if True in choices else choices[0],
    "compress": lambda corner, choices: True in choices,
}
"""parameter -> how the corner picks its value from the choices (skip:/float: layers are in `_Corner`)."""


def corner_trials(space: SearchSpace, sensitivity: list | None) -> list[dict]:
    """The warm start's trial parameters: the smallest corner once per distillation width (none first).

    Args:
        space: the SearchSpace (nothing when its `warm_start` is off, or it has no stage that shrinks weights).
        sensitivity: the sensitivity rows ({"layer", "params"}, exporter/optimize/sensitivity.py), or None.

    Returns:
        Parameter dicts as `space.suggest` gives them, distinct, in the order they run.
    """
    if not space.warm_start or (space.prune == (NONE,) and space.cluster == (NONE,)):
        return []
    rows = sensitivity or []
    total = sum(row["params"] for row in rows) or 1
    small = {row["layer"] for row in rows if row["params"] < SMALL_SHARE * total}
    trials = []
    for width in space.distill:
        params = suggest(space, _Corner(width, small))
        if params not in trials:
            trials.append(params)
    return trials


def enqueue_corners(study, space: SearchSpace, sensitivity: list | None) -> int:
    """Queue the warm start's trials in a study that has none yet; how many were queued (0 on a resumed study)."""
    if study.get_trials(deepcopy=False):
        return 0
    trials = corner_trials(space, sensitivity)
    for params in trials:
        study.enqueue_trial(params)
    return len(trials)
