"""Students for distillation derived from the teacher by a width multiplier.

The `filters` of Conv1D/Conv2D/SeparableConv2D and the `units` of Dense layers are scaled, except
the layer that produces the outputs, which keeps the number of classes; weights are fresh and seeded.

Example:
    >>> derive_student(model, 0.5, seed=7).count_params()     # the demo CNN (38,282 parameters)
    9802
"""
from __future__ import annotations

import copy

from exporter import tf as tfmod
from exporter.errors import ConversionError
from exporter.stages import training

_SCALED = {"Conv1D": "filters", "Conv2D": "filters", "SeparableConv2D": "filters", "Dense": "units"}


def derive_student(teacher, width: float, seed: int):
    """Rebuild `teacher` with `filters`/`units` scaled by `width` and fresh seeded weights.

    Args:
        teacher: a Sequential or functional tf_keras model.
        width: the multiplier in (0, 1]; counts are rounded, at least 1.
        seed: seed for the fresh weights.

    Returns:
        The student model (same layer names and classes, output layer unscaled).

    Raises:
        ConversionError: the scaled architecture does not rebuild (e.g. a residual
            add that mixes a scaled and an unscaled branch).
    """
    keras = tfmod.keras()
    config = copy.deepcopy(teacher.get_config())
    keep = _output_producers(config, sequential=isinstance(teacher, keras.Sequential))
    for entry in config["layers"]:
        entry.pop("build_config", None)
        key = _SCALED.get(entry["class_name"])
        if key and entry["config"]["name"] not in keep:
            entry["config"][key] = max(1, int(round(entry["config"][key] * width)))
    config["name"] = f"{teacher.name}_student"
    training.seed_everything(seed)
    try:
        if isinstance(teacher, keras.Sequential):
            return keras.Sequential.from_config(config)
        return keras.Model.from_config(config)
    except Exception as exc:  # Keras raises ValueError/TypeError/... on shape mismatches
        raise ConversionError(f"stage 'distill': the teacher scaled by width {width} does not rebuild ({exc}); "
                              "pass a hand-made student with `student: path.keras` instead") from exc


def _output_producers(config: dict, *, sequential: bool) -> set[str]:
    """Names of the scalable layers whose widths fix the output shape (kept unscaled)."""
    layers = config["layers"]
    if sequential:
        last = [e["config"]["name"] for e in layers if e["class_name"] in _SCALED]
        return set(last[-1:])
    by_name = {e["name"]: e for e in layers}
    outputs = config["output_layers"]
    outputs = [outputs] if outputs and isinstance(outputs[0], str) else outputs
    todo, seen, keep = [o[0] for o in outputs], set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        entry = by_name[name]
        if entry["class_name"] in _SCALED:
            keep.add(name)
            continue
        for node in entry.get("inbound_nodes", []):
            todo.extend(item[0] for item in node if isinstance(item, (list, tuple)))
    return keep
