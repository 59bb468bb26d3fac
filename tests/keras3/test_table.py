"""The bridge's table and translation: every class builds in tf_keras with the same config, unknown or live
keys are refused naming layer, class and key, and bridged models compute what Keras 3 computes."""
from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.errors import ModelFileError
from exporter.keras3 import table
from exporter.keras3.proof import LIMIT, prove
from exporter.keras3.translate import translate
from exporter.model_io import load_model

# Keras 3 layers with non-default settings, one per class of the table (InputLayer: below).
_LAYERS = {
    "Conv1D": dict(filters=3, kernel_size=2, strides=2, padding="causal", dilation_rate=1, activation="elu",
                   kernel_regularizer="l2", bias_constraint="non_neg"),
    "Conv2D": dict(filters=3, kernel_size=(3, 1), strides=(1, 2), groups=1, activation="silu", use_bias=False,
                   kernel_initializer="he_normal"),
    "DepthwiseConv2D": dict(kernel_size=3, depth_multiplier=2, padding="same", activation="relu6"),
    "SeparableConv2D": dict(filters=4, kernel_size=3, depth_multiplier=2, pointwise_initializer="lecun_uniform"),
    "Dense": dict(units=5, activation="tanh", bias_initializer="ones", kernel_constraint="max_norm"),
    "BatchNormalization": dict(momentum=0.9, epsilon=0.01, center=False, gamma_regularizer="l1"),
    "LayerNormalization": dict(axis=-1, epsilon=1e-5, scale=False),
    "MaxPooling1D": dict(pool_size=3, strides=1, padding="same"),
    "MaxPooling2D": dict(pool_size=(2, 3), padding="valid"),
    "AveragePooling1D": dict(pool_size=2),
    "AveragePooling2D": dict(pool_size=3, strides=2, padding="same"),
    "GlobalAveragePooling1D": dict(keepdims=True),
    "GlobalAveragePooling2D": dict(keepdims=False),
    "GlobalMaxPooling1D": dict(),
    "GlobalMaxPooling2D": dict(keepdims=True),
    "Activation": dict(activation="gelu"),
    "ReLU": dict(max_value=6.0, negative_slope=0.1, threshold=0.5),
    "Softmax": dict(axis=1),
    "LeakyReLU": dict(negative_slope=0.2),
    "Add": dict(), "Multiply": dict(), "Concatenate": dict(axis=1),
    "Reshape": dict(target_shape=(2, -1)),
    "Flatten": dict(),
    "Permute": dict(dims=(2, 1)),
    "Dropout": dict(rate=0.3, noise_shape=(None, 1, 4), seed=3),
    "ZeroPadding2D": dict(padding=((1, 2), (0, 1))),
    "UpSampling2D": dict(size=(2, 3), interpolation="bilinear"),
    "Rescaling": dict(scale=1 / 127.5, offset=-1.0),
    "Normalization": dict(mean=[1.0, 2.0], variance=[4.0, 9.0], axis=-1, invert=False),
}


def _plain(value):
    """Lists for tuples and tf_keras's ListWrappers, floats rounded to float32: configs compared as JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListWrapper":
        return [_plain(v) for v in value]
    return float(np.float32(value)) if isinstance(value, float) else value


def _record(layer_config: dict, cls: str, module: str = "keras.layers") -> dict:
    """A Keras 3 functional model record around one layer record on a (None, 4) input."""
    tensor = {"class_name": "__keras_tensor__", "config": {"shape": [None, 4], "dtype": "float32",
                                                           "keras_history": ["in", 0, 0]}}
    return {"class_name": "Functional", "config": {"name": "m", "trainable": True, "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 4], "dtype": "float32",
                                                                           "sparse": False, "name": "in"},
         "registered_name": None, "name": "in", "inbound_nodes": []},
        {"module": module, "class_name": cls, "config": layer_config, "registered_name": None,
         "name": layer_config["name"], "inbound_nodes": [{"args": [tensor], "kwargs": {"mask": None}}]}],
        "input_layers": ["in", 0, 0], "output_layers": [layer_config["name"], 0, 0]}}


def _serialized(keras3, obj) -> dict:
    """What Keras 3 writes in config.json for `obj` (JSON: lists, not tuples)."""
    return json.loads(json.dumps(keras3.saving.serialize_keras_object(obj)))


def test_the_table_covers_the_classes_it_was_asked_for():
    wanted = set(_LAYERS) | {"InputLayer"}
    assert set(table.RULES) == wanted


@pytest.mark.parametrize("cls", sorted(_LAYERS))
def test_every_class_builds_in_tf_keras_with_the_same_config(cls, keras):
    import keras as keras3

    k3 = _serialized(keras3, getattr(keras3.layers, cls)(**_LAYERS[cls], name="layer"))
    out = translate(_record(k3["config"], cls), "m.keras")
    tf_record = out.config["layers"][1]
    tf_layer = keras.layers.deserialize({"class_name": tf_record["class_name"], "config": tf_record["config"]})
    tf_config, rule = tf_layer.get_config(), table.RULES[cls]
    for key, value in k3["config"].items():
        if key in rule.inert or key == "dtype":
            continue
        tf_key = rule.rename.get(key, key)
        if key.endswith(("_initializer", "_regularizer", "_constraint")) and value is not None:
            assert tf_config[tf_key]["class_name"] == tf_record["config"][tf_key]["class_name"], key
            assert _plain(tf_config[tf_key]["config"]) == _plain(tf_record["config"][tf_key]["config"]), key
        elif key != "activation":
            assert _plain(tf_config[tf_key]) == _plain(value), key
    assert tf_config["dtype"] == "float32"
    if "activation" in k3["config"]:
        assert tf_config["activation"] == table.ACTIVATIONS[k3["config"]["activation"]]


def test_nodes_input_layer_and_initializers_take_tf_keras_form():
    import keras as keras3

    conv = _serialized(keras3, keras3.layers.Dense(2, name="d"))["config"]
    out = translate(_record(conv, "Dense"), "m.keras").config
    assert out["layers"][0]["config"] == {"batch_input_shape": [None, 4], "dtype": "float32", "name": "in"}
    assert out["layers"][1]["inbound_nodes"] == [[["in", 0, 0, {}]]]            # mask=None dropped
    assert out["layers"][1]["config"]["kernel_initializer"] == {
        "module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": None}, "registered_name": None}
    assert "quantization_config" not in out["layers"][1]["config"]
    assert (out["input_layers"], out["output_layers"]) == ([["in", 0, 0]], [["d", 0, 0]])


@pytest.mark.parametrize("change, message", [
    ({"foo": 1}, r"layer 'bn' \(BatchNormalization\): config key 'foo' \(= 1\) is not in the table"),
    ({"synchronized": True}, r"layer 'bn' \(BatchNormalization\): config key 'synchronized' is True; only False"),
    ({"renorm": 0}, r"config key 'renorm' is 0; only False can be bridged"),
    ({"dtype": "mixed_float16"}, r"layer 'bn' \(BatchNormalization\): dtype 'mixed_float16' \(only float32"),
    ({"beta_initializer": {"class_name": "STFT", "config": {}}}, r"beta_initializer 'STFT' \(not an initializer"),
])
def test_unknown_keys_and_live_inert_keys_are_refused_naming_layer_class_and_key(change, message):
    import keras as keras3

    config = {**keras3.layers.BatchNormalization(name="bn").get_config(), **change}
    with pytest.raises(ModelFileError, match=message) as caught:
        translate(_record(config, "BatchNormalization"), "m.keras")
    assert caught.value.exit_code == 2 and "cannot bridge the Keras 3 model m.keras" in str(caught.value)


def test_a_layer_outside_the_table_is_refused_with_what_to_do():
    import keras as keras3

    noise = keras3.layers.GaussianNoise(0.1, name="noise").get_config()
    with pytest.raises(ModelFileError) as caught:
        translate(_record(noise, "GaussianNoise"), "m.keras")
    text = str(caught.value)
    assert "layer 'noise' (GaussianNoise) is not in edgex's Keras 3 table" in text
    assert "import tf_keras as keras" in text and "model.export('model.tflite', format='litert')" in text
    with pytest.raises(ModelFileError, match="only Functional and Sequential models are bridged"):
        translate({"class_name": "MyModel", "config": {"layers": []}}, "m.keras")


def test_scalar_operations_become_rescaling_and_others_are_refused():
    import keras as keras3

    inp = keras3.Input((4,), name="in")
    model = keras3.Model(inp, ((3.0 - inp) / 6.0 + 1.0) * 2.0)
    out = translate(_serialized(keras3, model), "m.keras").config["layers"]
    assert [(r["class_name"], r["config"]["scale"], r["config"]["offset"]) for r in out[1:]] == [
        ("Rescaling", -1.0, 3.0), ("Rescaling", 1 / 6, 0.0), ("Rescaling", 1.0, 1.0), ("Rescaling", 2.0, 0.0)]
    with pytest.raises(ModelFileError, match=r"operation 'true_divide.*' \(TrueDivide\) is not in edgex's Keras 3 "
                                             r"table \(only \+, -, \* and / of a tensor and a number are\)"):
        translate(_serialized(keras3, keras3.Model(inp, 6.0 / inp)), "m.keras")


def _image_model(keras3):
    """Every 2D class of the table in one Keras 3 functional model, with non-trivial statistics."""
    L = keras3.layers
    keras3.utils.set_random_seed(3)
    inp = keras3.Input((12, 12, 3), name="in")
    x = L.Normalization(name="norm")
    x.adapt(np.random.default_rng(0).normal(2.0, 3.0, (64, 12, 12, 3)).astype("float32"))
    x = x(inp)
    x = L.ZeroPadding2D(((1, 0), (0, 1)), name="pad")(x)
    x = L.SeparableConv2D(6, 3, depth_multiplier=2, name="sep")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.LeakyReLU(0.2, name="leaky")(x)
    y = L.Activation("hard_swish", name="hswish")(x)
    z = L.Activation("hard_sigmoid", name="hsig")(x)
    x = L.Multiply(name="mul")([y, z])
    x = L.AveragePooling2D(2, name="avg")(L.UpSampling2D(2, name="up")(x))
    x = L.LayerNormalization(name="ln")(L.Conv2D(4, 1, activation="gelu", name="pw")(x))
    g = L.Concatenate(name="cat")([L.GlobalAveragePooling2D(name="gap")(x), L.GlobalMaxPooling2D(name="gmp")(x)])
    out = L.Softmax(name="soft")(L.Dense(5, activation="softplus", name="dense")(g))
    model = keras3.Model(inp, out, name="image_k3")
    for layer in model.layers:                      # BatchNormalization with moving statistics away from 0 and 1
        if isinstance(layer, L.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * 1.5, beta + 0.2, mean + 0.3, var * 2.0])
    return model


def _sequence_model(keras3):
    """The 1D classes: Conv1D, pooling, Permute, Reshape, Flatten, ReLU, Dropout, a scalar op, Sequential."""
    L = keras3.layers
    keras3.utils.set_random_seed(4)
    return keras3.Sequential([
        L.Conv1D(6, 3, padding="causal", activation="selu", name="conv"), L.MaxPooling1D(2, name="maxp"),
        L.AveragePooling1D(2, padding="same", name="avgp"), L.Permute((2, 1), name="perm"),
        L.Reshape((-1,), name="reshape"), L.ReLU(max_value=1.5, negative_slope=0.05, name="relu"),
        L.Dropout(0.5, name="drop"), L.Reshape((4, -1), name="back"), L.GlobalAveragePooling1D(name="gap"),
        L.Flatten(name="flat"), L.Dense(3, name="out")], name="sequence_k3")


@pytest.mark.parametrize("build, low, high", [(_image_model, -5.0, 9.0), (_sequence_model, -2.0, 2.0)])
def test_bridged_models_compute_what_keras3_computes(build, low, high):
    import keras as keras3

    model = build(keras3)
    if not model.built:
        model.build((None, 16, 2))
    loaded = load_model(model)
    x = np.random.default_rng(1).uniform(low, high, (32, *model.input_shape[1:])).astype("float32")
    figure = prove(loaded.bridge, loaded.model, x, "test", "m")
    assert figure.name == "bridge_max_abs_error" and figure.value <= LIMIT
    np.testing.assert_allclose(np.asarray(loaded.model(x)), np.asarray(model(x)), atol=1e-5)
    assert "Sequential" not in type(loaded.model).__name__              # built as a functional model
    names = {layer.name for layer in loaded.model.layers}
    assert {layer.name for layer in model.layers} <= names and set(loaded.bridge.translation.added) <= names


def test_hard_sigmoid_is_expanded_because_tf_keras_has_another_function(keras):
    import keras as keras3

    x = np.linspace(-4, 4, 9, dtype="float32")             # at 1.0: tf_keras 0.7, Keras 3 relu6(4) / 6 = 0.667
    assert abs(float(keras.activations.hard_sigmoid(keras.backend.constant(x))[5])
               - float(keras3.activations.hard_sigmoid(x)[5])) > 0.02
    inp = keras3.Input((9,), name="in")
    model = keras3.Model(inp, keras3.layers.Activation("hard_sigmoid", name="hs")(inp))
    loaded = load_model(model)
    assert [type(layer).__name__ for layer in loaded.model.layers] == ["InputLayer", "Rescaling", "ReLU", "Rescaling"]
    np.testing.assert_allclose(np.asarray(loaded.model(x[None])), np.asarray(model(x[None])), atol=1e-7)


def test_a_wrong_table_entry_is_caught_by_the_proof(monkeypatch):
    import keras as keras3

    from exporter.errors import ConversionError

    model = _image_model(keras3)
    rule = table.RULES["LeakyReLU"]           # negative_slope "inert" at the model's value: tf_keras's default 0.3
    monkeypatch.setitem(table.RULES, "LeakyReLU", dataclasses.replace(rule, rename={}, inert={"negative_slope": (0.2,)}))
    loaded = load_model(model)
    x = np.random.default_rng(1).uniform(-5, 9, (8, 12, 12, 3)).astype("float32")
    with pytest.raises(ConversionError, match=r"the first layer whose outputs differ is 'leaky' \(LeakyReLU\)"):
        prove(loaded.bridge, loaded.model, x, "test", "m")


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                   max_size=4), max_leaves=12)


def _paths(node, at=()):
    """Every path (tuple of keys and indices) inside a JSON value."""
    yield at
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield from _paths(value, (*at, key))


@pytest.fixture(scope="module")
def digits_record():
    from tests.keras3.models import digits_cnn

    import keras as keras3

    inp = keras3.Input((8, 8, 1), name="x")
    ops = keras3.Model(inp, (keras3.layers.Activation("hard_silu", name="hs")(inp) + 3.0) * 2.0)
    return [_serialized(keras3, digits_cnn()), _serialized(keras3, ops)]


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_mutation_of_a_config_is_translated_or_refused_with_exit_2(digits_record, data):
    """Whatever a config holds where (after the safety scan), translation never crashes: exit 2 or a config."""
    record = copy.deepcopy(data.draw(st.sampled_from(digits_record)))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(list(_paths(record))[1:]))
        parent = record
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = data.draw(_JSON)
    try:
        out = translate(record, "m.keras")
    except ModelFileError as e:
        assert e.exit_code == 2 and "cannot bridge the Keras 3 model m.keras" in str(e)
    else:
        assert isinstance(out.config["layers"], list) and json.dumps(out.config)


@pytest.mark.parametrize("name, kwargs", [
    ("MobileNet", dict(alpha=0.25, input_shape=(96, 96, 3))),
    ("MobileNetV3Large", dict(input_shape=(96, 96, 3))),
    ("ResNet50", dict(input_shape=(64, 64, 3))),
    ("EfficientNetB0", dict(input_shape=(64, 64, 3))),
])
def test_keras_applications_translate_through_the_table(name, kwargs):
    """The families the table was written for (V2 and V3Small are exported in test_export.py)."""
    import keras as keras3

    model = getattr(keras3.applications, name)(weights=None, classes=10, **kwargs)
    out = translate(_serialized(keras3, model), f"{name}.keras")
    assert set(out.classes) == {op.name for op in model.operations}
    assert {layer["name"] for layer in out.config["layers"]} >= set(out.classes)
