"""The TF-MOT and tf_keras internals the stages use (exporter/stages/tfmot_shim.py), pinned by behaviour.

When an upgrade of tensorflow-model-optimization (pinned 0.8.1) or tf-keras (pinned 2.21.0)
removes or changes one of them, a test here fails with a message naming the private symbol,
the pinned and the installed versions: fix tfmot_shim.py, and only it.
"""
from __future__ import annotations

import importlib
import importlib.metadata

import numpy as np
import pytest

from exporter import tf as tfmod
from exporter.stages import tfmot_shim

TFMOT = ("tensorflow-model-optimization", tfmot_shim.PINNED_TFMOT)
TF_KERAS = ("tf-keras", tfmot_shim.PINNED_TF_KERAS)
PRUNE_REGISTRY = "tensorflow_model_optimization.python.core.sparsity.keras.prune_registry.PruneRegistry"
CLUSTERING_REGISTRY = ("tensorflow_model_optimization.python.core.clustering.keras.clustering_registry."
                       "ClusteringRegistry")


def expect(symbol: str, probe, expected, dist=TFMOT) -> None:
    """Fail naming `symbol` and the versions unless `probe()` returns `expected`."""
    name, pinned = dist
    installed = importlib.metadata.version(name)
    try:
        got = probe()
    except Exception as exc:  # noqa: BLE001 - any failure means the private API moved
        got = f"{type(exc).__name__}: {exc}"
    assert got == expected, (
        f"{name} private `{symbol}` is gone or changed: expected {expected!r}, got {got!r}. edgex pins "
        f"{name}=={pinned} (installed {installed}); update exporter/stages/tfmot_shim.py")


def resolve(path: str):
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


@pytest.fixture
def layers(keras, scale_class):
    """Built layers of every kind the shim is asked about, in one functional model (each called once)."""
    inputs = keras.layers.Input((8, 8, 1))
    conv = keras.layers.Conv2D(4, 3, name="conv")
    bn = keras.layers.BatchNormalization(name="bn")
    dw = keras.layers.DepthwiseConv2D(3, name="dw")
    scale = scale_class(name="scale")
    x = scale(dw(bn(conv(inputs))))
    lstm = keras.layers.LSTM(4, name="lstm")
    y = lstm(keras.layers.Reshape((16, 4))(x))
    dense = keras.layers.Dense(3, name="dense")
    model = keras.Model(inputs, dense(y))
    return {"model": model, "conv": conv, "bn": bn, "dw": dw, "scale": scale, "lstm": lstm, "dense": dense,
            "Scale": scale_class}


def test_prune_registry(layers, keras):
    expect(f"{PRUNE_REGISTRY}.supports", lambda: [resolve(PRUNE_REGISTRY).supports(layers[n])
                                                  for n in ("dense", "scale")], [True, False])
    expect(f"{PRUNE_REGISTRY}._is_rnn_layer", lambda: [resolve(PRUNE_REGISTRY)._is_rnn_layer(layers[n])
                                                       for n in ("lstm", "dense")], [True, False])
    expect(f"{PRUNE_REGISTRY}._weight_names", lambda: [resolve(PRUNE_REGISTRY)._weight_names(layers[n])
                                                       for n in ("dense", "dw", "bn")], [["kernel"], [], []])
    expect(f"{PRUNE_REGISTRY} via tfmot_shim.prunes_nothing",
           lambda: {n: tfmot_shim.prunes_nothing(layers[n]) for n in ("dense", "dw", "bn", "lstm", "scale")},
           {"dense": False, "dw": True, "bn": True, "lstm": False, "scale": False})
    expect(f"{PRUNE_REGISTRY} via tfmot_shim.registry_supports",
           lambda: [tfmot_shim.registry_supports(layers[n], "prune") for n in ("conv", "scale")], [True, False])


def test_clustering_registry(layers):
    expect(f"{CLUSTERING_REGISTRY}.supports", lambda: [resolve(CLUSTERING_REGISTRY).supports(layers[n])
                                                       for n in ("dense", "scale")], [True, False])
    weights_map = f"{CLUSTERING_REGISTRY}._LAYERS_WEIGHTS_MAP"
    expect(weights_map, lambda: [resolve(CLUSTERING_REGISTRY)._LAYERS_WEIGHTS_MAP.get(type(layers[n]))
                                 for n in ("dense", "dw", "bn", "scale")], [["kernel"], [], [], None])
    expect(f"{weights_map} via tfmot_shim.clusters_nothing",
           lambda: {n: tfmot_shim.clusters_nothing(layers[n]) for n in ("dense", "conv", "dw", "bn", "scale")},
           {"dense": False, "conv": False, "dw": True, "bn": True, "scale": False})
    expect(f"{CLUSTERING_REGISTRY} via tfmot_shim.registry_supports",
           lambda: [tfmot_shim.registry_supports(layers[n], "cluster") for n in ("conv", "scale")], [True, False])


def test_quantize_apply_names_the_unsupported_layer(layers, keras):
    """The text of quantize_apply's error is an interface too: the qat stage reads the layer from it."""
    mot = tfmod.tfmot()
    model = layers["model"]

    def annotate(layer):
        if isinstance(layer, keras.layers.InputLayer):
            return layer.__class__.from_config(layer.get_config())
        return mot.quantization.keras.quantize_annotate_layer(layer) if layer.name == "scale" else layer

    def probe():
        annotated = keras.models.clone_model(model, clone_function=annotate)
        with keras.utils.custom_object_scope({"Scale": layers["Scale"]}), mot.quantization.keras.quantize_scope():
            mot.quantization.keras.quantize_apply(annotated)
        return "quantize_apply accepted an unsupported layer"

    def parsed():
        try:
            probe()
        except (RuntimeError, ValueError) as exc:
            return tfmot_shim.unsupported_in_quantize_error(exc)
        return None

    expect("quantize_apply's error 'Layer NAME:<class ...> is not supported' (quantize.py)", parsed,
           ("scale", "Scale"))
    assert tfmot_shim.unsupported_in_quantize_error(RuntimeError("something else")) is None
    assert tfmot_shim.unsupported_in_quantize_error(RuntimeError(
        "Layer my_scale:<class 'pkg.layers.Scale'> is not supported. You can ...")) == ("my_scale", "Scale")


def test_tf_keras_internals(layers, keras):
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    net = Net()
    net(np.zeros((1, 4), np.float32))
    expect("tf_keras Model._is_graph_network", lambda: [tfmot_shim.is_graph_network(m)
                                                        for m in (layers["model"], net)], [True, False], TF_KERAS)
    expect("tf_keras Layer._inbound_nodes", lambda: [getattr(tfmot_shim.single_inbound_layer(layers[n]), "name", None)
                                                     for n in ("bn", "dw")], ["conv", "bn"], TF_KERAS)


def test_model_variables_leave_tfmot_variables_out(keras):
    """QAT and pruning wrappers count the weights of the layers they wrap, nothing of their own."""
    mot = tfmod.tfmot()
    keras.utils.set_random_seed(0)
    plain = keras.Sequential([keras.layers.Input((4, 4, 1)), keras.layers.Conv2D(2, 3, name="conv"),
                              keras.layers.Flatten(name="flat"), keras.layers.Dense(3, name="fc")])
    names = ["conv/kernel:0", "conv/bias:0", "fc/kernel:0", "fc/bias:0"]
    assert [v.name for v in tfmot_shim.model_variables(plain)] == names
    with mot.quantization.keras.quantize_scope():
        qat = mot.quantization.keras.quantize_model(plain)
    wrapper = qat.get_layer("quant_fc")
    expect("QuantizeWrapper._weight_vars (the kernel the wrapper takes from the layer it wraps)",
           lambda: ([v.name for v in wrapper.layer.weights], [w.name for w, *_ in wrapper._weight_vars]),
           (["fc/bias:0"], ["fc/kernel:0"]))
    expect("TF-MOT layers recognised by their module, via tfmot_shim.model_variables",
           lambda: sorted(v.name for v in tfmot_shim.model_variables(qat)), sorted(names))
    assert len(qat.weights) > len(names)                       # ranges and step counters left out
    assert [v.name for v in tfmot_shim.layer_variables(qat.layers[0])] == []     # QuantizeLayer
    pruned = mot.sparsity.keras.prune_low_magnitude(plain)
    assert [v.name for v in tfmot_shim.model_variables(pruned)] == names
