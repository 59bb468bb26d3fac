"""Error messages name options the way the caller spelled them: `--flag` from `edgex`, `name=` from Python."""
from __future__ import annotations

import inspect

import click
import numpy as np
import pytest

import exporter
from exporter.errors import ExporterError
from exporter.option_names import OPTIONS, calling, option, spelled, surface
from tests.test_cli import run


def api_error(**kwargs) -> str:
    """The message of the ExporterError `exporter.export(**kwargs)` raises (no progress bars)."""
    with pytest.raises(ExporterError) as err:
        exporter.export(progress=False, **kwargs)
    return str(err.value)


def cli_error(args: list[str], code: int = 2) -> str:
    """stderr of `edgex export ARGS`, which must fail with `code`."""
    result = run(["export", *args])
    assert result.exit_code == code, result.output
    return result.stderr


# -- the registry ---------------------------------------------------------------------------------

def test_every_cli_spelling_is_an_option_of_edgex_export():
    from exporter.cli import cli

    command = cli.commands["export"]
    spelled_as = {"MODEL"} | {opt for p in command.params if isinstance(p, click.Option) for opt in p.opts}
    spelled_as |= {opt for p in cli.commands["hil"].commands["run"].params if isinstance(p, click.Option)
                   for opt in p.opts if opt == "--benchmark-binary"}       # the one hil option messages name
    spelled_as |= {opt for p in cli.commands["optimize"].params if isinstance(p, click.Option) for opt in p.opts}
    for name, spelling in OPTIONS.items():
        assert spelling.cli.split()[0] in spelled_as, name
    flags = {p.name for p in command.params if isinstance(p, click.Option) and p.is_flag}
    # --no-compress spells the microcontroller's `compress` target option, set to False: not a True flag
    assert {n for n, s in OPTIONS.items() if s.flag} == flags - {"as_json", "qat", "no_compress"}


def test_every_python_spelling_names_what_the_caller_sets():
    import dataclasses

    from exporter.hil.transports.base import TransportOptions
    from exporter.recipe import Recipe
    from exporter.stages.base import get_stage
    from targets.base import get_target

    from exporter.optimize.api import optimize

    parameters = {**inspect.signature(exporter.export).parameters, **inspect.signature(optimize).parameters}
    distill = get_stage("distill").Config.model_fields
    elsewhere = {"skip_layers": ("the recipe's skip_layers", "skip_layers", Recipe.model_fields),
                 "float_layers": ("the recipe's float_layers", "float_layers", Recipe.model_fields),
                 "strip_names": ("the recipe's strip_names", "strip_names", Recipe.model_fields),
                 "require_compiled": ('target_options={"require_compiled": True}', "require_compiled",
                                      get_target("edgetpu").Options.model_fields),
                 "compress": ('target_options={"compress": False}', "compress",
                              get_target("microcontroller").Options.model_fields),
                 "student": ("the distill stage's student", "student", distill),
                 "distill": ("the distill stage's width", "width", distill),
                 "benchmark_binary": ("TransportOptions(benchmark_binary=...)", "benchmark_binary",
                                      {f.name for f in dataclasses.fields(TransportOptions)})}
    for name, spelling in OPTIONS.items():
        if name in elsewhere:
            text, field, fields = elsewhere[name]
            assert option(name) == text and field in fields, name
        else:
            assert spelling.api == f"{name}={{}}" and name in parameters, name
    assert "target_options" in parameters and "recipe" in parameters


@pytest.mark.parametrize("name, value, api, cli", [
    ("out", "b", "out='b'", "--out b"),
    ("make_zip", None, "make_zip=True", "--zip"),
    ("limits", {"latency": "3KB"}, "limits={'latency': '3KB'}", "--limit latency=3KB"),
    ("limits", None, "limits=", "--limit"),
    ("skip_layers", ("bn", "conv"), "skip_layers=['bn', 'conv'] in the recipe", "--skip-layer bn --skip-layer conv"),
    ("model", None, "model", "MODEL"),
    ("require_compiled", None, 'target_options={"require_compiled": True}', "--require-compiled"),
    ("batch_size", 8, "batch_size=8", "--batch-size 8"),          # not listed: the regular spelling
])
def test_option_spells_each_surface(name, value, api, cli):
    args = () if value is None else (value,)
    assert option(name, *args) == api
    with calling("cli"):
        assert option(name, *args) == cli
    assert surface() == "api"


def test_the_surface_is_restored_after_an_error_and_after_a_command(tmp_path):
    with pytest.raises(RuntimeError), calling("cli"):
        assert spelled(cli="c", api="a") == "c"
        raise RuntimeError
    assert surface() == "api"
    with pytest.raises(ValueError, match="unknown surface"):
        with calling("shell"):
            pass
    assert cli_error(["--demo", "--out", str(tmp_path / "x"), "--limit", "speed=3"])
    assert surface() == "api" and option("out") == "out="


# -- the messages, from Python and from `edgex` ------------------------------------------------------

def test_too_few_calibration_samples(demo, tmp_path):
    api = api_error(demo=True, calib=demo.calib.x[:5])
    assert "calib=" in api and "quantize=" in api and "--" not in api
    np.savez(tmp_path / "calib.npz", x=demo.calib.x[:5])
    cli = cli_error(["--demo", "--calib", str(tmp_path / "calib.npz"), "--out", str(tmp_path / "b")], code=2)
    assert "--calib" in cli and "--quantize" in cli and "calib=" not in cli and "quantize=" not in cli


def test_an_out_that_is_a_file(tmp_path):
    path = tmp_path / "taken"
    path.write_text("mine")
    api = api_error(demo=True, out=path)
    assert f"out={str(path)!r} exists and is a file" in api and "--out" not in api
    cli = cli_error(["--demo", "--out", str(path)])
    assert f"--out {path} exists and is a file" in cli and "out=" not in cli


def test_zip_with_an_out_ending_in_zip(tmp_path):
    api = api_error(demo=True, out=tmp_path / "b.zip", make_zip=True)
    assert "make_zip=True writes OUT.zip" in api and f"give out={str(tmp_path / 'b')!r} instead" in api
    assert "--zip" not in api and "--out" not in api
    cli = cli_error(["--demo", "--out", str(tmp_path / "b.zip"), "--zip"])
    assert "--zip writes OUT.zip" in cli and f"give --out {tmp_path / 'b'} instead" in cli
    assert "make_zip" not in cli and "out=" not in cli


@pytest.mark.parametrize("api_limits, cli_limit, api_text, cli_text", [
    ({"speed": 3}, "speed=3", "unknown limit 'speed' in limits=;", "unknown limit 'speed' in --limit;"),
    (["latency=3KB"], "latency=3KB", "limits={'latency': '3KB'}: ", "--limit latency=3KB: "),
    (["latency"], "latency", "limits= expects NAME=VALUE", "--limit expects NAME=VALUE"),
])
def test_a_bad_limit(api_limits, cli_limit, api_text, cli_text, tmp_path):
    api = api_error(demo=True, limits=api_limits)
    assert api_text in api and "--limit" not in api
    cli = cli_error(["--demo", "--out", str(tmp_path / "b"), "--limit", cli_limit])
    assert cli_text in cli and "limits=" not in cli


def test_a_mode_the_profile_does_not_allow(tmp_path):
    api = api_error(demo=True, profile="android-arm64-lowend", quantize="float16")
    assert api.startswith("quantize='float16' is not allowed on this profile") and "--quantize" not in api
    cli = cli_error(["--demo", "--profile", "android-arm64-lowend", "--quantize", "float16", "--out", str(tmp_path)])
    assert "--quantize float16 is not allowed on this profile" in cli and "quantize=" not in cli


def test_model_and_demo(tmp_path):
    assert "give either a model or demo=True, not both" in api_error(model="m.keras", demo=True)
    assert "pass model (.keras" in api_error() and "--demo" not in api_error()
    assert "give either a model or --demo, not both" in cli_error(["m.keras", "--demo", "--out", str(tmp_path)])
    cli = cli_error(["--out", str(tmp_path / "b")])
    assert "pass MODEL (.keras" in cli and "or --demo" in cli and "demo=" not in cli


def test_a_profile_with_several_targets(tmp_path):
    api = api_error(demo=True, targets=["android", "linux"], profile="android-arm64-lowend")
    assert api.startswith("profile= names one device") and "--profile" not in api
    cli = cli_error(["--demo", "--target", "android", "--target", "linux", "--profile", "android-arm64-lowend",
                     "--out", str(tmp_path / "b")])
    assert "--profile names one device" in cli and "profile=" not in cli


def test_a_skip_layer_the_model_lacks(tmp_path):
    recipe = {"stages": [{"type": "prune", "config": {"sparsity": 0.5}}], "skip_layers": ["dens"]}
    api = api_error(demo=True, recipe=recipe)
    assert "the recipe's skip_layers: no layer named 'dens' (did you mean 'dense'?)" in api
    assert "--skip-layer" not in api
    cli = cli_error(["--demo", "--prune", "0.5", "--skip-layer", "dens", "--out", str(tmp_path / "b")])
    assert "--skip-layer (the recipe's skip_layers): no layer named 'dens'" in cli and "skip_layers=" not in cli


def test_require_compiled_without_the_compiler(monkeypatch):
    import targets.edgetpu.target as edgetpu
    from exporter.errors import PreflightError
    from targets.base import get_target

    monkeypatch.setattr(edgetpu, "compiler_path", lambda: None)
    target = get_target("edgetpu")
    options = target.parse_options({"require_compiled": True})
    with pytest.raises(PreflightError) as err:
        target._compiler(options)
    assert str(err.value).startswith('target_options={"require_compiled": True}: edgetpu_compiler not found')
    assert "--require-compiled" not in str(err.value)
    with calling("cli"), pytest.raises(PreflightError) as err:
        target._compiler(options)
    assert str(err.value).startswith("--require-compiled: edgetpu_compiler not found")
    assert "drop --require-compiled" in str(err.value) and "require_compiled" not in str(err.value)
