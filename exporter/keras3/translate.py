"""A Keras 3 model config rewritten, layer by layer through the table, as a tf_keras functional config.

Keras 3 and tf_keras describe a functional model alike but for the details: a Keras 3 node is
`{"args": [<__keras_tensor__ record with keras_history [layer, node, tensor]>], "kwargs": {...}}`
where tf_keras writes `[[layer, node, tensor, kwargs], ...]`; `input_layers` may be a bare
`[layer, node, tensor]`; InputLayer has `batch_shape`; dtypes, initializers and activations are
translated by exporter/keras3/values.py. A Sequential model becomes a functional one (same layers,
names and weights: an Activation expansion needs a second input). Layer names are kept, so weights
are copied and outputs compared by name; an expansion's last layer carries the original name.

Example:
    >>> k3 = {"class_name": "Sequential", "config": {"name": "s", "layers": [
    ...     {"module": "keras.layers", "class_name": "InputLayer",
    ...      "config": {"batch_shape": [None, 4], "dtype": "float32", "name": "in", "sparse": False}},
    ...     {"module": "keras.layers", "class_name": "Activation", "config": {"name": "hs", "activation": "hard_silu"}}]}}
    >>> out = translate(k3, "m.keras")
    >>> [(layer["class_name"], layer["name"]) for layer in out.config["layers"]]
    [('InputLayer', 'in'), ('Rescaling', 'hs_plus3'), ('ReLU', 'hs_relu6'), ('Rescaling', 'hs_div6'), ('Multiply', 'hs')]
    >>> out.config["layers"][4]["inbound_nodes"], out.config["output_layers"], out.added
    ([[['in', 0, 0, {}], ['hs_div6', 0, 0, {}]]], [['hs', 0, 0]], ['hs_plus3', 'hs_relu6', 'hs_div6'])
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from exporter.errors import ModelFileError
from exporter.option_names import option
from exporter.keras3.table import EXPANDED, OPS, RULES, Rule
from exporter.keras3.values import dtype, translate_keys

__all__ = ["Translation", "refusal_hint", "translate"]

_RECORD_KEYS = frozenset({"module", "class_name", "config", "registered_name", "build_config", "name", "inbound_nodes"})
_MODEL_KEYS = {"Functional": {"name", "trainable", "layers", "input_layers", "output_layers", "dtype"},
               "Sequential": {"name", "trainable", "dtype", "layers", "build_input_shape"}}


def refusal_hint() -> str:
    """What to do with a Keras 3 model the bridge cannot translate.

    Example:
        >>> refusal_hint().endswith("and pass the .tflite as model")       # from edgex: "as MODEL"
        True
    """
    return ("Rebuild the model in tf_keras (`import tf_keras as keras`, the same layers, then copy the weights "
            "with get_weights()/set_weights()), or export it to .tflite with Keras 3 itself "
            f"(`model.export('model.tflite', format='litert')`) and pass the .tflite as {option('model')}")


@dataclass
class Translation:
    """The tf_keras functional config and what the weight copy and the report need.

    Attributes:
        config: the tf_keras functional config (`tf_keras.Model.from_config`).
        rules: Keras 3 layer name → its Rule (for the weight names), for every translated layer.
        classes: Keras 3 layer name → its Keras 3 class name (ops: "ops.<name>").
        added: names of the tf_keras layers that expansions added (no Keras 3 counterpart).
    """

    config: dict
    rules: dict = field(default_factory=dict)
    classes: dict = field(default_factory=dict)
    added: list = field(default_factory=list)


def translate(record: dict, origin: str) -> Translation:
    """Translate a Keras 3 model record ({"class_name", "config", ...}) into a tf_keras functional config.

    Args:
        record: the model's record: `config.json` of a `.keras`, the `model_config` of an `.h5`, or
            what `keras.saving.serialize_keras_object(model)` gives for a model object (as JSON).
        origin: the model file (or a description of the in-memory model), for messages.

    Returns:
        The Translation.

    Raises:
        ModelFileError: (exit 2) a model, layer or class outside the table, a config key the table
            does not know, or an inert key with a value that is not inert; up to five are named.
    """
    problems: list[str] = []
    cls = record.get("class_name") if isinstance(record, dict) else None
    config = record.get("config") if isinstance(record, dict) else None
    kind = "Functional" if cls in ("Functional", "Model") else cls if isinstance(cls, str) else None
    if kind not in _MODEL_KEYS or not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        _refuse(origin, [f"model class {str(cls)[:80]!r} (only Functional and Sequential models are bridged; "
                         "a subclassed model has no config to translate)"])
    for key in sorted(set(config) - _MODEL_KEYS[kind]):
        problems.append(f"model config key {key!r} is not in the table")
    if config.get("dtype") is not None:
        dtype(config["dtype"], "model dtype", problems)
    taken = {_name(r) for r in config["layers"]} - {None}
    layers = _sequential_layers(config, taken, problems) if kind == "Sequential" else config["layers"]
    name, trainable = config.get("name", "model"), config.get("trainable", True)
    if not isinstance(name, str) or not isinstance(trainable, bool):
        problems.append("model name or trainable is not a string or a bool")
    out = Translation({"name": str(name), "trainable": trainable is not False, "layers": []})
    for i, layer in enumerate(layers):
        _layer(layer, i, out, taken, problems)
    if kind == "Sequential":
        ends = [out.config["layers"][0]["name"], out.config["layers"][-1]["name"]] if out.config["layers"] else []
        inputs, outputs = [[ends[0], 0, 0]] if ends else [], [[ends[-1], 0, 0]] if ends else []
    else:
        inputs = _endpoints(config.get("input_layers"), "input_layers", problems)
        outputs = _endpoints(config.get("output_layers"), "output_layers", problems)
    out.config.update(input_layers=inputs, output_layers=outputs)
    if problems:
        _refuse(origin, problems)
    return out


def _refuse(origin: str, problems: list[str]):
    more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
    raise ModelFileError(f"cannot bridge the Keras 3 model {origin} to tf_keras: {'; '.join(problems[:5])}{more}. "
                         f"{refusal_hint()}")


def _name(record) -> str | None:
    """The layer name in a layer record's config, or None."""
    config = record.get("config") if isinstance(record, dict) else None
    name = config.get("name") if isinstance(config, dict) else None
    return name if isinstance(name, str) else None


def _sequential_layers(config: dict, taken: set, problems: list) -> list:
    """A Sequential's layer records as functional ones: an InputLayer first, each layer on the one before."""
    layers = [dict(r) for r in config["layers"] if isinstance(r, dict)]
    if not layers or layers[0].get("class_name") != "InputLayer":
        shape = config.get("build_input_shape")
        if not isinstance(shape, list):
            problems.append("the Sequential model was never built (no InputLayer, no build_input_shape)")
            return []
        layers.insert(0, {"class_name": "InputLayer", "config": {"batch_shape": shape, "dtype": "float32",
                                                                  "name": _unique("input_layer", taken)}})
    names = [_name(r) for r in layers]
    for i, record in enumerate(layers):
        record["name"] = names[i]
        record["inbound_nodes"] = [] if i == 0 else [{"args": [_tensor(names[i - 1])], "kwargs": {}}]
    return layers


def _tensor(name: str) -> dict:
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [name, 0, 0]}}


def _layer(record, index: int, out: Translation, taken: set, problems: list) -> None:
    """Translate one layer record (or a scalar op) into one or more tf_keras layer records."""
    config = record.get("config") if isinstance(record, dict) else None
    if not isinstance(config, dict) or not isinstance(record.get("class_name"), str):
        problems.append(f"layers[{index}] is not a layer record")
        return
    cls, name = record["class_name"], config.get("name")
    where = f"layer {str(name)[:80]!r} ({cls[:80]})"
    extra = sorted(set(record) - _RECORD_KEYS)
    nodes = record.get("inbound_nodes", [])
    if extra or not isinstance(name, str) or not isinstance(nodes, list):
        problems.append(f"{where}: record key {extra[0]!r} is not in the table" if extra else
                        f"{where}: a name that is not a string, or inbound_nodes that are not a list")
        return
    if str(record.get("module", "")).startswith("keras.src.ops."):
        return _op(record, name, where, out, problems)
    rule = RULES.get(cls)
    if rule is None:
        nested = " (a nested model: build it flat)" if cls in ("Functional", "Sequential", "Model") else ""
        problems.append(f"{where} is not in edgex's Keras 3 table{nested}")
        return
    nodes = [_node(n, where, problems) for n in nodes]
    out.rules[name], out.classes[name] = rule, cls
    if cls == "Activation" and isinstance(config.get("activation"), str) and config["activation"] in EXPANDED:
        return _expand(config, name, nodes, where, out, taken, problems)
    tf_config = translate_keys(config, rule, f"{where}: ", problems)
    out.config["layers"].append(_record(rule.tf_class or cls, tf_config, name, nodes))


def _record(cls: str, config: dict, name: str, nodes: list) -> dict:
    return {"module": "keras.layers", "class_name": cls, "config": {**config, "name": name},
            "registered_name": None, "name": name, "inbound_nodes": nodes}


def _node(node, where: str, problems: list) -> list:
    """A Keras 3 call ({"args", "kwargs"}) as tf_keras's [[layer, node, tensor, kwargs], ...]."""
    if not isinstance(node, dict) or not isinstance(node.get("args"), list) or len(node["args"]) != 1:
        problems.append(f"{where}: a call with other than one positional argument (the input)")
        return []
    call, kwargs = {}, node.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        problems.append(f"{where}: call arguments that are not an object")
        kwargs = {}
    for key, value in kwargs.items():
        if key == "training" and isinstance(value, bool):
            call[key] = value
        elif not (key == "mask" and value is None):
            problems.append(f"{where}: call argument {key!r} is not in the table")
    first = node["args"][0]
    refs = [_ref(t, where, problems) for t in (first if isinstance(first, list) else [first])]
    return [[*ref, dict(call)] for ref in refs if ref]


def _ref(tensor, where: str, problems: list) -> list | None:
    config = tensor.get("config") if isinstance(tensor, dict) else None
    history = config.get("keras_history") if isinstance(config, dict) else None
    if (tensor.get("class_name") if isinstance(tensor, dict) else None) != "__keras_tensor__" or not (
            isinstance(history, list) and len(history) == 3 and isinstance(history[0], str)
            and all(isinstance(i, int) and not isinstance(i, bool) for i in history[1:])):
        problems.append(f"{where}: an input that is not a tensor of the model ({str(tensor)[:60]})")
        return None
    return list(history)


def _endpoints(value, key: str, problems: list) -> list:
    """`input_layers`/`output_layers` as a list of [layer, node, tensor]."""
    items = [value] if isinstance(value, list) and value and isinstance(value[0], str) else value
    if not isinstance(items, list) or not all(isinstance(v, list) and len(v) == 3 and isinstance(v[0], str)
                                              for v in items):
        problems.append(f"model {key} {str(value)[:80]} is not a list of [layer, node, tensor]")
        return []
    return [list(v) for v in items]


def _op(record: dict, name, where: str, out: Translation, problems: list) -> None:
    """A Keras 3 operation of a tensor and a number (`x + 3.0`) as a Rescaling."""
    cls, nodes = record["class_name"], record["inbound_nodes"]
    scale = ref = None
    if cls in OPS and set(record["config"]) == {"name"} and len(nodes) == 1 and isinstance(nodes[0], dict):
        args, kwargs = nodes[0].get("args"), nodes[0].get("kwargs")
        numbers = [_number(a) for a in args] if isinstance(args, list) and len(args) == 2 else []
        if sum(n is not None for n in numbers) == 1 and not kwargs:
            left = numbers[0] is not None
            scale = OPS[cls](numbers[0 if left else 1], left)
            ref = _ref(args[1 if left else 0], where, problems)
    if scale is None:
        problems.append(f"operation {str(name)[:80]!r} ({cls[:80]}) is not in edgex's Keras 3 table (only +, -, * "
                        "and / of a tensor and a number are)")
        return
    out.rules[name], out.classes[name] = Rule(), f"ops.{cls}"
    config = {"trainable": True, "dtype": "float32", "scale": scale[0], "offset": scale[1]}
    out.config["layers"].append(_record("Rescaling", config, name, [[[*ref, {}]]] if ref else []))


def _number(value) -> float | None:
    """`value` as a finite float, or None (not a number, a bool, too large, NaN or infinite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _unique(base: str, taken: set) -> str:
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def _expand(config: dict, name: str, nodes: list, where: str, out: Translation, taken: set, problems: list):
    """Activation(hard_sigmoid | hard_silu | hard_swish) as Rescaling(1, 3) → ReLU(6) → Rescaling(1/6) [→ × x]."""
    rest = {k: v for k, v in config.items() if k != "activation"}
    base = translate_keys(rest, RULES["Activation"], f"{where}: ", problems)
    base.pop("name", None)
    if len(nodes) != 1 or len(nodes[0]) != 1:
        problems.append(f"{where}: {config['activation']} is only bridged for a layer called once on one tensor")
        return
    source = nodes[0][0][:3]
    silu = config["activation"] != "hard_sigmoid"
    names = [_unique(f"{name}_{s}", taken) for s in ("plus3", "relu6", *(("div6",) if silu else ()))] + [name]
    specs = [("Rescaling", {"scale": 1.0, "offset": 3.0}), ("ReLU", {"max_value": 6.0}),
             ("Rescaling", {"scale": 1.0 / 6.0, "offset": 0.0})] + ([("Multiply", {})] if silu else [])
    previous = source
    for (cls, params), layer in zip(specs, names):
        inputs = [[*source, {}], [previous[0], 0, 0, {}]] if cls == "Multiply" else [[*previous[:3], {}]]
        out.config["layers"].append(_record(cls, {**base, **params}, layer, [inputs]))
        previous = [layer, 0, 0]
    out.added.extend(names[:-1])
