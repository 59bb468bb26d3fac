"""Every use of TF-MOT and tf_keras internals by the stages, in one place, each with why it is needed.

edgex pins `tensorflow-model-optimization==0.8.1` and `tf-keras==2.21.0`. The stages need a few
answers those libraries only give through private names (a leading underscore, or a module under
`tensorflow_model_optimization.python.core`, which is not the public `tfmot` API). Nothing else in
`exporter/stages` touches them: when an upgrade removes or changes one, `tests/stages/test_tfmot_shim.py`
fails naming the symbol, and this file is the only one to fix.

| function                        | private symbol                                                          |
|---------------------------------|-------------------------------------------------------------------------|
| `registry_supports`             | `PruneRegistry.supports`, `ClusteringRegistry.supports` (in modules     |
|                                 | under `tensorflow_model_optimization.python.core`)                      |
| `prunes_nothing`                | `PruneRegistry._is_rnn_layer`, `PruneRegistry._weight_names`            |
| `clusters_nothing`              | `ClusteringRegistry._LAYERS_WEIGHTS_MAP`                                |
| `unsupported_in_quantize_error` | the text of `quantize_apply`'s "Layer ... is not supported" error       |
| `is_graph_network`              | tf_keras `Model._is_graph_network`                                      |
| `single_inbound_layer`          | tf_keras `Layer._inbound_nodes`                                         |
| `model_variables`,              | `QuantizeWrapper._weight_vars` (the kernels it fake-quantizes); which   |
| `layer_variables`               | layers are TF-MOT's (their class's module: no common base class)        |

Example:
    >>> keras = tfmod.keras()
    >>> prunes_nothing(keras.layers.DepthwiseConv2D(3))      # TF-MOT wraps it but prunes no weight
    True
    >>> registry_supports(keras.layers.Dense(4), "cluster")
    True
    >>> plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="fc")])
    >>> wrapped = tfmod.tfmot().sparsity.keras.prune_low_magnitude(plain)
    >>> len(wrapped.weights), [v.name for v in model_variables(wrapped)]     # mask, threshold, step left out
    (5, ['fc/kernel:0', 'fc/bias:0'])
"""
from __future__ import annotations

import importlib
import re

from exporter import tf as tfmod

PINNED_TFMOT = "0.8.1"
PINNED_TF_KERAS = "2.21.0"

_REGISTRIES = {"prune": ("sparsity.keras.prune_registry", "PruneRegistry"),
               "cluster": ("clustering.keras.clustering_registry", "ClusteringRegistry")}
# quantize_apply's message in tensorflow_model_optimization/python/core/quantization/keras/quantize.py
_QUANTIZE_UNSUPPORTED = re.compile(r"Layer ([^\s:]+):<class '(?:[^']*\.)?(\w+)'> is not supported")


def _registry(technique: str):
    """TF-MOT's built-in layer registry of `technique` ("prune" or "cluster"): not in the public API."""
    tfmod.tfmot()
    module, cls = _REGISTRIES[technique]
    return getattr(importlib.import_module(f"tensorflow_model_optimization.python.core.{module}"), cls)


def registry_supports(layer, technique: str) -> bool:
    """Whether TF-MOT's built-in pruning or clustering registry accepts the layer's class.

    Needed because `prune_low_magnitude` and `cluster_weights` only answer by raising on
    the first unsupported layer; edgex lists every one at once, before any training.

    Args:
        layer: a tf_keras layer.
        technique: "prune" (`PruneRegistry.supports`) or "cluster" (`ClusteringRegistry.supports`).

    Returns:
        What the registry's `supports(layer)` says.
    """
    return bool(_registry(technique).supports(layer))


def prunes_nothing(layer) -> bool:
    """True for a built-in layer TF-MOT wraps for pruning without pruning any weight.

    DepthwiseConv2D, BatchNormalization, ReLU, ... map to no weight names in the
    registry: wrapping them costs time and prunes nothing, so the prune stage lists them
    as skipped. RNN layers are looked up per cell by TF-MOT (`_weight_names` would
    fail on them): they count as pruned. There is no public accessor for either.

    Args:
        layer: a tf_keras layer (one with `get_prunable_weights` counts as pruned).

    Returns:
        True when `PruneRegistry._weight_names(layer)` is empty for a supported, non-RNN layer.
    """
    registry = _registry("prune")
    if hasattr(layer, "get_prunable_weights") or not registry.supports(layer):
        return False
    return not registry._is_rnn_layer(layer) and not registry._weight_names(layer)  # noqa: SLF001


def clusters_nothing(layer) -> bool:
    """True for a layer TF-MOT accepts for clustering but whose weights it leaves alone.

    DepthwiseConv2D and BatchNormalization map to an empty weight list in
    `ClusteringRegistry._LAYERS_WEIGHTS_MAP`: the cluster stage lists them as skipped
    instead of reporting them clustered. There is no public accessor.

    Args:
        layer: a tf_keras layer.

    Returns:
        True when the registry maps the layer's exact class to no weights.
    """
    return _registry("cluster")._LAYERS_WEIGHTS_MAP.get(type(layer)) == []  # noqa: SLF001


def unsupported_in_quantize_error(exc: Exception) -> tuple[str, str] | None:
    """The layer named by TF-MOT's "Layer NAME:<class ...> is not supported" error, if it is one.

    `quantize_apply` can refuse a layer the qat stage's checks let through (e.g. a
    BatchNormalization it expected TF-MOT to fold); it says which only in this text.

    Args:
        exc: the RuntimeError or ValueError `quantize_apply` raised.

    Returns:
        (layer name, class name), or None when the message is another one.
    """
    found = _QUANTIZE_UNSUPPORTED.search(str(exc))
    return (found.group(1), found.group(2)) if found else None


def is_graph_network(model) -> bool:
    """True for a functional tf_keras model (built from a graph of layers), False for a subclassed one.

    TF-MOT can clone and wrap only Sequential and functional models; tf_keras tells
    them apart from subclassed models only by the private `_is_graph_network`.

    Args:
        model: a tf_keras model.

    Returns:
        `model._is_graph_network` (False when absent).
    """
    return bool(getattr(model, "_is_graph_network", False))


def single_inbound_layer(layer):
    """The one layer feeding `layer`, or None (no caller, several calls or several inputs).

    QAT folds a BatchNormalization into the Conv2D/DepthwiseConv2D/Dense right before
    it; tf_keras keeps a layer's callers only in the private `_inbound_nodes`.

    Args:
        layer: a layer of a functional or Sequential tf_keras model (called once).

    Returns:
        The inbound layer, or None.
    """
    nodes = getattr(layer, "_inbound_nodes", [])
    inbound = nodes[0].inbound_layers if len(nodes) == 1 else []
    if isinstance(inbound, list):
        return inbound[0] if len(inbound) == 1 else None
    return inbound


_TFMOT_MODULE = "tensorflow_model_optimization."


def _is_tfmot_layer(layer) -> bool:
    """True for a layer class defined by TF-MOT (a wrapper, or QAT's QuantizeLayer)."""
    return type(layer).__module__.startswith(_TFMOT_MODULE)


def layer_variables(layer) -> list:
    """The weights of one layer, looking through a TF-MOT wrapper (see `model_variables`).

    A QuantizeWrapper takes the weights it fake-quantizes (the kernel) away from the layer it
    wraps, tracking them itself; they are found only in its private `_weight_vars`
    (weight, quantizer, quantizer variables) triples.

    Args:
        layer: a tf_keras layer, a TF-MOT wrapper or QAT's QuantizeLayer.

    Returns:
        For a TF-MOT wrapper, the weights of the layer it wraps (`Wrapper.layer`, plus the
        quantized ones of `_weight_vars`), in `layer.weights` order; [] for another TF-MOT layer
        (QuantizeLayer holds only its input range); else `layer.weights`.
    """
    if not _is_tfmot_layer(layer):
        return list(layer.weights)
    inner = getattr(layer, "layer", None)
    if inner is None:
        return []
    own = {id(v) for v in layer_variables(inner)}
    own.update(id(entry[0]) for entry in getattr(layer, "_weight_vars", ()))  # noqa: SLF001
    return [v for v in layer.weights if id(v) in own]


def _tfmot_layers(model):
    """The TF-MOT layers of `model`, looking into nested models (not into wrapped layers)."""
    for layer in model.layers:
        if _is_tfmot_layer(layer):
            yield layer
        elif getattr(layer, "layers", None) is not None and not hasattr(layer, "layer"):
            yield from _tfmot_layers(layer)


def model_variables(model) -> list:
    """The model's own weights: what a stripped model holds and conversion keeps, without TF-MOT's.

    TF-MOT's layers add variables beside the layer they wrap: pruning masks,
    thresholds and step counters (PruneLowMagnitude), centroids and indices
    (ClusterWeights, and the cluster-preserving QAT schemes), quantizer min/max
    ranges and step counters (QuantizeWrapperV2, QuantizeLayer). The QAT model keeps
    its wrappers until conversion, and its `weights` hold about three times the
    parameters the .tflite does after clustering. Here those variables are left out: a
    TF-MOT wrapper counts only the weights of the layer it wraps (the Keras
    `Wrapper.layer`; its kernel is what the quantize wrapper fake-quantizes and the
    converter keeps), QuantizeLayer counts none. Which layers are TF-MOT's is read from
    their class's module (TF-MOT exports no common base class).

    Args:
        model: a tf_keras model, wrapped or not.

    Returns:
        `model.weights` (trainable and non-trainable, in that order) without the TF-MOT
        variables; a model without TF-MOT layers gives all of `model.weights`.
    """
    drop = set()
    for layer in _tfmot_layers(model):
        own = {id(v) for v in layer_variables(layer)}
        drop.update(id(v) for v in layer.weights if id(v) not in own)
    return [v for v in model.weights if id(v) not in drop]
