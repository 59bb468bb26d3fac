"""Allow-list scan of a Keras model config before any loader sees it.

Everything a config names is checked against reviewed tables: the modules it may point at and
their classes, activations, the TensorFlow ops a TFOpLambda/SlicingOpLambda may call (pure math,
array, nn and image-resize ops) and the constants those ops receive. Anything else is reported
with its JSON path (`$.config.layers[3]...`). The tables come from the configs tf_keras 2.21 and
Keras 3.15 write (Sequential, Functional, applications; every exported layer, initializer,
regularizer, constraint, activation, dtype policy), minus whatever can read files or run code.

Example:
    >>> find_problems({"layers": [{"class_name": "Lambda", "config": {"name": "f"}}]}).unsafe
    ["Lambda layer 'f' at $.layers[0] (holds Python code)"]
"""
from __future__ import annotations

import re
import sys
from collections import deque
from dataclasses import dataclass, field

from exporter.errors import ModelFileError, UnsafeModelError
from exporter.option_names import option

def trust_hint() -> str:
    """The default advice of a refusal: how to trust the model (`--trust-model` or `trust_model=True`)."""
    return f"If you trust the source of this model, pass {option('trust_model')} to lift this check."


LAYERS = frozenset("""
Activation ActivityRegularization AdaptiveAveragePooling1D AdaptiveAveragePooling2D AdaptiveAveragePooling3D
AdaptiveMaxPooling1D AdaptiveMaxPooling2D AdaptiveMaxPooling3D Add AdditiveAttention AlphaDropout Attention
AugMix AutoContrast Average AveragePooling1D AveragePooling2D AveragePooling3D AvgPool1D AvgPool2D AvgPool3D
BatchNormalization Bidirectional CategoryEncoding CenterCrop Concatenate
ContrastLimitedAdaptiveHistogramEqualization Conv1D Conv1DTranspose Conv2D Conv2DTranspose Conv3D
Conv3DTranspose ConvLSTM1D ConvLSTM2D ConvLSTM3D Convolution1D Convolution1DTranspose Convolution2D
Convolution2DTranspose Convolution3D Convolution3DTranspose Cropping1D Cropping2D Cropping3D CutMix Dense
DepthwiseConv1D DepthwiseConv2D Discretization Dot Dropout ELU EinsumDense Embedding Equalization Flatten GRU
GRUCell GaussianDropout GaussianNoise GlobalAveragePooling1D GlobalAveragePooling2D GlobalAveragePooling3D
GlobalAvgPool1D GlobalAvgPool2D GlobalAvgPool3D GlobalMaxPool1D GlobalMaxPool2D GlobalMaxPool3D
GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D GroupNormalization GroupQueryAttention HashedCrossing
Hashing Identity InputLayer LSTM LSTMCell LayerNormalization LeakyReLU LocallyConnected1D LocallyConnected2D
Masking MaxNumBoundingBoxes MaxPool1D MaxPool2D MaxPool3D MaxPooling1D MaxPooling2D MaxPooling3D Maximum
MelSpectrogram Minimum MixUp MultiHeadAttention Multiply Normalization PReLU Permute Pipeline RMSNormalization
RNN RandAugment RandomBrightness RandomColorDegeneration RandomColorJitter RandomContrast RandomCrop
RandomElasticTransform RandomErasing RandomFlip RandomGaussianBlur RandomGrayscale RandomHeight RandomHue
RandomInvert RandomPerspective RandomPosterization RandomRotation RandomSaturation RandomSharpness RandomShear
RandomTranslation RandomWidth RandomZoom ReLU RepeatVector Rescaling Reshape Resizing ReversibleEmbedding
STFTSpectrogram SeparableConv1D SeparableConv2D SeparableConvolution1D SeparableConvolution2D SimpleRNN
SimpleRNNCell Softmax Solarization SpatialDropout1D SpatialDropout2D SpatialDropout3D SpectralNormalization
StackedRNNCells Subtract ThresholdedReLU TimeDistributed UnitNormalization UpSampling1D UpSampling2D
UpSampling3D ZeroPadding1D ZeroPadding2D ZeroPadding3D""".split())
INITIALIZERS = frozenset("""Constant GlorotNormal GlorotUniform HeNormal HeUniform Identity IdentityInitializer
LecunNormal LecunUniform Ones Orthogonal OrthogonalInitializer RandomNormal RandomUniform STFT STFTInitializer
TruncatedNormal VarianceScaling Zeros""".split())
REGULARIZERS = frozenset({"L1", "L1L2", "L2", "OrthogonalRegularizer"})
CONSTRAINTS = frozenset({"MaxNorm", "MinMaxNorm", "NonNeg", "RadialConstraint", "UnitNorm"})
DTYPE_POLICIES = frozenset("""DTypePolicy FloatDTypePolicy QuantizedDTypePolicy QuantizedFloat8DTypePolicy
Int4DTypePolicy GPTQDTypePolicy AWQDTypePolicy DTypePolicyMap""".split())
MODELS = frozenset({"Sequential", "Functional", "Model"})
OP_LAYERS = frozenset({"TFOpLambda", "SlicingOpLambda"})
# Activation names (strings, or `class_name: "function"` entries) of tf_keras and Keras 3.
ACTIVATIONS = frozenset("""celu elu exponential gelu glu hard_shrink hard_sigmoid hard_silu hard_swish hard_tanh
leaky_relu linear log_sigmoid log_softmax mish relu relu6 selu sigmoid silu soft_shrink softmax softplus
softsign sparse_plus sparse_sigmoid sparsemax squareplus swish tanh tanh_shrink threshold""".split())
ACTIVATION_MODULES = frozenset({"builtins", "keras.activations", "tf_keras.activations", "keras.src.activations",
                                "keras.src.activations.activations", "tf_keras.src.activations"})
# The `function` names a TFOpLambda/SlicingOpLambda may call: canonical TF API names (what tf_keras
# writes; resolved by tf_export.get_symbol_from_name), pure tensor ops only.
TF_OPS = frozenset("""__operators__.add __operators__.eq __operators__.getitem __operators__.ne argsort
boolean_mask broadcast_to cast clip_by_value compat.v1.boolean_mask compat.v1.expand_dims compat.v1.floor_div
compat.v1.gather compat.v1.gather_nd compat.v1.image.resize_images compat.v1.math.argmax compat.v1.math.argmin
compat.v1.math.count_nonzero compat.v1.math.reduce_all compat.v1.math.reduce_any
compat.v1.math.reduce_logsumexp compat.v1.math.reduce_max compat.v1.math.reduce_mean compat.v1.math.reduce_min
compat.v1.math.reduce_prod compat.v1.math.reduce_sum compat.v1.math.scalar_mul compat.v1.nn.avg_pool
compat.v1.nn.conv1d compat.v1.nn.conv2d compat.v1.nn.depth_to_space compat.v1.nn.depthwise_conv2d
compat.v1.nn.log_softmax compat.v1.nn.max_pool compat.v1.nn.moments compat.v1.nn.softmax
compat.v1.nn.space_to_depth compat.v1.norm compat.v1.ones_like compat.v1.pad compat.v1.shape compat.v1.size
compat.v1.squeeze compat.v1.transpose compat.v1.where compat.v1.zeros_like concat ensure_shape expand_dims fill
gather gather_nd identity image.central_crop image.convert_image_dtype image.crop_to_bounding_box
image.flip_left_right image.flip_up_down image.grayscale_to_rgb image.pad_to_bounding_box
image.per_image_standardization image.resize image.resize_with_crop_or_pad image.resize_with_pad
image.rgb_to_grayscale linalg.matmul math.abs math.acos math.add math.add_n math.argmax math.argmin math.asin
math.atan math.ceil math.cos math.count_nonzero math.cumprod math.cumsum math.divide math.divide_no_nan
math.equal math.erf math.exp math.expm1 math.floor math.floordiv math.floormod math.greater math.greater_equal
math.is_finite math.is_nan math.l2_normalize math.less math.less_equal math.log math.log1p math.log_sigmoid
math.logical_and math.logical_not math.logical_or math.logical_xor math.maximum math.minimum math.multiply
math.multiply_no_nan math.negative math.not_equal math.pow math.reciprocal math.reduce_all math.reduce_any
math.reduce_euclidean_norm math.reduce_logsumexp math.reduce_max math.reduce_mean math.reduce_min
math.reduce_prod math.reduce_std math.reduce_sum math.reduce_variance math.round math.rsqrt math.scalar_mul
math.sigmoid math.sign math.sin math.softplus math.sqrt math.square math.squared_difference math.subtract
math.tan math.tanh math.top_k math.truediv nn.avg_pool nn.avg_pool1d nn.avg_pool2d nn.avg_pool3d
nn.batch_normalization nn.bias_add nn.conv1d nn.conv2d nn.depth_to_space nn.depthwise_conv2d nn.elu nn.gelu
nn.leaky_relu nn.log_softmax nn.max_pool nn.max_pool1d nn.max_pool2d nn.max_pool3d nn.moments nn.relu nn.relu6
nn.selu nn.silu nn.softmax nn.softsign nn.space_to_depth norm one_hot ones ones_like pad range rank realdiv
repeat reshape reverse roll shape size slice sort split squeeze stack stop_gradient strided_slice tile
transpose unstack where zeros zeros_like""".split())
# Constants a TF op may receive: dtype names anywhere, these words only under their keyword.
DTYPES = frozenset("""bfloat16 bool complex128 complex64 double float16 float32 float64 half int16 int32 int64
int8 uint16 uint32 uint64 uint8""".split())
ENUMS = {"padding": {"SAME", "VALID", "same", "valid"},
         "data_format": {"NHWC", "NCHW", "NWC", "NCW", "NDHWC", "NCDHW", "channels_last", "channels_first"},
         "method": {"bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic"},
         "mode": {"CONSTANT", "REFLECT", "SYMMETRIC", "constant", "reflect", "symmetric"},
         "direction": {"ASCENDING", "DESCENDING"}}
_OP_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
_ENGINE = {"engine.functional": {"Functional"}, "engine.sequential": {"Sequential"}, "engine.training": {"Model"},
           "layers.core.tf_op_layer": OP_LAYERS, "applications.convnext": {"LayerScale"}}
# module -> the classes it may name. Every other module is refused before anything is imported.
MODULE_CLASSES = {
    "keras": MODELS | DTYPE_POLICIES, "tf_keras": MODELS, "keras.models": MODELS,
    "keras.layers": LAYERS, "keras.initializers": INITIALIZERS, "keras.regularizers": REGULARIZERS,
    "keras.constraints": CONSTRAINTS, "keras.mixed_precision": {"Policy"},
    "keras.dtype_policies": DTYPE_POLICIES, "keras.src.dtype_policies": DTYPE_POLICIES,
    "keras.src.dtype_policies.dtype_policy": DTYPE_POLICIES,
    "keras.src.models.functional": {"Functional"}, "keras.src.models.sequential": {"Sequential"},
    "keras.src.models.model": {"Model"}, "tensorflow.python.ops.init_ops_v2": INITIALIZERS,  # EfficientNetV2
    **{f"{root}{mod}": names for mod, names in _ENGINE.items()
       for root in ("keras.", "keras.src.", "tf_keras.src.")}}
# Keras 3 op classes (`x + 1` in a Keras 3 functional model): Keras 3 files are refused after the
# scan and tf_keras cannot import these modules, so any class name is accepted here.
KERAS3_OP_MODULES = frozenset(f"keras.src.ops.{m}" for m in ("core", "image", "linalg", "math", "nn", "numpy"))
# Data records, not classes: no module, nothing imported.
DATA_CLASSES = frozenset({"__tensor__", "__numpy__", "__keras_tensor__", "__slice__", "__tuple__", "TensorShape"})
# Known classes refused with a reason (module or not).
REFUSED = {"Lambda": "holds Python code", "__lambda__": "a serialized Python lambda",
           "TensorFlowOpLayer": "runs any TensorFlow op from a NodeDef",
           "ClassMethod": "calls a method named in the file", "InstanceMethod": "calls a method named in the file",
           "InstanceProperty": "reads an attribute named in the file",
           "TextVectorization": "can read a vocabulary file", "StringLookup": "can read a vocabulary file",
           "IntegerLookup": "can read a vocabulary file", "DenseFeatures": "feature columns can read files",
           "SequenceFeatures": "feature columns can read files", "TFSMLayer": "loads a SavedModel",
           "JaxLayer": "holds Python code", "FlaxLayer": "holds Python code",
           "TorchModuleWrapper": "holds Python code", "ResidualWrapper": "holds a Python function",
           "TypeSpec": "names a TensorFlow type", "CompositeTensor": "builds a TensorFlow composite",
           "__typespec__": "imports the module it names"}
# Modules whose names in a config are an attack, not a user's own layers.
_HOSTILE_ROOTS = frozenset(sys.stdlib_module_names) | {
    "keras", "tf_keras", "tensorflow", "tf", "tensorflow_core", "tensorboard", "numpy", "h5py", "absl",
    "google", "ml_dtypes", "pip", "setuptools", "exporter", "targets"}
_KNOWN = LAYERS | INITIALIZERS | REGULARIZERS | CONSTRAINTS | DTYPE_POLICIES | MODELS | OP_LAYERS | {"Policy"}


@dataclass
class Findings:
    """What a scan found: `unsafe` (could run code, exit 3) and `custom` (needs user code, exit 2)."""

    unsafe: list[str] = field(default_factory=list)
    custom: list[str] = field(default_factory=list)


def find_problems(config) -> Findings:
    """Walk a model config (iteratively, any depth) and list everything not on the allow-lists.

    Args:
        config: The parsed config (a .keras `config.json` or an .h5 `model_config`).

    Returns:
        The `Findings`, each naming the JSON path of the problem.
    """
    found = Findings()
    todo = deque([(config, "$")])
    while todo:
        node, where = todo.popleft()
        if isinstance(node, dict):
            todo.extend((v, _at(where, f".{k}")) for k, v in node.items())
            _check_dict(node, where, found)
        elif isinstance(node, list):
            todo.extend((v, _at(where, f"[{i}]")) for i, v in enumerate(node))
    return found


def scan_config(config, *, origin: str, hint: str | None = None) -> None:
    """Refuse a model config that names anything outside the allow-lists.

    Args:
        config: The parsed model config.
        origin: Where the config came from, for messages (e.g. the path).
        hint: What the user can do about a refusal. Default: `trust_hint()`.

    Raises:
        UnsafeModelError: Something that could run code, touch files or import a module.
        ModelFileError: A custom (non-Keras) class.
    """
    found = find_problems(config)
    raise_unsafe(found.unsafe, origin, hint)
    raise_custom(found.custom, origin, hint)


def raise_unsafe(unsafe: list[str], origin: str, hint: str | None = None) -> None:
    """Raise UnsafeModelError listing up to five findings, if there are any.

    Args:
        unsafe: Findings, each naming its JSON path.
        origin: The model file, for the message.
        hint: What the user can do about it. Default: `trust_hint()`.

    Raises:
        UnsafeModelError: `unsafe` is not empty.
    """
    if unsafe:
        more = f"; and {len(unsafe) - 5} more" if len(unsafe) > 5 else ""
        raise UnsafeModelError(f"refusing to load {origin}: its config names things edgex does not "
                               f"allow (they could run code or touch files when loaded): "
                               f"{'; '.join(unsafe[:5])}{more}. {hint or trust_hint()}")


def raise_custom(custom: list[str], origin: str, hint: str | None = None) -> None:
    """Raise ModelFileError (exit 2) for custom classes, if there are any; arguments as for `raise_unsafe`."""
    if custom:
        raise ModelFileError(
            f"cannot load {origin}: it uses custom classes that are not part of tf_keras "
            f"({'; '.join(custom[:5])}). Custom layers need their Python code, which edgex does not "
            f"import. {hint or trust_hint()}{' (tf_keras must then be able to import it)' if hint is None else ''}")


def _check_dict(d: dict, where: str, found: Findings) -> None:
    for key in ("activation", "recurrent_activation"):
        value = d.get(key)
        if isinstance(value, str) and value not in ACTIVATIONS:
            found.unsafe.append(f"activation {value[:80]!r} at {where}.{key} (not a Keras activation)")
    if any(str(k).endswith("_type") and v == "lambda" for k, v in d.items()):
        found.unsafe.append(f"serialized Python lambda at {where}")
    if "class_name" in d:
        _check_object(d, where, found)
    elif "module" in d:
        _check_module(d.get("module"), None, where, found)


def _check_object(d: dict, where: str, found: Findings) -> None:
    cls, module, registered = d.get("class_name"), d.get("module"), d.get("registered_name")
    if not isinstance(cls, str):
        found.unsafe.append(f"class_name {str(cls)[:80]!r} at {where}.class_name (not a string)")
    elif cls in REFUSED:
        inner = d.get("config")
        name = f" {inner.get('name')!r}" if isinstance(inner, dict) and "name" in inner else ""
        kind = cls if cls.startswith("_") or cls in ("TypeSpec", "CompositeTensor") else f"{cls} layer"
        found.unsafe.append(f"{kind}{name} at {where} ({REFUSED[cls]})")
    elif cls == "function":
        _check_function(d, where, found)
    elif cls in DATA_CLASSES or cls.startswith("__"):
        if cls not in DATA_CLASSES or module is not None:
            found.unsafe.append(f"record {cls[:80]!r} at {where}.class_name (not an allowed data record)")
    elif module is None and cls not in _KNOWN:
        found.custom.append(f"class {cls[:80]!r} at {where}")
    elif module is None or _check_module(module, cls, where, found):
        if registered not in (None, cls):   # a registered name would be looked up before the module
            found.unsafe.append(f"registered_name {str(registered)[:80]!r} at {where}.registered_name "
                                f"(must be {cls!r} for a Keras class)")
        elif cls in OP_LAYERS:
            _check_op_layer(d, where, found)


def _check_module(module, cls, where: str, found: Findings) -> bool:
    """Record a module (and class) outside the allow-lists; True when both are allowed."""
    if not isinstance(module, str):
        found.unsafe.append(f"module {str(module)[:80]!r} at {where}.module (not a string)")
        return False
    allowed = MODULE_CLASSES.get(module)
    if module in KERAS3_OP_MODULES and (cls is None or cls.isidentifier()):
        return True
    if allowed is not None and (cls is None or cls in allowed):
        return True
    if allowed is not None or module.split(".")[0] in _HOSTILE_ROOTS:
        what = f"class '{module[:80]}.{cls[:80]}'" if allowed is not None else f"module {module[:80]!r}"
        found.unsafe.append(f"{what} at {where}.module (not on edgex's allow-list)")
    else:
        found.custom.append(f"'{str(cls)[:80]}' from module {module[:80]!r} at {where}")
    return False


def _check_function(d: dict, where: str, found: Findings) -> None:
    module, name, registered = d.get("module"), d.get("config"), d.get("registered_name")
    if (isinstance(module, str) and isinstance(name, str) and module in ACTIVATION_MODULES
            and name in ACTIVATIONS and registered in (None, "function", name)):
        return
    found.unsafe.append(f"function '{str(module)[:80]}.{str(name)[:80]}' at {where} "
                        "(only Keras activation functions may be named)")


def _check_op_layer(d: dict, where: str, found: Findings) -> None:
    inner = d.get("config")
    fn = inner.get("function") if isinstance(inner, dict) else None
    if not isinstance(fn, str) or fn not in TF_OPS:
        found.unsafe.append(f"{d['class_name']} calling tf.{str(fn)[:80]} at {where}.config.function "
                            "(not a pure tensor op on edgex's allow-list)")
    todo = deque([(d.get("inbound_nodes", []), f"{where}.inbound_nodes")])
    while todo:
        node, at = todo.popleft()
        if isinstance(node, list) and len(node) in (3, 4) and isinstance(node[0], str):
            _check_entry(node, at, found)
        elif isinstance(node, list):
            todo.extend((v, f"{at}[{i}]") for i, v in enumerate(node))
        else:
            found.unsafe.append(f"unexpected {type(node).__name__} at {at} (not an op input)")


def _check_entry(entry: list, at: str, found: Findings) -> None:
    """One op input: [layer, node, tensor, kwargs] or ['_CONSTANT_VALUE', -1, value, kwargs]."""
    if entry[0] == "_CONSTANT_VALUE":
        _check_constant(entry[2], f"{at}[2]", None, found)
    elif not (isinstance(entry[1], int) and isinstance(entry[2], int)):
        found.unsafe.append(f"malformed tensor reference at {at}")
    kwargs = entry[3] if len(entry) == 4 else {}
    if not isinstance(kwargs, dict):
        found.unsafe.append(f"call arguments at {at}[3] are not an object")
        return
    for key, value in kwargs.items():
        _check_constant(value, f"{at}[3].{key}", key, found, refs=True)


def _check_constant(value, at: str, key, found: Findings, refs: bool = False) -> None:
    """A constant op argument: numbers, bools, null, lists, slices, shapes or dtype names.

    In call kwargs (`refs`), tf_keras reads any [str, ...] list of length 3 or 4 as a tensor reference.
    """
    todo = deque([(value, at)])
    while todo:
        v, where = todo.popleft()
        if v is None or isinstance(v, (bool, int, float)):
            continue
        if refs and isinstance(v, list) and len(v) in (3, 4) and isinstance(v[0], str):
            if not (len(v) == 3 and isinstance(v[1], int) and isinstance(v[2], int)):
                found.unsafe.append(f"malformed tensor reference at {where}")
        elif isinstance(v, list):
            todo.extend((x, f"{where}[{i}]") for i, x in enumerate(v))
        elif isinstance(v, str):
            if not (v in DTYPES or v in ENUMS.get(key, ()) or (key == "name" and _OP_NAME.fullmatch(v))):
                found.unsafe.append(f"constant {v[:80]!r} at {where} (an op argument may only be a number, "
                                    "a list of numbers, a bool, null, a shape or a dtype name)")
        elif isinstance(v, dict) and set(v) == {"start", "stop", "step"}:
            todo.extend((x, f"{where}.{k}") for k, x in v.items())
        elif isinstance(v, dict) and v.get("class_name") in ("TensorShape", "__tuple__") and set(v) <= {
                "class_name", "items"}:
            todo.append((v.get("items"), f"{where}.items"))
        else:
            found.unsafe.append(f"constant of type {type(v).__name__} at {where} (not an allowed op argument)")


def _at(where: str, step: str) -> str:
    path = where + step  # JSON path for messages, kept short for deep configs
    return path if len(path) <= 240 else "$..." + path[-200:]

