"""Fixtures shared by the stage tests."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def scale_class(keras):
    """A custom layer with one weight per channel, which no TF-MOT registry knows."""
    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.factor = self.add_weight(name="factor", shape=(int(input_shape[-1]),), initializer="ones")

        def call(self, inputs):
            return inputs * self.factor

    return Scale
