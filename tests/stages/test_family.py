"""Stage families: the order of a recipe and the questions qat and cluster ask about earlier stages."""
from __future__ import annotations

import itertools

import pytest

from exporter.errors import ConfigError
from exporter.recipe import Recipe
from exporter.stages.base import Family, family_order, family_ran, get_stage, stage_names
from exporter.stages.qat import resolve_scheme

FAMILIES = {"distill": Family.DISTILL, "prune": Family.PRUNE, "sparsify": Family.PRUNE,
            "cluster": Family.CLUSTER, "qat": Family.QUANTIZE, "lowbit": Family.QUANTIZE}
MINIMAL = {"prune": {"sparsity": 0.5}, "sparsify": {}, "cluster": {"clusters": 8}, "qat": {},
           "lowbit": {"bits": 4}, "distill": {"width": 0.5}}


def spec(name):
    return {"type": name, "config": MINIMAL[name]}


def test_each_stage_declares_its_family_and_the_families_are_ordered():
    assert {name: get_stage(name).family for name in stage_names()} == FAMILIES
    assert list(Family) == sorted(Family) == [Family.DISTILL, Family.PRUNE, Family.CLUSTER, Family.QUANTIZE]
    assert [f for f in Family if f.exclusive] == [Family.QUANTIZE]
    assert family_order() == "distill → prune/sparsify → cluster → lowbit/qat"


@pytest.mark.parametrize("first, second", list(itertools.permutations(sorted(FAMILIES), 2)))
def test_recipe_order_follows_the_families(first, second):
    recipe = Recipe.model_validate({"stages": [spec(first), spec(second)]})
    if FAMILIES[second] < FAMILIES[first]:
        with pytest.raises(ConfigError, match=rf"'{second}' cannot follow '{first}'; the order is distill → "):
            recipe.build()
    elif FAMILIES[first] is FAMILIES[second] is Family.QUANTIZE:
        with pytest.raises(ConfigError, match=rf"'{first}' and '{second}' both quantize; choose one"):
            recipe.build()
    else:
        assert [s.name for s in recipe.build()] == [first, second]


def test_recipe_errors_name_their_origin():
    with pytest.raises(ConfigError, match=r"^recipe.yaml: 'prune' cannot follow 'qat'"):
        Recipe.model_validate({"stages": [spec("qat"), spec("prune")]}).build("recipe.yaml")
    with pytest.raises(ConfigError, match=r"recipe.yaml: stages.1.config.clusters: Input should be greater"):
        Recipe.model_validate({"stages": [spec("prune"), {"type": "cluster", "config": {"clusters": 1}}]}).build(
            "recipe.yaml")


@pytest.mark.parametrize("previous, pruned, clustered, scheme", [
    ([], False, False, "default"),
    (["prune"], True, False, "pqat"),
    (["sparsify"], True, False, "pqat"),
    (["cluster"], False, True, "cqat"),
    (["distill", "sparsify", "cluster"], True, True, "pcqat"),
])
def test_later_stages_ask_which_families_ran(previous, pruned, clustered, scheme):
    assert family_ran(Family.PRUNE, previous) is pruned
    assert family_ran(Family.CLUSTER, previous) is clustered
    assert resolve_scheme("auto", previous) == scheme


def test_family_ran_refuses_an_unknown_stage_name():
    with pytest.raises(ConfigError, match="unknown stage 'prnue'"):
        family_ran(Family.PRUNE, ["prnue"])
