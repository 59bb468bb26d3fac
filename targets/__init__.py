"""Deployment targets: one package per backend (`targets/<kind>/target.py` registers its Target in targets.base).

Each backend's package holds its Target class, the models of its profile sections, its op tables, tool
wrappers, estimates and code generation; `targets.cpu` is the shared base of the LiteRT CPU targets.
"""
from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
