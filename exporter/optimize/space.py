"""The search space of `edgex optimize`: which stages and settings a trial may pick, from the profile and the model.

One field per dimension, each a list of choices (the string "none" turns a stage off). `default_space` builds
it from the device profile (the quantization modes and weight bit-widths it allows, TFLM compression on
microcontrollers), the model's most sensitive layers (exporter/optimize/sensitivity.py) and whether training
data is there (distillation needs it); a `--space` YAML file narrows or widens it (`load_space`), validated
as strictly as a recipe. `suggest` samples one trial's parameters with Optuna's define-by-run API; `plan_for`
turns them into the recipe a trial exports with (a pure function: the same parameters give the same plan).

Parameters a trial records (only those that apply: a conditional parameter is not sampled when it
cannot matter, so Optuna never sees a value that changes nothing):
    quantize       conversion mode, from `profile.quantization.allowed` (int16x8 where the runtime has 16x8
                   kernels and the profile allows it: the LiteRT profiles, android and linux).
    distill        student width multiplier, or "none" (only with training data).
    prune          target sparsity, "none", or "2:4" (structured; only in `structured`'s targets or by --space).
    cluster        shared values per kernel, or "none".
    weight_bits    4, 2, 1 (the lowbit stage) or 8 (none); int8 only.
    qat            quantization-aware training on/off; int8 with 8-bit weights only (both quantize weights).
    compress       TFLM weight compression (microcontroller target option).
    skip:<layer>   leave this sensitive layer out of pruning and clustering (when either runs).
    float:<layer>  keep this sensitive layer in float in the int8 model (int8 without qat, on targets whose
                   runtime mixes float and int8 ops: `Target.float_layers`, android and linux).

Settings a trial takes from the space, not searched: `distill_epochs`, `cluster_per_channel` and `strip_names`
(on by default: the trial's .tflite loses its inner tensor names, which changes no output; exporter/tensor_names.py).
`warm_start` (on by default) makes a new study's first trials the space's smallest corner
(exporter/optimize/warm_start.py).

Example:
    >>> from exporter.profile import load_profile
    >>> space = default_space(load_profile("arduino-nano-33-ble"), None, has_train=True,
    ...                       sensitivity=[{"layer": "dense"}, {"layer": "probs"}])
    >>> space.quantize, space.compress, space.skip_layers, space.float_layers    # no float layers on an MCU
    (('int8',), (True,), ('dense', 'probs'), ())
    >>> plan = plan_for(space, {"quantize": "int8", "prune": 0.8, "cluster": 16, "weight_bits": 8, "qat": True,
    ...                         "skip:dense": True}, number=0, epochs=1, seed=7)
    >>> [(s["type"], s["config"]) for s in plan.recipe["stages"]]  # doctest: +NORMALIZE_WHITESPACE
    [('prune', {'sparsity': 0.8, 'skip_layers': ['dense']}),
     ('cluster', {'clusters': 16, 'per_channel': 'auto', 'skip_layers': ['dense']}), ('qat', {})]
    >>> phone = default_space(load_profile("android-arm64-midrange"), None, has_train=False,
    ...                       sensitivity=[{"layer": "dense"}, {"layer": "probs"}])
    >>> phone.float_layers
    ('dense', 'probs')
    >>> plan_for(phone, {"quantize": "int8", "float:dense": False, "float:probs": True}, number=1, epochs=1,
    ...          seed=7).recipe["float_layers"]
    ['probs']
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exporter.errors import ConfigError
from exporter.optimize.plan import TrialPlan
from exporter.profile import QuantMode
from exporter.stages.distill import DEFAULT_EPOCHS as DISTILL_EPOCHS
from exporter.validation import validation_lines

NONE = "none"
STRUCTURED_SPARSITY_TARGETS: dict[str, str] = {}
"""target name -> why its runtime runs 2:4 sparse weights faster or smaller; `default_space` offers "2:4" there.

Empty today: LiteRT's XNNPACK on Arm CPUs (android, linux) and TFLM (microcontroller) run a 2:4-pruned
kernel as a dense one, and neither the Edge TPU compiler nor Vela (Ethos-U) packs 2:4 blocks, so 2:4 only
costs accuracy next to unstructured sparsity of the same share. A --space file can still add "2:4" to `prune`.
"""
COMPRESS_TARGETS = {"microcontroller"}
"""Targets whose `compress` option (TFLM weight compression) a trial sets."""
SKIP_PREFIX = "skip:"
FLOAT_PREFIX = "float:"
TOP_K = 3
"""How many of the most sensitive layers get a skip:<layer> (and, where allowed, a float:<layer>) choice by default."""


class SearchSpace(BaseModel):
    """The choices of every dimension of a search (see the module docstring for what each parameter does)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quantize: tuple[QuantMode, ...] = Field(..., min_length=1, description="conversion modes to try")
    distill: tuple[Literal["none"] | float, ...] = Field(
        (NONE,), description='student width multipliers (0 < w <= 1) or "none"; needs training data')
    distill_epochs: int = Field(DISTILL_EPOCHS, ge=1, le=1000, description="epochs a distilled student trains for")
    prune: tuple[Literal["none", "2:4"] | float, ...] = Field(
        (NONE,), description='pruning sparsities (0 < s < 1), "none", or "2:4" structured sparsity')
    cluster: tuple[Literal["none"] | int, ...] = Field(
        (NONE,), description='shared values per clustered kernel (2..256) or "none"')
    cluster_per_channel: Literal["auto"] | bool = Field(
        "auto", description="the cluster stage's per_channel (exporter/stages/cluster_mode.py)")
    weight_bits: tuple[Literal[8, 4, 2, 1], ...] = Field(
        (8,), description="weight bit-widths for int8 models (8: no lowbit stage)")
    qat: tuple[bool, ...] = Field((False,), description="quantization-aware training off/on (int8, 8-bit weights)")
    compress: tuple[bool, ...] = Field((), description="TFLM weight compression (microcontroller); empty: not set")
    skip_layers: tuple[str, ...] = Field(
        (), description="layers that each get a skip:<layer> choice: left out of pruning and clustering")
    float_layers: tuple[str, ...] = Field(
        (), description="layers that each get a float:<layer> choice: kept in float in an int8 model (android, "
                        "linux: targets whose runtime mixes float and int8 ops)")
    strip_names: bool = Field(True, description="every trial's .tflite without its inner tensors' names (a "
                              "setting, not searched: it changes no output, only shrinks the model)")
    warm_start: bool = Field(True, description="a new study's first trials are the space's smallest corner, once "
                             "per distillation width (exporter/optimize/warm_start.py)")

    @field_validator("distill", "prune", "cluster", mode="before")
    @classmethod
    def _null_is_none(cls, value):
        """YAML's `null` (or `~`) in a list of choices means "none"."""
        return [NONE if v is None else v for v in value] if isinstance(value, (list, tuple)) else value

    @field_validator("distill")
    @classmethod
    def _widths(cls, value):
        for v in value:
            if v != NONE and not 0 < v <= 1:
                raise ValueError(f"a width multiplier is in (0, 1], got {v}")
        return _distinct(value)

    @field_validator("prune")
    @classmethod
    def _sparsities(cls, value):
        for v in value:
            if isinstance(v, float) and not 0 < v < 1:
                raise ValueError(f"a sparsity is in (0, 1), got {v}")
        return _distinct(value)

    @field_validator("cluster")
    @classmethod
    def _clusters(cls, value):
        for v in value:
            if v != NONE and not 2 <= v <= 256:
                raise ValueError(f"clusters are 2..256, got {v}")
        return _distinct(value)

    @field_validator("quantize", "weight_bits", "qat", "compress", "skip_layers", "float_layers")
    @classmethod
    def _unique(cls, value):
        return _distinct(value)

    def to_dict(self) -> dict:
        """The space as JSON-ready values (what a study's fingerprint hashes)."""
        return self.model_dump(mode="json")


def _distinct(value: tuple) -> tuple:
    """Refuse a choice listed twice (Optuna's categorical choices are a set)."""
    seen = [repr(v) for v in value]
    doubled = sorted({s for s in seen if seen.count(s) > 1})
    if doubled:
        raise ValueError(f"listed more than once: {', '.join(doubled)}")
    return value


def default_space(profile, model_info, has_train: bool, sensitivity: list | None) -> SearchSpace:
    """The search space for `profile` and a model, before any --space file.

    Args:
        profile: the resolved DeviceProfile.
        model_info: the model's description (`sensitivity.model_info`), or None; a model with no Conv2D
            layers gets no per-channel clustering question, nothing else depends on it today.
        has_train: training data is given: fine-tuning stages (prune, cluster, qat, lowbit, distill) can run.
        sensitivity: the rows of `sensitivity.sensitivity` (most sensitive first), or None.

    Returns:
        The SearchSpace: without training data, only the conversion mode (and TFLM compression, and float layers)
        is searched.
    """
    from targets.base import get_target

    quant = profile.quantization
    compress = (True,) if profile.target in COMPRESS_TARGETS else ()
    top = tuple(row["layer"] for row in (sensitivity or [])[:TOP_K])
    floats = top if get_target(profile.target).float_layers else ()
    if not has_train:
        return SearchSpace(quantize=quant.allowed, compress=compress, float_layers=floats)
    prune = (NONE, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97)
    if profile.target in STRUCTURED_SPARSITY_TARGETS:
        prune = (*prune, "2:4")
    return SearchSpace(
        quantize=quant.allowed, distill=(NONE, 0.25, 0.5, 0.75), prune=prune, cluster=(NONE, 4, 8, 16, 32),
        weight_bits=tuple(sorted(set(quant.weight_bits) | {8}, reverse=True)), qat=(False, True),
        compress=compress, skip_layers=top, float_layers=floats)


def load_space(path, base: SearchSpace) -> SearchSpace:
    """A --space YAML file applied to `base`: each key it names replaces that dimension's choices.

    Args:
        path: the YAML file (a mapping of SearchSpace fields; at most 1 MiB, read like recipes).
        base: the default space (`default_space`).

    Returns:
        The validated space.

    Raises:
        ConfigError: unreadable or unsafe YAML, not a mapping, unknown keys, bad choices (exit 2).
    """
    from exporter.safe_read import load_yaml_file

    data = load_yaml_file(Path(path), what="search space")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a search space is a mapping of dimensions to their choices, e.g. "
                          "`prune: [none, 0.8, 0.9]`")
    try:
        return SearchSpace.model_validate({**base.model_dump(), **data})
    except ValidationError as exc:
        raise ConfigError("invalid search space\n  " + "\n  ".join(validation_lines(exc, str(path)))) from None


def check_float_layers(space: SearchSpace, target, layers: list[str], origin: str) -> None:
    """Refuse a space whose float_layers the target cannot run or the model does not have (before any trial).

    Args:
        space: the chosen SearchSpace.
        target: the Target (its `float_layers` says whether its runtime mixes float and int8 ops).
        layers: the names of the model's layers.
        origin: where the space came from, for messages (the --space file).

    Raises:
        ConfigError: naming the target and the targets that allow float layers, or the unknown names (exit 2).
    """
    from exporter.stages.float_layers import float_targets

    if space.float_layers and not target.float_layers:
        raise ConfigError(f"{origin}: float_layers: target {target.name} runs int8 models whole ({target.runtime}); "
                          f"float layers are searched on {float_targets()}")
    unknown = [name for name in space.float_layers if name not in layers]
    if unknown:
        raise ConfigError(f"{origin}: float_layers: no layer named {', '.join(map(repr, unknown))}; the model's "
                          f"layers: {', '.join(layers)}")


def suggest(space: SearchSpace, trial) -> dict:
    """Sample one trial's parameters (Optuna define-by-run: `trial.suggest_categorical`).

    Args:
        space: the SearchSpace.
        trial: an `optuna.Trial` (from `study.ask()`).

    Returns:
        The parameters by name, only those that apply (see the module docstring).
    """
    pick = trial.suggest_categorical
    params = {"quantize": pick("quantize", list(space.quantize))}
    for name in ("distill", "prune", "cluster"):
        choices = getattr(space, name)
        if choices != (NONE,):
            params[name] = pick(name, list(choices))
    if params["quantize"] == "int8":
        if space.weight_bits != (8,):
            params["weight_bits"] = pick("weight_bits", list(space.weight_bits))
        if params.get("weight_bits", 8) == 8 and space.qat != (False,):
            params["qat"] = pick("qat", list(space.qat))
        if not params.get("qat"):            # a qat model converts with its learned ranges, every layer int8
            for layer in space.float_layers:
                params[FLOAT_PREFIX + layer] = pick(FLOAT_PREFIX + layer, [False, True])
    if space.compress:
        params["compress"] = pick("compress", list(space.compress))
    if params.get("prune", NONE) != NONE or params.get("cluster", NONE) != NONE:
        for layer in space.skip_layers:
            params[SKIP_PREFIX + layer] = pick(SKIP_PREFIX + layer, [False, True])
    return params


def plan_for(space: SearchSpace, params: dict, number: int, epochs: int, seed: int,
             batch_size: int = 32) -> TrialPlan:
    """The plan of one trial: its parameters made into a recipe, a conversion mode and target options.

    Pure: the same arguments give the same plan (on the driver and in any worker).

    Args:
        space: the SearchSpace (distill epochs, per-channel clustering).
        params: from `suggest` (or a study's stored trial); a missing parameter means its stage is off.
        number: the trial number.
        epochs: fine-tuning epochs per stage.
        seed: the training seed.
        batch_size: the fine-tuning batch size (default 32).

    Returns:
        The TrialPlan (its recipe validates as an `exporter.recipe.Recipe`).
    """
    skip = [name[len(SKIP_PREFIX):] for name, on in params.items() if name.startswith(SKIP_PREFIX) and on]
    stages = _distill(space, params.get("distill", NONE))
    stages += _prune(params.get("prune", NONE), skip)
    stages += _cluster(space, params.get("cluster", NONE), params.get("prune", NONE) != NONE, skip)
    bits = params.get("weight_bits", 8)
    if bits != 8:
        stages.append({"type": "lowbit", "config": {"bits": bits}})
    elif params.get("qat"):
        stages.append({"type": "qat", "config": {}})
    mode = params.get("quantize")
    recipe = {"stages": stages, "training": {"epochs": epochs, "seed": seed, "batch_size": batch_size},
              "quantize": mode}
    floats = [name[len(FLOAT_PREFIX):] for name, on in params.items() if name.startswith(FLOAT_PREFIX) and on]
    if floats:
        recipe["float_layers"] = floats
    if space.strip_names:
        recipe["strip_names"] = True
    options = {"compress": params["compress"]} if "compress" in params else {}
    return TrialPlan(number=number, params=dict(params), recipe=recipe, quantize=mode, target_options=options)


def _distill(space: SearchSpace, width) -> list[dict]:
    """The distill stage of a width (none for "none")."""
    if width == NONE:
        return []
    return [{"type": "distill", "config": {"width": width, "epochs": space.distill_epochs}}]


def _prune(sparsity, skip: list[str]) -> list[dict]:
    """The prune stage of a sparsity or "2:4" (none for "none")."""
    if sparsity == NONE:
        return []
    config = {"structure": "2:4", "schedule": "constant"} if sparsity == "2:4" else {"sparsity": sparsity}
    return [{"type": "prune", "config": {**config, **({"skip_layers": skip} if skip else {})}}]


def _cluster(space: SearchSpace, clusters, pruned: bool, skip: list[str]) -> list[dict]:
    """The cluster stage (none for "none").

    After pruning, the stage keeps pruned zeros (one centroid is zero), which needs 3+ clusters: with 2
    clusters after pruning the zeros are not preserved (`preserve_sparsity: false`), so no combination
    of the space is refused by the stage.
    """
    if clusters == NONE:
        return []
    config = {"clusters": clusters, "per_channel": space.cluster_per_channel}
    if pruned and clusters <= 2:
        config["preserve_sparsity"] = False
    if skip:
        config["skip_layers"] = skip
    return [{"type": "cluster", "config": config}]
