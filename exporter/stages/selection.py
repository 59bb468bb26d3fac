"""Which layers a stage transforms: one config fragment and one function for every stage.

`LayerSelection` is the fragment each layer-selecting stage config extends (like NNCF's
targeting schema spread into every algorithm); `select_layers` applies it with the same rules
everywhere (see its docstring); each stage only says what it can do with one layer.

Example:
    >>> from exporter.stages.prune import PruneConfig
    >>> chosen, skipped = select_layers(model, PruneConfig(sparsity=0.5, skip_layers=("conv2d",)),
    ...                                 lambda layer: True, ctx, stage="prune")    # the demo CNN
    >>> [layer.name for layer in chosen]
    ['conv2d_1', 'dense', 'probs']
    >>> skipped
    [{'layer': 'conv2d', 'class': 'Conv2D', 'reason': "in the skip_layers of stage 'prune'"}]
    >>> select_layers(model, PruneConfig(sparsity=0.5, layers=("dens",)), lambda layer: True, ctx,
    ...               stage="prune")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    exporter.errors.ConfigError: stage 'prune': layers: no layer named 'dens' (did you mean 'dense'?); ...
"""
from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import Field

from exporter.errors import ConfigError, ConversionError
from exporter.option_names import option, spelled
from exporter.stages.config import StageConfig

if TYPE_CHECKING:
    from exporter.stages.base import StageContext

GLOBAL_SKIP = "skipped by --skip-layer"
Support = Callable[[object], "bool | str"]


class LayerSelection(StageConfig):
    """Which layers a stage transforms: the fragment every layer-selecting stage config extends.

    prune, sparsify, cluster, qat and lowbit configs are LayerSelections; the rules are
    those of `select_layers`. Names and classes are checked against the model when the
    stage runs (or, in an export, before the first stage runs).
    """

    layers: tuple[str, ...] = Field(
        (), description="names of the layers to transform; a layer named here or of a class in layer_types is "
                        "selected; both empty: every layer with weights (qat: every layer)")
    layer_types: tuple[str, ...] = Field((), description='layer class names to transform, e.g. ["Conv2D", "Dense"]')
    skip_layers: tuple[str, ...] = Field(
        (), description="names of layers this stage leaves alone (the recipe's skip_layers / --skip-layer apply to "
                        "every stage)")


def _named(unknown: list[str], known: list[str]) -> str:
    """`'dens' (did you mean 'dense'?), 'x'`: the unknown names, each with its nearest known one."""
    out = []
    for name in unknown:
        near = difflib.get_close_matches(name, known, n=1)
        out.append(f"{name!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    return ", ".join(out)


def check_selection(model, selection: LayerSelection, global_skip, *, stage: str, weighted: bool = True) -> None:
    """Step 1 of `select_layers`: every name and class the selection uses must be in `model`.

    Args:
        model: a tf_keras model.
        selection: the stage's config.
        global_skip: the names every stage leaves alone (`--skip-layer`, the recipe's skip_layers).
        stage: the stage's name, for messages.
        weighted: a name in `layers` must have weights (default True).

    Raises:
        ConfigError: naming the unknown names (nearest match) and the model's layers or classes,
            or the named layers without weights.
    """
    by_name = {layer.name: layer for layer in model.layers}
    for where, names in (("layers", selection.layers), ("skip_layers", selection.skip_layers),
                         (_global_skip_label(), tuple(global_skip))):
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ConfigError(f"stage {stage!r}: {where}: no layer named {_named(unknown, list(by_name))}; "
                              f"the model's layers: {', '.join(by_name)}")
    bare = [f"{n!r} ({type(by_name[n]).__name__})" for n in selection.layers if weighted and not by_name[n].weights]
    if bare:
        raise ConfigError(f"stage {stage!r}: layers: {', '.join(bare)} {'has' if len(bare) == 1 else 'have'} "
                          "no weights; name layers with weights")
    classes = sorted({type(layer).__name__ for layer in model.layers})
    unknown = [t for t in selection.layer_types if t not in classes and not _keras_layer_class(t)]
    if unknown:
        raise ConfigError(f"stage {stage!r}: layer_types: {_named(unknown, classes)} is neither a class of the "
                          f"model's layers nor a tf_keras layer class; the model has {', '.join(classes)}")


def _global_skip_label() -> str:
    """Where the global skip list comes from: `--skip-layer` or the recipe on the CLI, the recipe in Python."""
    return spelled(cli=f"{option('skip_layers')} (the recipe's skip_layers)", api=option("skip_layers"))


def _keras_layer_class(name: str) -> bool:
    """Whether `name` is a tf_keras layer class (`tf_keras.layers.<name>`), present in the model or not."""
    from exporter import tf as tfmod

    layers = tfmod.keras().layers
    found = getattr(layers, name, None)
    return isinstance(found, type) and issubclass(found, layers.Layer)


def _candidates(model, selection: LayerSelection, *, stage: str, weighted: bool) -> list:
    """Step 2 of `select_layers`: the selected layers, in model order.

    Raises:
        ConfigError: the selection picks no layer at all (e.g. only classes the model lacks).
    """
    pool = [layer for layer in model.layers if layer.weights or not (weighted or type(layer).__name__ == "InputLayer")]
    if selection.layers or selection.layer_types:
        pool = [layer for layer in pool if layer.name in selection.layers
                or type(layer).__name__ in selection.layer_types]
    if not pool:
        raise ConfigError(f"stage {stage!r}: the selection (layers {list(selection.layers)}, layer_types "
                          f"{list(selection.layer_types)}) picks no layer{' with weights' if weighted else ''}")
    return pool


def select_layers(model, selection: LayerSelection, supports: Support, ctx: StageContext, *, stage: str,
                  weighted: bool = True) -> tuple[list, list[dict]]:
    """The layers a stage transforms and those it leaves alone, by the same rules for every stage.

    prune, sparsify, cluster, qat and lowbit all select through here (distill has no layer
    selection: it replaces the whole model). Names match exactly; a class matches by its exact
    name (`type(layer).__name__`, not subclasses).

    1. Names are checked first: a name in `layers` or `skip_layers`, or in the global skip
       list (`--skip-layer`, the recipe's `skip_layers`), that no layer of `model` has is
       refused (ConfigError naming it, the nearest match and the model's layer names); so is
       a layer named in `layers` that has no weights (when `weighted`), and a class in
       `layer_types` that is neither a class of the model's layers nor a tf_keras layer class
       (a typo). A real Keras class the model lacks is no error: one recipe may serve several
       models ("Conv2D and Dense").
    2. Candidates: the layers with weights (every layer but the input when not `weighted`)
       whose name is in `layers` or whose class is in `layer_types`; both empty: all of them.
       No candidate at all: ConfigError naming the selection.
    3. A candidate in the global skip list ("skipped by --skip-layer") or in the stage's
       `skip_layers` is left alone and listed, whatever `supports` says (skipping wins).
    4. `supports(layer)` judges the others: True, transform it; a string, the stage leaves
       it alone for that reason (listed, e.g. "TF-MOT prunes no weights of DepthwiseConv2D");
       False, the stage cannot handle it: all such layers are refused at once (ConversionError
       naming layer and class and the `--skip-layer` flags that skip them).
    5. Nothing left to transform: ConfigError listing what was left alone and why.

    Args:
        model: a plain tf_keras model.
        selection: the stage's config (a LayerSelection).
        supports: the stage's judgement of one layer, see step 4.
        ctx: the StageContext (its `skip_layers` is the global skip list).
        stage: the stage's name, for messages.
        weighted: consider only layers with weights (default True; qat: False).

    Returns:
        (layers to transform, in model order; skipped entries {"layer", "class", "reason"}).

    Raises:
        ConfigError: steps 1, 2 and 5.
        ConversionError: step 4.
    """
    check_selection(model, selection, ctx.skip_layers, stage=stage, weighted=weighted)
    chosen, skipped, refused = [], [], []
    for layer in _candidates(model, selection, stage=stage, weighted=weighted):
        verdict = _verdict(layer, selection, supports, ctx.skip_layers, stage)
        if isinstance(verdict, str):
            skipped.append(skip_entry(layer, verdict))
        elif verdict:
            chosen.append(layer)
        else:
            refused.append({"layer": layer.name, "class": type(layer).__name__})
    refuse_unsupported(stage, refused)
    if not chosen:
        raise nothing_left(stage, skipped)
    return chosen, skipped


def _verdict(layer, selection: LayerSelection, supports: Support, global_skip, stage: str) -> bool | str:
    """Steps 3 and 4 of `select_layers` for one candidate: skipping wins over `supports`."""
    if layer.name in global_skip:
        return GLOBAL_SKIP
    if layer.name in selection.skip_layers:
        return f"in the skip_layers of stage {stage!r}"
    return supports(layer)


def skip_entry(layer, reason: str) -> dict:
    """A `StageResult.skipped` entry.

    Args:
        layer: the layer left alone.
        reason: why, in words the report shows.

    Returns:
        {"layer": name, "class": class name, "reason": reason}.
    """
    return {"layer": layer.name, "class": type(layer).__name__, "reason": reason}


def nothing_left(stage: str, skipped: list[dict]) -> ConfigError:
    """The error for a selection that leaves no layer to transform (step 5 of `select_layers`).

    Args:
        stage: the stage's name.
        skipped: the layers left alone, as `skip_entry` gives them.

    Returns:
        A ConfigError listing what was left alone and why (for the caller to raise).
    """
    listed = "; ".join(f"{s['layer']}: {s['reason']}" for s in skipped)
    return ConfigError(f"stage {stage!r}: no selected layer can be transformed ({listed})")


def refuse_unsupported(stage: str, bad: list[dict]) -> None:
    """Refuse, in one message, every layer the stage cannot handle (step 4 of `select_layers`).

    Args:
        stage: the stage's name.
        bad: {"layer", "class"} entries; nothing happens when it is empty.

    Raises:
        ConversionError: naming each layer and class and how to skip them (`--skip-layer` on the CLI,
            the recipe's `skip_layers` in Python).
    """
    if bad:
        listed = ", ".join(f"{b['layer']} ({b['class']})" for b in bad)
        skip = option("skip_layers", [b["layer"] for b in bad])
        also = spelled(cli=" (or `skip_layers` in the recipe)", api="")
        raise ConversionError(f"stage {stage!r} cannot handle these layers: {listed}. Skip them with {skip}{also}")
