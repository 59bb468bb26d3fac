"""One layer-selection vocabulary: `select_layers` and the same rules in every layer-selecting stage."""
from __future__ import annotations

import numpy as np
import pytest

from exporter.data import Dataset
from exporter.errors import ConfigError, ConversionError
from exporter.profile import load_profile
from exporter.stages import training
from exporter.stages.base import GLOBAL_SKIP, LayerSelection, StageContext, get_stage, select_layers
from exporter.stages.lowbit import LowBitStage
from exporter.stages.training import TrainingConfig

WEIGHTED = ["conv", "bn", "scale", "head"]
SELECTING = {"prune": {"sparsity": 0.5, "frequency": 1}, "sparsify": {}, "cluster": {"clusters": 8}, "qat": {},
             "lowbit": {"bits": 4}}
# what each stage does with the layers it does not transform, when nothing is skipped
LEFT_ALONE = {"prune": {"bn": "TF-MOT prunes no weights of BatchNormalization"},
              "sparsify": {},
              "cluster": {"bn": "TF-MOT clusters no weights of BatchNormalization"},
              "qat": {},
              "lowbit": {"bn": "lowbit quantizes the kernels of Conv2D, DepthwiseConv2D, Dense layers only",
                         "scale": "lowbit quantizes the kernels of Conv2D, DepthwiseConv2D, Dense layers only"}}
CANNOT = {"prune": ["scale"], "sparsify": ["bn", "scale"], "cluster": ["scale"], "qat": ["scale"], "lowbit": []}


@pytest.fixture(scope="module")
def model(keras, scale_class):
    """conv (linear, so QAT folds bn into it) → bn → relu → scale (a custom layer with weights) → head."""
    keras.utils.set_random_seed(2)
    inputs = keras.layers.Input((8, 8, 1), name="pixels")
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = scale_class(name="scale")(x)
    x = keras.layers.Flatten(name="flat")(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="head")(x))


def ctx(skip=()):
    rng = np.random.default_rng(0)
    data = Dataset(rng.random((320, 8, 8, 1), dtype=np.float32), rng.integers(0, 10, 320), "random")
    return StageContext(train=data, eval=None, training=TrainingConfig(epochs=1), mode="int8",
                        profile=load_profile("android-arm64-midrange"), skip_layers=tuple(skip))


def judge(layer):
    """A stand-in stage: transforms conv and head, leaves bn alone, cannot handle scale."""
    return {"conv": True, "head": True, "bn": "nothing to do in bn", "scale": False}.get(layer.name, True)


def select(model, skip=(), weighted=True, **selection):
    return select_layers(model, LayerSelection(**selection), judge, ctx(skip), stage="toy", weighted=weighted)


def names(layers):
    return [layer.name for layer in layers]


# -- select_layers -----------------------------------------------------------------------------------------

def test_default_selection_is_every_layer_with_weights_and_refuses_what_the_stage_cannot_handle(model):
    with pytest.raises(ConversionError) as err:
        select(model)
    assert "stage 'toy' cannot handle these layers: scale (" in str(err.value)
    assert "Skip them with skip_layers=['scale'] in the recipe" in str(err.value)   # called from Python


def test_global_skip_and_left_alone_layers_are_listed_with_their_reason_in_model_order(model):
    chosen, skipped = select(model, skip=("scale",))
    assert names(chosen) == ["conv", "head"]
    assert skipped == [{"layer": "bn", "class": "BatchNormalization", "reason": "nothing to do in bn"},
                       {"layer": "scale", "class": "Scale", "reason": GLOBAL_SKIP}]


def test_the_stage_skip_list_wins_over_selection_and_support(model):
    chosen, skipped = select(model, layers=("conv", "scale", "head"), skip_layers=("scale", "head"))
    assert names(chosen) == ["conv"]
    assert [(s["layer"], s["reason"]) for s in skipped] == [("scale", "in the skip_layers of stage 'toy'"),
                                                            ("head", "in the skip_layers of stage 'toy'")]


def test_layers_and_layer_types_select_their_union(model):
    chosen, skipped = select(model, layers=("conv",), layer_types=("Dense",))
    assert names(chosen) == ["conv", "head"] and skipped == []
    chosen, _ = select(model, layer_types=("BatchNormalization", "Conv2D"))
    assert names(chosen) == ["conv"]
    # a Keras class the model lacks is no error (one recipe, several models); a typo is
    chosen, _ = select(model, layer_types=("Conv2D", "DepthwiseConv2D", "LSTM"))
    assert names(chosen) == ["conv"]


def test_every_layer_but_the_input_when_weights_are_not_required(model):
    chosen, _ = select(model, weighted=False, skip=("scale",))
    assert names(chosen) == ["conv", "relu", "flat", "head"]
    chosen, _ = select(model, weighted=False, layers=("flat",))     # a layer without weights may be named
    assert names(chosen) == ["flat"]


@pytest.mark.parametrize("skip, selection, words", [
    ((), {"layers": ("hed",)}, ["layers: no layer named 'hed' (did you mean 'head'?)",
                                "the model's layers: pixels, conv, bn, relu, scale, flat, head"]),
    ((), {"skip_layers": ("conv", "nope")}, ["skip_layers: no layer named 'nope';"]),
    (("sclae",), {}, ["the recipe's skip_layers: no layer named 'sclae' (did you mean 'scale'?)"]),
    ((), {"layer_types": ("Conv2d", "LSTM")}, ["layer_types: 'Conv2d' (did you mean 'Conv2D'?) is neither a class "
                                               "of the model's layers nor a tf_keras layer class",
                                               "the model has BatchNormalization, Conv2D, Dense"]),
    ((), {"layer_types": ("LSTM",)}, ["the selection (layers [], layer_types ['LSTM']) picks no layer with weights"]),
    ((), {"layers": ("flat", "relu")}, ["'flat' (Flatten), 'relu' (ReLU) have no weights"]),
    ((), {"layers": ("bn",)}, ["no selected layer can be transformed (bn: nothing to do in bn)"]),
    ((), {"layer_types": ("Flatten",)}, ["layer_types ['Flatten']) picks no layer with weights"]),
])
def test_selection_errors_name_the_problem(model, skip, selection, words):
    with pytest.raises(ConfigError) as err:
        select(model, skip=skip, **selection)
    for word in words:
        assert word in str(err.value)


# -- the same rules in every stage ---------------------------------------------------------------------------

@pytest.fixture
def no_training(monkeypatch):
    """Stages run without fitting: selection, wrapping and stripping are what is under test."""
    monkeypatch.setattr(training, "fit", lambda *args, **kwargs: None)
    monkeypatch.setattr(LowBitStage, "_train", lambda *args, **kwargs: None)


@pytest.mark.parametrize("name", sorted(SELECTING))
@pytest.mark.parametrize("selection, skip, words", [
    ({"layers": ["hed"]}, (), ["stage '{name}': layers: no layer named 'hed' (did you mean 'head'?)",
                               "the model's layers: pixels, conv"]),
    ({"skip_layers": ["bnn"]}, (), ["stage '{name}': skip_layers: no layer named 'bnn' (did you mean 'bn'?)"]),
    ({}, ("sclae",), ["stage '{name}': the recipe's skip_layers: no layer named 'sclae'"]),
    ({"layer_types": ["Lstm"]}, (), ["stage '{name}': layer_types: 'Lstm' is neither a class of the model's"]),
])
def test_every_stage_refuses_unknown_names_before_any_work(model, name, selection, skip, words):
    stage = get_stage(name)({**SELECTING[name], **selection})
    for check in (lambda: stage.check_model(model, ctx(skip)), lambda: stage.apply(model, ctx(skip))):
        with pytest.raises(ConfigError) as err:
            check()
        for word in words:
            assert word.format(name=name) in str(err.value)


@pytest.mark.parametrize("name", sorted(SELECTING))
def test_every_stage_refuses_what_it_cannot_handle_and_skips_what_it_is_told(model, name, no_training):
    stage = get_stage(name)({**SELECTING[name], "skip_layers": ["head"]})
    if CANNOT[name]:
        with pytest.raises(ConversionError) as err:
            stage.apply(model, ctx())
        for layer in CANNOT[name]:
            assert f"skip_layers={list(CANNOT[name])!r} in the recipe" in str(err.value)
    result = stage.apply(model, ctx(skip=CANNOT[name]))
    reasons = {s["layer"]: s["reason"] for s in result.skipped}
    assert reasons == {**LEFT_ALONE[name], **{layer: GLOBAL_SKIP for layer in CANNOT[name]},
                       "head": f"in the skip_layers of stage '{name}'"}


def test_run_stages_checks_the_selections_before_any_work(model, monkeypatch):
    from exporter import pipeline

    class Converted(Exception):
        pass

    def convert(*args, **kwargs):
        raise Converted

    monkeypatch.setattr(pipeline, "convert", convert)
    late = get_stage("cluster")({"layers": ["hed"]})
    with pytest.raises(ConfigError, match="stage 'cluster': layers: no layer named 'hed'"):
        pipeline.run_stages(model, [get_stage("prune")({"sparsity": 0.5}), late], ctx(), None, None)
    # after a distill stage the model is another one: its stages are checked when they run
    with pytest.raises(Converted):
        pipeline.run_stages(model, [get_stage("distill")({"width": 0.5}), late], ctx(), None, None)


def test_a_lowbit_config_from_an_older_manifest_still_validates(model):
    """Before LayerSelection, lowbit wrote `layers: null` and its default classes into manifests."""
    old = {"bits": 4, "layers": None, "layer_types": ["Conv2D", "DepthwiseConv2D", "Dense"],
           "skip_first_and_last": False}
    stage = LowBitStage(old)
    assert stage.config.layers == ()
    stage.check_model(model, ctx())
