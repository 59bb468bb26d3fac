"""Weight clustering (parameter sharing) with TF-MOT `cluster_weights`.

Each selected layer's kernel is replaced by `clusters` shared values
(centroids), fine-tuned, then the clustering wrappers are stripped. A
clustered kernel compresses well (few unique values) and, after a pruning
stage, can keep its zeros (`preserve_sparsity`).

Example:
    >>> stage = ClusterStage({"clusters": 16})
    >>> result = stage.apply(model, ctx)
    >>> result.metrics
    {'clusters': 16, 'init': 'kmeans_plus_plus', 'preserve_sparsity': False, 'layers': 4}
"""
from __future__ import annotations

import difflib
from typing import Literal

from pydantic import Field

from exporter import tf as tfmod
from exporter.errors import ConfigError
from exporter.stages import training
from exporter.stages.base import (Stage, StageConfig, StageContext, StageResult, check_plain_model, register,
                                  refuse_unsupported, unsupported_layers)

PRUNING_STAGES = ("prune", "sparsify")
_INITS = {"kmeans_plus_plus": "KMEANS_PLUS_PLUS", "linear": "LINEAR",
          "density_based": "DENSITY_BASED", "random": "RANDOM"}


class ClusterConfig(StageConfig):
    """Settings of the `cluster` stage."""

    clusters: int = Field(16, ge=2, le=256, description="shared values (centroids) per clustered weight tensor")
    init: Literal["kmeans_plus_plus", "linear", "density_based", "random"] = Field(
        "kmeans_plus_plus", description="how the centroids are initialised (TF-MOT CentroidInitialization)")
    layers: tuple[str, ...] = Field(
        (), description="names of the layers to cluster; with layer_types, a layer matching either is clustered; "
                          "both empty = every layer with weights")
    layer_types: tuple[str, ...] = Field(
        (), description="layer class names to cluster, e.g. [\"Dense\", \"Conv2D\"]")
    preserve_sparsity: bool | None = Field(
        None, description="keep pruned zeros at zero; unset = on when a prune/sparsify stage ran before")


def _selected(layer, config: ClusterConfig) -> bool:
    if not config.layers and not config.layer_types:
        return True
    return layer.name in config.layers or type(layer).__name__ in config.layer_types


def _check_names(model, config: ClusterConfig) -> None:
    names = [layer.name for layer in model.layers]
    unknown = [n for n in config.layers if n not in names]
    if unknown:
        hints = []
        for n in unknown:
            near = difflib.get_close_matches(n, names, n=1)
            hints.append(f"{n!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
        raise ConfigError(f"stage 'cluster': layers not in the model: {', '.join(hints)}. "
                          f"Its layers: {', '.join(names)}")


def _supports(layer) -> bool:
    """True when TF-MOT can wrap the layer (a built-in it knows or a ClusterableLayer)."""
    mot = tfmod.tfmot()
    from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import ClusteringRegistry

    return isinstance(layer, mot.clustering.keras.ClusterableLayer) or ClusteringRegistry.supports(layer)


def _clusters_nothing(layer) -> bool:
    """True for layers the registry accepts but whose weights it leaves alone (DepthwiseConv2D, norms)."""
    from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import ClusteringRegistry

    return ClusteringRegistry._LAYERS_WEIGHTS_MAP.get(type(layer)) == []  # noqa: SLF001 (no public API)


@register
class ClusterStage(Stage):
    """Cluster the weights of the selected layers into a few shared values, fine-tune, strip.

    The model is cloned first (TF-MOT's `cluster_weights` leaves the model it
    wraps unable to convert); layers not selected stay plain. Conv2D layers
    with no more weights than `clusters` are left as they are and listed in
    `StageResult.skipped`, as are the layers in `ctx.skip_layers`.
    """

    name = "cluster"
    Config = ClusterConfig
    family = "clustering"
    order = 2

    def apply(self, model, ctx: StageContext) -> StageResult:
        """Cluster a clone of `model` and fine-tune it.

        Args:
            model: a plain Sequential or functional tf_keras model.
            ctx: the StageContext (training data and settings, previous stages, skip_layers).

        Returns:
            A StageResult with the stripped (plain) clustered model, the skipped layers and
            metrics {"clusters", "init", "preserve_sparsity", "layers"}.

        Raises:
            ConversionError: a selected layer TF-MOT cannot cluster (and not in skip_layers),
                or a subclassed/nested model.
            ConfigError: `layers` names a layer the model lacks, nothing to cluster, or 2 clusters
                with preserve_sparsity (TF-MOT needs more than 2 then).
            DataError: no labelled training data.
        """
        check_plain_model(model, self.name)
        config: ClusterConfig = self.config
        _check_names(model, config)
        mot = tfmod.tfmot()
        keras = tfmod.keras()
        preserve = config.preserve_sparsity
        if preserve is None:
            preserve = any(p in PRUNING_STAGES for p in ctx.previous)
        if preserve and config.clusters <= 2:
            raise ConfigError("stage 'cluster': preserve_sparsity needs clusters >= 3 (zero takes one centroid); "
                              f"got clusters={config.clusters}")

        skip = tuple(ctx.skip_layers)
        candidates = [layer for layer in model.layers if layer.trainable_weights and _selected(layer, config)]
        refuse_unsupported(self.name, unsupported_layers(
            model, lambda layer: not _selected(layer, config) or _supports(layer), skip))
        skipped, chosen = [], set()
        for layer in candidates:
            if layer.name in skip:
                skipped.append({"layer": layer.name, "class": type(layer).__name__,
                                "reason": "skipped by --skip-layer"})
            elif _clusters_nothing(layer):
                skipped.append({"layer": layer.name, "class": type(layer).__name__,
                                "reason": f"TF-MOT clusters no weights of {type(layer).__name__}"})
            elif isinstance(layer, keras.layers.Conv2D) and layer.kernel.shape.num_elements() <= config.clusters:
                skipped.append({"layer": layer.name, "class": type(layer).__name__,
                                "reason": f"only {layer.kernel.shape.num_elements()} kernel weights, "
                                          f"not more than {config.clusters} clusters"})
            else:
                chosen.add(layer.name)
        if not chosen:
            raise ConfigError("stage 'cluster': no layer left to cluster (check `layers`, `layer_types` and "
                              "skip_layers)")

        init = getattr(mot.clustering.keras.CentroidInitialization, _INITS[config.init])
        params = {"number_of_clusters": config.clusters, "cluster_centroids_init": init,
                  "preserve_sparsity": preserve}

        def wrap(layer):
            if isinstance(layer, keras.layers.InputLayer):
                return layer.__class__.from_config(layer.get_config())
            if layer.name in chosen:
                return mot.clustering.keras.cluster_weights(layer, **params)
            return layer

        work = training.clone(model)  # cluster_weights ruins what it wraps: never the caller's model
        clustered = keras.models.clone_model(work, clone_function=wrap)
        training.fit(clustered, ctx, description=f"clustering ({config.clusters} clusters)")
        # strip_clustering reuses the unwrapped layers; a clone gives the result layers of its own
        stripped = training.clone(mot.clustering.keras.strip_clustering(clustered))
        return StageResult(
            model=stripped, skipped=skipped,
            notes=[f"clustered {len(chosen)} layer(s) to {config.clusters} shared values per weight tensor"],
            metrics={"clusters": config.clusters, "init": config.init, "preserve_sparsity": bool(preserve),
                     "layers": len(chosen)})
