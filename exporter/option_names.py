"""How a message names an option: the way the caller spelled it.

The same checks run for `edgex export ...` and for `exporter.export(...)`, so a message that tells
the user what to change must name the option of the surface they used: `--zip` on the command
line, `make_zip=True` in Python. The calling surface is a context variable, "api" unless the
`edgex` command set it to "cli" for the duration of a command (`calling("cli")`). `option(name)`
spells an option, keyed by its Python parameter name, for the current surface.

Every spelling lives in `OPTIONS`: the CLI flag (default `--` + the name with `_` → `-`), the Python
spelling (default `name=`), whether the CLI option is a flag (the Python side then shows `=True`)
or is repeated once per value. Only the standard library is imported: `edgex --help` stays light.

Example:
    >>> option("make_zip"), option("out", "build/a"), option("model"), option("limits")
    ('make_zip=True', "out='build/a'", 'model', 'limits=')
    >>> with calling("cli"):
    ...     option("make_zip"), option("out", "build/a"), option("model"), option("limits")
    ('--zip', '--out build/a', 'MODEL', '--limit')
    >>> with calling("cli"):
    ...     option("skip_layers", ["bn", "conv"]), option("require_compiled")
    ('--skip-layer bn --skip-layer conv', '--require-compiled')
    >>> option("skip_layers", ["bn"]), option("require_compiled")
    ("skip_layers=['bn'] in the recipe", 'target_options={"require_compiled": True}')
"""
from __future__ import annotations

import contextlib
import os
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["OPTIONS", "SURFACES", "Spelling", "calling", "option", "spelled", "surface"]

SURFACES = ("api", "cli")
_surface: ContextVar[str] = ContextVar("edgex_surface", default="api")
_UNSET = object()


@dataclass(frozen=True)
class Spelling:
    """How one option is written on each surface.

    Attributes:
        cli: the CLI flag or argument ("--zip", "MODEL").
        api: the Python spelling with `{}` where the value goes ("make_zip={}"); a template
            without `{}` never shows the value.
        bare: the Python spelling when no value is shown; default: `api` with an empty value.
        flag: a CLI flag taking no value; the Python side shows it set to True.
        repeat: a CLI option given once per value (`--limit a=1 --limit b=2`).
    """

    cli: str
    api: str
    bare: str | None = None
    flag: bool = False
    repeat: bool = False


def _plain(name: str, **kwargs) -> Spelling:
    """The regular spelling: `--name-with-dashes` on the CLI, `name=` in Python."""
    return Spelling("--" + name.replace("_", "-"), name + "={}", **kwargs)


OPTIONS: dict[str, Spelling] = {
    # the parameters of exporter.export (exporter/api.py) and the options of `edgex export` (exporter/cli_options.py)
    "model": Spelling("MODEL", "model={}", bare="model"),
    "target": _plain("target"),
    "targets": Spelling("--target", "targets={}", repeat=True),
    "profile": _plain("profile"),
    "quantize": _plain("quantize"),
    "sparse_encoding": _plain("sparse_encoding"),
    "limits": Spelling("--limit", "limits={}", repeat=True),
    "require_compiled": Spelling("--require-compiled", 'target_options={{"require_compiled": {}}}', flag=True),
    "compress": Spelling("--no-compress", 'target_options={{"compress": {}}}', bare='target_options={"compress": False}'),
    "demo": _plain("demo", flag=True),
    "trust_model": _plain("trust_model", flag=True),
    "calib": _plain("calib"),
    "eval": _plain("eval"),
    "labels": _plain("labels"),
    "train": _plain("train"),
    "normalize": _plain("normalize"),
    "out": _plain("out"),
    "make_zip": Spelling("--zip", "make_zip={}", flag=True),
    "force": _plain("force", flag=True),
    "bundle_samples": _plain("bundle_samples"),
    "recipe": _plain("recipe"),
    "input_shapes": Spelling("--input-shape", "input_shapes={}", repeat=True),
    "label_output": _plain("label_output"),
    # what the model's TFLite metadata says (exporter/tflite_metadata/info.py)
    "model_name": _plain("model_name"),
    "model_version": _plain("model_version"),
    "model_description": _plain("model_description"),
    "author": _plain("author"),
    "license": _plain("license"),
    # CLI shorthands for parts of a recipe (exporter/recipe.py `recipe_from_flags`)
    "skip_layers": Spelling("--skip-layer", "skip_layers={} in the recipe", bare="the recipe's skip_layers",
                            repeat=True),
    "float_layers": Spelling("--float-layer", "float_layers={} in the recipe", bare="the recipe's float_layers",
                             repeat=True),
    "strip_names": Spelling("--strip-names", "the recipe's strip_names", flag=True),
    "student": Spelling("--student", "the distill stage's student"),
    "distill": Spelling("--distill WIDTH", "the distill stage's width"),
    # `edgex hil run` / exporter.hil.runner.hil_run (exporter/hil/cli.py)
    "benchmark_binary": Spelling("--benchmark-binary", "TransportOptions(benchmark_binary={})",
                                 bare="TransportOptions(benchmark_binary=...)"),
    # `edgex optimize` / exporter.optimize (exporter/cli_optimize.py, exporter/optimize/api.py)
    "trials": _plain("trials"),
    "time": _plain("time"),
    "storage": _plain("storage"),
    "study": _plain("study"),
    "space": _plain("space"),
    "ray": _plain("ray"),
    "trial_cpus": _plain("trial_cpus"),
    "batch": _plain("batch"),
    "pick": _plain("pick"),
    "sampler": _plain("sampler"),
    "seed": _plain("seed"),
    "epochs": _plain("epochs"),
}
"""Every option a message may name, by its Python parameter name."""


def surface() -> str:
    """The calling surface: "cli" while the `edgex` command runs, else "api"."""
    return _surface.get()


@contextlib.contextmanager
def calling(name: str):
    """Name options as surface `name` ("api" or "cli") spells them inside the block; restored after."""
    if name not in SURFACES:
        raise ValueError(f"unknown surface {name!r}; known: {', '.join(SURFACES)}")
    token = _surface.set(name)
    try:
        yield
    finally:
        _surface.reset(token)


def _value(value):
    """A value as the caller wrote it: paths as strings, tuples as lists."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return list(value) if isinstance(value, tuple) else value


def option(name: str, value=_UNSET) -> str:
    """The option `name` (its Python parameter name) as the current surface spells it.

    Args:
        name: the parameter name ("make_zip", "limits", "skip_layers", ...). A name not in
            `OPTIONS` is spelled the regular way (`--name-with-dashes`, `name=`).
        value: a value to show with it (`--out build/a`, `out='build/a'`); flags never show one on
            the CLI and always show True in Python.

    Returns:
        The spelling, e.g. "--zip" or "make_zip=True".
    """
    spelling = OPTIONS.get(name) or _plain(name)
    if value is _UNSET and spelling.flag:
        value = True
    if surface() == "cli":
        if value is _UNSET or spelling.flag:
            return spelling.cli
        if isinstance(value, dict):
            value = [f"{k}={v}" for k, v in value.items()]
        values = list(value) if spelling.repeat and isinstance(value, (list, tuple)) else [value]
        return " ".join(f"{spelling.cli} {_value(v)}" for v in values)
    if value is _UNSET:
        return spelling.bare if spelling.bare is not None else spelling.api.format("")
    return spelling.api.format(repr(_value(value)))


def spelled(*, cli: str, api: str) -> str:
    """One of two phrasings, the one for the current surface (for text that is more than an option's name).

    Example:
        >>> spelled(cli="--skip-layer (or the recipe's skip_layers)", api="the recipe's skip_layers")
        "the recipe's skip_layers"
    """
    return {"cli": cli, "api": api}[surface()]
