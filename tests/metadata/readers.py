"""The real metadata readers, each in its own virtualenv: tflite-support's and MediaPipe's.

Neither can share edgex's environment: tflite-support 0.4.4 pins protobuf<4 (and needs numpy<2 and
Debian's libusb-1.0-0, see the Makefile's DEB_PACKAGES); MediaPipe needs absl-py>=2.3, which TF-MOT
0.8.1 forbids. MediaPipe is pinned to 0.10.21: the 1.x wheels (1.2.3 checked) ship
`mediapipe/tasks/python/metadata/metadata.py` without the native module it imports
(`mediapipe.tasks.cc.metadata.python._pywrap_metadata_version`: ModuleNotFoundError), so their
metadata reader cannot run; 0.10.21 ships it, and its ImageClassifier too.

The venvs are built from PyPI with pip the first time (here: ~15 s and ~55 s, side by side) into
`.cache/test-venvs/<name>-<key>` at the top of the repository (gitignored), keyed by the Python
version and the pinned requirements, and reused by later runs; a half-built one is never used.

`read_metadata.py` (run by each venv's Python) prints what the reader finds in a model;
`classify.py` runs MediaPipe's ImageClassifier on it.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "test-venvs"
HERE = Path(__file__).resolve().parent
READERS = {
    "tflite-support": ("tflite-support==0.4.4", "numpy<2", "protobuf<4"),
    "mediapipe": ("mediapipe==0.10.21",),
}
"""Each reader's venv: the requirements pip installs into it."""


def venv_path(name: str) -> Path:
    key = hashlib.sha256(json.dumps([sys.version_info[:2], READERS[name]]).encode()).hexdigest()[:12]
    return CACHE / f"{name}-py{sys.version_info[0]}{sys.version_info[1]}-{key}"


def _start(name: str, building: Path) -> subprocess.Popen:
    """Create the venv at `building` and install the reader's requirements, in the background."""
    python = building / "bin" / "python"
    script = (f"{sys.executable} -m venv {building} && {python} -m pip install --quiet --disable-pip-version-check "
              + " ".join(f"'{r}'" for r in READERS[name]))
    return subprocess.Popen(["/bin/sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def build_readers(names=tuple(READERS)) -> dict[str, Path]:
    """The Python of each reader's venv, building the missing ones side by side (see the module docstring)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    jobs = {}
    for name in names:
        final = venv_path(name)
        if not (final / ".complete").is_file():
            building = final.with_name(f"{final.name}.tmp-{secrets.token_hex(4)}")
            jobs[name] = (building, _start(name, building))
    for name, (building, job) in jobs.items():
        output, _ = job.communicate(timeout=900)
        if job.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            raise RuntimeError(f"building the {name} venv failed ({job.returncode}): {output[-3000:]}")
        (building / ".complete").touch()
        try:
            os.rename(building, venv_path(name))   # bin/python works after a rename; pip's script shebangs do not
        except OSError:                            # another session finished first
            shutil.rmtree(building, ignore_errors=True)
    return {name: venv_path(name) / "bin" / "python" for name in names}


def run_in(python: Path, script: str, *args, timeout: int = 180) -> dict:
    """Run `script` (in this folder) with a reader venv's Python; its stdout's last line, parsed as JSON."""
    done = subprocess.run([str(python), str(HERE / script), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, f"{script} exited {done.returncode}: {done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])
