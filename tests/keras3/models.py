"""Keras 3 models for the bridge's tests (and the README's `model_k3.keras`), built with `import keras`.

`import exporter` sets TF_USE_LEGACY_KERAS=1, which makes `tf.keras` tf_keras; the `keras` package
itself stays Keras 3, so both live in one process.
"""
from __future__ import annotations

import numpy as np


def digits_cnn(*, bn_epsilon: float = 0.05, name: str = "digits_k3"):
    """A Keras 3 functional CNN for 8x8x1 inputs and 10 classes: Rescaling, Conv2D, BatchNormalization,
    a residual Add, a DepthwiseConv2D branch joined by Concatenate, pooling, Dropout and a softmax Dense."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), name="image")
    x = layers.Rescaling(2.0, offset=-1.0, name="scale")(inp)
    a = layers.Conv2D(8, 3, padding="same", name="conv_a")(x)
    a = layers.BatchNormalization(epsilon=bn_epsilon, name="bn")(a)
    a = layers.ReLU(name="relu")(a)
    b = layers.Conv2D(8, 1, padding="same", activation="relu6", name="conv_b")(a)
    r = layers.Add(name="residual")([a, b])
    c = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="depthwise")(x)
    joined = layers.Concatenate(name="concat")([r, c])
    pooled = layers.Flatten(name="flat")(layers.MaxPooling2D(name="pool")(joined))
    out = layers.Dense(10, activation="softmax", name="head")(layers.Dropout(0.1, name="drop")(pooled))
    return keras.Model(inp, out, name=name)


def trained_digits_cnn(x: np.ndarray, y: np.ndarray, *, epochs: int = 3, **kwargs):
    """`digits_cnn` after a few epochs of Keras 3 training: BatchNormalization's moving statistics move."""
    model = digits_cnn(**kwargs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


def save_digits_cnn(path, demo) -> None:
    """The README's `model_k3.keras`: the Keras 3 digits CNN trained on the demo's training split."""
    trained_digits_cnn(demo.train.x, demo.train.y, epochs=3).save(path)
