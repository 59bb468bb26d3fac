"""The reviewed table of the Keras 3 classes the bridge translates into tf_keras, key by key.

Each Keras 3 layer class the bridge accepts has a `Rule`: every key of its config is kept (same name
and meaning in tf_keras 2.21), renamed, or dropped because the table marks its value inert (a
feature tf_keras lacks, switched off: `synchronized: False`, `quantization_config: None`, ...).
Any other key, or an inert key with another value, is refused naming layer, class and key; so is
every class not in the table. The rules were written from the constructors and `get_config` of
keras 3.15.1 (`keras/src/layers/...`) and tf_keras 2.21 (`tf_keras/src/layers/...`); the proof
(exporter/keras3/proof.py) checks the result on data at every export.

Every layer also takes `name`, `trainable` and `dtype` (a float32 DTypePolicy becomes "float32").
Initializers, regularizers and constraints are translated by their own tables below; activations
by `ACTIVATIONS`, except Keras 3's `hard_sigmoid` (relu6(x + 3) / 6: tf_keras's `hard_sigmoid` is
another function, clip(0.2 x + 0.5)) and `hard_silu` (x · hard_sigmoid(x)), which an Activation
layer expands into Rescaling(1, 3) → ReLU(6) → Rescaling(1/6) [→ Multiply with x]: the same
arithmetic but a multiply by 1/6 instead of a divide by 6 (at most one float32 rounding apart).

Example:
    >>> RULES["LeakyReLU"].rename, RULES["BatchNormalization"].inert["synchronized"]
    ({'negative_slope': 'alpha'}, (False,))
    >>> RULES["DepthwiseConv2D"].weights, ACTIVATIONS["silu"], sorted(EXPANDED)
    ({'kernel': 'depthwise_kernel'}, 'swish', ['hard_sigmoid', 'hard_silu', 'hard_swish'])
    >>> OPS["Subtract"](3.0, True), OPS["TrueDivide"](6.0, True)         # 3 - x; 6 / x has no Rescaling
    ((-1.0, 3.0), None)
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ACTIVATIONS", "ANY", "BASE_KEYS", "CONSTRAINTS", "EXPANDED", "INITIALIZERS", "OPS", "REGULARIZERS", "RULES",
           "Rule"]

BASE_KEYS = frozenset({"name", "trainable", "dtype"})
ANY = "<any value>"
"""An inert value matching every value: for a key that acts only with another key the table requires off."""


@dataclass(frozen=True)
class Rule:
    """How one Keras 3 class becomes tf_keras.

    Attributes:
        keep: config keys copied as they are (values of initializer, regularizer, constraint,
            activation and dtype keys are translated by their tables).
        rename: Keras 3 key → tf_keras key, same meaning.
        inert: key → the values for which it is dropped (any other value is refused; `ANY`: all).
        weights: Keras 3 weight name → tf_keras weight name, where they differ (others match by name).
        reads: Keras 3 weight name → the layer attribute its call reads instead, copied in its place
            (Normalization computes with `mean`/`variance` tensors made from its weights when they are
            loaded or adapted, not after a `set_weights`: the bridge copies what Keras 3 computes with).
        tf_class: the tf_keras class (default: the same name).
        base: the class also takes `name`, `trainable` and `dtype`.
    """

    keep: frozenset = frozenset()
    rename: dict = field(default_factory=dict)
    inert: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    reads: dict = field(default_factory=dict)
    tf_class: str | None = None
    base: bool = True

    def known(self) -> frozenset:
        """Every key this rule accepts."""
        return self.keep | set(self.rename) | set(self.inert) | (BASE_KEYS if self.base else frozenset())


def _rule(keys: str = "", **kwargs) -> Rule:
    return Rule(frozenset(keys.split()), **kwargs)


_LORA = {"lora_rank": (None,), "lora_alpha": (None,)}
_CONV = ("filters kernel_size strides padding data_format dilation_rate groups activation use_bias kernel_initializer "
         "bias_initializer kernel_regularizer bias_regularizer activity_regularizer kernel_constraint bias_constraint")
_DEPTHWISE = ("depth_multiplier kernel_size strides padding data_format dilation_rate activation use_bias "
              "depthwise_initializer bias_initializer depthwise_regularizer bias_regularizer activity_regularizer "
              "depthwise_constraint bias_constraint")
_SEPARABLE = (_DEPTHWISE + " filters pointwise_initializer pointwise_regularizer pointwise_constraint")
_DENSE = ("units activation use_bias kernel_initializer bias_initializer kernel_regularizer bias_regularizer "
          "activity_regularizer kernel_constraint bias_constraint")
_BATCHNORM = ("axis momentum epsilon center scale beta_initializer gamma_initializer moving_mean_initializer "
              "moving_variance_initializer beta_regularizer gamma_regularizer beta_constraint gamma_constraint")
_LAYERNORM = ("axis epsilon center scale beta_initializer gamma_initializer beta_regularizer gamma_regularizer "
              "beta_constraint gamma_constraint")
_POOL, _GLOBAL_POOL = "pool_size strides padding data_format", "data_format keepdims"

RULES: dict[str, Rule] = {
    "InputLayer": _rule("dtype name", rename={"batch_shape": "batch_input_shape"}, base=False,
                        inert={"sparse": (False,), "ragged": (False,), "optional": (False,)}),
    "Conv1D": _rule(_CONV, inert=_LORA),
    "Conv2D": _rule(_CONV, inert=_LORA),
    "DepthwiseConv2D": _rule(_DEPTHWISE, weights={"kernel": "depthwise_kernel"}),
    "SeparableConv2D": _rule(_SEPARABLE),
    "Dense": _rule(_DENSE, inert={"quantization_config": (None,), **_LORA}),
    "BatchNormalization": _rule(_BATCHNORM, inert={"synchronized": (False,), "renorm": (False,),
                                                   "renorm_clipping": (None,), "renorm_momentum": (ANY,)}),
    "LayerNormalization": _rule(_LAYERNORM, inert={"rms_scaling": (False,)}),
    **{f"{kind}Pooling{d}D": _rule(_POOL) for kind in ("Max", "Average") for d in (1, 2)},
    **{f"Global{kind}Pooling{d}D": _rule(_GLOBAL_POOL) for kind in ("Max", "Average") for d in (1, 2)},
    "Activation": _rule("activation"),
    "ReLU": _rule("max_value negative_slope threshold"),
    "Softmax": _rule("axis"),
    "LeakyReLU": _rule(rename={"negative_slope": "alpha"}),
    "Add": _rule(),
    "Multiply": _rule(),
    "Concatenate": _rule("axis"),
    "Reshape": _rule("target_shape"),
    "Flatten": _rule("data_format"),
    "Permute": _rule("dims"),
    "Dropout": _rule("rate noise_shape seed"),
    "ZeroPadding2D": _rule("padding data_format"),
    "UpSampling2D": _rule("size data_format interpolation"),
    "Rescaling": _rule("scale offset"),
    "Normalization": _rule("axis mean variance invert",
                           weights={"mean": "mean", "variance": "variance", "count": "count"},
                           reads={"mean": "mean", "variance": "variance"}),
}
"""Keras 3 layer class → its Rule."""

def _add(c: float, left: bool):
    return 1.0, c


def _subtract(c: float, left: bool):
    return (-1.0, c) if left else (1.0, -c)


def _multiply(c: float, left: bool):
    return c, 0.0


def _divide(c: float, left: bool):
    return None if left or c == 0 else (1.0 / c, 0.0)


OPS = {"Add": _add, "Subtract": _subtract, "Multiply": _multiply, "TrueDivide": _divide, "Divide": _divide}
"""Keras 3 operations of a tensor and a number c (`x + 3.0` in a functional model: module
`keras.src.ops.numpy`, config holding only `name`) → (scale, offset) of the tf_keras Rescaling computing
x·scale + offset, given c and whether c is on the left; None when no Rescaling computes it (`6 / x`).
Exact but for division, which multiplies by 1/c (at most one float32 rounding apart)."""

ACTIVATIONS: dict[str, str] = {
    **{n: n for n in "linear relu relu6 elu selu softplus softsign tanh sigmoid exponential softmax mish gelu".split()},
    "silu": "swish", "swish": "swish"}
"""Keras 3 activation name → the tf_keras activation computing the same function."""

EXPANDED = frozenset({"hard_sigmoid", "hard_silu", "hard_swish"})
"""Activations an Activation layer expands into several tf_keras layers (see the module docstring)."""

_AXES = {"input_axes": (None,), "output_axes": (None,)}
_SEEDED = _rule("seed", inert=_AXES, base=False)
INITIALIZERS: dict[str, Rule] = {
    **{n: _SEEDED for n in "GlorotUniform GlorotNormal HeNormal HeUniform LecunNormal LecunUniform".split()},
    "VarianceScaling": _rule("scale mode distribution seed", inert=_AXES, base=False),
    "RandomNormal": _rule("mean stddev seed", base=False),
    "RandomUniform": _rule("minval maxval seed", base=False),
    "TruncatedNormal": _rule("mean stddev seed", base=False),
    "Constant": _rule("value", base=False),
    "Zeros": _rule(base=False),
    "Ones": _rule(base=False),
    "Orthogonal": _rule("gain seed", base=False),
    "OrthogonalInitializer": _rule("gain seed", base=False, tf_class="Orthogonal"),
    "IdentityInitializer": _rule("gain", base=False, tf_class="Identity"),
}
"""Keras 3 initializer class → Rule (they only shape fresh weights: the bridge copies every weight)."""

REGULARIZERS: dict[str, Rule] = {
    "L1": _rule("l1", base=False), "L2": _rule("l2", base=False), "L1L2": _rule("l1 l2", base=False),
    "OrthogonalRegularizer": _rule("factor mode", base=False)}
"""Keras 3 regularizer class → Rule (they act when compression stages fine-tune)."""

CONSTRAINTS: dict[str, Rule] = {
    "MaxNorm": _rule("max_value axis", base=False), "MinMaxNorm": _rule("min_value max_value rate axis", base=False),
    "NonNeg": _rule(base=False), "UnitNorm": _rule("axis", base=False)}
"""Keras 3 constraint class → Rule."""
