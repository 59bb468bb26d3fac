"""Config values the bridge translates: dtype policies, activations, initializers, regularizers, constraints.

Keras 3 writes a layer's dtype as a DTypePolicy record and its initializers (regularizers,
constraints) as `{"module", "class_name", "config", "registered_name"}` records with keys tf_keras
does not know (`input_axes`); tf_keras wants a dtype string and its own records. Each function
returns the tf_keras value, or appends what it cannot translate to `problems` and returns None.

Example:
    >>> problems = []
    >>> dtype({"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}, "dtype", problems)
    'float32'
    >>> record = {"module": "keras.initializers", "class_name": "HeNormal",
    ...           "config": {"seed": 3, "input_axes": None, "output_axes": None}, "registered_name": None}
    >>> translate_value("kernel_initializer", record, problems)
    {'module': 'keras.initializers', 'class_name': 'HeNormal', 'config': {'seed': 3}, 'registered_name': None}
    >>> translate_value("activation", "silu", problems), problems
    ('swish', [])
    >>> dtype("mixed_float16", "dtype", problems); problems
    ["dtype 'mixed_float16' (only float32 models are bridged)"]
"""
from __future__ import annotations

from exporter.keras3.table import ACTIVATIONS, ANY, CONSTRAINTS, EXPANDED, INITIALIZERS, REGULARIZERS, Rule

__all__ = ["dtype", "is_inert", "translate_keys", "translate_value"]

_FAMILIES = {"_initializer": (INITIALIZERS, "initializer", "keras.initializers"),
             "_regularizer": (REGULARIZERS, "regularizer", "keras.regularizers"),
             "_constraint": (CONSTRAINTS, "constraint", "keras.constraints")}
_RECORD_KEYS = frozenset({"module", "class_name", "config", "registered_name"})


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_inert(value, inert: tuple) -> bool:
    """True when `value` is one of the inert values (by type too: 0 is not False); `ANY` matches all.

    Example:
        >>> is_inert(False, (False,)), is_inert(0, (False,)), is_inert(None, (None,)), is_inert(0.9, (ANY,))
        (True, False, True, True)
    """
    return ANY in inert or any(value is v or (type(value) is type(v) and value == v) for v in inert)


def dtype(value, key: str, problems: list) -> str | None:
    """A Keras 3 dtype (a string or a DTypePolicy record) as tf_keras's dtype string; float32 only."""
    name = value
    if isinstance(value, dict) and value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
        name = value.get("config", {}).get("name") if isinstance(value.get("config"), dict) else None
    if name != "float32":
        problems.append(f"{key} {_short(name if isinstance(name, str) else value)} (only float32 models are bridged)")
        return None
    return name


def _activation(value, key: str, problems: list) -> str | None:
    name = value
    if isinstance(value, dict) and value.get("class_name") == "function":
        name = value.get("config")
    if isinstance(name, str) and name in ACTIVATIONS:
        return ACTIVATIONS[name]
    if isinstance(name, str) and name in EXPANDED:
        problems.append(f"{key} {name!r} (only bridged as an Activation layer of its own; tf_keras's hard_sigmoid "
                        "is another function)")
        return None
    problems.append(f"{key} {_short(name)} (not an activation the table maps to tf_keras)")
    return None


def translate_keys(config: dict, rule: Rule, what: str, problems: list) -> dict:
    """Keep, rename or drop (when inert) each key of `config` by `rule`; other keys are problems.

    Args:
        config: a Keras 3 config (a layer's, or an initializer's ...).
        rule: its table entry.
        what: how messages start ("" for a layer, "kernel_initializer GlorotUniform: " inside one).
        problems: where problems are appended.

    Returns:
        The tf_keras config (values translated by `translate_value`).
    """
    out, known = {}, rule.known()
    for key, value in config.items():
        if key not in known:
            problems.append(f"{what}config key {key!r} (= {_short(value)}) is not in the table")
        elif key in rule.inert:
            if not is_inert(value, rule.inert[key]):
                allowed = " or ".join(map(repr, rule.inert[key]))
                problems.append(f"{what}config key {key!r} is {_short(value)}; only {allowed} can be bridged")
        else:
            out[rule.rename.get(key, key)] = translate_value(key, value, problems, what)
    return out


def translate_value(key: str, value, problems: list, what: str = ""):
    """The tf_keras form of one config value, by its key (others are returned as they are)."""
    if key == "dtype":
        return dtype(value, f"{what}{key}", problems)
    if key == "activation":
        return _activation(value, f"{what}{key}", problems)
    suffix = next((s for s in _FAMILIES if key.endswith(s)), None)
    if suffix is None or value is None:
        return value
    table, noun, module = _FAMILIES[suffix]
    name = value.get("class_name") if isinstance(value, dict) else value
    rule = table.get(name) if isinstance(name, str) else None
    if rule is None or (isinstance(value, dict) and not set(value) <= _RECORD_KEYS):
        problems.append(f"{what}{key} {_short(name)} (not an {noun} the table maps to tf_keras)")
        return None
    config = value.get("config") if isinstance(value, dict) else {}
    if not isinstance(config, dict):
        problems.append(f"{what}{key} {name}: config is not an object")
        return None
    inner = translate_keys(config, rule, f"{what}{key} {name}: ", problems)
    return {"module": module, "class_name": rule.tf_class or name, "config": inner, "registered_name": None}
