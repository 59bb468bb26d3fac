"""Whether an export stores its weights with TFLite's sparse encoding: the setting, its refusals, `auto`'s rule.

The setting comes from `sparse_encoding=` / `--sparse-encoding`, else the recipe's `sparse_encoding`, else
"auto". `on` is refused (UsageError, exit 2) before any work where it cannot help or would break the model:

- targets whose runtime does not read sparse tensors (all but LiteRT on a CPU: `Target.sparse_tensors`), each
  with its reason in `TARGET_REASONS`;
- int8 and dynamic-range models (`MODE_REASONS`): the converter writes them (int8 weights in a sparse
  encoding), but LiteRT's default XNNPACK delegate then fails to prepare the model (measured with
  ai-edge-litert 2.3.0, tests/test_sparse_encoding.py), so an app with LiteRT's defaults could not load it;
- a given .tflite, which is bundled as it is.

`auto` turns it on when at least `AUTO_ZEROS` (30 %) of some kernel's values are zero in the Keras model that is
converted (after the stages: pruning's `strip_pruning` has run). 30 % is the converter's own floor: below it the
MLIR pass keeps a tensor dense (`kMinSparsityLevel = 0.3` in tensorflow/compiler/mlir/lite/transforms/
dense_to_sparse_pass.cc). Kernels are the weights of rank 2 and 4, the ranks the pass encodes (Dense, Conv2D,
DepthwiseConv2D, Conv2DTranspose filters).

Example:
    >>> decide("auto", [WeightZeros("dense/kernel:0", (512, 64), 0.8)])
    (True, 'auto: dense/kernel:0 has 80.0 % zeros (at least 30 %)')
    >>> decide("auto", [WeightZeros("dense/kernel:0", (512, 64), 0.299)])[0]
    False
    >>> decide("on", [WeightZeros("dense/kernel:0", (512, 64), 0.1)])
    (True, 'on (as asked); dense/kernel:0 has 10.0 % zeros')
"""
from __future__ import annotations

from dataclasses import dataclass

from exporter.errors import UsageError
from exporter.option_names import option

SETTINGS = ("auto", "on", "off")
AUTO_ZEROS = 0.30
"""`auto` is on from this share of zeros in some kernel: the converter's kMinSparsityLevel (see the docstring)."""

_ZERO_RANKS = (2, 4)

TARGET_REASONS = {
    "microcontroller": "TensorFlow Lite Micro has no DENSIFY kernel (the op that expands sparse tensors) and its "
                       "kernels read dense weights only",
    "ethos-u": "Vela compiles dense int8 weights for the NPU, and TensorFlow Lite Micro on the Cortex-M has no DENSIFY "
               "kernel (the op that expands sparse tensors)",
    "edgetpu": "edgetpu_compiler maps dense int8 weights only: DENSIFY (the op that expands sparse tensors) is not an "
               "Edge TPU op",
}
"""Why a target's runtime cannot take sparse tensors, by target name; others get `OTHER_TARGETS`."""
OTHER_TARGETS = "its runtime is not known to read TFLite sparse tensors (only LiteRT on a CPU: android, linux)"

_XNNPACK_FAILS = ("the converter writes them, but LiteRT's default XNNPACK delegate fails to prepare a {what} "
                  "model with sparse tensors ('failed to delegate {op} node', measured with ai-edge-litert 2.3.0), "
                  "so an app using LiteRT's defaults could not load it")
MODE_REASONS = {
    "int8": _XNNPACK_FAILS.format(what="full-integer int8", op="FULLY_CONNECTED"),
    "dynamic": _XNNPACK_FAILS.format(what="dynamic-range (int8 weights)", op="CONV_2D"),
    "int16x8": "int16x8 models run on LiteRT's builtin reference kernels (XNNPACK takes no int16 activations), "
               "and edgex has not measured them loading sparse tensors",
}
"""Why a conversion mode cannot take sparse tensors, by mode; float32 and float16 can."""


@dataclass(frozen=True)
class WeightZeros:
    """One kernel of the Keras model: its weight name, shape and share of values that are exactly zero (0..1)."""

    name: str
    shape: tuple[int, ...]
    zeros: float

    def to_dict(self) -> dict:
        """JSON-ready: weight name, shape, share of zeros (0..1, 4 decimals)."""
        return {"weight": self.name, "shape": list(self.shape), "zeros": round(self.zeros, 4)}


def setting(request) -> str:
    """The export's setting: `sparse_encoding=`, else the recipe's, else "auto".

    Raises:
        UsageError: a value other than auto, on or off (named as the caller spelled it).
    """
    value = request.sparse_encoding or request.recipe.sparse_encoding or "auto"
    if value not in SETTINGS:
        raise UsageError(f"{option('sparse_encoding', value)}: give {', '.join(SETTINGS[:-1])} or {SETTINGS[-1]}")
    return value


def why_not(target, mode: str | None) -> str | None:
    """Why `target` or conversion `mode` cannot take sparse tensors, or None when both can."""
    if not target.sparse_tensors:
        return f"not for target {target.name}: {TARGET_REASONS.get(target.name, OTHER_TARGETS)}"
    if mode in MODE_REASONS:
        return f"not for {mode} models: {MODE_REASONS[mode]}"
    return None


def check(request, mode: str | None, is_tflite: bool) -> None:
    """Refuse `on` where it cannot apply, before any work (see the module docstring).

    Args:
        request: the resolved export (target, profile, the setting).
        mode: the conversion mode; None for a given .tflite.
        is_tflite: the model is a .tflite, bundled as it is.

    Raises:
        UsageError: `on` for a .tflite, for a target other than android/linux, or for an int8 or dynamic model;
            a setting other than auto, on or off.
    """
    if setting(request) != "on":
        return
    spelled = option("sparse_encoding", "on")
    if is_tflite:
        raise UsageError(f"a .tflite model is bundled as it is; {spelled} applies only to Keras models")
    reason = why_not(request.target, mode)
    if reason is None:
        return
    instead = ("export to android or linux, or leave it at auto" if not request.target.sparse_tensors else
               f"convert as float: {option('quantize', 'float32')} or float16")
    raise UsageError(f"{spelled}: sparse encoding is {reason}; {instead}")


def zero_fractions(model) -> list[WeightZeros]:
    """The share of exact zeros in every kernel (weights of rank 2 or 4) of a tf_keras model, in weight order."""
    import numpy as np

    out = []
    for weight in model.weights:
        if len(weight.shape) in _ZERO_RANKS:
            values = np.asarray(weight.numpy())
            out.append(WeightZeros(weight.name, tuple(int(d) for d in values.shape),
                                   float(np.mean(values == 0)) if values.size else 0.0))
    return out


def densest(weights: list[WeightZeros]) -> WeightZeros | None:
    """The kernel with the most zeros (the first of equals), or None without kernels."""
    return max(weights, key=lambda w: w.zeros, default=None)


def decide(value: str, weights: list[WeightZeros]) -> tuple[bool, str]:
    """Whether to convert with sparse encoding, and why, for setting `value` and the model's kernels.

    Args:
        value: "auto", "on" or "off".
        weights: the kernels' zero shares (`zero_fractions`).

    Returns:
        (on, the reason in words).
    """
    top = densest(weights)
    share = None if top is None else f"{top.name} has {top.zeros * 100:.1f} % zeros"
    if value != "auto":
        return value == "on", f"{value} (as asked)" + (f"; {share}" if share and value == "on" else "")
    if top is None:
        return False, "auto: the model has no kernels (weights of rank 2 or 4)"
    if top.zeros >= AUTO_ZEROS:
        return True, f"auto: {share} (at least {AUTO_ZEROS * 100:.0f} %)"
    return False, f"auto: no kernel has {AUTO_ZEROS * 100:.0f} % zeros (the most: {share})"
