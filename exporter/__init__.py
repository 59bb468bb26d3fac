"""edgex: export Keras models to validated on-device bundles.

Importing this package sets `TF_USE_LEGACY_KERAS=1` before anything can import
TensorFlow, and imports nothing heavy itself.

Example:
    >>> import exporter
    >>> report = exporter.export("model.keras", target="android",
    ...                          calib="calib.npz", eval="eval.npz", out="build/android")
    >>> report.passed
    True
"""
from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
__all__ = ["export", "inspect", "verify", "__version__"]


def __getattr__(name):  # lazy: `import exporter` must stay cheap
    if name in ("export", "inspect", "verify"):
        from exporter import api

        return getattr(api, name)
    raise AttributeError(f"module 'exporter' has no attribute {name!r}")
