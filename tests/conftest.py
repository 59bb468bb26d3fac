"""Shared fixtures: tiny models and a demo bundle.

The environment (TF_USE_LEGACY_KERAS=1, no progress bars), the session cache and the `demo` and
`keras` fixtures are in the repository's root conftest.py, which the docstring examples share.
"""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_model(keras):
    """A small conv classifier on 8x8x1 inputs with 3 classes."""
    keras.utils.set_random_seed(1)
    return keras.Sequential([
        keras.layers.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(3, activation="softmax"),
    ])


@pytest.fixture(scope="session")
def tiny_data():
    rng = np.random.default_rng(0)
    return rng.random((64, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, 64)


@pytest.fixture(scope="session")
def tiny_keras_file(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    tiny_model.save(path)
    return path


@pytest.fixture(scope="session")
def demo_bundle(demo, tmp_path_factory):
    """One int8 export of the demo for android, shared by read-only tests."""
    import exporter

    out = tmp_path_factory.mktemp("bundles") / "demo-android"
    report = exporter.export(demo=True, target="android", out=out, progress=False)
    return report, out
