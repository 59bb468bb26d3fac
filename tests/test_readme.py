"""Every `edgex` command in README.md, run as a reader would: in the order written, in one folder,
each with the exit code the README documents (0 unless its comment says `exits N`).

The folder holds what the examples name: `model.keras` (the demo CNN saved by tf_keras), `calib.npz`,
`eval.npz` and `train.npz` (its data splits), `recipe.yaml` (the README's own recipe block),
`frontend.tflite` (an audio front-end with input [-1, -1], tests/dynamic_models.py), `images/`
(the eval split as PNGs in class folders), `model_k3.keras` (a Keras 3 CNN, tests/keras3/models.py) and
`two_io.keras` with `two_io_calib.npz`, `two_io_eval.npz` (a two-input, two-output model, tests/multi_io_models.py),
and `android_aarch64_benchmark_model`, the stand-in for LiteRT's benchmark tool (tests/hil/benchmark_stand_in.py),
and `space.yaml` (the README's own `edgex optimize` search space block).
Device addresses are mapped to stand-ins that really run the bundle: a real OpenSSH server on
127.0.0.1 with a TensorFlow-free device venv, the stub adb server with this machine as the phone
(no Python on its PATH, a getprop answering as an arm64 phone), and the TFLM firmware simulator on a pty;
the Ray address of `edgex optimize --ray` to a real local Ray head with 2 CPUs (exporter/optimize/local_head.py). The README's Python API block and its profile example are
run too.
"""
from __future__ import annotations

import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.dynamic_models import frontend_tflite
from tests.hil.benchmark_stand_in import write_stand_in
from tests.keras3.models import save_digits_cnn
from tests.multi_io_models import write as write_two_io
from tests.test_cli import run

README = Path(__file__).resolve().parents[1] / "README.md"
EDGEX = re.compile(r"^(?:\.venv/bin/)?edgex\s")


@dataclass(frozen=True)
class Example:
    line: int            # 1-based line in README.md
    argv: tuple[str, ...]
    exit_code: int


def _code_blocks(lines: list[str]):
    """(line number, code) of every line in an indented or fenced code block."""
    fenced = False
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            fenced = not fenced
        elif fenced or line.startswith("    "):
            yield number, line.strip()


def readme_examples(text: str) -> list[Example]:
    """The `edgex` commands of the README's code blocks, continuation lines joined, with exit codes."""
    examples: list[Example] = []
    pending: tuple[int, str] | None = None
    for number, code in _code_blocks(text.splitlines()):
        if pending is not None:                                   # a continued command
            pending = (pending[0], pending[1][:-1] + " " + code)
        elif EDGEX.match(code):
            pending = (number, code)
        elif code.startswith("#") and examples and "exits" in code:   # a comment line under a command
            examples[-1] = _with_exit(examples[-1], code)
            continue
        else:
            continue
        if not pending[1].endswith("\\"):
            start, command = pending
            comment = command.split("#", 1)[1] if "#" in command else ""
            examples.append(_with_exit(Example(start, tuple(shlex.split(command, comments=True)[1:]), 0), comment))
            pending = None
    return examples


def _with_exit(example: Example, comment: str) -> Example:
    found = re.search(r"\bexits (\d+)", comment)
    return Example(example.line, example.argv, int(found.group(1))) if found else example


EXAMPLES = readme_examples(README.read_text())


def test_the_readme_parser_finds_every_command():
    text = README.read_text()
    assert len(EXAMPLES) == len(re.findall(r"^ {4,}(?:\.venv/bin/)?edgex ", text, re.M)) >= 20
    codes = {e.argv[1] if e.argv[0] == "hil" else e.argv[0]: e.exit_code for e in EXAMPLES}
    assert codes["run"] == 0 and {e.exit_code for e in EXAMPLES} == {0, 1, 4}
    sample = "    edgex export m.keras \\\n        --prune 0.8 --out b   # exits 1 here\n    # exits 2 there\n"
    assert readme_examples(sample) == [Example(1, ("export", "m.keras", "--prune", "0.8", "--out", "b"), 2)]


def _yaml_block(text: str, first_key: str) -> str:
    return next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if b.startswith(first_key))


def _write_image_folder(root: Path, demo) -> None:
    """images/: the demo's evaluation images as 16x16 8-bit PNGs, one class folder per name in demo.labels."""
    from PIL import Image

    for i, (x, y) in enumerate(zip(demo.eval.x, demo.eval.y)):
        (root / demo.labels[y]).mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(np.round(x[..., 0] * 255).astype(np.uint8), "L")
        image.resize((16, 16), Image.Resampling.NEAREST).save(root / demo.labels[y] / f"{i:03d}.png")


@pytest.fixture(scope="module")
def workspace(demo, tmp_path_factory):
    """The folder the README's commands run in, with the files they name."""
    import tf_keras

    root = tmp_path_factory.mktemp("readme")
    tf_keras.models.load_model(demo.model_path).save(root / "model.keras")
    np.savez(root / "calib.npz", x=demo.calib.x)
    np.savez(root / "eval.npz", x=demo.eval.x, y=demo.eval.y)
    np.savez(root / "train.npz", x=demo.train.x, y=demo.train.y)
    (root / "recipe.yaml").write_text(_yaml_block(README.read_text(), "quantize:"))
    _write_image_folder(root / "images", demo)
    (root / "frontend.tflite").write_bytes(frontend_tflite())     # an audio front-end, input [-1, -1]
    save_digits_cnn(root / "model_k3.keras", demo)                # a Keras 3 CNN, for "Keras 3 models"
    write_two_io(root)                                            # two_io.keras and its data: "Several inputs and outputs"
    write_stand_in(root / "android_aarch64_benchmark_model")      # LiteRT's benchmark tool: "Android phones"
    (root / "space.yaml").write_text(_yaml_block(README.read_text(), "prune: ["))   # "edgex optimize"
    return root


def _ssh(request):
    sshd, python = request.getfixturevalue("sshd"), request.getfixturevalue("device_venv")
    return (f"ssh://{sshd.user}@{sshd.host}:{sshd.port}{sshd.home}",
            ["--identity", str(sshd.client_key), "--known-hosts", str(sshd.known_hosts), "--python", str(python)])


def _adb(request):
    server = request.getfixturevalue("adb_server")([("emulator-5554", "device")],
                                                   device_root=request.getfixturevalue("tmp_path"))
    request.getfixturevalue("monkeypatch").setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
    return "adb://emulator-5554", ["--python", sys.executable]


def _serial(request, argv):
    bundle = Path(argv[argv.index("run") + 1]).resolve()
    port, _ = request.getfixturevalue("serial_board")(bundle / "model.tflite")
    return f"serial://{port}", []


# README device address -> (its stand-in address, options the stand-in needs)
STAND_INS = {
    "ssh://pi@raspberrypi.local": lambda request, argv: _ssh(request),
    "adb://SERIAL": lambda request, argv: _adb(request),
    "serial:///dev/ttyACM0": _serial,
    "local": lambda request, argv: ("local", []),
}


@pytest.fixture(scope="module")
def ray_head():
    """A real local Ray head (2 CPUs) for the README's `edgex optimize --ray` lines."""
    from exporter.optimize.local_head import local_ray_head

    with local_ray_head(cpus=2) as address:
        yield address


RAY_STAND_INS = {"127.0.0.1:6379"}     # README Ray addresses, mapped to the `ray_head` fixture's


def _with_stand_in(argv: tuple[str, ...], request) -> list[str]:
    if "--ray" in argv:
        i = argv.index("--ray")
        assert argv[i + 1] in RAY_STAND_INS, f"README Ray address {argv[i + 1]} has no stand-in in tests/test_readme.py"
        argv = (*argv[:i + 1], request.getfixturevalue("ray_head"), *argv[i + 2:])
    if "--device" not in argv:
        return list(argv)
    i = argv.index("--device")
    assert argv[i + 1] in STAND_INS, f"README device {argv[i + 1]} has no stand-in in tests/test_readme.py"
    address, extra = STAND_INS[argv[i + 1]](request, argv)
    return [*argv[:i + 1], address, *argv[i + 2:], *extra]


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"L{e.line}-{'-'.join(e.argv[:2])}" for e in EXAMPLES])
def test_readme_command(example, workspace, monkeypatch, request):
    monkeypatch.chdir(workspace)
    result = run(_with_stand_in(example.argv, request))
    assert result.exit_code == example.exit_code, (
        f"README line {example.line}: `edgex {' '.join(example.argv)}` exited {result.exit_code}, documented "
        f"{example.exit_code}\n{result.stderr[-3000:]}")


def test_readme_python_api_block(workspace, monkeypatch):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(workspace)
    namespace: dict = {}
    exec(compile(code, "README.md (Python API)", "exec"), namespace)
    assert namespace["report"].passed and (workspace / "build" / "android" / "manifest.json").is_file()


def test_readme_profile_example_is_a_valid_profile(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    Path("readme-profile.yaml").write_text(_yaml_block(README.read_text(), "target: android"))
    result = run(["profiles", "show", "readme-profile.yaml"])
    assert result.exit_code == 0, result.stderr
    assert "agreement" in result.stdout and "peak runtime memory" in result.stdout
    result = run(["export", "model.keras", "--profile", "readme-profile.yaml", "--calib", "calib.npz",
                  "--eval", "eval.npz", "--out", "build/readme-profile"])
    assert result.exit_code == 0, result.stderr
    shutil.rmtree("build/readme-profile")
