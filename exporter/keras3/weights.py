"""The weights of a Keras 3 model copied, layer by layer and by name, into its tf_keras translation.

Each Keras 3 layer with weights has the tf_keras layer of the same name; weights are matched by
name (the table's `weights` renames, e.g. DepthwiseConv2D's `kernel` → `depthwise_kernel`;
Normalization's `mean`, `variance` and `count` are listed explicitly, and its mean and variance are
taken from the tensors its Keras 3 call reads, the table's `reads`), every shape is checked and
nothing may be left over on either side. After a Normalization layer gets its statistics, tf_keras
must rebuild the constants its call reads (`finalize_state`).

Example:
    >>> short_name("block_1_depthwise/depthwise_kernel:0"), short_name("kernel")
    ('depthwise_kernel', 'kernel')
"""
from __future__ import annotations

import numpy as np

from exporter.errors import ConversionError

__all__ = ["copy_weights", "short_name"]


def short_name(name: str) -> str:
    """A weight's own name, without its layer's scope and tf_keras's `:0`."""
    return name.split("/")[-1].split(":")[0]


def copy_weights(source, target, rules: dict, origin: str) -> int:
    """Copy every weight of the Keras 3 `source` into the tf_keras `target`.

    Args:
        source: the Keras 3 model.
        target: its tf_keras translation (same layer names).
        rules: Keras 3 layer name → its table Rule (exporter/keras3/translate.py `Translation.rules`).
        origin: the model file, for messages.

    Returns:
        The number of weight tensors copied.

    Raises:
        ConversionError: (exit 4) a layer missing on the tf_keras side, weights that do not pair up by
            name, or a shape that differs.
    """
    copied, seen = 0, set()
    for layer in source.layers:
        if not layer.weights:
            continue
        head = f"cannot copy the weights of {origin} into tf_keras: layer {layer.name!r} ({type(layer).__name__})"
        try:
            twin = target.get_layer(layer.name)
        except ValueError:
            raise ConversionError(f"{head} has no tf_keras counterpart") from None
        rule = rules.get(layer.name)
        rename, reads = getattr(rule, "weights", {}), getattr(rule, "reads", {})
        values = {rename.get(short_name(w.name), short_name(w.name)): getattr(layer, reads.get(short_name(w.name), ""), w)
                  for w in layer.weights}
        names = [short_name(w.name) for w in twin.weights]
        if sorted(names) != sorted(values):
            raise ConversionError(f"{head}: Keras 3 weights {sorted(values)} do not pair up with tf_keras's {names}")
        arrays = []
        for name, weight in zip(names, twin.weights):
            value = values[name]
            value = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
            if value.size == int(np.prod(weight.shape)) and value.ndim != len(weight.shape):
                value = value.reshape(tuple(weight.shape))        # a broadcast mean/variance read by the call
            if tuple(value.shape) != tuple(weight.shape):
                raise ConversionError(f"{head}: weight {name!r} is {tuple(value.shape)} in Keras 3 but "
                                      f"{tuple(weight.shape)} in tf_keras")
            arrays.append(value)
        twin.set_weights(arrays)
        if hasattr(twin, "finalize_state"):       # Normalization: mean/variance constants from the new weights
            twin.finalize_state()
        copied += len(arrays)
        seen.add(twin.name)
    left = [layer.name for layer in target.layers if layer.weights and layer.name not in seen]
    if left:
        raise ConversionError(f"cannot copy the weights of {origin} into tf_keras: tf_keras layers {left[:5]} "
                              "have weights with no Keras 3 counterpart")
    return copied
