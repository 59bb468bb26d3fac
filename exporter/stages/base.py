"""The Stage contract and registry: Keras → Keras transforms run before conversion.

A stage takes a plain tf_keras model and gives back a plain tf_keras model
(TF-MOT wrappers stripped), working on a clone so the model it was given stays
usable. Each stage has a strict pydantic config, registers under its name
(duplicates are refused), and may refuse a profile or conversion mode it makes
no sense for.

Example:
    >>> stage = get_stage("prune")({"sparsity": 0.8})
    >>> result = stage.apply(model, context)
    >>> result.model          # pruned, stripped, ready to convert
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from exporter.errors import ConfigError, ConversionError, UsageError
from exporter.registry import Registry

BUILTIN_STAGE_MODULES = ("exporter.stages.distill", "exporter.stages.prune", "exporter.stages.cluster",
                         "exporter.stages.qat", "exporter.stages.lowbit")


class StageConfig(BaseModel):
    """Base of every stage config: strict (unknown keys are errors) and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
    """

    train: object
    eval: object
    training: object
    profile: object
    mode: str
    previous: list[str] = field(default_factory=list)
    skip_layers: tuple[str, ...] = ()
    teacher: object = None


@dataclass
class StageResult:
    """A stage's output: the plain model, plus what it skipped and measured on the way."""

    model: object
    skipped: list[dict] = field(default_factory=list)   # {"layer", "class", "reason"}
    notes: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)


STAGES = Registry("stage", key="name", modules=BUILTIN_STAGE_MODULES, error=ConfigError)
register = STAGES.register


def stage_names() -> list[str]:
    """Names of every registered stage."""
    return STAGES.names()


def get_stage(name: str) -> type["Stage"]:
    """Return the Stage class called `name`.

    Raises:
        ConfigError: unknown stage, listing the known ones with the nearest first.
    """
    return STAGES.get(name)


class Stage(ABC):
    """A Keras → Keras transform. Subclasses set the class attributes and implement `apply`.

    Class attributes:
        name: registry name (the recipe's `type`).
        Config: the StageConfig subclass.
        family: "distillation", "pruning", "clustering" or "quantization".
        order: position in a recipe: distill 0 < prune/sparsify 1 < cluster 2 < qat/lowbit 3.
        needs_training: True when the stage fine-tunes (needs `--train`).
        int8_only: True when the stage only makes sense before full-integer int8 conversion.
    """

    name: ClassVar[str]
    Config: ClassVar[type[StageConfig]]
    family: ClassVar[str]
    order: ClassVar[int]
    needs_training: ClassVar[bool] = True
    int8_only: ClassVar[bool] = False

    def __init__(self, config: dict | StageConfig | None = None):
        if isinstance(config, StageConfig):
            self.config = config
            return
        try:
            self.config = self.Config.model_validate(config or {})
        except ValidationError as exc:
            details = "; ".join(
                ("{}: ".format(".".join(str(p) for p in e["loc"])) if e["loc"] else "")
                + ("unknown key" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, "))
                for e in exc.errors())
            raise ConfigError(f"stage {self.name!r}: {details}") from None

    def check_profile(self, profile, mode: str, previous: list[str]) -> None:
        """Refuse, with the reason, a stage that makes no sense for this profile or mode.

        Raises:
            UsageError: e.g. QAT followed by float16 conversion.
        """
        if self.int8_only and mode != "int8":
            raise UsageError(f"stage {self.name!r} trains for int8 inference, but the conversion mode is {mode}: "
                             "use --quantize int8 (or drop the stage)")

    @abstractmethod
    def apply(self, model, ctx: StageContext) -> StageResult:
        """Transform a clone of `model`; return a plain (stripped) tf_keras model."""

    def to_spec(self) -> dict:
        """The stage as a recipe entry: {"type": name, "config": {...}}."""
        return {"type": self.name, "config": self.config.model_dump(mode="json")}


def check_plain_model(model, stage: str) -> None:
    """Refuse subclassed and nested models, which TF-MOT cannot clone or wrap.

    Raises:
        ConversionError: naming the subclass or the nested model.
    """
    from exporter import tf as tfmod

    keras = tfmod.keras()
    if not getattr(model, "_is_graph_network", False) and not isinstance(model, keras.Sequential):
        raise ConversionError(
            f"stage {stage!r}: {type(model).__name__} is a subclassed model; TF-MOT can only transform "
            "Sequential and functional models. Rebuild it with the functional API (same layers) and export again")
    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:
        raise ConversionError(
            f"stage {stage!r}: the model nests other models ({', '.join(nested)}); TF-MOT cannot wrap layers "
            "inside them. Flatten it into one functional model (e.g. rebuild from the inner layers) and export again")


def unsupported_layers(model, supports, skip: tuple[str, ...]) -> list[dict]:
    """Layers with weights that `supports(layer)` rejects and that the user did not skip."""
    return [{"layer": layer.name, "class": type(layer).__name__}
            for layer in model.layers
            if layer.weights and layer.name not in skip and not supports(layer)]


def refuse_unsupported(stage: str, bad: list[dict]) -> None:
    """Raise one message naming every unsupported layer and the flag that skips it."""
    if bad:
        listed = ", ".join(f"{b['layer']} ({b['class']})" for b in bad)
        flags = " ".join(f"--skip-layer {b['layer']}" for b in bad)
        raise ConversionError(f"stage {stage!r} cannot handle these layers: {listed}. "
                              f"Skip them with {flags} (or `skip_layers` in the recipe)")
