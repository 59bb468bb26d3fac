"""Tests for exporter.config_scan: the allow-lists every loaded model config must pass."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter import tf as tfmod
from exporter.config_scan import (ACTIVATIONS, CONSTRAINTS, DTYPES, INITIALIZERS, LAYERS, REFUSED, REGULARIZERS,
                                  TF_OPS, Findings, find_problems, scan_config)
from exporter.errors import ExporterError, ModelFileError, UnsafeModelError
from exporter.model_io import load_model
from tests.test_model_io import _rewrite_keras

_OP = "tf_keras.src.layers.core.tf_op_layer"
# Namespaces the reviewed op table may draw from (none of them holds file, network or py_func ops).
_PURE_NAMESPACES = {"", "__operators__", "math", "nn", "image", "linalg", "compat.v1", "compat.v1.math",
                    "compat.v1.nn", "compat.v1.image"}


def _tf_export():
    tfmod.keras()
    from tensorflow.python.util import tf_export

    return tf_export


# The reviewed tables ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(TF_OPS))
def test_op_table_entry_is_a_canonical_pure_tf_op(name):
    tf_export = _tf_export()
    fn = tf_export.get_symbol_from_name(name)   # what TFOpLambda.from_config calls
    assert callable(fn), f"{name} does not resolve to a TF callable"
    assert tf_export.get_canonical_name_for_symbol(fn, add_prefix_to_v1_names=True) == name
    assert name.rpartition(".")[0] in _PURE_NAMESPACES


@pytest.mark.parametrize("name", sorted(DTYPES))
def test_dtype_table_entry_is_a_numeric_tf_dtype(name):
    dtype = tfmod.tensorflow().as_dtype(name)
    assert dtype.is_numpy_compatible and not dtype.name.startswith(("string", "resource", "variant"))


def test_tables_cover_what_tf_keras_exports(keras):
    def exported(module, base):
        return {v.__name__ for v in vars(module).values() if isinstance(v, type) and issubclass(v, base)}

    layers = exported(keras.layers, keras.layers.Layer) - {"Layer", "Wrapper", "AbstractRNNCell"}
    assert layers - LAYERS <= set(REFUSED)
    assert exported(keras.initializers, keras.initializers.Initializer) - {"Initializer"} <= INITIALIZERS
    assert exported(keras.regularizers, keras.regularizers.Regularizer) - {"Regularizer"} <= REGULARIZERS
    assert exported(keras.constraints, keras.constraints.Constraint) - {"Constraint"} <= CONSTRAINTS
    functions = {n for n, v in vars(keras.activations).items() if callable(v) and not n.startswith("_")}
    assert functions - {"get", "serialize", "deserialize"} <= ACTIVATIONS
    assert not LAYERS & set(REFUSED)


# Real models pass ------------------------------------------------------------------------------

def _ops_model(keras):
    """A functional model calling a representative subset of the op table."""
    tf = tfmod.tensorflow()
    inp = keras.Input((4, 4, 2), name="img")
    x = tf.image.resize(inp, (8, 8), method="nearest")
    x = tf.nn.max_pool2d(x, 2, 2, padding="SAME")
    x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    x = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), (-1, 2, 36))
    x = tf.concat([x[:, 0], x[:, 1] * 2.0 - 1.0], axis=-1) / 3.0
    x = tf.clip_by_value(tf.nn.relu6(x) + tf.math.abs(-x) ** 2, 0.0, 5.0, name="clip_it")
    y = tf.cast(tf.math.argmax(tf.reshape(x, (tf.shape(x)[0], 8, 9)), axis=-1, output_type="int32"), "float32")
    z = tf.math.reduce_mean(tf.expand_dims(x, 1), axis=1) + tf.math.reduce_sum(y, axis=-1, keepdims=True)
    z = tf.where(z > 1.0, z, tf.zeros_like(z)) + tf.cast(tf.math.logical_and(z > 0, z < 4), "float32")
    z = tf.concat([tf.nn.softmax(z), tf.one_hot(tf.cast(y, "int32"), 3, dtype="float32")[:, :, 0]], -1)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(1.0 - z))


def _broad_model(keras):
    """Sequential + nested models, BatchNorm, Dropout, regularizers, constraints, initializers,
    activations as strings and as functions, a mixed-precision policy, RNN wrappers."""
    tf, L = tfmod.tensorflow(), keras.layers
    conv = keras.Sequential([
        keras.Input((8, 8, 3)), L.Rescaling(1 / 255), L.Normalization(mean=0.5, variance=0.25),
        L.Conv2D(4, 3, activation=tf.nn.relu6, kernel_regularizer=keras.regularizers.l2(1e-3),
                 bias_regularizer="l1", kernel_constraint=keras.constraints.MaxNorm(2),
                 bias_constraint="non_neg", kernel_initializer=keras.initializers.HeNormal(seed=1)),
        L.BatchNormalization(), L.Activation(keras.activations.swish), L.DepthwiseConv2D(3, padding="same"),
        L.SeparableConv2D(4, 3, activation="gelu"), L.MaxPooling2D(), L.Dropout(0.2), L.SpatialDropout2D(0.1),
        L.GlobalAveragePooling2D(), L.Dense(6, activation=keras.activations.elu,
                                            kernel_initializer=keras.initializers.RandomUniform(-1, 1),
                                            activity_regularizer=keras.regularizers.L1L2(1e-4, 1e-4))])
    seq_in = keras.Input((5, 6))
    seq = L.Bidirectional(L.LSTM(4, return_sequences=True))(seq_in)
    seq = L.TimeDistributed(L.Dense(3, dtype="mixed_float16"))(L.GRU(4, return_sequences=True)(seq))
    img = keras.Input((8, 8, 3))
    merged = L.Concatenate()([conv(img), L.Flatten()(L.Activation("linear", dtype="float32")(seq))])
    out = L.Dense(3, activation="softmax", kernel_constraint=keras.constraints.UnitNorm())(L.LeakyReLU()(merged))
    return keras.Model([img, seq_in], out)


@pytest.mark.parametrize("build, suffix", [(_ops_model, ".keras"), (_ops_model, ".h5"),
                                           (_broad_model, ".keras"), (_broad_model, ".h5")])
def test_real_models_pass_the_scan_and_load(keras, tmp_path, build, suffix):
    model = build(keras)
    path = tmp_path / f"model{suffix}"
    model.save(path)
    loaded = load_model(path).model
    inputs = [np.random.default_rng(0).random((2, *i.shape[1:]), dtype=np.float32) for i in model.inputs]
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0), atol=1e-3)


_KERAS3 = """
import sys, keras
from keras import layers as L
inp = keras.Input((16,))
x = L.Dense(8, activation="relu", dtype="mixed_float16")(inp)
out = L.Dense(3, activation="softmax")(keras.ops.relu(x[:, 1:] * 2.0 + 1.0))
keras.Model(inp, out).save(sys.argv[1] + "/ops.keras")
keras.Sequential([keras.Input((4,)), L.Lambda(lambda t: t * 2)]).save(sys.argv[1] + "/lambda.keras")
"""


@pytest.fixture(scope="module")
def keras3_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("keras3")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    subprocess.run([sys.executable, "-c", _KERAS3, str(d)], env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
                   check=True, capture_output=True, timeout=180)
    return d


@pytest.mark.reliability(34)
def test_keras3_files_scanned_first(keras3_dir, tmp_path):
    with pytest.raises(ModelFileError, match="cannot bridge the Keras 3 model"):   # clean, but outside the table (2)
        load_model(keras3_dir / "ops.keras")
    with pytest.raises(UnsafeModelError, match=r"Lambda layer .* at \$.config.layers\[1\]"):
        load_model(keras3_dir / "lambda.keras")

    def to_os(config):
        config["config"]["layers"][1]["module"] = "os"
    evil = _rewrite_keras(keras3_dir / "ops.keras", tmp_path / "os.keras", to_os)
    with pytest.raises(UnsafeModelError, match=r"module 'os' at \$.config.layers\[1\].module"):
        load_model(evil)


# Hostile configs ---------------------------------------------------------------------------------

def _op_layer(function, const, kwargs, cls="TFOpLambda"):
    return {"module": _OP, "class_name": cls, "registered_name": cls, "name": "evil",
            "config": {"name": "evil", "trainable": True, "dtype": "float32", "function": function},
            "inbound_nodes": [["_CONSTANT_VALUE", -1, const, kwargs]]}


@pytest.fixture(scope="module")
def base(keras, tmp_path_factory):
    """Input(4) -> tf.nn.relu -> +1 -> Dense(3) as .keras and .h5: layers[2] is the `+ 1`, [3] the Dense."""
    d = tmp_path_factory.mktemp("base")
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(3)(tfmod.tensorflow().nn.relu(inp) + 1.0))
    model.save(d / "base.keras")
    model.save(d / "base.h5")
    return d


def _hostile_cases(target):
    """(name, mutate, message) for configs that would touch `target` or run code."""
    t = str(target)

    def add(layer):
        return lambda config: config["config"]["layers"].append(layer)

    def set_at(index, **values):
        return lambda config: config["config"]["layers"][index].update(values)

    def dense(key, value):
        return lambda config: config["config"]["layers"][3]["config"].__setitem__(key, value)

    fn = {"class_name": "function", "registered_name": "function"}
    return [
        ("write_file", add(_op_layer("io.write_file", t, {"contents": "pwned"})),
         r"tf.io.write_file at \$.config.layers\[4\].config.function"),
        ("gfile_copy", add(_op_layer("io.gfile.copy", "/etc/hostname", {"dst": t})), "tf.io.gfile.copy"),
        ("get_file", add(_op_layer("keras.utils.get_file", "x", {"origin": "file:///etc/hostname",
                                                                 "cache_dir": str(target.parent)})),
         "tf.keras.utils.get_file"),
        ("saved_model", add(_op_layer("saved_model.save", None, {"export_dir": t})), "tf.saved_model.save"),
        ("gfile_class", add(_op_layer("compat.v1.gfile.GFile", t, {"mode": "w"})), "compat.v1.gfile.GFile"),
        ("nested_load", add(_op_layer("keras.models.load_model", t, {"safe_mode": False})),
         "tf.keras.models.load_model"),
        ("py_function", add(_op_layer("py_function", None, {})), "tf.py_function"),
        ("slicing_write", add(_op_layer("io.write_file", t, {}, cls="SlicingOpLambda")),
         "SlicingOpLambda calling tf.io.write_file"),
        ("const_path", add(_op_layer("math.add", t, {"y": ["dense", 0, 0]})),
         r"constant '.*pwned.txt' at \$.config.layers\[4\].inbound_nodes\[0\]\[2\]"),
        ("kwarg_path", set_at(2, inbound_nodes=[["tf.nn.relu", 0, 0, {"y": t, "name": None}]]),
         r"at \$.config.layers\[2\].inbound_nodes\[0\]\[3\].y"),
        ("kwarg_object", set_at(2, inbound_nodes=[["tf.nn.relu", 0, 0, {"y": {"class_name": "__bytes__"}}]]),
         r"\$.config.layers\[2\].inbound_nodes\[0\]\[3\].y"),
        ("module_os", set_at(3, module="os"), r"module 'os' at \$.config.layers\[3\].module"),
        ("module_shutil", set_at(3, module="shutil", class_name="rmtree"), "module 'shutil'"),
        ("module_serialization_lib", set_at(3, module="keras.src.saving.serialization_lib"),
         "module 'keras.src.saving.serialization_lib'"),
        ("class_in_keras_module", set_at(3, module="keras.utils", class_name="get_file"), "module 'keras.utils'"),
        ("registered_name", set_at(3, registered_name="Custom>Adam"), r"registered_name 'Custom>Adam'"),
        ("unsafe_deserialization", dense("activation", {**fn, "module": "tf_keras.src.saving.serialization_lib",
                                                        "config": "enable_unsafe_deserialization"}),
         "enable_unsafe_deserialization"),
        ("unsafe_deserialization_op", add(_op_layer("keras.config.enable_unsafe_deserialization", None, {})),
         "enable_unsafe_deserialization"),
        ("builtin_exec", dense("kernel_initializer", {**fn, "module": "builtins", "config": "exec"}),
         r"function 'builtins.exec' at \$.config.layers\[3\].config.kernel_initializer"),
        ("class_method", add({"class_name": "ClassMethod", "config": {"cls_symbol": "io.gfile.GFile",
                                                                      "method_name": "__init__"}}),
         "ClassMethod layer"),
        ("tf_op_layer", add({"class_name": "TensorFlowOpLayer", "config": {"node_def": {"op": "WriteFile"}}}),
         "TensorFlowOpLayer"),
        ("typespec", dense("bias_initializer", {"class_name": "__typespec__", "module": "os",
                                                "spec_name": "system", "config": []}), "__typespec__"),
        ("lookup_file", add({"class_name": "StringLookup", "module": "keras.layers",
                             "config": {"vocabulary": "/etc/passwd"}}), "can read a vocabulary file"),
    ]


_CASES = [c[0] for c in _hostile_cases(Path("/x/pwned.txt"))]


@pytest.mark.reliability(2, 34)
@pytest.mark.parametrize("case", _CASES)
def test_hostile_keras_refused_by_cli_nothing_written(base, tmp_path, capsys, case):
    from exporter.cli import main
    from tf_keras.src.saving import serialization_lib as sl

    target, out = tmp_path / "pwned.txt", tmp_path / "out"
    name, mutate, message = next(c for c in _hostile_cases(target) if c[0] == case)
    path = _rewrite_keras(base / "base.keras", tmp_path / f"{name}.keras", mutate)
    before = sorted(os.listdir(tmp_path))
    assert main(["export", str(path), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert "internal error" not in err and re.search(message, err), err
    assert not target.exists() and not out.exists() and sorted(os.listdir(tmp_path)) == before
    assert sl.in_safe_mode() is not False


@pytest.mark.reliability(34)
@pytest.mark.parametrize("function, kwargs", [("io.write_file", {"contents": "pwned"}),
                                              ("io.gfile.copy", None)])
def test_hostile_files_are_real(base, tmp_path, function, kwargs):
    # Control: tf_keras's own safe mode lets these write files at load time; only edgex's scan stops them.
    target = tmp_path / "pwned.txt"
    const, kwargs = (str(target), kwargs) if kwargs else (str(base / "base.h5"), {"dst": str(target)})
    path = _rewrite_keras(base / "base.keras", tmp_path / "evil.keras",
                 lambda c: c["config"]["layers"].append(_op_layer(function, const, kwargs)))
    with pytest.raises(UnsafeModelError):
        load_model(path)
    assert not target.exists()
    with pytest.raises(ModelFileError, match="could not load"):
        load_model(path, trust_model=True)   # safe_mode=True inside: tf_keras alone does not stop it
    assert target.exists()


@pytest.mark.reliability(34)
def test_hostile_h5_config_refused(base, tmp_path):
    import h5py

    path = tmp_path / "evil.h5"
    path.write_bytes((base / "base.h5").read_bytes())
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"].append({k: v for k, v in _op_layer(
            "io.write_file", str(tmp_path / "pwned.txt"), {"contents": "x"}).items() if k != "module"})
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(UnsafeModelError, match=r"tf.io.write_file at \$.config.layers\[4\].config.function"):
        load_model(path)
    assert not (tmp_path / "pwned.txt").exists()


@pytest.mark.parametrize("module, cls", [("my_project.layers", "Fancy"), ("__main__", "MyBlock"), (None, "MyBlock"),
                                         (None, "Custom>MyBlock")])
def test_custom_classes_stay_exit_2(base, tmp_path, module, cls):
    def mutate(config):
        config["config"]["layers"][3].update(module=module, class_name=cls, registered_name=None)
    path = _rewrite_keras(base / "base.keras", tmp_path / "custom.keras", mutate)
    with pytest.raises(ModelFileError, match=rf"custom classes .*{cls}.* at \$.config.layers\[3\].*trust_model=True"):
        load_model(path)


@pytest.mark.reliability(34)
def test_student_is_scanned_and_never_trusted(base, keras, tmp_path):
    from exporter.stages.base import get_stage

    target = tmp_path / "pwned.txt"
    student = _rewrite_keras(base / "base.keras", tmp_path / "student.keras", lambda c: c["config"]["layers"].append(
        _op_layer("io.write_file", str(target), {"contents": "x"})))
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(UnsafeModelError) as excinfo:
        get_stage("distill")({"student": str(student)})._load_student(teacher)
    msg = str(excinfo.value)
    assert excinfo.value.exit_code == 3 and "tf.io.write_file at $.config.layers[4]" in msg
    assert "applies only to the model being exported" in msg and "pass trust_model=True" not in msg
    assert "the distill stage's width" in msg and "--" not in msg and not target.exists()


# Unit checks and fuzzing ------------------------------------------------------------------------------

def test_scan_config_names_path_and_hint():
    config = {"config": {"layers": [{}, {"class_name": "TFOpLambda", "config": {"function": "io.write_file"}}]}}
    with pytest.raises(UnsafeModelError, match=r"x.keras: .*\$.config.layers\[1\].config.function.*I said so"):
        scan_config(config, origin="x.keras", hint="I said so")
    assert find_problems({"class_name": "Dense", "module": "keras.layers", "config": {"activation": "relu"}}) \
        == Findings()


@pytest.mark.parametrize("config, needle", [
    ({"class_name": "Dense", "registered_name": "Custom>Adam", "config": {}}, "registered_name 'Custom>Adam' at $"),
    ({"class_name": "TFOpLambda", "config": {"function": "nn.relu"}, "inbound_nodes": {"a": 1}},
     "unexpected dict at $.inbound_nodes"),
    ({"class_name": "TFOpLambda", "config": {"function": "nn.relu"}, "inbound_nodes": [[["x", "0", 0, {}]]]},
     "malformed tensor reference at $.inbound_nodes[0][0]"),
    ({"class_name": "TFOpLambda", "config": {"function": "cast"}, "inbound_nodes": [["x", 0, 0, {"dtype": "string"}]]},
     "constant 'string' at $.inbound_nodes[0][3].dtype"),
    ({"class_name": "TFOpLambda", "config": {"function": "pad"}, "inbound_nodes": [["x", 0, 0, {"padding": "REFLECT"}]]},
     "constant 'REFLECT' at $.inbound_nodes[0][3].padding"),
    ({"class_name": "__tensor__", "module": "os", "config": {}}, "record '__tensor__' at $.class_name"),
    ({"class_name": "__bytes__", "config": {"value": "x"}}, "record '__bytes__'"),
    ({"module": "subprocess"}, "module 'subprocess' at $.module"),
    ({"class_name": 3}, "class_name '3' at $.class_name"),
    ({"class_name": "Lambda", "config": {"function_type": "lambda"}}, "serialized Python lambda at $.config"),
])
def test_scan_units(config, needle):
    assert any(needle in f for f in find_problems(config).unsafe), find_problems(config)


def test_allowed_constants_pass():
    nodes = [["x", 0, 0, {"slice_spec": [{"start": None, "stop": 3, "step": None}, 1, None], "name": "my_op",
                          "shape": {"class_name": "TensorShape", "items": [None, 4]}, "dtype": "float16",
                          "perm": {"class_name": "__tuple__", "items": [0, 2, 1]}, "method": "bilinear",
                          "y": ["other", 0, 0], "keepdims": True, "axis": -1.0, "size": [["n", 0, 0], 4]}],
             ["_CONSTANT_VALUE", -1, [[1.5, 2], [3, 4]], {"y": ["x", 0, 0]}]]
    layer = {"class_name": "SlicingOpLambda", "config": {"function": "__operators__.getitem"}, "inbound_nodes": [nodes]}
    assert find_problems(layer) == Findings()


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
                     | st.sampled_from(["_CONSTANT_VALUE", "TFOpLambda", "function", "keras.layers", "Lambda"]),
                     lambda inner: st.lists(inner, max_size=5)
                     | st.dictionaries(st.sampled_from(["class_name", "module", "config", "function",
                                                        "inbound_nodes", "registered_name", "activation",
                                                        "layers", "x"]), inner, max_size=5), max_leaves=30)


@pytest.mark.reliability(42)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_JSON)
def test_scan_never_crashes(config):
    found = find_problems(config)
    assert all(isinstance(f, str) for f in found.unsafe + found.custom)
    try:
        scan_config(config, origin="fuzz")
    except ExporterError as e:
        assert e.exit_code in (2, 3)
