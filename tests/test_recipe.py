"""Recipes: YAML, manifests and CLI shorthands resolve to ordered, validated stages."""
import json
import os
import time

import pytest

from exporter.errors import ConfigError, UsageError
from exporter.recipe import Recipe, load_recipe, recipe_from_flags


def write(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_yaml_recipe(tmp_path):
    recipe = load_recipe(write(tmp_path, """
quantize: int8
training: {epochs: 2, learning_rate: 0.0005}
skip_layers: [conv2d]
stages:
  - {type: prune, config: {sparsity: 0.8}}
  - {type: cluster, config: {clusters: 16}}
  - {type: qat}
"""))
    assert [s.name for s in recipe.build()] == ["prune", "cluster", "qat"]
    assert recipe.training.epochs == 2 and recipe.skip_layers == ("conv2d",)


@pytest.mark.reliability(7, 8, 9)
@pytest.mark.parametrize("text,message", [
    ("stages: [{type: prune, config: {sparsity: 0.8}}]\nepochs: 3\n", "epochs: unknown key"),
    ("stages: [{type: prune, config: {sparsty: 0.8}}]\n", "sparsty: unknown key"),
    ("stages: [{type: prune, config: {sparsity: 1.5}}]\n", "sparsity"),
    ("stages: [{type: prnue}]\n", "Did you mean 'prune'"),
    ("stages: [{type: qat}, {type: prune, config: {sparsity: 0.5}}]\n", "cannot follow"),
    ("stages: [{type: cluster, config: {clusters: 8}}, {type: cluster, config: {clusters: 4}}]\n", "2 times"),
    ("stages: [{type: qat}, {type: lowbit, config: {bits: 4}}]\n", "both quantize"),
    ("training: {epochs: 0}\n", "training.epochs"),
    ("float_layers: probs\n", "float_layers"),
    ("float_layers: [{probs: true}]\n", "float_layers.0"),
    ("stages: !!python/object/apply:os.system ['touch pwned']\n", "not valid YAML"),
])
def test_bad_recipes_name_the_problem(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(write(tmp_path, text))
    assert not (tmp_path / "pwned").exists()


def test_flags_build_the_documented_combinations():
    recipe = recipe_from_flags(prune=0.8, cluster=16, qat=True, training={"epochs": 2})
    assert [(s.type, s.config) for s in recipe.stages] == [
        ("prune", {"sparsity": 0.8}), ("cluster", {"clusters": 16}), ("qat", {})]
    assert [s.type for s in recipe_from_flags(distill=0.5, qat=True).stages] == ["distill", "qat"]
    assert recipe_from_flags(prune_structured="2:4").stages[0].config["structure"] == "2:4"
    assert recipe_from_flags(sparsify="L1").stages[0].type == "sparsify"
    assert recipe_from_flags(weight_bits="1").stages[0].config == {"bits": 1}
    assert recipe_from_flags() is None
    floats = recipe_from_flags(float_layers=("probs", "conv2d"))
    assert floats.float_layers == ("probs", "conv2d") and floats.stages == () and floats.quantize is None


@pytest.mark.parametrize("flags,message", [
    ({"qat": True, "weight_bits": 4}, "choose one"),
    ({"distill": 0.5, "student": "s.keras"}, "not both"),
    ({"distill_mode": "hard"}, "needs --distill"),
    ({"sparsify": "L2"}, "supports L1"),
])
def test_conflicting_flags(flags, message):
    with pytest.raises(UsageError, match=message):
        recipe_from_flags(**flags)


def test_recipe_round_trips_through_a_manifest(tmp_path):
    recipe = recipe_from_flags(prune=0.5, qat=True, training={"epochs": 1, "seed": 3})
    manifest = {"recipe": {**recipe.to_dict(), "convert": {"mode": "int8", "io_dtype": "int8"}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    again = load_recipe(tmp_path)          # a bundle directory
    assert again == recipe
    assert Recipe.model_validate(again.to_dict()) == recipe


# --- issue 9: strict YAML, bounded reads, finite numbers, odd manifests ----------------------------

@pytest.mark.reliability(39)
def test_anchors_and_alias_bombs_are_refused(tmp_path):
    bomb = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    bomb += [f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 10) + "]" for i in range(1, 10)]
    path = write(tmp_path, "\n".join(bomb) + "\nstages: [{type: prune, config: {sparsity: 0.5}}]\nskip_layers: *lol9\n")
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"recipe.yaml, line 1: YAML anchors and aliases"):
        load_recipe(path)
    assert time.monotonic() - start < 2
    shared = "stages:\n  - {type: prune, config: &c {sparsity: 0.5}}\n  - {type: cluster, config: *c}\n"
    with pytest.raises(ConfigError, match="line 2: YAML anchors and aliases"):
        load_recipe(write(tmp_path, shared))


@pytest.mark.parametrize("text,field", [
    ("stages: [{type: distill, config: {width: 0.5, temperature: .inf}}]\n", "stages.0.config.temperature"),
    ("stages: [{type: distill, config: {width: 0.5, temperature: 1e400}}]\n", "stages.0.config.temperature"),
    ("stages: [{type: sparsify, config: {l1: .inf}}]\n", "stages.0.config.l1"),
    ("training: {learning_rate: .nan}\n", "training.learning_rate"),
])
def test_infinite_and_nan_numbers_are_refused(tmp_path, text, field):
    with pytest.raises(ConfigError, match=field):
        load_recipe(write(tmp_path, text))


@pytest.mark.reliability(40)
@pytest.mark.parametrize("manifest,message", [
    ('{"recipe": [1, 2]}', "recipe: must be a mapping"),
    ('{"recipe": {"stages": [{"type": "distill", "config": {"width": 0.5, "temperature": Infinity}}]}}',
     "stages.0.config.temperature: Input should be a finite number"),
    ('[' * 100_000 + ']' * 100_000, "not valid JSON"),
    ('{"recipe": "\\ud800"}', "recipe: must be a mapping"),
])
def test_odd_manifests_exit_2(tmp_path, manifest, message):
    (tmp_path / "manifest.json").write_text(manifest)
    with pytest.raises(ConfigError, match=message):
        load_recipe(tmp_path)


@pytest.mark.reliability(40)
@pytest.mark.timeout(20)
def test_fifo_device_and_oversized_recipes_are_refused(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="regular file, not a FIFO"):
        load_recipe(fifo)
    with pytest.raises(ConfigError, match="regular file, not a device"):
        load_recipe("/dev/zero")
    (tmp_path / "b").mkdir()
    os.mkfifo(tmp_path / "b" / "manifest.json")
    with pytest.raises(ConfigError, match="regular file, not a FIFO"):
        load_recipe(tmp_path / "b")
    big = write(tmp_path, "stages: []\n" + "# pad\n" * 200_000)
    with pytest.raises(ConfigError, match="larger than 1,048,576 bytes"):
        load_recipe(big)
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"stages: []\nskip_layers: [\xff]\n")
    with pytest.raises(ConfigError, match="line 2: recipe is not UTF-8"):
        load_recipe(bad)
