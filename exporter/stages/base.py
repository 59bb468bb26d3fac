"""The Stage contract, registry and shared vocabulary: families, layer selection, finite configs.

A stage takes a plain tf_keras model and gives back a plain tf_keras model (TF-MOT wrappers
stripped), working on a clone so the model it was given stays usable. Each stage has a strict
pydantic config (`StageConfig`: unknown keys, NaN and infinities refused), registers under its
name (duplicates are refused), belongs to a `Family` that fixes its place in a recipe, picks its
layers with `LayerSelection` and `select_layers` (exporter/stages/selection.py, re-exported here),
and may refuse a profile or conversion mode it makes no sense for. TF-MOT internals are reached
only through exporter/stages/tfmot_shim.py.

Example:
    >>> stage = get_stage("prune")({"sparsity": 0.8, "skip_layers": ["conv2d"]})
    >>> stage.family, stage.needs_training
    (<Family.PRUNE: 1>, True)
    >>> result = stage.apply(model, ctx)           # the demo CNN: pruned, stripped, ready to convert
    >>> type(result.model).__name__, [s["layer"] for s in result.skipped]
    ('Sequential', ['conv2d'])
    >>> get_stage("prnue")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    exporter.errors.ConfigError: unknown stage 'prnue'. Did you mean 'prune'? ...
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

from pydantic import ValidationError

from exporter.errors import ConfigError, ConversionError, UsageError
from exporter.option_names import option
from exporter.registry import Registry
from exporter.stages.config import StageConfig
from exporter.stages.selection import (GLOBAL_SKIP, LayerSelection, check_selection, nothing_left,
                                       refuse_unsupported, select_layers, skip_entry)
from exporter.validation import validation_lines

__all__ = ["GLOBAL_SKIP", "Family", "LayerSelection", "STAGES", "Stage", "StageConfig",
           "StageContext", "StageResult", "check_plain_model", "check_selection", "family_order", "family_ran",
           "get_stage", "nothing_left", "refuse_unsupported", "register", "select_layers", "skip_entry",
           "stage_names"]

class Family(IntEnum):
    """What a stage does; the value is its place in a recipe: distill 0 → prune 1 → cluster 2 → quantize 3.

    A recipe may hold several stages of one family unless it is `exclusive` (two quantizers would fight).
    """

    DISTILL = 0
    PRUNE = 1
    CLUSTER = 2
    QUANTIZE = 3

    @property
    def verb(self) -> str:
        """What the family's stages do, for messages.

        Returns:
            "distil", "prune", "cluster" or "quantize".
        """
        return ("distil", "prune", "cluster", "quantize")[self]

    @property
    def exclusive(self) -> bool:
        """Whether a recipe may hold at most one stage of this family.

        Returns:
            True for QUANTIZE (qat and lowbit both fake-quantize the weights).
        """
        return self is Family.QUANTIZE


@dataclass
class StageContext:
    """What a stage may use: data, training settings, the profile and what ran before.

    Attributes:
        train: training Dataset with labels (fine-tuning), or None.
        eval: evaluation Dataset, or None.
        training: a `TrainingConfig`.
        profile: the resolved DeviceProfile.
        mode: the conversion mode that follows (float32 | float16 | dynamic | int8).
        previous: names of the stages already applied, in order.
        skip_layers: layer names the user asked every stage to leave alone.
        teacher: the original model (for distillation).
        io: the original model's IOSignature (exporter/io_names.py): names and label output of its .tflite.
    """

    train: object
    eval: object
    training: object
    profile: object
    mode: str
    previous: list[str] = field(default_factory=list)
    skip_layers: tuple[str, ...] = ()
    teacher: object = None
    io: object = None


@dataclass
class StageResult:
    """A stage's output: the plain model, plus what it skipped and measured on the way."""

    model: object
    skipped: list[dict] = field(default_factory=list)   # {"layer", "class", "reason"}
    notes: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)


STAGES = Registry("stage", key="name", group="edgex.stages", base="exporter.stages.base:Stage", error=ConfigError)
register = STAGES.register


def stage_names() -> list[str]:
    """Names of every registered stage.

    Returns:
        The names, sorted (read from the `edgex.stages` entry points: no stage module is imported).
    """
    return STAGES.names()


def get_stage(name: str) -> type["Stage"]:
    """Return the Stage class called `name`.

    Args:
        name: a registered name (a recipe's `type`).

    Returns:
        The Stage subclass.

    Raises:
        ConfigError: unknown stage, listing the known ones with the nearest first.
    """
    return STAGES.get(name)


def family_ran(family: Family, previous: list[str]) -> bool:
    """Whether a stage of `family` ran before, e.g. "did a PRUNE-family stage run before qat?".

    Args:
        family: the family asked about.
        previous: registered stage names, e.g. `StageContext.previous`.

    Returns:
        True when one of them belongs to `family`.

    Raises:
        ConfigError: a name no stage is registered under.
    """
    return any(get_stage(name).family is family for name in previous)


def family_order() -> str:
    """The order of a recipe, by family, naming the registered stages of each.

    Returns:
        e.g. "distill → prune/sparsify → cluster → lowbit/qat".
    """
    classes = [get_stage(name) for name in stage_names()]
    groups = ["/".join(c.name for c in classes if c.family is f) for f in Family]
    return " → ".join(g for g in groups if g)


class Stage(ABC):
    """A Keras → Keras transform. Subclasses set the class attributes and implement `apply`.

    Class attributes:
        name: registry name (the recipe's `type`).
        Config: the StageConfig subclass (a `LayerSelection` subclass when the stage picks layers).
        family: the `Family`, which fixes the stage's place in a recipe.
        weighted_only: the selection considers only layers with weights (False: every layer).
        needs_training: True when the stage fine-tunes (needs `--train`).
        int8_only: True when the stage only makes sense before full-integer int8 conversion.
    """

    name: ClassVar[str]
    Config: ClassVar[type[StageConfig]]
    family: ClassVar[Family]
    weighted_only: ClassVar[bool] = True
    needs_training: ClassVar[bool] = True
    int8_only: ClassVar[bool] = False

    def __init__(self, config: dict | StageConfig | None = None):
        """Validate `config` (a mapping; a `StageConfig` is taken as it is).

        Args:
            config: the stage's settings; None or {} gives the defaults.

        Raises:
            ConfigError: one line per problem: `stage 'name': field: what is wrong`.
        """
        if isinstance(config, StageConfig):
            self.config = config
            return
        try:
            self.config = self.Config.model_validate(config or {})
        except ValidationError as exc:
            raise ConfigError("\n".join(validation_lines(exc, f"stage {self.name!r}"))) from None

    def check_profile(self, profile, mode: str, previous: list[str]) -> None:
        """Refuse, with the reason, a stage that makes no sense for this profile or mode.

        Args:
            profile: the resolved DeviceProfile.
            mode: the conversion mode that follows.
            previous: names of the stages that run before this one.

        Raises:
            UsageError: e.g. QAT followed by float16 conversion.
        """
        if self.int8_only and mode != "int8":
            raise UsageError(f"stage {self.name!r} trains for int8 inference, but the conversion mode is {mode}: "
                             f"use {option('quantize', 'int8')} (or drop the stage)")

    def check_model(self, model, ctx: StageContext) -> None:
        """Refuse, before any stage runs, a selection naming layers or classes `model` lacks.

        Args:
            model: the model the export starts from.
            ctx: the StageContext (its `skip_layers` are checked too).

        Raises:
            ConfigError: see `check_selection`; stages without a LayerSelection check nothing.
        """
        if isinstance(self.config, LayerSelection):
            check_selection(model, self.config, ctx.skip_layers, stage=self.name, weighted=self.weighted_only)

    def select(self, model, supports: Callable[[object], bool | str], ctx: StageContext) -> tuple[list, list[dict]]:
        """`select_layers` with this stage's config, name and `weighted_only`.

        Args:
            model: the model (or the stage's working clone) to select from.
            supports: the stage's verdict on one layer: True, a reason to leave it alone, or False.
            ctx: the StageContext.

        Returns:
            (layers to transform, skipped entries).

        Raises:
            ConfigError: unknown names or classes, or nothing left to transform.
            ConversionError: layers the stage cannot handle and nobody skipped.
        """
        return select_layers(model, self.config, supports, ctx, stage=self.name, weighted=self.weighted_only)

    @abstractmethod
    def apply(self, model, ctx: StageContext) -> StageResult:
        """Transform a clone of `model`.

        Args:
            model: a plain tf_keras model (left usable).
            ctx: the StageContext.

        Returns:
            A StageResult holding a plain (stripped) tf_keras model.
        """

    def to_spec(self) -> dict:
        """The stage as a recipe entry.

        Returns:
            {"type": name, "config": the config as JSON-ready values}.
        """
        return {"type": self.name, "config": self.config.model_dump(mode="json")}


def check_plain_model(model, stage: str) -> None:
    """Refuse subclassed and nested models, which TF-MOT cannot clone or wrap.

    Args:
        model: the model a stage was given.
        stage: the stage's name, for messages.

    Raises:
        ConversionError: naming the subclass or the nested model.
    """
    from exporter import tf as tfmod
    from exporter.stages.tfmot_shim import is_graph_network

    keras = tfmod.keras()
    if not is_graph_network(model) and not isinstance(model, keras.Sequential):
        raise ConversionError(
            f"stage {stage!r}: {type(model).__name__} is a subclassed model; TF-MOT can only transform "
            "Sequential and functional models. Rebuild it with the functional API (same layers) and export again")
    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:
        raise ConversionError(
            f"stage {stage!r}: the model nests other models ({', '.join(nested)}); TF-MOT cannot wrap layers "
            "inside them. Flatten it into one functional model (e.g. rebuild from the inner layers) and export again")
