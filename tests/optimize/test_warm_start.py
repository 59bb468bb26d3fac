"""The warm start: a new study's first trials are the space's smallest corner, once per distillation width."""
from __future__ import annotations

import optuna
import pytest

from exporter.optimize.space import NONE, SearchSpace, default_space, plan_for, suggest
from exporter.optimize.warm_start import corner_trials, enqueue_corners
from exporter.profile import load_profile
from exporter.recipe import Recipe

ROWS = [{"layer": "probs", "params": 640}, {"layer": "conv2d_1", "params": 4608}, {"layer": "conv2d", "params": 144},
        {"layer": "dense", "params": 32768}]


def test_corners_of_the_default_spaces():
    android = default_space(load_profile("android-arm64-midrange"), None, has_train=True, sensitivity=ROWS)
    corners = corner_trials(android, ROWS)
    assert [c["distill"] for c in corners] == [NONE, 0.25, 0.5, 0.75]
    for params in corners:
        assert (params["quantize"], params["prune"], params["cluster"], params["weight_bits"], params["qat"]) == (
            "int8", 0.97, 4, 8, True)                                              # PCQAT
        assert {k: v for k, v in params.items() if k.startswith("skip:")} == {
            "skip:probs": True, "skip:conv2d_1": False, "skip:conv2d": True}     # 2 % and 0.4 % of the weights
        assert not any(v for k, v in params.items() if k.startswith("float:"))
        plan = plan_for(android, params, number=0, epochs=1, seed=7)
        Recipe.model_validate(plan.recipe)                                       # every corner builds
    nano = default_space(load_profile("arduino-nano-33-ble"), None, has_train=True, sensitivity=ROWS)
    assert all(c["compress"] is True for c in corner_trials(nano, ROWS))
    tiny = SearchSpace(quantize=("float16",), prune=(NONE, 0.5), cluster=(NONE, 2))     # no int8, 2 clusters only
    assert corner_trials(tiny, None) == [{"quantize": "float16", "prune": 0.5, "cluster": 2}]


@pytest.mark.parametrize("space", [
    SearchSpace(quantize=("int8",), prune=(NONE, 0.9), warm_start=False),      # turned off
    SearchSpace(quantize=("int8", "float32")),                                 # nothing shrinks weights
])
def test_no_corners(space):
    assert corner_trials(space, ROWS) == []


def test_corners_are_asked_first_and_only_in_a_new_study():
    space = default_space(load_profile("android-arm64-midrange"), None, has_train=True, sensitivity=ROWS)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.TPESampler(seed=7))
    assert enqueue_corners(study, space, ROWS) == 4
    asked = [suggest(space, study.ask()) for _ in range(5)]
    assert asked[:4] == corner_trials(space, ROWS)
    assert asked[4] not in asked[:4]                                   # then the sampler's own
    assert enqueue_corners(study, space, ROWS) == 0                    # resumed: not queued again


def test_the_shared_search_started_with_its_corner(optimize_run):
    result, _ = optimize_run
    space = SearchSpace.model_validate(result.space)
    corner = corner_trials(space, list(result.sensitivity))
    assert len(corner) == 1                                          # its space has no distillation
    assert result.plans[0].params == corner[0]
