"""What edgex writes into a model's TFLite metadata, made from what the export knows.

Model: name, version, description, author, licence (exporter/tflite_metadata/info.py). One
SubGraphMetadata whose input and output TensorMetadata follow the model's tensor order
(`SubGraph.inputs`/`outputs`, as the schema requires), each named as data and apps name it (the
.tflite signature's name, exporter/io_names.py), with a description giving its dtype, shape and
quantization (exporter/io_contract.py: `q = clamp(round(x / scale) + zero_point, qmin, qmax)`).

Inputs: an input of rank 4 with 1 or 3 channels is an image (ImageProperties, GRAYSCALE or RGB),
any other a feature (FeatureProperties). Its NormalizationOptions (`(pixel - mean) / std` per
channel, in 8-bit pixel units) come from what made the data:

- image folders (`--normalize`): the mean and std edgex used (exporter/normalization.py);
- the demo: its digits are scikit-learn's 8x8 ink counts (0..16) divided by 16, i.e. the share of ink
  in each cell, 0..1; an 8-bit image of bright ink on a dark ground gives the same values as
  pixel/255, so mean 0, std 255 (the `unit` mode);
- arrays: edgex does not know how they were made, so no normalization is written, only the range
  of the values the model was given (Stats) and the description saying so.

Stats (min and max per channel) give the values the model's input takes before quantization:
`(0 - mean) / std` to `(255 - mean) / std` with normalization (as tflite-support's
`InputImageTensorMd` writes them for float inputs; one value when every channel has the same, as
the mean and std), else the data's own range. Content `range` is
left out: it names the dimensions the content spans (none: all but the batch), not values.

Outputs: a description; the labels (labels.txt) are attached to the label output as an
AssociatedFile of type TENSOR_AXIS_LABELS, one name per score of its last axis.

Example:
    >>> from exporter.analysis.graph import Graph
    >>> from exporter.io_names import io_record
    >>> from exporter.tflite_metadata.info import ModelInfo
    >>> graph = Graph.from_bytes(tiny_tflite)
    >>> facts = Facts(info=ModelInfo(name="tiny", version="1", description="d"), io=io_record(tiny_tflite, graph, None),
    ...               graph=graph, labels=[str(i) for i in range(10)], normalization={"image": UNIT_GRAY})
    >>> meta, files = model_metadata(facts)
    >>> image = meta["subgraph_metadata"][0]["input_tensor_metadata"][0]
    >>> image["content"]["content_properties"], image["process_units"][0]["options"], image["stats"]
    ({'color_space': 'GRAYSCALE'}, {'mean': [0.0], 'std': [255.0]}, {'max': [1.0], 'min': [0.0]})
    >>> list(files), meta["subgraph_metadata"][0]["output_tensor_metadata"][0]["associated_files"][0]["type"]
    (['labels.txt'], 'TENSOR_AXIS_LABELS')
    >>> note(record(meta, files, facts.normalization))
    "model.tflite carries TFLite metadata: 'tiny' version '1'; input 'image': grayscale image, normalization mean [0.0] std [255.0]; labels.txt attached to output 'output_0' (TENSOR_AXIS_LABELS)"
"""
from __future__ import annotations

from dataclasses import dataclass, field

from exporter.errors import DataError
from exporter.tflite_metadata.flatbuf import float32
from exporter.tflite_metadata.info import ModelInfo
from exporter.tflite_metadata.schema import min_parser_version

LABELS_FILE = "labels.txt"


@dataclass(frozen=True)
class InputNormalization:
    """How pixels became one input: `(pixel - mean) / std` per channel (pixel units), and where that comes from."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "from": self.source}

    def written(self) -> tuple[list[float], list[float]]:
        """(mean, std) as the metadata holds them: one value when every channel has the same (the schema applies it
        to all channels; MediaPipe's CPU preprocessing takes only that), else one per channel; float32."""
        if len(set(self.mean)) == 1 and len(set(self.std)) == 1:
            return f32(self.mean[:1]), f32(self.std[:1])
        return f32(self.mean), f32(self.std)


UNIT_GRAY = InputNormalization((0.0,), (255.0,), "the demo: scikit-learn's 8x8 digits, ink per cell 0..16 / 16 = 0..1; "
                                                 "from an 8-bit image of bright ink on a dark ground: pixel / 255")
"""The demo's inputs as an app makes them from an 8-bit grayscale image."""


@dataclass(frozen=True)
class Facts:
    """What the metadata is made from.

    Attributes:
        info: name, version and description set (ModelInfo.resolved), author and licence as given.
        io: the export's `io_record` (names, tensor indices, shapes, dtypes, the label output).
        graph: the model's Graph (tensor order and quantization).
        labels: the class names of the label output, or None.
        normalization: input name -> InputNormalization, for the inputs where edgex knows it.
        ranges: input name -> (min, max, the data they were taken on), for inputs without normalization.
    """

    info: ModelInfo
    io: dict
    graph: object
    labels: list[str] | None = None
    normalization: dict[str, InputNormalization] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float, str]] = field(default_factory=dict)


def f32(values) -> list[float]:
    """Values as the metadata stores them (float32), each as the shortest decimal giving that float32 back."""
    return [float32(v) for v in values]


def _ordered(entries: list[dict], order: tuple[int, ...]) -> list[dict]:
    """The io entries in the model's tensor order (`SubGraph.inputs` / `outputs`)."""
    by_index = {e["index"]: e for e in entries}
    return [by_index[i] for i in order if i in by_index]


def _quantization(graph, port: dict, kind: str) -> str:
    """The tensor's quantization and the formula an app applies (exporter/io_contract.py); "" for a float tensor."""
    from exporter.io_contract import FORMULAS, contract_text, tensor_contract

    contract = tensor_contract(graph.tensors[port["index"]])
    if contract["scale"] is None:
        return ""
    formula = FORMULAS["quantize"] if kind == "input" else FORMULAS["dequantize"]
    return f" Quantized: {contract_text(contract)}; {formula}."


def _content(shape: list) -> dict:
    if len(shape) == 4 and shape[-1] in (1, 3):
        return {"content_properties_type": "ImageProperties",
                "content_properties": {"color_space": "RGB" if shape[-1] == 3 else "GRAYSCALE"}}
    return {"content_properties_type": "FeatureProperties", "content_properties": {}}


def _input(facts: Facts, port: dict) -> dict:
    shape, norm, content = port["shape"], facts.normalization.get(port["name"]), _content(port["shape"])
    image = content["content_properties_type"] == "ImageProperties"
    kind = f"a {'RGB' if shape[-1] == 3 else 'grayscale'} image {shape[1]}x{shape[2]}" if image else "features"
    text = f"Input {port['name']!r}: {port['dtype']} {shape}, {kind}."
    entry = {"name": port["name"], "content": content}
    if norm is not None:
        low = [(0 - m) / s for m, s in zip(norm.mean, norm.std)]
        high = [(255 - m) / s for m, s in zip(norm.mean, norm.std)]
        text += (f" Values: (pixel - mean) / std per channel, mean {list(norm.mean)}, std {list(norm.std)}, "
                 f"pixel 0..255 ({norm.source}).")
        mean, std = norm.written()
        entry["process_units"] = [{"options_type": "NormalizationOptions", "options": {"mean": mean, "std": std}}]
        entry["stats"] = {"max": f32(high[:len(mean)]), "min": f32(low[:len(mean)])}
    elif port["name"] in facts.ranges:
        low, high, where = facts.ranges[port["name"]]
        text += (f" Values: {low:.6g}..{high:.6g} in {where}; edgex does not know how they were made from raw data "
                 "(arrays were given), so no normalization is recorded.")
        entry["stats"] = {"max": f32([high]), "min": f32([low])}
    entry["description"] = text + _quantization(facts.graph, port, "input")
    return entry


def _output(facts: Facts, port: dict) -> dict:
    text = f"Output {port['name']!r}: {port['dtype']} {port['shape']}."
    entry = {"name": port["name"], "content": _content([])}
    if facts.labels is not None and port["name"] == facts.io.get("label_output"):
        size = port["shape"][-1] if port["shape"] else 1
        if size != len(facts.labels):
            raise DataError(f"the labels hold {len(facts.labels)} names but output {port['name']!r} gives {size} "
                            "scores: give one name per score")
        text += f" One score per class; {LABELS_FILE} (attached) names them, line i for score i."
        entry["associated_files"] = [{"name": LABELS_FILE, "type": "TENSOR_AXIS_LABELS",
                                      "description": f"{len(facts.labels)} class names, one per line, in the order "
                                                     f"of output {port['name']!r}'s scores"}]
    entry["description"] = text + _quantization(facts.graph, port, "output")
    return entry


def model_metadata(facts: Facts) -> tuple[dict, dict[str, bytes]]:
    """The ModelMetadata to write (a dict, as exporter/tflite_metadata/schema.py describes) and its files.

    Returns:
        (metadata, associated files: name -> bytes), the labels file when there are labels.

    Raises:
        DataError: labels whose count is not the label output's number of scores.
    """
    info, graph = facts.info, facts.graph
    subgraph = {"input_tensor_metadata": [_input(facts, p) for p in _ordered(facts.io["inputs"], graph.inputs)],
                "output_tensor_metadata": [_output(facts, p) for p in _ordered(facts.io["outputs"], graph.outputs)]}
    meta = {"name": info.name, "description": info.description or None, "version": info.version,
            "subgraph_metadata": [subgraph], "author": info.author or None, "license": info.license or None}
    meta = {k: v for k, v in meta.items() if v is not None}
    meta["min_parser_version"] = min_parser_version(meta)
    files = {LABELS_FILE: ("\n".join(facts.labels) + "\n").encode("utf-8")} if facts.labels is not None else {}
    if files and not any(t.get("associated_files") for t in subgraph["output_tensor_metadata"]):
        files = {}                                 # no output took them (no label output): nothing to attach
    return meta, files


def record(meta: dict, files, normalization: dict | None = None, source: str = "edgex") -> dict:
    """What the manifest and report say about the metadata: model fields, each tensor's content, the files.

    Args:
        meta: the ModelMetadata (as written, or read from the model).
        files: the associated files' names (a list, or a dict keyed by name).
        normalization: input name -> InputNormalization, to say where each input's came from.
        source: "edgex" (written by this export) or "the input .tflite" (kept as it was).
    """
    sub = (meta.get("subgraph_metadata") or [{}])[0]
    norms = normalization or {}

    def tensor(t: dict) -> dict:
        content = t.get("content") or {}
        props = content.get("content_properties") or {}
        unit = next((u["options"] for u in t.get("process_units") or () if u.get("options_type") ==
                     "NormalizationOptions"), None)
        out = {"name": t.get("name"), "content": content.get("content_properties_type"),
               "color_space": props.get("color_space"), "stats": t.get("stats")}
        out["normalization"] = None if unit is None else \
            {**unit, "from": norms[t["name"]].source if t.get("name") in norms else None}
        out["associated_files"] = [{"name": f.get("name"), "type": f.get("type")} for f in t.get("associated_files")
                                   or ()]
        return out

    return {"source": source, "schema": "TFLITE_METADATA (tflite-support metadata_schema.fbs 1.5.0)",
            **{k: meta.get(k) for k in ("name", "version", "description", "author", "license", "min_parser_version")},
            "inputs": [tensor(t) for t in sub.get("input_tensor_metadata") or ()],
            "outputs": [tensor(t) for t in sub.get("output_tensor_metadata") or ()],
            "associated_files": list(files)}


def note(rec: dict) -> str:
    """One line for the console and report.md: what model.tflite's metadata holds."""
    kept = " (kept from the input .tflite)" if rec["source"] != "edgex" else ""
    parts = [f"model.tflite carries TFLite metadata{kept}: {rec.get('name')!r} version {rec.get('version')!r}"]
    for t in rec["inputs"]:
        norm = t.get("normalization")
        kind = f"{(t.get('color_space') or '').lower()} image" if t.get("content") == "ImageProperties" else "features"
        parts.append(f"input {t['name']!r}: {kind}, " + (f"normalization mean {norm['mean']} std {norm['std']}"
                                                         if norm else "no normalization"))
    parts += [f"{f['name']} attached to output {t['name']!r} ({f['type']})" for t in rec["outputs"]
              for f in t["associated_files"]]
    return "; ".join(parts)
