"""The search space: defaults from the profile, --space files, Optuna sampling, and plans that always build."""
from __future__ import annotations

import pytest

from exporter.errors import ConfigError
from exporter.optimize.space import NONE, SearchSpace, default_space, load_space, plan_for, suggest
from exporter.profile import load_profile
from exporter.recipe import Recipe

ROWS = [{"layer": "probs"}, {"layer": "conv2d_1"}, {"layer": "conv2d"}, {"layer": "dense"}]


def test_default_space_follows_the_profile():
    android = default_space(load_profile("android-arm64-midrange"), None, has_train=True, sensitivity=ROWS)
    assert android.quantize == ("float32", "float16", "dynamic", "int8", "int16x8")     # LiteRT has 16x8 kernels
    assert android.skip_layers == ("probs", "conv2d_1", "conv2d")          # the top 3
    assert "2:4" not in android.prune and android.compress == ()
    assert android.weight_bits == (8, 4, 2, 1) and android.qat == (False, True)
    nano = default_space(load_profile("arduino-nano-33-ble"), None, has_train=True, sensitivity=None)
    assert nano.quantize == ("int8",) and nano.compress == (True,) and nano.skip_layers == ()
    bare = default_space(load_profile("android-arm64-midrange"), None, has_train=False, sensitivity=ROWS)
    assert (bare.distill, bare.prune, bare.cluster, bare.qat) == ((NONE,), (NONE,), (NONE,), (False,))
    assert android.float_layers == bare.float_layers == ("probs", "conv2d_1", "conv2d")   # no training needed
    assert default_space(load_profile("raspberry-pi-4"), None, True, ROWS).float_layers == android.float_layers
    for profile in ("arduino-nano-33-ble", "coral-usb", "corstone-300-u55-128"):               # int8 kernels only
        assert default_space(load_profile(profile), None, True, ROWS).float_layers == (), profile


def test_space_file_narrows_and_is_strict(tmp_path):
    base = default_space(load_profile("android-arm64-midrange"), None, has_train=True, sensitivity=ROWS)
    path = tmp_path / "space.yaml"
    path.write_text("prune: [none, 0.9, '2:4']\ncluster: [~, 8]\nquantize: [int8]\n")
    space = load_space(path, base)
    assert space.prune == (NONE, 0.9, "2:4") and space.cluster == (NONE, 8) and space.quantize == ("int8",)
    assert space.distill == base.distill                                  # dimensions not named stay
    for text, words in [("prunes: [0.5]\n", "prunes"), ("prune: [1.5]\n", "(0, 1)"), ("cluster: [1]\n", "2..256"),
                        ("quantize: [int4]\n", "quantize"), ("prune: [0.5, 0.5]\n", "more than once"),
                        ("- prune\n", "mapping")]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=None) as info:
            load_space(path, base)
        assert words in str(info.value) and str(path) in str(info.value)
        assert info.value.exit_code == 2


def test_every_sampled_plan_builds_and_fits_the_profile():
    """Random parameters of the full space: each plan is a valid recipe the profile's checks accept."""
    import optuna

    from exporter.optimize.plan import TrialPlan

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    profile = load_profile("android-arm64-midrange")
    space = SearchSpace(**{**default_space(profile, None, True, ROWS).model_dump(),
                           "prune": (NONE, 0.8, "2:4"), "cluster": (NONE, 2, 16)})
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=1))
    seen, kept_float, modes = set(), set(), set()
    for number in range(200):
        params = suggest(space, study.ask())
        plan = plan_for(space, params, number, epochs=1, seed=7)
        assert TrialPlan.from_dict(plan.to_dict()) == plan
        assert plan_for(space, params, number, epochs=1, seed=7) == plan        # pure
        stages = Recipe.model_validate(plan.recipe).build("plan")
        names = [s.name for s in stages]
        for i, stage in enumerate(stages):
            stage.check_profile(profile, plan.quantize, names[:i])            # e.g. qat needs int8
        if params["quantize"] != "int8":
            assert "qat" not in params and "weight_bits" not in params
        if params.get("weight_bits", 8) != 8:
            assert "qat" not in params and "lowbit" in names
        floats = [name for name in params if name.startswith("float:")]
        if params["quantize"] != "int8" or params.get("qat"):                # float layers cannot matter
            assert floats == [] and "float_layers" not in plan.recipe
        else:
            assert floats == ["float:probs", "float:conv2d_1", "float:conv2d"]
            assert plan.recipe.get("float_layers", []) == [name[6:] for name in floats if params[name]]
        seen.update(names)
        kept_float.update(plan.recipe.get("float_layers", []))
        modes.add(plan.quantize)
    assert modes == {"float32", "float16", "dynamic", "int8", "int16x8"}
    assert seen == {"distill", "prune", "cluster", "qat", "lowbit"}
    assert kept_float == {"probs", "conv2d_1", "conv2d"}


def test_float_layers_from_a_space_file_and_where_they_are_refused(tmp_path):
    from exporter.optimize.space import check_float_layers
    from targets.base import get_target

    layers = ["conv2d", "conv2d_1", "max_pooling2d", "flatten", "dense", "probs"]
    base = default_space(load_profile("android-arm64-midrange"), None, has_train=True, sensitivity=ROWS)
    path = tmp_path / "space.yaml"
    path.write_text("float_layers: [dense]\n")
    space = load_space(path, base)
    assert space.float_layers == ("dense",) and space.skip_layers == base.skip_layers
    check_float_layers(space, get_target("android"), layers, str(path))          # fine on android
    plan = plan_for(space, {"quantize": "int8", "float:dense": True}, 0, epochs=1, seed=7)
    assert plan.recipe["float_layers"] == ["dense"] and plan.recipe["stages"] == []
    with pytest.raises(ConfigError, match="target microcontroller runs int8 models whole .*searched on android, linux"):
        check_float_layers(space, get_target("microcontroller"), layers, str(path))
    path.write_text("float_layers: [dens]\n")
    with pytest.raises(ConfigError, match="float_layers: no layer named 'dens'; the model's layers: conv2d,"):
        check_float_layers(load_space(path, base), get_target("linux"), layers, str(path))
    path.write_text("float_layers: [dense, dense]\n")
    with pytest.raises(ConfigError, match="more than once"):
        load_space(path, base)


def test_plan_details():
    space = default_space(load_profile("arduino-nano-33-ble"), None, True, ROWS)
    plan = plan_for(space, {"quantize": "int8", "prune": 0.9, "cluster": 2, "weight_bits": 8, "qat": False,
                            "compress": False, "skip:probs": True, "skip:conv2d": False}, 4, epochs=2, seed=3)
    prune, cluster = plan.recipe["stages"]
    assert prune == {"type": "prune", "config": {"sparsity": 0.9, "skip_layers": ["probs"]}}
    assert cluster["config"] == {"clusters": 2, "per_channel": "auto", "preserve_sparsity": False,
                                 "skip_layers": ["probs"]}                   # 2 clusters cannot keep the zeros
    assert plan.recipe["training"] == {"epochs": 2, "seed": 3, "batch_size": 32}
    assert plan.target_options == {"compress": False} and plan.quantize == "int8" and plan.number == 4
    structured = plan_for(space, {"quantize": "int8", "prune": "2:4"}, 0, epochs=1, seed=7)
    assert structured.recipe["stages"] == [{"type": "prune", "config": {"structure": "2:4", "schedule": "constant"}}]
    distilled = plan_for(space, {"quantize": "int8", "distill": 0.25}, 0, epochs=1, seed=7)
    assert distilled.recipe["stages"] == [{"type": "distill", "config": {"width": 0.25, "epochs": 25}}]
