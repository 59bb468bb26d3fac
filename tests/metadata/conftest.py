"""Fixtures of the TFLite metadata tests: the real readers' venvs (tests/metadata/readers.py)."""
from __future__ import annotations

import pytest

from tests.metadata.readers import build_readers


@pytest.fixture(scope="session")
def readers():
    """{"tflite-support": python, "mediapipe": python}: each reader's venv, built once and cached (readers.py)."""
    return build_readers()
