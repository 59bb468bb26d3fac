"""Property tests: every loader of outside bytes answers with a documented exit code (reliability case 42).

The property, for each loader: whatever the bytes, edgex ends with one of its documented exit codes
(never 70, "internal error"), writes nothing outside its own temp folder, and leaves the output
path as it was. Inputs are random bytes, random JSON/YAML, and random mutations (flipped bytes,
cuts, replaced values) of real files edgex and tf_keras wrote.

The example budget is fixed and the seed derandomized so `make test` stays under a minute here.
Run longer with `EDGEX_FUZZ_SCALE=50 .venv/bin/python -m pytest tests/test_fuzz.py` (50 times the examples).
"""
from __future__ import annotations

import io
import json
import os
import pty
import shutil
import threading
import time
import tty
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.cli import main
from exporter.errors import EXIT_CODES, EXIT_INTERNAL, ExporterError

pytestmark = [pytest.mark.timeout(300), pytest.mark.reliability(42)]

SCALE = int(os.environ.get("EDGEX_FUZZ_SCALE", "1"))     # multiplies every example budget
DOCUMENTED = set(EXIT_CODES) - {EXIT_INTERNAL}


def budget(n: int):
    """Hypothesis settings: n examples (times SCALE), fixed seed, no deadline."""
    return settings(max_examples=n * SCALE, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner,
                                                                                  max_size=5),
                    max_leaves=30)


def mutations(data: bytes):
    """Strategy: `data` with some bytes replaced and maybe cut short."""
    n = len(data)
    flips = st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 255)), min_size=1, max_size=8)

    def apply(args):
        changes, cut = args
        out = bytearray(data)
        for where, value in changes:
            out[where] = value
        return bytes(out[:cut])

    return st.tuples(flips, st.integers(1, n)).map(apply)


class Sandbox:
    """A working folder the command runs in; checks that nothing outside it changes."""

    def __init__(self, root: Path):
        self.root = root
        self.work = root / "work"
        self.work.mkdir(exist_ok=True)
        self.out = root / "work" / "out"

    def run(self, argv: list[str], inputs: dict[str, bytes]) -> int:
        shutil.rmtree(self.work)
        self.work.mkdir()
        for name, data in inputs.items():
            (self.work / name).write_bytes(data)
        before = sorted(os.listdir(self.root)), sorted(os.listdir(self.work))
        cwd = os.getcwd()
        os.chdir(self.work)
        try:
            code = main(argv)
        finally:
            os.chdir(cwd)
        assert code in DOCUMENTED, f"exit {code} for {argv}"
        after = sorted(os.listdir(self.root)), sorted(os.listdir(self.work))
        if code != 0 and "--out" in argv:
            assert after == before, f"files changed after exit {code}: {before} -> {after}"
        return code


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    return Sandbox(tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module")
def tiny_files(tiny_keras_file, tmp_path_factory):
    """A tiny model as .keras bytes, its float .tflite and a zipped bundle of it."""
    import exporter

    out = tmp_path_factory.mktemp("fuzz-bundle") / "b"
    exporter.export(str(tiny_keras_file), quantize="float32", out=out, make_zip=True, progress=False)
    zips = list(out.parent.glob("*.zip"))
    keras = tfmod_keras()
    h5 = out.parent / "tiny.h5"
    keras.models.load_model(tiny_keras_file).save(h5)
    return Files(keras=tiny_keras_file.read_bytes(), tflite=(out / "model.tflite").read_bytes(),
                 zip=zips[0].read_bytes(), h5=h5.read_bytes(), bundle=out)


def tfmod_keras():
    from exporter import tf as tfmod

    return tfmod.keras()


class Files(dict):
    """Seed files by kind; a short repr keeps Hypothesis reports readable."""

    def __repr__(self):
        return f"<seed files: {', '.join(sorted(self))}>"


def _with_config(keras_bytes: bytes, config) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(keras_bytes)) as src, zipfile.ZipFile(buffer, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "config.json":
                data = json.dumps(config).encode() if not isinstance(config, bytes) else config
            dst.writestr(info.filename, data)
    return buffer.getvalue()


def _mutate_config(config, path: list, value):
    node = config
    for step in path[:-1]:
        if isinstance(node, dict) and node:
            node = node[sorted(node)[step % len(node)]]
        elif isinstance(node, list) and node:
            node = node[step % len(node)]
    if isinstance(node, dict) and node:
        node[sorted(node)[path[-1] % len(node)]] = value
    elif isinstance(node, list) and node:
        node[path[-1] % len(node)] = value
    return config


# -- model files ------------------------------------------------------------------------------

@budget(12)
@given(path=st.lists(st.integers(0, 50), min_size=1, max_size=8), value=JSON)
def test_keras_config_mutations(sandbox, tiny_files, path, value):
    config = json.loads(zipfile.ZipFile(io.BytesIO(tiny_files["keras"])).read("config.json"))
    data = _with_config(tiny_files["keras"], _mutate_config(config, path, value))
    sandbox.run(["export", "m.keras", "--quantize", "float32", "--out", "out"], {"m.keras": data})


@budget(10)
@given(config=JSON)
def test_keras_config_json_from_scratch(sandbox, tiny_files, config):
    data = _with_config(tiny_files["keras"], config)
    assert sandbox.run(["export", "m.keras", "--quantize", "float32", "--out", "out"], {"m.keras": data}) != 0


@budget(10)
@given(data=st.data())
def test_keras_archive_bytes(sandbox, tiny_files, data):
    raw = data.draw(mutations(tiny_files["keras"]) | st.binary(max_size=2000))
    sandbox.run(["export", "m.keras", "--quantize", "float32", "--out", "out"], {"m.keras": raw})


@budget(20)
@given(data=st.data())
def test_tflite_bytes(sandbox, tiny_files, data):
    raw = data.draw(mutations(tiny_files["tflite"]) | st.binary(max_size=2000))
    sandbox.run(["inspect", "m.tflite"], {"m.tflite": raw})
    sandbox.run(["export", "m.tflite", "--out", "out"], {"m.tflite": raw})


@budget(10)
@given(data=st.data())
def test_h5_bytes(sandbox, tiny_files, data):
    raw = data.draw(mutations(tiny_files["h5"]) | st.binary(max_size=2000))
    sandbox.run(["export", "m.h5", "--quantize", "float32", "--out", "out"], {"m.h5": raw})


# -- data sets --------------------------------------------------------------------------------

def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


ARRAYS = st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_, np.complex64]).flatmap(
    lambda dtype: st.lists(st.integers(0, 9), min_size=0, max_size=4).map(
        lambda shape: np.zeros(shape, dtype=dtype) if np.prod(shape) < 5000 else np.zeros((2,), dtype=dtype)))


@budget(15)
@given(data=st.data())
def test_npz_bytes(sandbox, tiny_keras_file, tiny_data, data):
    x, y = tiny_data
    real = _npz(x=x[:8], y=y[:8])
    raw = data.draw(mutations(real) | st.binary(max_size=1000)
                    | st.builds(lambda a, b: _npz(x=a, y=b), ARRAYS, ARRAYS))
    sandbox.run(["export", str(tiny_keras_file), "--quantize", "float32", "--eval", "e.npz", "--out", "out"],
                {"e.npz": raw})


@budget(10)
@given(data=st.data())
def test_npy_bytes(sandbox, tiny_keras_file, tiny_data, data):
    buffer = io.BytesIO()
    np.save(buffer, tiny_data[0][:8])
    raw = data.draw(mutations(buffer.getvalue()) | st.binary(max_size=500))
    sandbox.run(["export", str(tiny_keras_file), "--quantize", "int8", "--calib", "c.npy", "--out", "out"],
                {"c.npy": raw})


# -- profiles and recipes ---------------------------------------------------------------------

PROFILE = (Path(__file__).resolve().parents[1] / "device_profiles" / "android-arm64-midrange.yaml").read_bytes()
YAML_TEXT = st.text(st.characters(codec="utf-8"), max_size=300).map(str.encode)


@budget(25)
@given(data=st.data())
def test_profile_bytes(sandbox, data):
    import yaml

    raw = data.draw(mutations(PROFILE) | YAML_TEXT
                    | JSON.map(lambda v: yaml.safe_dump(v).encode()))
    sandbox.run(["profiles", "show", "p.yaml"], {"p.yaml": raw})


@budget(20)
@given(data=st.data())
def test_recipe_bytes(sandbox, tiny_keras_file, data):
    import yaml

    base = yaml.safe_dump({"stages": [{"prune": {"sparsity": 0.5}}, {"qat": {}}]}).encode()
    raw = data.draw(mutations(base) | YAML_TEXT | JSON.map(lambda v: yaml.safe_dump(v).encode()))
    sandbox.run(["export", str(tiny_keras_file), "--recipe", "r.yaml", "--out", "out"], {"r.yaml": raw})


# -- bundles ----------------------------------------------------------------------------------

@budget(25)
@given(data=st.data())
def test_bundle_zip_bytes(sandbox, tiny_files, data):
    raw = data.draw(mutations(tiny_files["zip"]) | st.binary(max_size=1000))
    code = sandbox.run(["verify", "b.zip"], {"b.zip": raw})
    assert code in (0, 3)
    assert code == 3 or raw == tiny_files["zip"] or zipfile.is_zipfile(io.BytesIO(raw))


def _bundle_with(tiny_files, root: Path, name: str, raw: bytes) -> Path:
    """A copy of the seed bundle under `root` with `name` replaced by `raw`."""
    bundle = root / "bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    shutil.copytree(tiny_files["bundle"], bundle)
    (bundle / name).parent.mkdir(exist_ok=True)
    (bundle / name).write_bytes(raw)
    return bundle


@budget(20)
@given(data=st.data())
def test_bundle_manifest_bytes(tiny_files, tmp_path_factory, data):
    original = (tiny_files["bundle"] / "manifest.json").read_bytes()
    raw = data.draw(mutations(original) | JSON.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=300))
    bundle = _bundle_with(tiny_files, tmp_path_factory.getbasetemp() / "fuzz-manifest", "manifest.json", raw)
    assert main(["verify", str(bundle)]) in ({0, 3} if raw == original else {3})


@budget(20)
@given(data=st.data())
def test_stored_device_runs(tiny_files, tmp_path_factory, data):
    run = {"status": "pass", "created": "2026-01-01T00:00:00+00:00", "device": {"transport": "local", "id": "h"},
           "result": {"runtime": "x", "runtime_version": "1"}, "measurements": {"latency": {"value": 1.0}}}
    raw = data.draw(mutations(json.dumps(run).encode()) | JSON.map(lambda v: json.dumps(v).encode())
                    | st.binary(max_size=300))
    bundle = _bundle_with(tiny_files, tmp_path_factory.getbasetemp() / "fuzz-runs", "hil/r.json", raw)
    assert main(["hil", "report", str(bundle)]) in DOCUMENTED
    assert main(["verify", str(bundle)]) in {0, 3}


@budget(12)
@given(data=st.data())
def test_labels_bytes(sandbox, tiny_keras_file, data):
    raw = data.draw(st.binary(max_size=300) | st.text(max_size=60).map(str.encode)
                    | st.just(b"a\nb\nc\n").flatmap(mutations))
    sandbox.run(["export", str(tiny_keras_file), "--quantize", "float32", "--labels", "l.txt", "--out", "out"],
                {"l.txt": raw})


SSH_KEY_TEXT = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n"
                "-----END OPENSSH PRIVATE KEY-----\n").encode()
KNOWN_HOSTS = b"[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"


@budget(15)
@given(data=st.data())
def test_ssh_key_files(sandbox, tiny_files, data):
    """Garbage identity or known_hosts files end before any connection (port 1 refuses anyway)."""
    identity = data.draw(mutations(SSH_KEY_TEXT) | st.binary(max_size=200))
    known = data.draw(mutations(KNOWN_HOSTS) | st.binary(max_size=200))
    sandbox.run(["hil", "run", str(tiny_files["bundle"]), "--device", "ssh://u@127.0.0.1:1", "--identity", "id",
                 "--known-hosts", "kh", "--connect-timeout", "0.5", "--retries", "0", "--runs", "1"],
                {"id": identity, "kh": known})


# -- device answers ---------------------------------------------------------------------------

@budget(40)
@given(raw=st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode())
       | st.dictionaries(st.sampled_from(["protocol", "ok", "runtime", "runtime_version", "model_sha256",
                                          "latency_ms", "peak_rss_bytes", "accuracy", "device"]), JSON)
       .map(lambda d: json.dumps({"protocol": 1, **d}).encode()))
def test_agent_replies(raw):
    from exporter.hil.result import parse_agent_output

    try:
        parse_agent_output(raw)
    except ExporterError as exc:
        assert exc.exit_code in DOCUMENTED


@budget(40)
@given(chunks=st.lists(st.binary(max_size=80), max_size=10))
def test_serial_frame_reader(chunks):
    from exporter.hil import serial_protocol as sp

    reader = sp.FrameReader(lambda n, timeout: b"")
    for chunk in chunks:
        reader.feed(chunk)
        for _ in range(len(chunk) + 2):
            event = reader.poll()
            if event is None:
                break
            assert isinstance(event, (sp.Frame, sp.Corrupt))
    assert reader.buffered <= sp.HEADER_SIZE + sp.MAX_PAYLOAD + sp.CRC_SIZE


def _frames():
    from exporter.hil import serial_protocol as sp

    types = st.sampled_from([sp.INFO, sp.RESULT, sp.ACK, sp.NACK, sp.ERROR, 0x7F])
    payloads = st.binary(max_size=120)
    frame = st.builds(lambda t, seq, p, v: sp.encode(t, seq, p, version=v), types, st.integers(0, 3), payloads,
                      st.sampled_from([sp.VERSION, sp.VERSION, 9]))
    return st.lists(frame | st.binary(min_size=1, max_size=40), max_size=6)


@budget(15)
@given(replies=_frames())
def test_serial_device_answers(mcu_model, replies):
    """A board answering anything: the transport ends with a result or a DeviceError, in bounded time."""
    from exporter.hil.result import parse_agent_output
    from exporter.hil.transports.base import RunPlan, TransportOptions
    from exporter.hil.transports.serial import SerialTransport

    master, slave = pty.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def board():
        pending = list(replies)
        while not stop.is_set() and pending:
            try:
                if os.read(master, 4096):
                    os.write(master, pending.pop(0))
            except OSError:
                return

    thread = threading.Thread(target=board, daemon=True)
    thread.start()
    start = time.monotonic()
    try:
        transport = SerialTransport(f"serial://{os.ttyname(slave)}",
                                    TransportOptions(retries=1, extra={"serial_reply_timeout": 0.1}))
        try:
            parse_agent_output(transport.run_bundle(mcu_model, RunPlan(warmup=0, runs=1, timeout=1.0)))
        finally:
            transport.close()
    except ExporterError as exc:
        assert exc.exit_code in DOCUMENTED
    finally:
        stop.set()
        os.close(slave)
        os.close(master)
        thread.join(timeout=2)
    assert time.monotonic() - start < 5


@pytest.fixture(scope="module")
def mcu_model(tiny_files, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-mcu")
    (folder / "model.tflite").write_bytes(tiny_files["tflite"])
    return folder
