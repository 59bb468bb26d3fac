"""edgex: export Keras models to validated on-device bundles.

Importing this package sets `TF_USE_LEGACY_KERAS=1` before anything can import
TensorFlow, and imports nothing heavy itself.

Example:
    >>> import exporter
    >>> files = demo.model_path.parent           # the demo's model.keras, calib.npz, eval.npz
    >>> report = exporter.export(files / "model.keras", target="android", calib=files / "calib.npz",
    ...                          eval=files / "eval.npz", out="build/android", progress=False)
    >>> report.passed, report.mode
    (True, 'int8')
    >>> exporter.verify("build/android")["status"]
    'pass'
"""
from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
__all__ = ["export", "inspect", "optimize", "verify", "__version__"]


def __getattr__(name):  # lazy: `import exporter` must stay cheap
    if name in ("export", "inspect", "verify"):
        from exporter import api

        return getattr(api, name)
    if name == "optimize":   # the package exporter/optimize/, callable as exporter.optimize.api.optimize
        import exporter.optimize

        return exporter.optimize
    raise AttributeError(f"module 'exporter' has no attribute {name!r}")
