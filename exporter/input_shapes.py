"""Input shapes for models with dynamic dimensions: what the caller gave, checked against the model.

A .tflite made by another tool (an audio front-end, a sequence model) can leave input sizes open:
its input's shape signature holds -1 where the size is set only at run time (`[-1, -1, 4]`). Such
a model is measured at a shape the caller gives: `--input-shape 1,50,4` (one input) or
`--input-shape NAME=1,50,4` (repeatable) on the command line, `input_shapes=(1, 50, 4)` or
`input_shapes={"NAME": (1, 50, 4)}` in Python. A given shape must fit the signature: the same
rank, fixed dims equal, only -1 dims set. A dynamic batch alone (dim 0 of a rank-2+ input) needs
no shape: it is taken as 1, the batch edgex runs. The graph at a shape comes from the LiteRT
interpreter, resized and run once (exporter/litert.py `tensor_shapes`), so MACs and activation
memory are exact. Only the standard library is imported here; Graph and LiteRT when used.

Example:
    >>> from_option(("1,50,4",)), from_option(("audio=1,16000", "mask=1,16000"))
    ((1, 50, 4), {'audio': (1, 16000), 'mask': (1, 16000)})
    >>> fit([("features", (-1, -1, 4))], (1, 50, 4))
    {'features': (1, 50, 4)}
    >>> fit([("image", (-1, 8, 8, 1))], None)                  # a dynamic batch alone: taken as 1
    {'image': (1, 8, 8, 1)}
    >>> fit([("features", (-1, -1, 4))], (1, 50, 5))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    exporter.errors.UsageError: input_shapes=(1, 50, 5) does not fit input 'features' ...: dim 2 is fixed at 4; ...
"""
from __future__ import annotations

import numbers

from exporter.errors import UsageError
from exporter.option_names import option, surface

__all__ = ["converted_notes", "fit", "for_export", "from_option", "graph_at", "notes", "recorded", "signatures",
           "spell"]


def spell(shape, name: str | None = None) -> str:
    """The option giving `shape` (to input `name`), as the current surface writes it.

    Example:
        >>> spell((1, 50, 4)), spell((1, 50, 4), "features")
        ('input_shapes=(1, 50, 4)', "input_shapes={'features': (1, 50, 4)}")
    """
    if surface() == "cli":
        sizes = ",".join(str(d) for d in shape)
        return option("input_shapes", f"{name}={sizes}" if name else sizes)
    shape = tuple(int(d) if _is_size(d) else d for d in shape)
    return f"input_shapes={({name: shape} if name else shape)!r}"


def _sizes(text: str, given: str) -> tuple[int, ...]:
    parts = text.strip().strip("[]()").replace("x", ",").split(",")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise UsageError(f"{option('input_shapes', given)}: give positive whole sizes separated by commas, "
                         f"e.g. {spell((1, 50, 4))} or {spell((1, 50, 4), 'NAME')}")
    return sizes


def from_option(values) -> tuple | dict | None:
    """The `--input-shape` values as `input_shapes=` takes them: one shape, or {input name: shape}.

    Raises:
        UsageError: a size that is not a positive whole number, an unnamed shape given twice or
            mixed with named ones, or a name given twice.
    """
    values = list(values or ())
    named = [v.rpartition("=") for v in values]
    if not values:
        return None
    if not any(sep for _, sep, _ in named):
        if len(values) > 1:
            raise UsageError(f"{option('input_shapes')} without a name fixes the one input of a model; for "
                             f"several inputs name each one: {spell((1, 50, 4), 'NAME')}")
        return _sizes(values[0], values[0])
    if not all(sep and name for name, sep, _ in named):
        raise UsageError(f"give every {option('input_shapes')} with its input's name ({spell((1, 50, 4), 'NAME')}), "
                         "or one shape without a name for a model with one input")
    names = [name for name, _, _ in named]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"{option('input_shapes')}: input {', '.join(map(repr, twice))} given more than once")
    return {name: _sizes(sizes, value) for (name, _, sizes), value in zip(named, values)}


def _is_size(value) -> bool:
    """A whole number (int, NumPy integer), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _by_name(inputs: list, given) -> dict:
    """`given` (a shape or a mapping) as {input name: shape}; every name checked."""
    names = [name for name, _ in inputs]
    if isinstance(given, dict):
        unknown = [n for n in given if n not in names]
        if unknown:
            raise UsageError(f"{option('input_shapes')}: the model has no input {', '.join(map(repr, unknown))}; "
                             f"its inputs: {', '.join(map(repr, names))}")
        return {name: given[name] for name in names if name in given}
    if isinstance(given, (tuple, list)) and all(_is_size(d) for d in given):
        if len(inputs) != 1:
            raise UsageError(f"the model has {len(inputs)} inputs ({', '.join(map(repr, names))}): name the one "
                             f"each shape is for, {spell((1, 50, 4), names[0])}")
        return {names[0]: tuple(given)}
    raise UsageError(f"{option('input_shapes')} takes a shape (a tuple of sizes) or {{input name: shape}}, "
                     f"not {str(given)[:80]}")


def _check(name: str, signature: tuple, shape: tuple, batch_one: bool) -> tuple:
    """`shape` when it fits `signature` (fixed dims equal, -1 dims set, batch 1 with `batch_one`)."""
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if not all(_is_size(d) and d > 0 for d in shape):
        problem = "sizes must be positive whole numbers"
    elif min(signature, default=0) >= 0 and tuple(shape) != tuple(signature):
        problem = f"the input has no dynamic dims, so its shape is {list(signature)}"
    elif len(shape) != len(signature):
        problem = f"it has {len(signature)} dims, not {len(shape)}"
    else:
        fixed = [k for k, (s, d) in enumerate(zip(signature, shape)) if s >= 0 and s != d]
        problem = (f"dim {fixed[0]} is fixed at {signature[fixed[0]]}; only its -1 dims can be set" if fixed
                   else "dim 0 is the batch, and edgex runs batch 1" if batch_one and len(shape) > 1 and shape[0] != 1
                   else None)
    if problem:
        raise UsageError(f"{spell(shape)} does not fit input {name!r} (shape signature {list(signature)}): {problem}")
    return tuple(int(d) for d in shape)


def fit(inputs: list, given, *, required: bool = True, batch_one: bool = True) -> dict | None:
    """The shape of every input: the given one where given, else the static one (a dynamic batch as 1).

    Args:
        inputs: (name, shape signature) of each model input, -1 for a dynamic size.
        given: what the caller gave (`input_shapes=`: a shape or {name: shape}), or None.
        required: refuse an input with dynamic dims (besides the batch) that no shape fixes; else,
            when no shape is given at all, return None (`inspect`, which shows those sizes as unknown).
        batch_one: the batch (dim 0 of a rank-2+ input) must be 1 (an export).

    Returns:
        Input name -> shape for every input; None when an input stays dynamic and not `required`.

    Raises:
        UsageError: a shape for an unknown input (naming the model's inputs), one that does not fit
            its signature, or (with `required`) an input with dynamic dims and no shape.
    """
    from exporter.analysis.graph import free_dims

    shapes = {} if given is None else _by_name(inputs, given)
    out = {}
    for name, signature in inputs:
        if name in shapes:
            out[name] = _check(name, signature, shapes[name], batch_one)
        elif free_dims(signature) and (required or given is not None):
            example = [1 if k == 0 and len(signature) > 1 else -1 if d < 0 else d for k, d in enumerate(signature)]
            raise UsageError(f"input {name!r} has dynamic dims (shape signature {list(signature)}): give the shape "
                             f"to measure it at with {option('input_shapes')}, e.g. "
                             f"{spell(example).replace('-1', 'N')} (N: the size to use)")
        elif free_dims(signature):
            return None
        else:
            out[name] = tuple(1 if d < 0 else d for d in signature)
    return out


def signatures(loaded) -> list[tuple[str, tuple]]:
    """(name, shape signature) of each input of a LoadedModel; -1 for a dynamic size (Keras' None)."""
    if loaded.model is None:
        from exporter.analysis.graph import Graph

        return [(t.name, t.shape_signature) for t in Graph.from_bytes(loaded.tflite_bytes).input_details()]
    return [(t.name.split(":")[0], tuple(-1 if d is None else int(d) for d in t.shape)) for t in loaded.model.inputs]


def for_export(loaded, given, target, profile) -> dict | None:
    """The input shapes an export measures (a .tflite) or converts (a Keras model) at.

    Args:
        loaded: the LoadedModel.
        given: `input_shapes=` as the caller gave it, or None.
        target, profile: the export's target (a .tflite with dynamic dims is refused by one whose
            runtime needs static shapes, `Target.static_shapes`) and its profile.

    Returns:
        Input name -> shape, or None for a model without dynamic dims (beyond the batch) and no shape given.

    Raises:
        PreflightError: a .tflite with dynamic input dims for a target that needs static shapes (exit 4).
        UsageError: an input with dynamic dims and no shape, or a shape that does not fit (exit 2).
    """
    from exporter.analysis.graph import free_dims

    inputs = signatures(loaded)
    dynamic = [(name, sig) for name, sig in inputs if free_dims(sig)]
    if loaded.model is None:
        target.check_static(dynamic, profile)
    return fit(inputs, given) if dynamic or given is not None else None


def graph_at(tflite: bytes, shapes: dict | None, graph=None):
    """The Graph of `tflite` with its inputs at `shapes` (name -> shape; None: as the file has them).

    Without a change from the file's own sizes the flatbuffer is read as it is; otherwise the LiteRT
    interpreter gives every tensor's shape (exporter/litert.py `tensor_shapes`).

    Raises:
        UsageError: LiteRT cannot run the model at these shapes.
    """
    from exporter.analysis.graph import Graph

    graph = graph or Graph.from_bytes(tflite)
    if not shapes or all(tuple(t.shape) == tuple(shapes.get(t.name, t.shape)) for t in graph.input_details()):
        return graph
    from exporter.litert import tensor_shapes

    return Graph.from_bytes(tflite, shapes=tensor_shapes(tflite, shapes))


def notes(graph, given: bool) -> list[str]:
    """One note per input with dynamic dims: its signature and the shape it was measured at."""
    how = f"given with {option('input_shapes')}" if given else "a dynamic batch is taken as 1"
    return [f"input {t.name!r} has dynamic dims (shape signature {list(t.shape_signature)}); measured at "
            f"{list(t.shape)} ({how})" for t in graph.dynamic_inputs()]


def converted_notes(loaded, shapes: dict | None) -> list[str]:
    """For a Keras model with dynamic dims: one note per such input, with the static shape it was converted at."""
    from exporter.analysis.graph import free_dims

    return [f"input {name!r} has dynamic dims (shape {list(sig)}, -1 for None); converted with the static shape "
            f"{list(shapes[name])} given with {option('input_shapes')}"
            for name, sig in signatures(loaded) if shapes and name in shapes and free_dims(sig)]


def recorded(manifest: dict) -> dict | None:
    """The input shapes a bundle was measured at (its manifest's `input_shapes`), or None."""
    shapes = manifest.get("input_shapes") if isinstance(manifest, dict) else None
    return {str(k): tuple(int(d) for d in v) for k, v in shapes.items()} if isinstance(shapes, dict) else None
