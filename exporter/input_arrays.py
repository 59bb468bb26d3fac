"""Data for a model with several inputs: one array per input, checked and put in the model's input order.

An `.npz` (or a dict given in Python) holds one array per input, named after the model's inputs (Keras
Input layer names; for a .tflite its signature's names, else its tensor names, exporter/io_names.py)
or `x0`, `x1`, ... in the model's input order; a single-input model's array stays `x`. Labels are `y`
(for the label output: the first output unless `label_output=` names another) or `y0`, `y1`, ... one
per output, of which the label output's are used. In Python, several inputs are also a tuple or list
of arrays in the model's order, alone or as the x of an (x, y) tuple. Until checked against the model
the arrays keep their names (`Dataset.names`); `resolve` orders them as the model's inputs and checks
each like a single input (exporter/data.py `check_input`): a missing or extra array exits 2 naming
the names the model expects.

Example:
    >>> from exporter.io_names import IOSignature, Port
    >>> sig = IOSignature((Port("image", (None, 8, 8, 1)), Port("meta", (None, 3))), (Port("cls", (None, 5)),))
    >>> np.savez("eval.npz", meta=np.zeros((4, 3)), image=np.zeros((4, 8, 8, 1)), y=[0, 1, 2, 1])
    >>> from exporter.data import load_dataset
    >>> ds = resolve(load_dataset("eval.npz", role="evaluation", inputs=2), sig, "evaluation")
    >>> [a.shape for a in ds.x], ds.names, ds.y.tolist()
    ([(4, 8, 8, 1), (4, 3)], ('image', 'meta'), [0, 1, 2, 1])
    >>> np.savez("calib.npz", image=np.zeros((4, 8, 8, 1)))
    >>> resolve(load_dataset("calib.npz", role="calibration", inputs=2), sig, "calibration")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    exporter.errors.DataError: calib.npz: the calibration data hold 'image', not one array per input ...; missing 'meta'
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np

from exporter.errors import DataError, UnsafeDataError
from exporter.option_names import option

__all__ = ["check_names", "from_members", "from_value", "resolve"]

_LABEL = re.compile(r"y\d*\Z")
_SEVERAL = "for a model with several inputs, one array per input: named after it, or x0, x1, …"


def _quoted(names) -> str:
    return ", ".join(map(repr, names))


def check_names(names: list[str], origin, role: str, what: str = ".npz", inputs: int = 1) -> None:
    """Refuse array names that make no data set for a model with `inputs` inputs, before the arrays are read.

    Which input arrays a model with several inputs needs is checked by `resolve`, which names them.

    Raises:
        DataError: no input array; for a single-input model, no `x` or arrays beside it; both `y` and
            per-output labels.
    """
    labels = [k for k in names if _LABEL.match(k)]
    given = [k for k in names if k not in labels]
    if not given or (inputs == 1 and "x" not in given):
        raise DataError(f"{origin}: {role} {what} needs an array named 'x' (found: {sorted(names) or 'none'}); "
                        f"{_SEVERAL}")
    if inputs == 1 and len(given) > 1:
        raise DataError(f"{origin}: unexpected arrays {sorted(set(given) - {'x'})}; a data set holds 'x' and "
                        f"optional 'y' ({_SEVERAL})")
    if "y" in labels and len(labels) > 1:
        raise DataError(f"{origin}: labels given as 'y' and as {sorted(set(labels) - {'y'})}: give 'y' (for the "
                        "label output) or 'y0', 'y1', … (one per output), not both")


def _array(value, origin: str, role: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{origin}: the {role} arrays are not rectangular numeric arrays: {exc}") from None


def _several(arrays: tuple, names: tuple | None, y, origin: str, role: str):
    """A Dataset of several input arrays (not yet checked against the model): each checked, same sample count."""
    from exporter.data import Dataset, _labels, check_samples

    shown = names or [f"input {i}" for i in range(len(arrays))]
    for name, x in zip(shown, arrays):
        check_samples(x, origin, role, name=repr(name) if names else name)
    counts = {name: len(x) for name, x in zip(shown, arrays)}
    if len(set(counts.values())) > 1:
        raise DataError(f"{origin}: the {role} arrays hold different numbers of samples: "
                        + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if y is not None and y.dtype.hasobject:
        raise UnsafeDataError(f"{origin}: holds object arrays; refused")
    return Dataset(x=tuple(arrays), y=None if y is None else _labels(y, len(arrays[0]), origin), origin=origin,
                   names=names)


def from_members(arrays: dict, origin: str, role: str, what: str = ".npz", inputs: int = 1):
    """A Dataset from named arrays (an `.npz`'s members, or a dict given in Python) for a model with `inputs` inputs.

    `x` (and `y`) make a single-input data set as before; other names one array per input, kept by name
    until `resolve`; `y0`, `y1`, ... are kept in `raw_labels` until the label output is known.
    """
    from exporter.data import _validated

    check_names(list(arrays), origin, role, what, inputs)
    arrays = {k: _array(v, origin, role) for k, v in arrays.items()}
    raw = {k: v for k, v in arrays.items() if _LABEL.match(k) and k != "y"}
    inputs = {k: v for k, v in arrays.items() if not _LABEL.match(k)}
    if list(inputs) == ["x"]:
        ds = _validated(inputs["x"], arrays.get("y"), origin, role)
    else:
        ds = _several(tuple(inputs.values()), tuple(inputs), arrays.get("y"), origin, role)
    return dataclasses.replace(ds, raw_labels=raw or None)


def from_value(value, role: str, inputs: int, origin: str = "<arrays>"):
    """A Dataset from what Python code gave for a model with several inputs.

    `value`: a dict name → array (labels `y` or `y0`, ... among them), a tuple or list of arrays in the
    model's input order, or an (x, y) tuple whose x is either; a single array is kept as it is
    (`resolve` then refuses it, naming the model's inputs).
    """
    x, y = value, None
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], (tuple, list, dict)):
        x, y = value
    if isinstance(x, dict):
        members = {str(k): v for k, v in x.items()}
        if y is not None:
            members["y"] = y
        return from_members(members, origin, role, what="data", inputs=inputs)
    if isinstance(x, (tuple, list)):
        return _several(tuple(_array(a, origin, role) for a in x), None,
                        None if y is None else _array(y, origin, role), origin, role)
    from exporter.data import dataset_from_arrays

    return dataset_from_arrays(x, y, origin=origin, role=role)


def _in_model_order(ds, signature, role: str) -> list:
    """The data's input arrays in the model's input order; DataError naming the expected names."""
    count, inputs = len(signature.inputs), signature.input_names
    several = isinstance(ds.x, tuple)
    given = list(ds.names) if ds.names else (["x"] if not several else [f"{len(ds.x)} arrays"])
    if count == 1 and not several:
        return [ds.x]
    if count > 1 and several and ds.names is None and len(ds.x) == count:
        return list(ds.x)
    if count > 1 and several and ds.names is not None:
        by_name = dict(zip(ds.names, ds.x))
        for names in (inputs, signature.data_names):
            if set(by_name) == set(names):
                return [by_name[n] for n in names]
    if count == 1:
        raise DataError(f"{ds.origin}: the {role} data hold {_quoted(given)}; the model has one input "
                        f"({inputs[0]!r}): a data set holds 'x' and optional 'y'")
    named = set(given) & set(signature.data_names) and not set(given) & set(inputs)
    expected = signature.data_names if named else inputs
    missing, extra = [n for n in expected if n not in given], [n for n in given if n not in expected]
    detail = "; ".join(part for part in (f"missing {_quoted(missing)}" if missing and ds.names else "",
                                         f"not inputs: {_quoted(extra)}" if extra and ds.names else "") if part)
    raise DataError(f"{ds.origin}: the {role} data hold {_quoted(given)}, not one array per input of the model: "
                    f"{_quoted(inputs)} (or {_quoted(signature.data_names)})" + (f"; {detail}" if detail else ""))


def _label_array(ds, signature):
    """The labels for the label output: `y`, or `y<k>` of the label output k; None when there are none."""
    from exporter.data import _labels

    raw = ds.raw_labels or {}
    if not raw:
        return ds.y
    count = len(signature.outputs)
    extra = sorted(k for k in raw if int(k[1:]) >= count)
    if extra:
        raise DataError(f"{ds.origin}: labels {_quoted(extra)} are for no output: the model has {count} "
                        f"({_quoted(signature.output_names)}: y0..y{count - 1})")
    key = f"y{signature.label}"
    if key not in raw:
        raise DataError(f"{ds.origin}: labels {_quoted(sorted(raw))} hold none for the label output "
                        f"{signature.label_name!r} ({key!r}): give them, or choose the output the labels are for "
                        f"with {option('label_output')}")
    return _labels(raw[key], len(ds), ds.origin)


def resolve(ds, signature, role: str, shapes: list | None = None):
    """`ds` checked against every input of the model, in its input order, with the label output's labels.

    Args:
        ds: a Dataset as read (exporter/data.py, `from_members`, `from_value`).
        signature: the model's IOSignature (exporter/io_names.py), its label output set.
        role: "calibration", "evaluation" or "training", used in messages.
        shapes: each input's shape to check against (the shapes a model with dynamic dims runs at);
            None: the signature's.

    Returns:
        The Dataset: `x` one array for a single-input model, else a tuple in the model's input order
        (`names` its input names); `y` the label output's labels or None.

    Raises:
        DataError: missing or extra arrays (naming what the model expects), a shape or dtype that does
            not fit an input, labels for no output or none for the label output.
    """
    from exporter.data import Dataset, check_input

    shapes = shapes or [p.shape for p in signature.inputs]
    arrays = _in_model_order(ds, signature, role)
    if len(arrays) == 1:
        x = check_input(ds, shape=shapes[0], dtype=signature.inputs[0].dtype, role=role).x
    else:
        x = tuple(check_input(Dataset(a, None, f"{ds.origin}, input {p.name!r}"), shape=s, dtype=p.dtype,
                              role=role).x for a, p, s in zip(arrays, signature.inputs, shapes))
    return dataclasses.replace(ds, x=x, y=_label_array(ds, signature), raw_labels=None,
                               names=signature.input_names if len(arrays) > 1 else None)
