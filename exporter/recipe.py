"""Recipes: the ordered stages of an export, their configs, and how they fine-tune.

A recipe comes from a YAML file (`--recipe`), a bundle's manifest (re-running
an export), CLI shorthands (`--prune 0.8 --cluster 16 --qat`), or the
target's default. Stages run in the order of their `Family`
(distill → prune/sparsify → cluster → qat/lowbit); a recipe out of order is
refused rather than reordered, and so are two quantizing stages.

Example YAML:
    quantize: int8
    sparse_encoding: auto          # android, linux: TFLite's sparse encoding of pruned weights (exporter/sparse/)
    training: {epochs: 3, learning_rate: 0.0005}
    skip_layers: []
    float_layers: [probs]          # android, linux, int8: ops kept float (exporter/stages/float_layers.py)
    strip_names: false             # remove inner tensors' names from the .tflite (exporter/tensor_names.py)
    stages:
      - {type: prune, config: {sparsity: 0.8}}
      - {type: cluster, config: {clusters: 16}}
      - {type: qat}
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exporter.errors import ConfigError, UsageError
from exporter.profile import QuantMode
from exporter.safe_read import load_yaml_file, read_bounded
from exporter.stages.training import TrainingConfig
from exporter.validation import validation_lines

MAX_MANIFEST_BYTES = 16 * 1024**2     # a bundle's manifest.json (profile, recipe, figures): tens of KB


class StageSpec(BaseModel):
    """One stage of a recipe: its registered type and its config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(..., description="registered stage name (prune, sparsify, cluster, qat, lowbit, distill)")
    config: dict = Field(default_factory=dict, description="the stage's own config; validated by the stage")


class Recipe(BaseModel):
    """An ordered list of stages, the fine-tuning settings and the conversion mode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stages: tuple[StageSpec, ...] = Field((), description="stages, in order")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="fine-tuning settings")
    skip_layers: tuple[str, ...] = Field((), description="layer names every stage leaves alone")
    float_layers: tuple[str, ...] = Field((), description="int8 on android and linux: names of layers whose ops stay "
                                          "float32 in the int8 model (exporter/stages/float_layers.py)")
    quantize: QuantMode | None = Field(None, description="conversion mode; default: the profile's preferred")
    sparse_encoding: Literal["auto", "on", "off"] | None = Field(
        None, description="TFLite's sparse encoding of pruned weights (android, linux; exporter/sparse/); default auto")
    strip_names: bool = Field(False, description="remove the names of the .tflite's inner tensors (inputs, outputs "
                              "and signatures keep theirs; exporter/tensor_names.py)")

    def build(self, origin: str = "recipe") -> list:
        """Instantiate and validate the stages, refusing duplicates and a wrong order.

        Args:
            origin: where the recipe came from, for messages (default "recipe").

        Returns:
            The Stage instances, in order.

        Raises:
            ConfigError: unknown stage, bad config (`origin: stages.N.config.field: ...`), duplicate,
                out of family order, or two stages of an exclusive family (two quantizers).
        """
        from exporter.stages.base import family_order, get_stage

        stages = []
        for i, spec in enumerate(self.stages):
            cls = get_stage(spec.type)
            try:
                stages.append(cls(cls.Config.model_validate(spec.config)))
            except ValidationError as exc:
                lines = validation_lines(exc, origin, f"stages.{i}.config")
                raise ConfigError("invalid recipe\n  " + "\n  ".join(lines)) from None
        names = [s.name for s in stages]
        for name in set(names):
            if names.count(name) > 1:
                raise ConfigError(f"{origin}: stage {name!r} appears {names.count(name)} times")
        for before, after in zip(stages, stages[1:]):
            if after.family < before.family:
                raise ConfigError(f"{origin}: {after.name!r} cannot follow {before.name!r}; the order is "
                                  f"{family_order()}")
            if after.family is before.family and after.family.exclusive:
                raise ConfigError(f"{origin}: {before.name!r} and {after.name!r} both {after.family.verb}; "
                                  "choose one")
        return stages

    def to_dict(self) -> dict:
        """The recipe as JSON-ready values (what a manifest stores)."""
        return self.model_dump(mode="json")


def _validate(data, origin: str) -> Recipe:
    """Validate a recipe mapping and build its stages once, so every error shows at load time.

    Args:
        data: the parsed recipe (YAML, a manifest's `recipe`, or flags).
        origin: where it came from, for messages.

    Returns:
        The validated recipe.

    Raises:
        ConfigError: not a mapping, unknown keys, wrong types, NaN or infinite numbers (every float
            field of TrainingConfig and of the stage configs refuses them), bad stages.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: a recipe must be a mapping with 'stages'")
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("invalid recipe\n  " + "\n  ".join(validation_lines(exc, origin))) from None
    recipe.build(origin)
    return recipe


def _from_manifest(path: Path):
    """The recipe mapping of a bundle's manifest.json (or a JSON recipe)."""
    raw = read_bounded(path, limit=MAX_MANIFEST_BYTES, what="recipe")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    if isinstance(data, dict) and "recipe" in data:     # a bundle manifest
        if not isinstance(data["recipe"], dict):
            raise ConfigError(f"{path}: recipe: must be a mapping, not {type(data['recipe']).__name__}")
        data = {k: v for k, v in data["recipe"].items() if k != "convert"}
    return data


def load_recipe(path: str | Path) -> Recipe:
    """Load a recipe from YAML, from a bundle's manifest.json, or from a bundle directory.

    Args:
        path: a recipe YAML (at most 1 MiB), a manifest.json (at most 16 MiB) or a bundle directory.

    Returns:
        The validated recipe.

    Raises:
        ConfigError: unreadable or not a regular file, too large, unsafe YAML (python tags,
            anchors/aliases), unknown keys, NaN/infinite numbers, bad stage configs, bad order.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    if path.suffix == ".json":
        return _validate(_from_manifest(path), str(path))
    return _validate(load_yaml_file(path, what="recipe"), str(path))


def _distill_stages(distill, student, distill_mode, training: dict) -> list[dict]:
    """The distill stage of `--distill WIDTH` / `--student PATH` (none without them)."""
    if distill is None and student is None:
        if distill_mode:
            raise UsageError("--distill-mode needs --distill WIDTH or --student PATH")
        return []
    if distill is not None and student is not None:
        raise UsageError("give either --distill WIDTH or --student PATH, not both")
    config = {"width": distill} if student is None else {"student": str(student)}
    if distill_mode:
        config["mode"] = distill_mode
    if "epochs" in training:     # --epochs reaches the student too (its own default: 25)
        config["epochs"] = training["epochs"]
    return [{"type": "distill", "config": config}]


def recipe_from_flags(*, prune=None, prune_structured=None, sparsify=None, cluster=None, qat=False,
                      weight_bits=None, distill=None, student=None, distill_mode=None, training=None,
                      skip_layers=(), float_layers=(), strip_names=False, quantize=None) -> Recipe | None:
    """Build a recipe from CLI shorthands; None when no stage flag was given.

    Args:
        prune: target sparsity for magnitude pruning (`--prune 0.8`).
        prune_structured: "2:4" structured sparsity (`--prune-structured 2:4`).
        sparsify: "L1" for L1-regularised sparsity (`--sparsify L1`).
        cluster: number of clusters (`--cluster 16`).
        qat: quantization-aware training (`--qat`), collaborative after prune/cluster.
        weight_bits: 4, 2 or 1 (`--weight-bits`).
        distill: width multiplier of a derived student (`--distill 0.5`).
        student: path of a student model (`--student student.keras`).
        distill_mode: "soft" or "hard".
        training: dict of TrainingConfig overrides.
        skip_layers: layer names to leave alone.
        float_layers: layer names to keep in float in an int8 model (`--float-layer`).
        strip_names: remove the inner tensors' names (`--strip-names`).
        quantize: conversion mode.

    Returns:
        The validated recipe, or None.

    Raises:
        UsageError: conflicting flags.
        ConfigError: a flag value a stage config refuses (e.g. --prune 1.5).
    """
    stages = _distill_stages(distill, student, distill_mode, training or {})
    if prune is not None or prune_structured is not None:
        config = {} if prune is None else {"sparsity": prune}
        if prune_structured is not None:
            config["structure"] = prune_structured
            config.setdefault("sparsity", 0.5)
            config["schedule"] = "constant"
        stages.append({"type": "prune", "config": config})
    if sparsify is not None:
        if str(sparsify).upper() != "L1":
            raise UsageError(f"--sparsify supports L1 (L1-regularised sparsity), got {sparsify!r}")
        stages.append({"type": "sparsify", "config": {}})
    if cluster is not None:
        stages.append({"type": "cluster", "config": {"clusters": cluster}})
    if qat and weight_bits:
        raise UsageError("--qat and --weight-bits both quantize weights; choose one")
    if qat:
        stages.append({"type": "qat", "config": {}})
    if weight_bits:
        stages.append({"type": "lowbit", "config": {"bits": int(weight_bits)}})
    if not stages and not training and not skip_layers and not float_layers and not strip_names:
        return None
    return _validate({"stages": stages, "training": training or {}, "skip_layers": list(skip_layers),
                      "float_layers": list(float_layers), "strip_names": strip_names, "quantize": quantize},
                     "command line")
