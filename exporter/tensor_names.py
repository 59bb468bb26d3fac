"""Stripping the names of a model's inner tensors (a recipe's `strip_names`, `--strip-names`).

The converter names every tensor after the TensorFlow ops it came from ("model/conv2d/BiasAdd;model/conv2d/
Conv2D;..."); no runtime reads those names. On a small model they are a real share of the download and of
flash: 960 B of the 46,730 B int8 demo for android, and 276 B of the 3,664 B gzip download of a distilled,
pruned and clustered one (README, Benchmarks). `strip` removes the names of every tensor that is not an input
or output of its subgraph, and the model description;
the inputs' and outputs' names, the signatures (what apps and edgex look tensors up by), the operators and
the buffers stay, so the model computes the same. It is TFLite's own `flatbuffer_utils.strip_strings` minus
the parts apps need (that one drops the signatures and the I/O names too). The model is re-packed with the
schema's object API as the TFLite metadata writer does (exporter/tflite_metadata/model_file.py), and runs
after the sparse-encoding step, before the metadata is written (a re-pack drops files appended after the
flatbuffer, which is why a given .tflite, bundled as it is, is never stripped).

Debugging tools that show inner tensor names (Netron, TF's QuantizationDebugger) show none in a stripped
model, and an op edgex reports by its output tensor is named by its index there.

Example:
    >>> stripped, count = strip(tiny_tflite)
    >>> count, len(stripped) < len(tiny_tflite)
    (11, True)
    >>> strip(stripped)[1]                           # nothing left to strip
    0
"""
from __future__ import annotations

import dataclasses


def strip(tflite: bytes) -> tuple[bytes, int]:
    """`tflite` without the names of its inner tensors, and how many names were removed.

    Raises:
        ModelFileError: a model the schema's object API cannot unpack.
        ConversionError: a model whose weights live outside its flatbuffer (over 2 GB).
    """
    from exporter.tflite_metadata.model_file import repack, unpack

    model = unpack(tflite, "strip tensor names")
    count = 0
    for subgraph in model.subgraphs or ():
        kept = set(subgraph.inputs if subgraph.inputs is not None else ()) | \
            set(subgraph.outputs if subgraph.outputs is not None else ())
        for index, tensor in enumerate(subgraph.tensors or ()):
            if index not in kept and tensor.name:
                tensor.name = None
                count += 1
    if not count and not model.description:
        return tflite, 0
    model.description = None
    return repack(model, len(tflite)), count


def step(request, built):
    """The export step: `built` with its model (and a sparse model's dense alternative) stripped, when the recipe
    asks for it; else `built` as it is."""
    if not request.recipe.strip_names:
        return built
    from exporter.analysis.graph import Graph

    tflite, count = strip(built.tflite)
    sparse = built.sparse
    if sparse is not None and sparse.dense_tflite is not None:
        sparse = dataclasses.replace(sparse, dense_tflite=strip(sparse.dense_tflite)[0])
    note = (f"strip_names: removed the names of {count} inner tensors ({len(built.tflite) - len(tflite):,} B); "
            "inputs, outputs and signatures keep theirs")
    return dataclasses.replace(built, tflite=tflite, graph=Graph.from_bytes(tflite), sparse=sparse,
                               notes=[*built.notes, note])
