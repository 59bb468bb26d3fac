"""Pruning stages: magnitude pruning with TF-MOT (`prune`) and L1 sparsification (`sparsify`).

`prune` wraps the selected layers in TF-MOT's `prune_low_magnitude`, fine-tunes
with `UpdatePruningStep` while a schedule raises the share of zeroed weights to
the target (or keeps 2 of every 4 input-channel weights with `structure: "2:4"`),
then strips the wrappers. `sparsify` fine-tunes with an L1 penalty on the selected
kernels, then sets the smallest-magnitude fraction of each kernel (or of all of
them, `scope: global`) to exact zeros. Both leave a plain tf_keras model.

Example:
    >>> result = get_stage("prune")({"sparsity": 0.8}).apply(model, ctx)
    >>> result.metrics["sparsity"]            # measured share of zeros per pruned kernel
    {'conv2d': 0.799, 'conv2d_1': 0.8, 'dense': 0.8, 'probs': 0.8}
"""
from __future__ import annotations

import difflib
import math
import re
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from exporter import tf as tfmod
from exporter.errors import ConfigError
from exporter.stages import training
from exporter.stages.base import (Stage, StageConfig, StageContext, StageResult, check_plain_model,
                                  refuse_unsupported, register, unsupported_layers)

STRUCTURES = {"2:4": (2, 4)}          # what TF-MOT documents and sparse kernels accelerate
STRUCTURED_CLASSES = ("Conv2D", "Dense")  # kernels TF-MOT's m-by-n rearrangement maps onto TFLite's layout
NEAR_ZERO = 1e-3                      # |w| below this counts as "already zero" after L1 training


def _layers_field():
    return Field((), description="names of the layers to transform; with layer_types also empty: every layer "
                                 "with weights")


def _types_field():
    return Field((), description='layer class names to transform, e.g. ["Conv2D", "Dense"]')


class PruneConfig(StageConfig):
    """Magnitude pruning: target sparsity, schedule, structure and which layers."""

    structure: str | None = Field(None, description='structured sparsity "M:N" (M zeros in every N consecutive '
                                                    'input-channel weights); only "2:4" is supported')
    sparsity: float | None = Field(None, gt=0, lt=1, validate_default=True,
                                   description="target share of zero weights in each pruned kernel, e.g. 0.8; "
                                               "implied (0.5) by structure 2:4")
    schedule: Literal["polynomial", "constant"] = Field(
        "polynomial", description="polynomial: ramp from initial_sparsity to sparsity; constant: target at once")
    initial_sparsity: float = Field(0.0, ge=0, lt=1, description="sparsity at begin_step (polynomial only)")
    begin_step: int = Field(0, ge=0, description="fine-tuning step at which pruning starts")
    end_step: int | None = Field(None, ge=1, description="step at which the target is reached; default: the "
                                                         "last pruning update within all fine-tuning steps")
    frequency: int = Field(10, ge=1, description="update the pruning masks every this many steps")
    layers: tuple[str, ...] = _layers_field()
    layer_types: tuple[str, ...] = _types_field()

    @field_validator("structure")
    @classmethod
    def _known_structure(cls, value):
        if value is not None and value not in STRUCTURES:
            shape = "" if re.fullmatch(r"\d+:\d+", value) else ' (write it as "M:N")'
            raise ValueError(f"unsupported structure {value!r}{shape}; supported: {', '.join(STRUCTURES)}")
        return value

    @field_validator("sparsity")
    @classmethod
    def _sparsity_fits_structure(cls, value, info):
        structure = info.data.get("structure")
        if structure is None and value is None and "structure" in info.data:
            raise ValueError("required: the target share of zero weights, e.g. 0.8 (or set structure: 2:4)")
        if structure is not None and value is not None:
            m, n = STRUCTURES[structure]
            if not math.isclose(value, m / n):
                raise ValueError(f"structure {structure} fixes sparsity at {m / n}; drop sparsity or the structure")
        return value

    @field_validator("initial_sparsity")
    @classmethod
    def _initial_below_target(cls, value, info):
        target = info.data.get("sparsity")
        if value and target is not None and value >= target:
            raise ValueError(f"must be below sparsity ({target})")
        return value

    @field_validator("end_step")
    @classmethod
    def _end_after_begin(cls, value, info):
        if value is not None and "begin_step" in info.data and value <= info.data["begin_step"]:
            raise ValueError(f"must be greater than begin_step ({info.data['begin_step']})")
        return value


class SparsifyConfig(StageConfig):
    """L1 sparsification: penalty strength, target sparsity, threshold scope and which layers."""

    l1: float = Field(1e-4, gt=0, description="L1 penalty on the selected kernels during fine-tuning")
    sparsity: float = Field(0.5, gt=0, lt=1, description="share of kernel weights set to exact zero afterwards")
    scope: Literal["layer", "global"] = Field(
        "layer", description="layer: each kernel gets the target share of zeros; global: all selected kernels "
                             "share one magnitude threshold")
    layers: tuple[str, ...] = _layers_field()
    layer_types: tuple[str, ...] = _types_field()


def _select(model, config, stage: str) -> list:
    """The layers with weights that `layers` / `layer_types` pick (all of them when both are empty)."""
    present = {layer.name: layer for layer in model.layers}
    for name in config.layers:
        if name not in present:
            near = difflib.get_close_matches(name, list(present), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"stage {stage!r}: layers: no layer named {name!r}{hint}; layers with weights: "
                              f"{', '.join(n for n, l in present.items() if l.weights)}")
        if not present[name].weights:
            raise ConfigError(f"stage {stage!r}: layers: {name!r} ({type(present[name]).__name__}) has no weights")
    classes = {type(layer).__name__ for layer in model.layers}
    missing = [t for t in config.layer_types if t not in classes]
    if missing:
        raise ConfigError(f"stage {stage!r}: layer_types: no layer of type {', '.join(missing)}; "
                          f"the model has {', '.join(sorted(classes))}")
    chosen = [layer for layer in model.layers if layer.weights and (
        not (config.layers or config.layer_types)
        or layer.name in config.layers or type(layer).__name__ in config.layer_types)]
    if not chosen:
        raise ConfigError(f"stage {stage!r}: the selection picks no layer with weights")
    return chosen


def _skip(layer, reason: str) -> dict:
    return {"layer": layer.name, "class": type(layer).__name__, "reason": reason}


def _triage(model, chosen, ctx: StageContext, stage: str, supports):
    """Split `chosen` into layers to transform and user-skipped ones; refuse unsupported layers."""
    names = {layer.name for layer in chosen}
    refuse_unsupported(stage, unsupported_layers(
        model, lambda layer: layer.name not in names or supports(layer), tuple(ctx.skip_layers)))
    skipped = [_skip(layer, "skipped by --skip-layer") for layer in chosen if layer.name in ctx.skip_layers]
    return [layer for layer in chosen if layer.name not in ctx.skip_layers], skipped


def _nothing_left(stage: str, skipped: list[dict]) -> ConfigError:
    listed = "; ".join(f"{s['layer']}: {s['reason']}" for s in skipped)
    return ConfigError(f"stage {stage!r}: no selected layer can be transformed ({listed})")


def _tfmot_supports(layer) -> bool:
    """Whether `prune_low_magnitude` accepts the layer (built-in registry or a PrunableLayer)."""
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    return (isinstance(layer, tfmod.tfmot().sparsity.keras.PrunableLayer)
            or hasattr(layer, "get_prunable_weights") or PruneRegistry.supports(layer))


def _prunes_nothing(layer) -> bool:
    """True for registry layers TF-MOT wraps without pruning anything (DepthwiseConv2D, BatchNormalization)."""
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    custom = hasattr(layer, "get_prunable_weights")
    if custom or not PruneRegistry.supports(layer) or PruneRegistry._is_rnn_layer(layer):
        return False
    return not PruneRegistry._weight_names(layer)


def _zeros(array) -> float:
    return float(np.mean(np.asarray(array) == 0))


@register
class PruneStage(Stage):
    """Magnitude pruning with TF-MOT `prune_low_magnitude`, fine-tuned, then stripped."""

    name = "prune"
    Config = PruneConfig
    family = "pruning"
    order = 1

    def apply(self, model, ctx: StageContext) -> StageResult:
        """Prune a clone of `model` layer by layer and fine-tune it.

        Args:
            model: a plain Sequential or functional tf_keras model (left unchanged).
            ctx: the StageContext (training data and settings, skip_layers).

        Returns:
            A StageResult with the stripped model, the layers left dense and why, and the
            measured share of zeros per pruned kernel.

        Raises:
            ConversionError: a subclassed or nested model, or a selected layer TF-MOT cannot prune.
            ConfigError: a selection or schedule that does not fit the model or the training run.
            DataError: no labelled training data.
        """
        check_plain_model(model, self.name)
        cfg = self.config
        keras, sparsity_api = tfmod.keras(), tfmod.tfmot().sparsity.keras
        targets, skipped = _triage(model, _select(model, cfg, self.name), ctx, self.name, _tfmot_supports)
        skipped += [_skip(layer, f"TF-MOT prunes no weights of {type(layer).__name__}")
                    for layer in targets if _prunes_nothing(layer)]
        problems = [(layer, self._structure_problem(layer) if cfg.structure else None)
                    for layer in targets if not _prunes_nothing(layer)]
        skipped += [_skip(layer, why) for layer, why in problems if why]
        names = [layer.name for layer, why in problems if not why]
        if not names:
            raise _nothing_left(self.name, skipped)

        params = self._pruning_params(sparsity_api, ctx)
        wrapped = keras.models.clone_model(training.clone(model), clone_function=lambda layer: (
            sparsity_api.prune_low_magnitude(layer, **params) if layer.name in names else layer))
        training.fit(wrapped, ctx, callbacks=[sparsity_api.UpdatePruningStep()], description="pruning")
        sparsity = {name: _zeros(np.concatenate([np.ravel(w) for w in layer.get_prunable_weights()]))
                    for name, layer in ((n, wrapped.get_layer(f"prune_low_magnitude_{n}").layer) for n in names)}
        notes = []
        if cfg.structure:
            notes.append(f"{cfg.structure} masks are computed once, at the first fine-tuning step; the schedule "
                         "settings do not apply")
        if ctx.training.patience:
            notes.append("early stopping may end fine-tuning before the target is reached: see the measured sparsity")
        m, n = STRUCTURES.get(cfg.structure, (cfg.sparsity, 1))
        return StageResult(model=training.clone(sparsity_api.strip_pruning(wrapped)), skipped=skipped, notes=notes,
                           metrics={"target_sparsity": m / n, "structure": cfg.structure, "schedule": cfg.schedule,
                                    "end_step": params["pruning_schedule"].end_step, "pruned_layers": names,
                                    "sparsity": sparsity})

    @staticmethod
    def _structure_problem(layer) -> str | None:
        """Why `layer` cannot take 2:4 sparsity along its input channels, or None."""
        cls = type(layer).__name__
        if cls not in STRUCTURED_CLASSES:
            return f"2:4 sparsity applies to {' and '.join(STRUCTURED_CLASSES)} kernels only, not {cls}"
        channels = int(layer.kernel.shape[-2] if cls == "Conv2D" else layer.kernel.shape[0])
        if channels % 4:
            return f"input channels {channels} not a multiple of 4"
        return None

    def _pruning_params(self, sparsity_api, ctx: StageContext) -> dict:
        """The keyword arguments of `prune_low_magnitude`: schedule and structure."""
        cfg = self.config
        (x, _), _ = training.split(ctx.train, ctx.training)
        total = ctx.training.epochs * math.ceil(len(x) / ctx.training.batch_size)
        if cfg.end_step is None:
            # the last step on which the masks are updated, so that the target is reached
            end = cfg.begin_step + (total - cfg.begin_step) // cfg.frequency * cfg.frequency
        else:
            end = cfg.end_step
        if not cfg.structure and (end <= cfg.begin_step or end > total):
            raise ConfigError(
                f"stage {self.name!r}: fine-tuning runs {total} steps ({ctx.training.epochs} epochs of "
                f"{math.ceil(len(x) / ctx.training.batch_size)}), so pruning from step {cfg.begin_step} every "
                f"{cfg.frequency} steps to end_step {cfg.end_step if cfg.end_step else end} cannot reach the "
                "target: lower begin_step, end_step or frequency, or train for more epochs")
        if cfg.structure:
            schedule = sparsity_api.ConstantSparsity(0.5, begin_step=0, frequency=1)
            return {"pruning_schedule": schedule, "sparsity_m_by_n": STRUCTURES[cfg.structure]}
        if cfg.schedule == "polynomial":
            schedule = sparsity_api.PolynomialDecay(cfg.initial_sparsity, cfg.sparsity, cfg.begin_step, end,
                                                    frequency=cfg.frequency)
        else:
            schedule = sparsity_api.ConstantSparsity(cfg.sparsity, cfg.begin_step, end, frequency=cfg.frequency)
        return {"pruning_schedule": schedule}


def _kernel_slot(layer) -> tuple[str, str] | None:
    """(weight attribute, regularizer config key) of the layer's main kernel, or None."""
    try:
        config = layer.get_config()
    except NotImplementedError:
        return None
    for attr, key in (("depthwise_kernel", "depthwise_regularizer"), ("kernel", "kernel_regularizer")):
        if key in config and getattr(layer, attr, None) is not None:
            return attr, key
    return None


@register
class SparsifyStage(Stage):
    """Sparsity by L1 regularisation during fine-tuning, then thresholding to exact zeros."""

    name = "sparsify"
    Config = SparsifyConfig
    family = "pruning"
    order = 1

    def apply(self, model, ctx: StageContext) -> StageResult:
        """Fine-tune a clone of `model` with an L1 penalty, then zero its smallest kernel weights.

        Args:
            model: a plain Sequential or functional tf_keras model (left unchanged).
            ctx: the StageContext (training data and settings, skip_layers).

        Returns:
            A StageResult with a plain model (no regularizers) whose selected kernels hold the
            target share of exact zeros; no fine-tuning follows the thresholding.

        Raises:
            ConversionError: a subclassed or nested model, or a selected layer without a regularizable kernel.
            ConfigError: a selection that does not fit the model.
            DataError: no labelled training data.
        """
        check_plain_model(model, self.name)
        cfg = self.config
        keras = tfmod.keras()
        targets, skipped = _triage(model, _select(model, cfg, self.name), ctx, self.name,
                                   lambda layer: _kernel_slot(layer) is not None)
        if not targets:
            raise _nothing_left(self.name, skipped)
        slots = {layer.name: _kernel_slot(layer) for layer in targets}

        def regularized(layer):
            config = layer.get_config()
            if layer.name in slots:
                config[slots[layer.name][1]] = keras.regularizers.L1(cfg.l1)
            return type(layer).from_config(config)

        base = training.clone(model)
        penalized = keras.models.clone_model(base, clone_function=regularized)
        penalized.set_weights(base.get_weights())
        training.fit(penalized, ctx, description="L1 fine-tuning")
        base.set_weights(penalized.get_weights())   # same architecture, without the regularizers

        variables = {name: getattr(base.get_layer(name), attr) for name, (attr, _) in slots.items()}
        values = {name: var.numpy() for name, var in variables.items()}
        flat = np.concatenate([np.abs(v).ravel() for v in values.values()])
        before = float(np.mean(flat < NEAR_ZERO))
        for name, masked in self._threshold(values).items():
            variables[name].assign(masked)
        return StageResult(model=base, skipped=skipped, notes=[
            "weights were zeroed after fine-tuning, without a second fine-tuning pass"], metrics={
            "l1": cfg.l1, "target_sparsity": cfg.sparsity, "scope": cfg.scope,
            "sparsity_before_threshold": before, "sparsified_layers": list(slots),
            "sparsity": {name: _zeros(variables[name].numpy()) for name in slots}})

    def _threshold(self, values: dict) -> dict:
        """Zero exactly round(sparsity * size) smallest-|w| entries per kernel, or over all kernels."""
        s = self.config.sparsity
        if self.config.scope == "layer":
            groups = [[name] for name in values]
        else:
            groups = [list(values)]
        out = {}
        for names in groups:
            flat = np.concatenate([values[n].ravel() for n in names])
            order = np.argsort(np.abs(flat), kind="stable")
            flat[order[:round(s * flat.size)]] = 0
            offsets = np.cumsum([0] + [values[n].size for n in names])
            for n, start, stop in zip(names, offsets[:-1], offsets[1:]):
                out[n] = flat[start:stop].reshape(values[n].shape)
        return out
