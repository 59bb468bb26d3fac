"""Pruning stages: magnitude pruning with TF-MOT (`prune`) and L1 sparsification (`sparsify`).

`prune` wraps the selected layers in TF-MOT's `prune_low_magnitude`, fine-tunes
with `UpdatePruningStep` while a schedule raises the share of zeroed weights to
the target (or keeps 2 of every 4 input-channel weights with `structure: "2:4"`),
then strips the wrappers. `sparsify` fine-tunes with an L1 penalty on the selected
kernels, then sets the smallest-magnitude fraction of each kernel (or of all of
them, `scope: global`) to exact zeros. Both leave a plain tf_keras model.

Example:
    >>> result = PruneStage({"sparsity": 0.8}).apply(model, ctx)      # the demo CNN, 1 epoch
    >>> {name: round(share, 2) for name, share in result.metrics["sparsity"].items()}   # measured zeros
    {'conv2d': 0.8, 'conv2d_1': 0.8, 'dense': 0.8, 'probs': 0.8}
    >>> [type(layer).__name__ for layer in result.model.layers]     # plain layers: wrappers stripped
    ['Conv2D', 'Conv2D', 'MaxPooling2D', 'Flatten', 'Dense', 'Dense']
"""
from __future__ import annotations

import math
import re
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from exporter import tf as tfmod
from exporter.errors import ConfigError
from exporter.stages import tfmot_shim, training
from exporter.stages.base import Family, LayerSelection, Stage, StageContext, StageResult, check_plain_model, register

STRUCTURES = {"2:4": (2, 4)}          # what TF-MOT documents and sparse kernels accelerate
STRUCTURED_CLASSES = ("Conv2D", "Dense")  # kernels TF-MOT's m-by-n rearrangement maps onto TFLite's layout
NEAR_ZERO = 1e-3                      # |w| below this counts as "already zero" after L1 training


class PruneConfig(LayerSelection):
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

    @field_validator("structure")
    @classmethod
    def _known_structure(cls, value):
        """Only the structures in STRUCTURES."""
        if value is not None and value not in STRUCTURES:
            shape = "" if re.fullmatch(r"\d+:\d+", value) else ' (write it as "M:N")'
            raise ValueError(f"unsupported structure {value!r}{shape}; supported: {', '.join(STRUCTURES)}")
        return value

    @field_validator("sparsity")
    @classmethod
    def _sparsity_fits_structure(cls, value, info):
        """sparsity is required without a structure, and fixed (M/N) by one."""
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
        """initial_sparsity below sparsity."""
        target = info.data.get("sparsity")
        if value and target is not None and value >= target:
            raise ValueError(f"must be below sparsity ({target})")
        return value

    @field_validator("end_step")
    @classmethod
    def _end_after_begin(cls, value, info):
        """end_step after begin_step."""
        if value is not None and "begin_step" in info.data and value <= info.data["begin_step"]:
            raise ValueError(f"must be greater than begin_step ({info.data['begin_step']})")
        return value


class SparsifyConfig(LayerSelection):
    """L1 sparsification: penalty strength, target sparsity, threshold scope and which layers."""

    l1: float = Field(1e-4, gt=0, description="L1 penalty on the selected kernels during fine-tuning")
    sparsity: float = Field(0.5, gt=0, lt=1, description="share of kernel weights set to exact zero afterwards")
    scope: Literal["layer", "global"] = Field(
        "layer", description="layer: each kernel gets the target share of zeros; global: all selected kernels "
                             "share one magnitude threshold")


def _prunable(layer) -> bool:
    """Whether `prune_low_magnitude` accepts the layer (a PrunableLayer, or a class TF-MOT's registry knows)."""
    return (isinstance(layer, tfmod.tfmot().sparsity.keras.PrunableLayer)
            or hasattr(layer, "get_prunable_weights") or tfmot_shim.registry_supports(layer, "prune"))


def _zeros(array) -> float:
    """The share of exact zeros in `array`."""
    return float(np.mean(np.asarray(array) == 0))


@register
class PruneStage(Stage):
    """Magnitude pruning with TF-MOT `prune_low_magnitude`, fine-tuned, then stripped."""

    name = "prune"
    Config = PruneConfig
    family = Family.PRUNE

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
        targets, skipped = self.select(model, self._judge, ctx)
        names = [layer.name for layer in targets]

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

    def _judge(self, layer) -> bool | str:
        """`select_layers`' verdict: True, prune; a reason, leave it dense; False, TF-MOT cannot wrap it."""
        if not _prunable(layer):
            return False
        if tfmot_shim.prunes_nothing(layer):
            return f"TF-MOT prunes no weights of {type(layer).__name__}"
        problem = self._structure_problem(layer) if self.config.structure else None
        return problem or True

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
        (_, y), _ = training.split(ctx.train, ctx.training)
        total = ctx.training.epochs * math.ceil(len(y) / ctx.training.batch_size)
        if cfg.end_step is None:
            # the last step on which the masks are updated, so that the target is reached
            end = cfg.begin_step + (total - cfg.begin_step) // cfg.frequency * cfg.frequency
        else:
            end = cfg.end_step
        if not cfg.structure and (end <= cfg.begin_step or end > total):
            raise ConfigError(
                f"stage {self.name!r}: fine-tuning runs {total} steps ({ctx.training.epochs} epochs of "
                f"{math.ceil(len(y) / ctx.training.batch_size)}), so pruning from step {cfg.begin_step} every "
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
    family = Family.PRUNE

    def apply(self, model, ctx: StageContext) -> StageResult:
        """Fine-tune a clone of `model` with an L1 penalty, then zero its smallest kernel weights.

        Args and errors as for `PruneStage.apply`, and:

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
        targets, skipped = self.select(model, lambda layer: _kernel_slot(layer) is not None, ctx)
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
