"""Quantization-aware training (QAT) with TF-MOT, for full-integer int8 conversion.

The model is trained with fake-quantization of weights and activations, so
that int8 conversion loses less accuracy. After pruning or clustering stages,
a collaborative scheme keeps what they achieved:

| scheme  | after              | TF-MOT scheme                                                   |
|---------|--------------------|-----------------------------------------------------------------|
| default | nothing            | Default8BitQuantizeScheme                                       |
| pqat    | prune / sparsify   | Default8BitPrunePreserveQuantizeScheme (zeros stay zero)        |
| cqat    | cluster            | Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False) |
| pcqat   | pruning + cluster  | Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)  |

Example:
    >>> resolve_scheme("auto", ["prune", "cluster"])        # the stages that ran before pick the scheme
    'pcqat'
    >>> result = QatStage({"scheme": "auto"}).apply(model, ctx)   # the demo CNN; nothing ran before it
    >>> result.metrics
    {'scheme': 'default'}
    >>> type(result.model.get_layer("quant_dense")).__name__      # kept for int8 conversion
    'QuantizeWrapperV2'
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from exporter import tf as tfmod
from exporter.errors import UsageError
from exporter.stages import training
from exporter.stages import tfmot_shim
from exporter.stages.base import (Family, LayerSelection, Stage, StageContext, StageResult, check_plain_model,
                                  family_ran, refuse_unsupported, register)


class QatConfig(LayerSelection):
    """Settings of the `qat` stage: the scheme, and which layers are annotated for quantization."""

    scheme: Literal["auto", "default", "pqat", "cqat", "pcqat"] = Field(
        "auto", description="quantization scheme: auto picks pqat after pruning, cqat after clustering, "
                            "pcqat after both, default otherwise")


def resolve_scheme(scheme: str, previous: list[str]) -> str:
    """The scheme to use after the stages `previous`, refusing one they did not prepare.

    Args:
        scheme: "auto", "default", "pqat", "cqat" or "pcqat".
        previous: names of the stages applied before.

    Returns:
        The concrete scheme ("default", "pqat", "cqat" or "pcqat").

    Raises:
        UsageError: "cqat"/"pcqat" without a clustering stage before, "pqat"/"pcqat" without pruning.
    """
    pruned, clustered = family_ran(Family.PRUNE, previous), family_ran(Family.CLUSTER, previous)
    if scheme == "auto":
        return {(True, True): "pcqat", (True, False): "pqat", (False, True): "cqat"}.get((pruned, clustered),
                                                                                           "default")
    if scheme in ("cqat", "pcqat") and not clustered:
        raise UsageError(f"stage 'qat': scheme {scheme!r} preserves clustered weights, but no cluster stage runs "
                         "before it: add a cluster stage first, or use scheme 'auto' or 'default'")
    if scheme in ("pqat", "pcqat") and not pruned:
        raise UsageError(f"stage 'qat': scheme {scheme!r} preserves pruned zeros, but no prune/sparsify stage runs "
                         "before it: add one first, or use scheme 'auto' or 'default'")
    return scheme


def _scheme_object(scheme: str):
    """The TF-MOT QuantizeScheme instance of a resolved scheme name."""
    mot = tfmod.tfmot()
    combine = mot.experimental.combine
    if scheme == "pqat":
        return combine.Default8BitPrunePreserveQuantizeScheme()
    if scheme == "cqat":  # the class's default is preserve_sparsity=True (PCQAT): say False explicitly
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False)
    if scheme == "pcqat":
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
    return mot.quantization.keras.default_8bit.Default8BitQuantizeScheme()


def _folded(layer, skip) -> bool:
    """True for a BatchNormalization TF-MOT folds into the linear Conv2D/DepthwiseConv2D/Dense before it.

    Args:
        layer: a layer of a freshly cloned model (one inbound node per layer).
        skip: names of the layers left unannotated (a BN cannot fold into one of them).

    Returns:
        True when `layer` is such a BatchNormalization.
    """
    if type(layer).__name__ not in ("BatchNormalization", "SyncBatchNormalization"):
        return False
    inbound = tfmot_shim.single_inbound_layer(layer)
    return (type(inbound).__name__ in ("Conv2D", "DepthwiseConv2D", "Dense") and inbound.name not in skip
            and inbound.get_config().get("activation") == "linear")


@register
class QatStage(Stage):
    """Quantization-aware fine-tuning for int8, with a scheme that keeps earlier pruning/clustering.

    Unlike the other stages, the returned model keeps its TF-MOT quantize
    wrappers (QuantizeLayer, QuantizeWrapperV2): they hold the fake-quant
    ranges the TFLite converter turns into int8 scales, so stripping them
    would throw QAT away. The model converts with `convert(..., mode="int8")`.
    Layers outside the selection (`layers`, `layer_types`; default: every layer)
    and skipped ones (`skip_layers`, `ctx.skip_layers`) are not annotated: they
    stay float in training and are quantized post-training by the converter;
    the skipped ones are listed in `StageResult.skipped`.
    """

    name = "qat"
    Config = QatConfig
    family = Family.QUANTIZE
    weighted_only = False
    int8_only = True

    def check_profile(self, profile, mode: str, previous: list[str]) -> None:
        """As `Stage.check_profile`; also refuses a collaborative scheme the previous stages did not prepare."""
        super().check_profile(profile, mode, previous)
        resolve_scheme(self.config.scheme, previous)

    def apply(self, model, ctx: StageContext) -> StageResult:
        """Wrap a clone of `model` for quantization-aware training and fine-tune it.

        Args:
            model: a plain Sequential or functional tf_keras model.
            ctx: the StageContext (training data and settings, previous stages, skip_layers).

        Returns:
            A StageResult with the QAT model (quantize wrappers kept, see the class docstring),
            the skipped layers and metrics {"scheme": the resolved scheme}.

        Raises:
            ConversionError: a layer TF-MOT cannot quantize with this scheme (and not in skip_layers),
                or a subclassed/nested model.
            UsageError: a collaborative scheme without the stage it preserves.
            DataError: no labelled training data.
        """
        check_plain_model(model, self.name)
        mot = tfmod.tfmot()
        keras = tfmod.keras()
        scheme = resolve_scheme(self.config.scheme, list(ctx.previous))
        scheme_obj = _scheme_object(scheme)
        registry = scheme_obj.get_quantize_registry()

        work = training.clone(model)  # fresh layers: one inbound node each, and the caller's model untouched
        layers = [layer for layer in work.layers if not isinstance(layer, keras.layers.InputLayer)]
        skip = {*ctx.skip_layers, *self.config.skip_layers}
        targets, skipped = self.select(work, lambda layer: registry.supports(layer) or _folded(layer, skip), ctx)
        chosen = {layer.name for layer in targets}

        def annotate(layer):
            if isinstance(layer, keras.layers.InputLayer):
                return layer.__class__.from_config(layer.get_config())
            if layer.name not in chosen:
                return layer
            return mot.quantization.keras.quantize_annotate_layer(layer)

        annotated = keras.models.clone_model(work, clone_function=annotate)
        # quantize_apply rebuilds the model from its config: custom layer classes (skipped ones) must resolve
        custom = {type(layer).__name__: type(layer) for layer in layers}
        try:
            with keras.utils.custom_object_scope(custom), mot.quantization.keras.quantize_scope():
                qat_model = mot.quantization.keras.quantize_apply(annotated, scheme_obj)
        except (RuntimeError, ValueError) as exc:  # a layer the checks above let through, e.g. a lone BN
            found = tfmot_shim.unsupported_in_quantize_error(exc)
            if not found:
                raise
            refuse_unsupported(self.name, [{"layer": found[0], "class": found[1]}])
        training.fit(qat_model, ctx, description=f"quantization-aware training ({scheme})")
        return StageResult(model=qat_model, skipped=skipped,
                           notes=[f"QAT scheme {scheme}; quantize wrappers kept for int8 conversion"],
                           metrics={"scheme": scheme})
