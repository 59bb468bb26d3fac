"""Whether the cluster stage clusters a layer per output channel or per weight tensor.

TF-MOT's `cluster_weights(..., cluster_per_channel=True)` gives every output channel of a Conv2D
kernel its own `number_of_clusters` centroids (clustering along the kernel's last axis; TF-MOT
ignores the flag for other classes: `ClusterWeights.__init__` in
tensorflow/model-optimization `clustering/keras/cluster_wrapper.py`). The TFLite converter quantizes
a CONV_2D kernel per output channel (one scale per channel, `quantized_dimension` 0; checked on the
converted demo), so per-channel clusters map to at most `clusters` int8 codes per channel, the
per-channel table TFLite Micro's weight compression stores. Per-tensor clusters give that bound too
(each channel holds a subset of the tensor's values) but share 16 values among all channels, so
per-channel clusters keep more accuracy for the same table size; across the tensor they give up to
`clusters` × channels values.

Dense kernels stay per tensor: TF-MOT has no per-channel clustering for them, and a per-tensor
bound holds whatever the converter does (plain int8 conversion quantizes FULLY_CONNECTED per
channel, QAT's 8-bit scheme per tensor: both keep at most `clusters` codes per channel).

The `per_channel` setting: `auto` (default) clusters Conv2D kernels per channel for the targets in
`PER_CHANNEL_TARGETS` with full-integer int8 conversion, per tensor elsewhere (TF-MOT's default);
`true` or `false` force it.

Example:
    >>> from exporter.profile import load_profile
    >>> resolve_per_channel("auto", load_profile("arduino-nano-33-ble"), "int8")
    True
    >>> resolve_per_channel("auto", load_profile("android-arm64-midrange"), "int8")
    False
    >>> keras = tfmod.keras()
    >>> per_channel_class(keras.layers.Conv2D(4, 3)), per_channel_class(keras.layers.Dense(4))
    (True, False)
"""
from __future__ import annotations

from exporter import tf as tfmod

# target name -> why its bundles want per-channel clusters by default
PER_CHANNEL_TARGETS = {
    "microcontroller": "TFLite Micro's weight compression stores one value table per quantization channel of a "
                       "per-channel-quantized kernel (Conv2D), so the clusters per channel set its bit width",
}


def resolve_per_channel(setting, profile, mode: str) -> bool:
    """The `per_channel` setting made concrete for an export.

    Args:
        setting: "auto", True or False (`ClusterConfig.per_channel`).
        profile: the resolved DeviceProfile (its `target` picks the default).
        mode: the conversion mode that follows the stages.

    Returns:
        True to cluster Conv2D kernels per output channel.
    """
    if setting != "auto":
        return bool(setting)
    return profile.target in PER_CHANNEL_TARGETS and mode == "int8"


def per_channel_class(layer) -> bool:
    """True for a layer TF-MOT clusters per channel along the axis the converter quantizes it on.

    Conv2D only: TF-MOT's flag applies to Conv2D and its subclasses, but Conv2DTranspose's kernel
    has its input channels last ([kh, kw, out, in]), so per-channel clusters would run along the
    wrong axis for the converter's per-output-channel scales; it stays per tensor.

    Args:
        layer: a tf_keras layer.
    """
    layers = tfmod.keras().layers
    return isinstance(layer, layers.Conv2D) and not isinstance(layer, layers.Conv2DTranspose)


def weights_per_channel(layer) -> int:
    """Kernel weights per output channel of a Conv2D (its kernel is [kh, kw, in, out] in either data format)."""
    shape = layer.kernel.shape
    return int(shape.num_elements() // int(shape[-1]))


def sparse_init_problem(kernel, clusters: int) -> str | None:
    """Why TF-MOT's sparsity-preserving centroid init cannot run on a kernel's channels, or None.

    With `preserve_sparsity`, TF-MOT's per-channel init keeps one zero centroid per channel and
    shares the other `clusters` - 1 between the channel's negative and positive weights in
    proportion (rounded half to even), then runs k-means++ on each side
    (`_zero_centroid_initialization` in `clustering_centroids.py`): a side with fewer weights than
    its centroids fails ("Expected num_to_sample <= points.rows()"), and an all-zero channel gives
    a ragged centroid table. A pruned kernel often has such channels; it is then clustered per tensor.

    Args:
        kernel: the Conv2D kernel ([kh, kw, in, out]) as a numpy array.
        clusters: the stage's `clusters`.

    Returns:
        The first channel that cannot be initialised, with its counts; None when all can.
    """
    import numpy as np

    for channel in range(kernel.shape[-1]):
        weights = kernel[..., channel]
        negative, positive = int((weights < 0).sum()), int((weights > 0).sum())
        nonzero = negative + positive
        wanted = round((clusters - 1) * negative / nonzero) if nonzero else 0       # Python rounds half to even
        if not nonzero or negative < wanted or positive < clusters - 1 - wanted:
            return (f"output channel {channel} has {nonzero} non-zero weights ({negative} negative, {positive} "
                    f"positive): too few for {clusters - 1} non-zero centroids of its own")
    return None
