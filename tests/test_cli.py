"""The CLI through click's CliRunner, asserting exit codes and messages."""
import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from exporter.cli import main


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                "help_option_names": []})
@click.pass_context
def edgex(ctx):
    """`edgex` as a user runs it: main() turns errors into one message and an exit code."""
    raise SystemExit(main(ctx.args))


def run(args):
    return CliRunner().invoke(edgex, args, catch_exceptions=False)


def help_without_imports(args, modules=("tensorflow", "pydantic", "rich"), before=""):
    """stdout of `edgex ARGS` run in a fresh interpreter, asserting that none of `modules` was imported."""
    code = (f"import sys; {before}from exporter.cli import main; rc = main({list(args)!r}); "
            f"loaded = [m for m in {tuple(modules)!r} if m in sys.modules]; assert not loaded, loaded; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_does_not_import_tensorflow():
    assert "Exit codes" in help_without_imports(["--help"])


def test_profiles_and_targets():
    result = run(["profiles", "list", "--json"])
    assert result.exit_code == 0
    assert {p["name"] for p in json.loads(result.output)} >= {"android-arm64-midrange", "android-arm64-lowend"}
    shown = json.loads(run(["profiles", "show", "android-arm64-lowend", "--json"]).output)
    assert shown["quantization"]["int8_io"] == "uint8"
    rows = json.loads(run(["targets", "--json"]).output)
    assert rows[0]["target"] == "android" and "int8" in rows[0]["quantization"]
    assert "android-arm64-midrange" in run(["profiles", "list"]).output


def test_demo_export_passes_and_verifies(tmp_path):
    out = tmp_path / "android"
    result = run(["export", "--demo", "--target", "android", "--out", str(out), "--json", "--zip"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "pass"
    for check in report["checks"]:
        assert {"name", "status", "value", "limit", "source"} <= set(check)
        assert check["status"] in ("pass", "fail") and check["source"] in ("measured", "estimated", "mixed")
    assert run(["verify", str(out)]).exit_code == 0
    assert out.with_suffix(".zip").is_file()


def test_tiny_model_size_limit_exits_1_naming_the_limit(tmp_path):
    result = run(["export", "--demo", "--out", str(tmp_path / "b"), "--limit", "model_size=1KB"])
    assert result.exit_code == 1
    assert "model_size" in result.stderr and "OVER limit 1000 B" in result.stderr
    assert (tmp_path / "b" / "model.tflite").is_file(), "the bundle is still written"


@pytest.mark.reliability(21)
def test_flipped_byte_fails_verify_with_3(tmp_path):
    out = tmp_path / "b"
    assert run(["export", "--demo", "--out", str(out), "--quantize", "float32"]).exit_code == 0
    model = out / "model.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    result = run(["verify", str(out)])
    assert result.exit_code == 3 and "changed file: model.tflite" in result.stderr


@pytest.mark.reliability(5, 10)
@pytest.mark.parametrize("args,code,message", [
    (["export", "--demo", "--out", "X", "--target", "andriod"], 2, "Did you mean 'android'"),
    (["export", "--demo", "--out", "X", "--profile", "nope"], 2, "unknown profile 'nope'"),
    (["export", "--demo", "--out", "X", "--limit", "speed=3"], 2, "unknown limit 'speed'"),
    (["export", "--demo", "--out", "X", "--limit", "latency=3KB"], 2, "does not fit ms"),
    (["export", "--demo", "--out", "X", "--profile", "android-arm64-lowend", "--quantize", "float16"], 2,
     "not allowed"),
    (["export", "--out", "X"], 2, "no model given"),
    (["export", "missing.keras", "--out", "X"], 2, "no such model file"),
    (["export", "--demo"], 2, "Missing option '--out'"),
    (["verify", "nowhere"], 3, "not a bundle"),
    (["inspect", "nowhere.tflite"], 2, "no such model file"),
])
def test_errors_have_one_message_and_an_exit_code(args, code, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "X").exists(), "nothing written on failure"


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="unknown profile"):
        main(["--debug", "export", "--demo", "--out", str(tmp_path / "x"), "--profile", "nope"])


def test_debug_state_lives_in_the_click_context_for_one_run(tmp_path):
    """--debug sets the CliState main() passes as the context object; the next run starts fresh."""
    from exporter import progress
    from exporter.cli import CliState, cli
    from exporter.errors import IntegrityError

    before = dict(progress._settings)
    with pytest.raises(IntegrityError, match="not a bundle"):
        main(["--debug", "verify", str(tmp_path / "nowhere")])
    assert progress._settings == before, "--debug is restored when the command ends"
    assert main(["verify", str(tmp_path / "nowhere")]) == 3, "no --debug left over from the run before"
    state = CliState()
    cli.main(["--debug", "profiles", "--help"], prog_name="edgex", standalone_mode=False, obj=state)
    assert state.debug


@pytest.mark.parametrize("debug", [True, False])
def test_debug_flag_decides_traceback_or_one_line(debug, tmp_path):
    args = [sys.executable, "-m", "exporter", *(["--debug"] if debug else []), "export",
            str(tmp_path / "missing.keras"), "--out", str(tmp_path / "out")]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path)
    if debug:
        assert proc.returncode == 1 and "Traceback" in proc.stderr and "ModelFileError" in proc.stderr
    else:
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines() == [f"edgex: error: no such model file: {tmp_path / 'missing.keras'}"]
    assert not (tmp_path / "out").exists()


def test_export_help_lists_its_options_in_groups():
    result = run(["export", "--help"])
    assert result.exit_code == 0
    headings = [line[:-1] for line in result.output.splitlines() if line and not line[0].isspace() and
                line.endswith(":")]
    assert headings == ["Target and profile", "Model and data", "Output", "Model metadata (android, linux)",
                        "Compression stages", "Fine-tuning", "Other options"]
    from exporter.cli import cli

    ungrouped = [p.name for p in cli.commands["export"].params
                 if isinstance(p, click.Option) and not getattr(p, "help_group", None)]
    assert ungrouped == []


def test_an_option_group_hands_the_command_one_dataclass():
    from exporter.cli_options import OutputOptions, SectionedCommand, output_options, training_options

    seen = []

    @click.command(cls=SectionedCommand)
    @click.argument("name")
    @output_options
    @training_options
    def command(name, output, training):
        seen.append((name, output, training.overrides()))

    result = CliRunner().invoke(command, ["m", "--out", "b", "--zip", "--epochs", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen == [("m", OutputOptions(out="b", make_zip=True, force=False, bundle_samples=None, as_json=False),
                     {"epochs": 2})]


def test_profiles_calibrate_lives_with_profiles_and_loads_lazily():
    """`profiles calibrate` is a command of the profiles group; hil's CLI has only hil commands, and neither
    `edgex profiles calibrate --help` nor importing hil's CLI imports exporter.calibrate (nor hil.runner)."""
    from exporter.cli import cli
    from exporter.hil import cli as hil_cli

    assert "calibrate" in cli.commands["profiles"].commands
    assert set(hil_cli.hil.commands) == {"run", "report", "config"} and not hasattr(hil_cli, "calibrate_command")
    out = help_without_imports(["profiles", "calibrate", "--help"], before="import exporter.hil.cli; ",
                               modules=("exporter.calibrate", "exporter.hil.runner", "tensorflow", "pydantic", "rich"))
    assert "--from" in out


def test_profiles_calibrate_without_device_runs_exits_2_writing_nothing(demo_bundle, tmp_path):
    import shutil

    bundle, out = tmp_path / "bundle", tmp_path / "cal.yaml"    # a copy: other tests store runs in demo_bundle
    shutil.copytree(demo_bundle[1], bundle, ignore=shutil.ignore_patterns("hil"))
    result = run(["profiles", "calibrate", "android-arm64-midrange", "--from", str(bundle), "--out", str(out)])
    assert result.exit_code == 2 and "no complete device runs" in result.stderr
    assert not out.exists()


def test_inspect_prints_ops_macs_and_peak_memory(demo_bundle):
    _, out = demo_bundle
    result = run(["inspect", str(out / "model.tflite")])
    assert result.exit_code == 0
    assert "CONV_2D" in result.output and "peak activation memory" in result.output
    data = json.loads(run(["inspect", str(out / "model.tflite"), "--json"]).output)
    assert data["total_macs"] == sum(op["macs"] for op in data["ops"]) > 0


@pytest.mark.reliability(1)
def test_lambda_model_is_refused_and_its_code_never_runs(keras, tmp_path, monkeypatch):
    canary = tmp_path / "canary"
    canary_path = str(canary)     # the closure is serialized with the lambda: keep it a plain str
    model = keras.Sequential([keras.layers.Input((4,)),
                              keras.layers.Lambda(lambda x: (open(canary_path, "w").write("pwned"), x)[1],
                                                  name="evil"),
                              keras.layers.Dense(2)])
    model.save(tmp_path / "evil.keras")
    canary.unlink(missing_ok=True)       # building and saving called the lambda once
    result = run(["export", str(tmp_path / "evil.keras"), "--out", str(tmp_path / "out"), "--quantize", "float32"])
    assert result.exit_code == 3 and "Lambda" in result.stderr and "--trust-model" in result.stderr
    assert not canary.exists() and not (tmp_path / "out").exists()


@pytest.mark.reliability(6)
def test_keras3_model_outside_the_bridge_gets_a_specific_message(tmp_path):
    path = tmp_path / "k3.keras"
    code = ("import keras; m = keras.Sequential([keras.Input((4,)), keras.layers.GaussianNoise(0.1, name='noise'), "
            f"keras.layers.Dense(2)]); m.save({str(path)!r})")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_USE_LEGACY_KERAS"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    result = run(["export", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "layer 'noise' (GaussianNoise) is not in edgex's Keras 3 table" in result.stderr
    assert "tf_keras" in result.stderr and "format='litert'" in result.stderr and not (tmp_path / "out").exists()


def test_importing_the_package_selects_tf_keras():
    code = ("import os; os.environ.pop('TF_USE_LEGACY_KERAS', None); import exporter; import tensorflow as tf; "
            "import tf_keras; assert tf.keras.Model is tf_keras.Model, tf.keras")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_USE_LEGACY_KERAS"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_names_from_outside_are_printed_as_text_not_markup(demo_bundle, tmp_path, capsys):
    """A path (or layer/op name) holding rich markup such as "[/]" is shown as it is, never parsed."""
    import shutil

    from exporter.cli import main

    folder = tmp_path / "[" / "]"
    folder.mkdir(parents=True)
    model = folder / "m.tflite"
    shutil.copy(demo_bundle[1] / "model.tflite", model)
    assert main(["inspect", str(model)]) == 0
    assert "[/]" in capsys.readouterr().out.replace("\n", "")
