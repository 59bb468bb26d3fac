"""A model's inputs and outputs by name: which data array feeds which input, which output the labels are for.

A tf_keras model names its inputs after its Input layers and its outputs after their layers; edgex
converts a model with several inputs or outputs so that the .tflite's signature (`serving_default`)
carries the same names (exporter/stages/convert.py). The TFLite converter orders the tensors
differently from Keras (inputs `image`, `meta` may become tensors meta, image), so every runner maps
names to tensors through the signature, and keeps the Keras order. A .tflite given as it is keeps
its tensor order, each named by its signature name, else its tensor name.

Data name their arrays after the inputs, or `x0`, `x1`, ... in the model's input order; a
single-input model's array is `x` (`data_names`). Labels (`y`) are for one output, the label
output: the first, unless `label_output=` / `--label-output` names another (`IOSignature.with_label`).

Only the standard library and the `tflite` flatbuffer bindings are imported (lazily).

Example:
    >>> sig = IOSignature(inputs=(Port("image", (None, 8, 8, 1)), Port("meta", (None, 3))),
    ...                   outputs=(Port("cls", (None, 5)), Port("box", (None, 2))))
    >>> sig.input_names, sig.data_names, sig.label_name, sig.classes
    (('image', 'meta'), ('x0', 'x1'), 'cls', 5)
    >>> sig.with_label("box").label, sig.is_multi
    (1, True)
    >>> sig.with_label("boxes")
    Traceback (most recent call last):
    ...
    exporter.errors.UsageError: label_output='boxes': the model has no output 'boxes'; its outputs: 'cls', 'box'
    >>> signature_names(tiny_tflite)         # the converted demo-like model: its signature names
    ({0: 'image'}, {12: 'output_0'})
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from exporter.errors import UsageError
from exporter.option_names import option

__all__ = ["IOSignature", "Port", "data_names", "io_record", "order_details", "signature_names"]


@dataclass(frozen=True)
class Port:
    """One input or output: its name, shape (batch first, None for a free dim) and dtype."""

    name: str
    shape: tuple
    dtype: str = "float32"


def data_names(count: int) -> tuple[str, ...]:
    """The positional names of the data arrays for `count` inputs: `x` for one, else `x0`, `x1`, ...

    Example:
        >>> data_names(1), data_names(3)
        (('x',), ('x0', 'x1', 'x2'))
    """
    return ("x",) if count == 1 else tuple(f"x{i}" for i in range(count))


@dataclass(frozen=True)
class IOSignature:
    """A model's inputs and outputs in the model's order, and which output the labels are for (`label`)."""

    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    label: int = 0

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.outputs)

    @property
    def data_names(self) -> tuple[str, ...]:
        return data_names(len(self.inputs))

    @property
    def label_name(self) -> str:
        return self.outputs[self.label].name

    @property
    def classes(self) -> int:
        """The label output's last dim: its number of classes (scores per sample)."""
        shape = self.outputs[self.label].shape
        return int(shape[-1]) if shape and shape[-1] is not None else 1

    @property
    def is_multi(self) -> bool:
        """True for a model with more than one input or output."""
        return len(self.inputs) > 1 or len(self.outputs) > 1

    def with_label(self, name: str | None) -> IOSignature:
        """This signature with output `name` as the label output (None: the first).

        Raises:
            UsageError: the model has no output of that name (naming its outputs).
        """
        if name is None:
            return self
        if name not in self.output_names:
            raise UsageError(f"{option('label_output', name)}: the model has no output {name!r}; its outputs: "
                             f"{', '.join(map(repr, self.output_names))}")
        return replace(self, label=self.output_names.index(name))

    @classmethod
    def from_keras(cls, model) -> IOSignature:
        """The inputs (Input layer names) and outputs (output layer names) of a tf_keras model."""
        inputs = tuple(Port(name, tuple(t.shape), t.dtype.name) for name, t in zip(model.input_names, model.inputs))
        outputs = tuple(Port(name, tuple(t.shape), t.dtype.name) for name, t in zip(model.output_names, model.outputs))
        return cls(inputs, outputs)

    @classmethod
    def from_tflite(cls, tflite_bytes: bytes, graph=None) -> IOSignature:
        """The inputs and outputs of a .tflite in tensor order, named by its signature (else tensor names).

        Inputs are fed as float32 (the runners quantize them).
        """
        from exporter.analysis.graph import Graph

        graph = graph or Graph.from_bytes(tflite_bytes)
        ins, outs = signature_names(tflite_bytes)
        inputs = tuple(Port(ins.get(i, graph.tensors[i].name), graph.tensors[i].shape_signature) for i in graph.inputs)
        outputs = tuple(Port(outs.get(i, graph.tensors[i].name), graph.tensors[i].shape, graph.tensors[i].dtype)
                        for i in graph.outputs)
        return cls(inputs, outputs)


def signature_names(tflite_bytes: bytes) -> tuple[dict[int, str], dict[int, str]]:
    """({input tensor index: name}, {output tensor index: name}) from the .tflite's only signature.

    Both are empty for a model without exactly one signature (older converters write none): its
    tensors are then taken in their order, by tensor name.
    """
    import tflite

    def named(count, get):
        return {int(get(i).TensorIndex()): get(i).Name().decode("utf-8", "replace") for i in range(count)}

    try:
        model = tflite.Model.GetRootAs(bytes(tflite_bytes), 0)
        sig = model.SignatureDefs(0) if model.SignatureDefsLength() == 1 else None
        if sig is None or sig.SubgraphIndex() != 0:
            return {}, {}
        return named(sig.InputsLength(), sig.Inputs), named(sig.OutputsLength(), sig.Outputs)
    except Exception:     # a signature table the flatbuffer reader cannot read: taken as no signature
        return {}, {}


def _by_names(details: list[dict], names_of: dict[int, str], want, kind: str) -> list[dict]:
    """`details` ordered as the names `want` (None: as they are), mapped through the signature's names."""
    if want is None:
        return list(details)
    if len(want) == 1 and len(details) == 1:
        return list(details)
    by_name = {names_of.get(d["index"], d["name"]): d for d in details}
    missing = [n for n in want if n not in by_name]
    if missing or len(want) != len(details):
        raise UsageError(f"the .tflite's {kind}s ({', '.join(map(repr, by_name))}) are not the model's "
                         f"({', '.join(map(repr, want))})")
    return [by_name[n] for n in want]


def order_details(interpreter, tflite_bytes: bytes, names: IOSignature | None = None) -> tuple[list, list]:
    """A LiteRT interpreter's (input details, output details) in the order of `names`' inputs and outputs.

    Args:
        interpreter: an allocated LiteRT (or TFLite) interpreter of `tflite_bytes`.
        tflite_bytes: the .tflite, whose signature maps names to tensors.
        names: the Keras model's signature (a converted model); None keeps the tensor order.

    Raises:
        UsageError: the .tflite's signature does not hold the names.
    """
    ins, outs = signature_names(tflite_bytes)
    want_in = None if names is None else names.input_names
    want_out = None if names is None else names.output_names
    return (_by_names(interpreter.get_input_details(), ins, want_in, "input"),
            _by_names(interpreter.get_output_details(), outs, want_out, "output"))


def io_record(tflite_bytes: bytes, graph, signature: IOSignature | None) -> dict:
    """What the manifest and report list of each input and output, in the model's order, and the label output.

    Each entry: `name` (Keras / signature name), `tensor` (the .tflite tensor name), `index` (its tensor
    index, which the device agent feeds), `slot` (its position among the subgraph's inputs or outputs: the
    order of LiteRT's buffers and of the Interpreter API's indices), `shape` and `dtype` as stored in the
    .tflite, and its I/O contract (exporter/io_contract.py): `scale`, `zero_point`, `qmin`, `qmax`,
    `per_channel`, `axis`, read from the .tflite. `formulas` says how an app quantizes and dequantizes.

    Example:
        >>> from exporter.analysis.graph import Graph
        >>> record = io_record(tiny_tflite, Graph.from_bytes(tiny_tflite), None)
        >>> {k: v for k, v in record["inputs"][0].items() if k != "scale"}  # doctest: +NORMALIZE_WHITESPACE
        {'name': 'image', 'tensor': 'serving_default_image:0', 'index': 0, 'slot': 0, 'shape': [1, 8, 8, 1],
         'dtype': 'int8', 'zero_point': -128, 'qmin': -128, 'qmax': 127, 'per_channel': False, 'axis': None}
        >>> round(record["inputs"][0]["scale"], 4)                 # read from the .tflite, as LiteRT reports it
        0.0039
        >>> record["label_output"], record["formulas"]["quantize"]
        ('output_0', 'q = clamp(round(x / scale) + zero_point, qmin, qmax)')
    """
    from exporter.io_contract import FORMULAS, tensor_contract

    ins, outs = signature_names(tflite_bytes)
    order = signature or IOSignature.from_tflite(tflite_bytes, graph)

    def entries(indices, names_of, want):
        named = {names_of.get(i, graph.tensors[i].name): i for i in indices}
        chosen = [named[n] for n in want] if set(want) == set(named) else list(indices)
        return [{"name": names_of.get(i, graph.tensors[i].name), "tensor": graph.tensors[i].name, "index": i,
                 "slot": list(indices).index(i), "shape": list(graph.tensors[i].shape),
                 **tensor_contract(graph.tensors[i])} for i in chosen]

    inputs = entries(graph.inputs, ins, order.input_names)
    outputs = entries(graph.outputs, outs, order.output_names)
    label = order.label if order.label < len(outputs) else 0
    return {"inputs": inputs, "outputs": outputs, "label_output": outputs[label]["name"] if outputs else None,
            "formulas": FORMULAS}
