"""pytest setup shared by the tests (tests/) and the docstring examples (exporter/, targets/).

`make test` runs both in one session: `pytest tests --doctest-modules exporter targets`, so the
demo is trained once, into this session's cache. Fixtures only the tests use are in
tests/conftest.py.

Docstring examples (`>>>`) run as documentation reads them. Each one runs in a fresh empty temp
dir, which is also its working directory, so a relative path such as "build/android" never
touches the checkout. These names are there without an import; each is built only for an example
that uses it, and never hides a name the module defines itself:

    tmp          pathlib.Path: the example's temp dir (and working directory).
    demo         exporter.demo.Demo: the built-in digits CNN and its data (trained once per session).
    model        the demo's tf_keras model (loaded once; stages work on clones).
    ctx          a StageContext for quick fine-tuning of the demo: its training split, 1 epoch,
                 int8 for the android-arm64-midrange profile.
    tiny_tflite  bytes: a full-integer int8 .tflite (int8 I/O, 8x8x1 input, 10 classes) of an
                 untrained Conv2D → DepthwiseConv2D → MaxPool → Flatten → Dense(softmax) model.
    bundle       pathlib.Path: tmp/build/android, the demo's android bundle as
                 `edgex export --demo --target android --out build/android --zip` writes it
                 (android.zip beside it); a fresh copy for each example.
    report       the Report of that export.
    np, Path     numpy and pathlib.Path.

Hardware-only lines (an SSH host, an adb phone, a serial board, edgetpu_compiler) carry
`# doctest: +SKIP`.
"""
from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["EDGEX_NO_PROGRESS"] = "1"

import ast
import doctest
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest_plugins = ["tests.hil.devices"]     # the stand-in devices (sshd, serial board, adb stub)


@pytest.fixture(scope="session", autouse=True)
def edgex_cache(tmp_path_factory):
    """Every test session trains the demo once, into its own cache."""
    path = tmp_path_factory.mktemp("edgex-cache")
    os.environ["EDGEX_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def _config_homes(tmp_path_factory):
    return tmp_path_factory.mktemp("xdg-config"), iter(range(10**9))


@pytest.fixture(autouse=True)
def _edgex_config_home(_config_homes, monkeypatch):
    """No test reads or writes this user's edgex config (~/.config/edgex): each has its own, empty one."""
    root, numbers = _config_homes
    monkeypatch.setenv("XDG_CONFIG_HOME", str(root / str(next(numbers))))


@pytest.fixture(scope="session")
def demo(edgex_cache):
    from exporter.demo import load_demo

    return load_demo()


@pytest.fixture(scope="session")
def keras():
    from exporter import tf as tfmod

    return tfmod.keras()


# --- docstring examples ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def doctest_model(demo):
    from exporter.model_io import load_model

    return load_model(demo.model_path).model


@pytest.fixture
def doctest_ctx(demo):
    from exporter.profile import load_profile
    from exporter.stages.base import StageContext
    from exporter.stages.training import TrainingConfig

    return StageContext(train=demo.train, eval=demo.eval, training=TrainingConfig(epochs=1),
                        profile=load_profile("android-arm64-midrange"), mode="int8")


@pytest.fixture(scope="session")
def tiny_tflite(keras):
    from exporter.stages.convert import ConvertConfig, convert

    layers = keras.layers
    keras.utils.set_random_seed(0)
    model = keras.Sequential([                  # names fixed: tensor names show in examples
        layers.Input((8, 8, 1), name="image"),
        layers.Conv2D(4, 3, activation="relu", name="conv"),
        layers.DepthwiseConv2D(3, activation="relu", name="depthwise"),
        layers.MaxPooling2D(2, name="pool"),
        layers.Flatten(name="flatten"),
        layers.Dense(10, activation="softmax", name="dense"),
    ], name="tiny")
    calib = np.random.default_rng(0).random((32, 8, 8, 1), dtype=np.float32)
    return convert(model, ConvertConfig(mode="int8", io_dtype="int8"), calib=calib)


@pytest.fixture(scope="session")
def _demo_export(demo, tmp_path_factory):
    """One export of the demo for android (with its zip), copied for each example that uses it."""
    import exporter

    out = tmp_path_factory.mktemp("doctest-bundle") / "android"
    report = exporter.export(demo=True, target="android", out=out, make_zip=True, progress=False)
    return report, out


@pytest.fixture
def doctest_bundle(_demo_export, tmp_path):
    _, source = _demo_export
    target = tmp_path / "build" / "android"
    shutil.copytree(source, target)
    shutil.copy2(source.with_name("android.zip"), target.with_name("android.zip"))
    return target


@pytest.fixture
def doctest_report(_demo_export):
    return _demo_export[0]


_NAMESPACE = {"tmp": "tmp_path", "demo": "demo", "model": "doctest_model", "ctx": "doctest_ctx",
              "tiny_tflite": "tiny_tflite", "bundle": "doctest_bundle", "report": "doctest_report"}
_PLAIN = {"np": np, "Path": Path}


def _free_names(sources: list[str]) -> set[str]:
    """Names the examples read but never bind themselves (assignment, import, for, with, def, class)."""
    read, bound = set(), set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:                 # doctest reports it when the example runs
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                (bound if isinstance(node.ctx, ast.Store) else read).add(node.id)
            elif isinstance(node, ast.alias):
                bound.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                bound.add(node.name)
    return read - bound


@pytest.fixture(autouse=True)
def _docstring_example(request):
    """For a doctest: a temp working directory, and the names above that its examples use."""
    if not isinstance(request.node, pytest.DoctestItem):
        return
    test = request.node.dtest
    namespace = request.getfixturevalue("doctest_namespace")
    for name in (*_NAMESPACE, *_PLAIN):     # nothing carries over from the previous example
        namespace.pop(name, None)
    request.getfixturevalue("monkeypatch").chdir(request.getfixturevalue("tmp_path"))
    run = [example.source for example in test.examples if not example.options.get(doctest.SKIP)]
    used = _free_names(run) - set(test.globs)
    namespace.update({name: value for name, value in _PLAIN.items() if name in used})
    for name in sorted(used & _NAMESPACE.keys()):
        namespace[name] = request.getfixturevalue(_NAMESPACE[name])
