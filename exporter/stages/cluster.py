"""Weight clustering (parameter sharing) with TF-MOT `cluster_weights`.

Each selected layer's kernel is replaced by `clusters` shared values
(centroids), fine-tuned, then the clustering wrappers are stripped. A
clustered kernel compresses well (few unique values) and, after a pruning
stage, can keep its zeros (`preserve_sparsity`). Conv2D kernels are clustered per
output channel where the target stores per-channel value tables (`per_channel`, see
exporter/stages/cluster_mode.py); the record names those layers (`per_channel_layers`).

Example:
    >>> from exporter.analysis.weights import keras_weight_stats
    >>> stage = ClusterStage({"clusters": 16})
    >>> result = stage.apply(model, ctx)                # the demo CNN for android, 1 epoch
    >>> result.metrics  # doctest: +NORMALIZE_WHITESPACE
    {'clusters': 16, 'init': 'kmeans_plus_plus', 'preserve_sparsity': False, 'layers': 4, 'per_channel_layers': [],
     'per_tensor_layers': ['conv2d', 'conv2d_1', 'dense', 'probs'], 'per_channel_fallback': {}}
    >>> keras_weight_stats(result.model)["dense"]["unique"]     # 32,768 weights, 16 values
    16
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictBool

from exporter import tf as tfmod
from exporter.errors import ConfigError
from exporter.stages import tfmot_shim, training
from exporter.stages.cluster_mode import (per_channel_class, resolve_per_channel, sparse_init_problem,
                                          weights_per_channel)
from exporter.stages.base import (Family, LayerSelection, Stage, StageContext, StageResult, check_plain_model,
                                  family_ran, register)

_INITS = {"kmeans_plus_plus": "KMEANS_PLUS_PLUS", "linear": "LINEAR",
          "density_based": "DENSITY_BASED", "random": "RANDOM"}


class ClusterConfig(LayerSelection):
    """Settings of the `cluster` stage."""

    clusters: int = Field(16, ge=2, le=256, description="shared values (centroids) per clustered weight tensor")
    init: Literal["kmeans_plus_plus", "linear", "density_based", "random"] = Field(
        "kmeans_plus_plus", description="how the centroids are initialised (TF-MOT CentroidInitialization)")
    preserve_sparsity: bool | None = Field(
        None, description="keep pruned zeros at zero; unset = on when a prune/sparsify stage ran before")
    per_channel: Literal["auto"] | StrictBool = Field(
        "auto", description="cluster Conv2D kernels per output channel (clusters per channel, as the int8 converter "
                            "quantizes them); auto: on for microcontroller targets with int8, off elsewhere; Dense and "
                            "other layers are always clustered per tensor")


@register
class ClusterStage(Stage):
    """Cluster the weights of the selected layers into a few shared values, fine-tune, strip.

    The model is cloned first (TF-MOT's `cluster_weights` leaves the model it
    wraps unable to convert); layers not selected stay plain. Conv2D layers
    with no more weights than `clusters` (per output channel, when clustered per channel)
    are left as they are and listed in `StageResult.skipped`, as are the layers in
    `ctx.skip_layers`.
    """

    name = "cluster"
    Config = ClusterConfig
    family = Family.CLUSTER
    _per_channel = False          # set by `apply` for its run (resolve_per_channel): what `_judge` reads
    _preserve = False             # the run's preserve_sparsity

    def apply(self, model, ctx: StageContext) -> StageResult:
        """Cluster a clone of `model` and fine-tune it.

        Args:
            model: a plain Sequential or functional tf_keras model.
            ctx: the StageContext (training data and settings, previous stages, skip_layers).

        Returns:
            A StageResult with the stripped (plain) clustered model, the skipped layers and
            metrics {"clusters", "init", "preserve_sparsity", "layers", "per_channel_layers",
            "per_tensor_layers", "per_channel_fallback"} (the layers clustered per output channel, and per
            weight tensor; the Conv2D layers per tensor because a pruned channel had too few non-zero weights for
            TF-MOT's per-channel init, with the reason).

        Raises:
            ConversionError: a selected layer TF-MOT cannot cluster (and not in skip_layers),
                or a subclassed/nested model.
            ConfigError: `layers` names a layer the model lacks, nothing to cluster, or 2 clusters
                with preserve_sparsity (TF-MOT needs more than 2 then).
            DataError: no labelled training data.
        """
        check_plain_model(model, self.name)
        config: ClusterConfig = self.config
        mot = tfmod.tfmot()
        keras = tfmod.keras()
        preserve = _preserve_sparsity(config, ctx)
        self._per_channel = resolve_per_channel(config.per_channel, ctx.profile, ctx.mode)
        self._preserve, self._fallback = preserve, {}
        targets, skipped = self.select(model, self._judge, ctx)
        chosen = {layer.name for layer in targets}
        per_channel = [layer.name for layer in targets
                       if self._per_channel and per_channel_class(layer) and layer.name not in self._fallback]

        init = getattr(mot.clustering.keras.CentroidInitialization, _INITS[config.init])
        params = {"number_of_clusters": config.clusters, "cluster_centroids_init": init,
                  "preserve_sparsity": preserve}

        def wrap(layer):
            if isinstance(layer, keras.layers.InputLayer):
                return layer.__class__.from_config(layer.get_config())
            if layer.name in chosen:
                return mot.clustering.keras.cluster_weights(layer, **params,
                                                            cluster_per_channel=layer.name in per_channel)
            return layer

        work = training.clone(model)  # cluster_weights ruins what it wraps: never the caller's model
        clustered = keras.models.clone_model(work, clone_function=wrap)
        training.fit(clustered, ctx, description=f"clustering ({config.clusters} clusters)")
        # strip_clustering reuses the unwrapped layers; a clone gives the result layers of its own
        stripped = training.clone(mot.clustering.keras.strip_clustering(clustered))
        return StageResult(model=stripped, skipped=skipped, notes=self._notes(len(chosen), per_channel),
                           metrics={"clusters": config.clusters, "init": config.init,
                                    "preserve_sparsity": bool(preserve), "layers": len(chosen),
                                    "per_channel_layers": per_channel,
                                    "per_tensor_layers": [t.name for t in targets if t.name not in per_channel],
                                    "per_channel_fallback": dict(self._fallback)})

    def _notes(self, count: int, per_channel: list[str]) -> list[str]:
        """The stage's notes: what was clustered how, and each Conv2D clustered per tensor instead, with why."""
        return [_note(self.config.clusters, count, per_channel)] + [
            f"{name}: clustered per tensor, not per channel: {why} (TF-MOT's sparsity-preserving per-channel "
            f"init needs them; per-tensor clusters still give each channel at most {self.config.clusters} values)"
            for name, why in self._fallback.items()]

    def _judge(self, layer) -> bool | str:
        """`select_layers`' verdict: True, cluster; a reason, leave it alone; False, TF-MOT cannot wrap it."""
        cls = type(layer).__name__
        if not layer.trainable_weights:
            return "no trainable weights (frozen)"
        if not (isinstance(layer, tfmod.tfmot().clustering.keras.ClusterableLayer)
                or tfmot_shim.registry_supports(layer, "cluster")):
            return False
        if tfmot_shim.clusters_nothing(layer):
            return f"TF-MOT clusters no weights of {cls}"
        clusters = self.config.clusters
        if self._per_channel and per_channel_class(layer):
            size = weights_per_channel(layer)
            if size <= clusters:     # TF-MOT's cluster_weights would return the layer unclustered, silently
                return (f"only {size} kernel weights per output channel, not more than {clusters} clusters "
                        f"(clustered per channel; each channel holds at most {size} values already)")
            problem = sparse_init_problem(layer.kernel.numpy(), clusters) if self._preserve else None
            if problem:
                whole = self._too_sparse(layer)        # per tensor is the fallback: it must be possible
                if whole:
                    return whole
                self._fallback[layer.name] = problem
            return True
        size = layer.kernel.shape.num_elements() if isinstance(layer, tfmod.keras().layers.Conv2D) else None
        if size is not None and size <= clusters:
            return f"only {size} kernel weights, not more than {clusters} clusters"
        return self._too_sparse(layer) or True

    def _too_sparse(self, layer) -> str | None:
        """Why a pruned kernel cannot be clustered per tensor with its zeros kept, or None.

        TF-MOT's k-means++ init would crash ("Expected num_to_sample <= points.rows()", seen in searches
        on a small Conv2D pruned to 80-90 %); the layer is left alone with this reason instead.
        """
        kernel = getattr(layer, "kernel", None)
        if not self._preserve or kernel is None:
            return None
        problem = sparse_init_problem(kernel.numpy().reshape(-1, 1), self.config.clusters)
        return None if problem is None else (
            "too few non-zero kernel weights left after pruning for sparsity-preserving clustering: "
            + problem.replace("output channel 0 has", "the kernel has"))


def _preserve_sparsity(config: ClusterConfig, ctx: StageContext) -> bool:
    """`preserve_sparsity` made concrete: unset means on after a prune/sparsify stage; needs 3+ clusters."""
    preserve = config.preserve_sparsity
    if preserve is None:
        preserve = family_ran(Family.PRUNE, ctx.previous)
    if preserve and config.clusters <= 2:
        raise ConfigError("stage 'cluster': preserve_sparsity needs clusters >= 3 (zero takes one centroid); "
                          f"got clusters={config.clusters}")
    return bool(preserve)


def _note(clusters: int, count: int, per_channel: list[str]) -> str:
    """The stage's note: how many layers were clustered, and which per output channel."""
    if not per_channel:
        return f"clustered {count} layer(s) to {clusters} shared values per weight tensor"
    return (f"clustered {count} layer(s) to {clusters} shared values: per output channel in "
            f"{', '.join(per_channel)} (quantized per channel), per weight tensor in the others")
