"""A quick per-layer sensitivity pass: which layers lose the most accuracy when pruned or clustered alone.

No training: for each layer with a kernel, the kernel alone is magnitude-pruned to 90 % zeros, and
(separately) clustered to 4 shared values with a few rounds of 1-D k-means from linearly spaced centroids
(TF-MOT's LINEAR init); the accuracy on the evaluation data (or, without labels, the agreement of top-1
classes with the unchanged model) is measured after each, and the kernel restored. The drop in points is
the layer's sensitivity, as in the per-layer sensitivity scans of Deep Compression (Han et al. 2016,
Fig. 6) and of TF-MOT's pruning guide ("prune the layers that hurt least"). The search offers "skip
this layer" for the top ones (exporter/optimize/space.py), and the report shows the table.

Example:
    >>> from exporter.profile import load_profile
    >>> rows = sensitivity(model, demo.eval, load_profile("android-arm64-midrange"))   # the demo CNN
    >>> scores = [row["score"] for row in rows]
    >>> scores == sorted(scores, reverse=True), len(rows)        # most sensitive first; 4 layers with kernels
    (True, 4)
    >>> sorted(rows[0])
    ['class', 'drop_clustered', 'drop_pruned', 'layer', 'params', 'score']
"""
from __future__ import annotations

import numpy as np

PRUNE_SPARSITY = 0.9
"""Share of a kernel's weights set to zero (smallest magnitudes first)."""
CLUSTERS = 4
"""Shared values a kernel is clustered to."""
KMEANS_ROUNDS = 10


def sensitivity(model, eval_data, profile, *, output: int = 0) -> list[dict]:
    """Per-layer accuracy drop when that layer alone is pruned to 90 % or clustered to 4 values.

    Args:
        model: a tf_keras model, or a model path (`exporter.model_io.load_model`); it is left as it was.
        eval_data: the evaluation data: a Dataset, an (x, y) pair or an array x (no labels: agreement).
        profile: the resolved DeviceProfile: Conv2D kernels are clustered per output channel where its
            target's export would (`exporter.stages.cluster_mode.resolve_per_channel`).
        output: which model output the labels are for (default the first).

    Returns:
        One row per layer with a kernel, most sensitive first: {"layer", "class", "params", "drop_pruned",
        "drop_clustered", "score"}; drops in points of accuracy (or agreement), score = the larger drop.
        Empty without evaluation data.
    """
    from exporter.stages.cluster_mode import per_channel_class, resolve_per_channel

    model = _keras_model(model)
    data = _dataset(eval_data)
    if data is None or len(data) == 0:
        return []
    base_pred = _top1(model, data.keras_x, output)
    truth = data.y if data.y is not None else base_pred
    base = _score(base_pred, truth)
    per_channel = resolve_per_channel("auto", profile, profile.quantization.preferred)
    rows = []
    for layer in model.layers:
        weights = layer.get_weights()
        index = _kernel_index(weights)
        if index is None:
            continue
        kernel = weights[index]
        drops = {}
        variants = {"drop_pruned": prune_kernel(kernel, PRUNE_SPARSITY),
                    "drop_clustered": cluster_kernel(kernel, CLUSTERS, per_channel and per_channel_class(layer))}
        try:
            for name, changed in variants.items():
                layer.set_weights([changed if i == index else w for i, w in enumerate(weights)])
                drops[name] = round(base - _score(_top1(model, data.keras_x, output), truth), 3)
        finally:
            layer.set_weights(weights)
        rows.append({"layer": layer.name, "class": type(layer).__name__, "params": int(kernel.size), **drops,
                     "score": max(drops.values())})
    return sorted(rows, key=lambda r: (-r["score"], -r["params"], r["layer"]))


def prune_kernel(kernel: np.ndarray, sparsity: float) -> np.ndarray:
    """The kernel with its `sparsity` share of smallest-magnitude weights set to zero.

    >>> prune_kernel(np.array([[1.0, -4.0], [0.5, 2.0]]), 0.5).tolist()
    [[0.0, -4.0], [0.0, 2.0]]
    """
    flat = np.abs(kernel).reshape(-1)
    count = int(round(flat.size * sparsity))
    if count == 0:
        return kernel.copy()
    order = np.argsort(flat, kind="stable")
    out = kernel.copy().reshape(-1)
    out[order[:count]] = 0
    return out.reshape(kernel.shape)


def cluster_kernel(kernel: np.ndarray, clusters: int, per_channel: bool = False) -> np.ndarray:
    """The kernel with every weight replaced by the nearest of `clusters` k-means centroids.

    Centroids start linearly spaced between the smallest and largest weight (TF-MOT's LINEAR init) and
    take `KMEANS_ROUNDS` Lloyd steps. With `per_channel`, each output channel (last axis) has its own.

    >>> cluster_kernel(np.array([0.0, 0.1, 0.9, 1.0]), 2).tolist()
    [0.05, 0.05, 0.95, 0.95]
    """
    if per_channel and kernel.ndim > 1:
        columns = [_kmeans_1d(kernel[..., c], clusters) for c in range(kernel.shape[-1])]
        return np.stack(columns, axis=-1).astype(kernel.dtype)
    return _kmeans_1d(kernel, clusters).astype(kernel.dtype)


def _kmeans_1d(values: np.ndarray, clusters: int) -> np.ndarray:
    """1-D k-means of `values` (any shape) from linear centroids; values mapped to their centroid."""
    flat = values.reshape(-1).astype(np.float64)
    centroids = np.linspace(flat.min(), flat.max(), clusters)
    for _ in range(KMEANS_ROUNDS):
        nearest = np.abs(flat[:, None] - centroids[None, :]).argmin(axis=1)
        for k in range(clusters):
            members = flat[nearest == k]
            if members.size:
                centroids[k] = members.mean()
    nearest = np.abs(flat[:, None] - centroids[None, :]).argmin(axis=1)
    return centroids[nearest].reshape(values.shape)


def model_info(model) -> dict:
    """The layers with kernels of a tf_keras model (or model path): what `space.default_space` takes.

    Returns:
        {"params": total parameters, "layers": [{"name", "class", "params"}], "conv2d": any Conv2D kernel}.
    """
    from exporter.stages.cluster_mode import per_channel_class

    model = _keras_model(model)
    layers = [{"name": layer.name, "class": type(layer).__name__, "params": int(layer.count_params())}
              for layer in model.layers if _kernel_index(layer.get_weights()) is not None]
    return {"params": int(model.count_params()), "layers": layers,
            "conv2d": any(per_channel_class(layer) for layer in model.layers)}


def job_inputs(job):
    """The model and data of an OptimizeJob, loaded and checked exactly as `exporter.export` does.

    Args:
        job: the OptimizeJob.

    Returns:
        The `exporter.inputs.Inputs` (`.loaded.model`: the tf_keras model, None for a .tflite; `.eval`, ...)
        and the resolved request (`.profile`: the DeviceProfile with the limits overrides).

    Raises:
        ExporterError: what the export would raise for this model and data.
    """
    import inspect

    from exporter import api, steps

    given = {name: p.default for name, p in inspect.signature(api.export).parameters.items()}
    given.update(job.export_kwargs(), progress=False, bundle_samples=0)
    request = steps.resolve(api._export_args(given))
    return steps.prove_bridge(steps.check_data(request, steps.load(request))), request


def _keras_model(model):
    """A tf_keras model from a model or a path."""
    if hasattr(model, "layers"):
        return model
    from exporter.model_io import load_model

    return load_model(model).model


def _dataset(data):
    """A Dataset from a Dataset, (x, y) or x; None stays None."""
    from exporter.data import Dataset, dataset_from_arrays

    if data is None or isinstance(data, Dataset):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        return dataset_from_arrays(*data, role="evaluation")
    return dataset_from_arrays(data, role="evaluation")


def _kernel_index(weights: list) -> int | None:
    """Index of the kernel (the first weight of 2+ dims) among a layer's weights, or None."""
    return next((i for i, w in enumerate(weights) if np.ndim(w) >= 2), None)


def _top1(model, x, output: int) -> np.ndarray:
    probs = model.predict(x, verbose=0, batch_size=256)
    probs = probs[output] if isinstance(probs, (list, tuple)) else probs
    return np.argmax(probs, axis=-1)


def _score(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Top-1 % of `predicted` against `truth` (labels, or the unchanged model's classes)."""
    return float((predicted == np.asarray(truth).reshape(predicted.shape)).mean() * 100)
