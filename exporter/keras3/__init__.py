"""The Keras 3 bridge: a Keras 3 model translated into an equivalent tf_keras model, and proved so.

TF-MOT and edgex's stages need tf_keras (Keras 2) models. A Keras 3 `.keras`/`.h5` file or model
object is translated class by class through a reviewed table (table.py, values.py, translate.py),
its weights copied by layer name (weights.py, bridge.py), and every export runs both models on the
same samples (proof.py): `bridge_max_abs_error` above 1e-4 stops the export (exit 4). Nothing here
imports TensorFlow or Keras at module level.
"""
from __future__ import annotations

from exporter.keras3.bridge import Bridge, bridge_file, bridge_object, is_keras3_object, is_keras3_version

__all__ = ["Bridge", "bridge_file", "bridge_object", "is_keras3_object", "is_keras3_version"]
