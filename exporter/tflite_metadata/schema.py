"""The TFLite metadata schema, `metadata_schema.fbs` 1.5.0, as data: tables, enums, unions.

Source: tensorflow/tflite-support, tensorflow_lite_support/metadata/metadata_schema.fbs (schema
semantic version 1.5.0, file identifier "M001"). Each table lists its fields in declaration order,
as `name:type`; a field's flatbuffer slot is its position, and a union field takes two slots
(`<name>_type`, the member's index, then `<name>`), as flatc assigns them. `[T]` is a vector.
`exporter/tflite_metadata/flatbuf.py` writes and reads these tables with the `flatbuffers` package.

Values are dicts keyed by field name, shaped as flatc's JSON of the same buffer (what tflite-support's
`MetadataDisplayer.get_metadata_json()` prints): enums by name, a union as `<name>_type` (the member
table's name) beside `<name>`.

`min_parser_version` follows tflite-support's metadata/cc/metadata_version.cc: 1.0.0, raised to the
schema version that added each later member a metadata uses, on the same paths that code walks.

Example:
    >>> [f.name for f in TABLES["Content"]], [f.slot for f in TABLES["Content"]]
    (['content_properties_type', 'content_properties', 'range'], [0, 1, 2])
    >>> min_parser_version({"subgraph_metadata": [{"input_tensor_metadata": [
    ...     {"associated_files": [{"name": "vocab.txt", "type": "VOCABULARY"}]}]}]})
    '1.0.1'
"""
from __future__ import annotations

from dataclasses import dataclass

FILE_IDENTIFIER = b"M001"
"""The metadata flatbuffer's file identifier (`file_identifier "M001";`)."""
SCHEMA_VERSION = "1.5.0"

ENUMS: dict[str, tuple[str, ...]] = {             # all `: byte`; value = position
    "AssociatedFileType": ("UNKNOWN", "DESCRIPTIONS", "TENSOR_AXIS_LABELS", "TENSOR_VALUE_LABELS",
                           "TENSOR_AXIS_SCORE_CALIBRATION", "VOCABULARY", "SCANN_INDEX_FILE"),
    "ColorSpaceType": ("UNKNOWN", "RGB", "GRAYSCALE"),
    "BoundingBoxType": ("UNKNOWN", "BOUNDARIES", "UPPER_LEFT", "CENTER"),
    "CoordinateType": ("RATIO", "PIXEL"),
    "ScoreTransformationType": ("IDENTITY", "LOG", "INVERSE_LOGISTIC"),
}

UNIONS: dict[str, tuple[str, ...]] = {            # member tables; type value = position + 1 (0 is NONE)
    "ContentProperties": ("FeatureProperties", "ImageProperties", "BoundingBoxProperties", "AudioProperties"),
    "ProcessUnitOptions": ("NormalizationOptions", "ScoreCalibrationOptions", "ScoreThresholdingOptions",
                           "BertTokenizerOptions", "SentencePieceTokenizerOptions", "RegexTokenizerOptions"),
}

_SOURCE = {
    "AssociatedFile": "name:string description:string type:AssociatedFileType locale:string version:string",
    "FeatureProperties": "",
    "ImageSize": "width:uint height:uint",
    "ImageProperties": "color_space:ColorSpaceType default_size:ImageSize",
    "BoundingBoxProperties": "index:[uint] type:BoundingBoxType coordinate_type:CoordinateType",
    "AudioProperties": "sample_rate:uint channels:uint",
    "ValueRange": "min:int max:int",
    "Content": "content_properties:ContentProperties range:ValueRange",
    "NormalizationOptions": "mean:[float] std:[float]",
    "ScoreCalibrationOptions": "score_transformation:ScoreTransformationType default_score:float",
    "ScoreThresholdingOptions": "global_score_threshold:float",
    "BertTokenizerOptions": "vocab_file:[AssociatedFile]",
    "SentencePieceTokenizerOptions": "sentencePiece_model:[AssociatedFile] vocab_file:[AssociatedFile]",
    "RegexTokenizerOptions": "delim_regex_pattern:string vocab_file:[AssociatedFile]",
    "ProcessUnit": "options:ProcessUnitOptions",
    "Stats": "max:[float] min:[float]",
    "TensorGroup": "name:string tensor_names:[string]",
    "TensorMetadata": "name:string description:string dimension_names:[string] content:Content "
                      "process_units:[ProcessUnit] stats:Stats associated_files:[AssociatedFile]",
    "CustomMetadata": "name:string data:[ubyte]",
    "SubGraphMetadata": "name:string description:string input_tensor_metadata:[TensorMetadata] "
                        "output_tensor_metadata:[TensorMetadata] associated_files:[AssociatedFile] "
                        "input_process_units:[ProcessUnit] output_process_units:[ProcessUnit] "
                        "input_tensor_groups:[TensorGroup] output_tensor_groups:[TensorGroup] "
                        "custom_metadata:[CustomMetadata]",
    "ModelMetadata": "name:string description:string version:string subgraph_metadata:[SubGraphMetadata] "
                     "author:string license:string associated_files:[AssociatedFile] min_parser_version:string",
}
ROOT = "ModelMetadata"
SCALARS = ("uint", "int", "float", "ubyte")


@dataclass(frozen=True)
class Field:
    """One field of a table: its name, flatbuffer slot, and type.

    Attributes:
        kind: "string", "scalar", "enum", "table", "union" (the member table) or "utype" (the member's index).
        type: the scalar type ("uint", "int", "float", "ubyte"), enum, table or union name ("" for a string).
        vector: a vector of that type (`[T]` in the schema).
    """

    name: str
    slot: int
    kind: str
    type: str
    vector: bool = False


def _kind(type_name: str) -> str:
    if type_name == "string":
        return "string"
    if type_name in SCALARS:
        return "scalar"
    return "enum" if type_name in ENUMS else "union" if type_name in UNIONS else "table"


def _fields(source: str) -> tuple[Field, ...]:
    fields: list[Field] = []
    for item in source.split():
        name, type_name = item.split(":")
        vector = type_name.startswith("[")
        type_name = type_name.strip("[]")
        kind = _kind(type_name)
        if kind == "union":
            fields.append(Field(f"{name}_type", len(fields), "utype", type_name))
        fields.append(Field(name, len(fields), kind, "" if kind == "string" else type_name, vector))
    return tuple(fields)


TABLES: dict[str, tuple[Field, ...]] = {name: _fields(source) for name, source in _SOURCE.items()}
"""Every table of the schema: its fields with their slots."""

# When each member added after 1.0.0 came in (metadata_version.cc `GetMemberVersion`)
_FILE_TYPES = {"VOCABULARY": "1.0.1", "SCANN_INDEX_FILE": "1.4.0"}
_UNIT_OPTIONS = {"BertTokenizerOptions": "1.1.0", "SentencePieceTokenizerOptions": "1.1.0",
                 "RegexTokenizerOptions": "1.2.1"}
_SUBGRAPH_FIELDS = {"input_process_units": "1.1.0", "output_process_units": "1.1.0", "input_tensor_groups": "1.2.0",
                    "output_tensor_groups": "1.2.0", "custom_metadata": "1.5.0"}


def _files(files) -> list[str]:
    return [v for f in files or () for v in (_FILE_TYPES.get(f.get("type"), "1.0.0"),
                                              "1.4.1" if f.get("version") is not None else "1.0.0")]


def _units(units) -> list[str]:
    return [_UNIT_OPTIONS.get(u.get("options_type"), "1.0.0") for u in units or ()]


def _tensor(t: dict) -> list[str]:
    audio = (t.get("content") or {}).get("content_properties_type") == "AudioProperties"
    return _files(t.get("associated_files")) + _units(t.get("process_units")) + ["1.3.0" if audio else "1.0.0"]


def _subgraph(s: dict) -> list[str]:
    found = [v for key, v in _SUBGRAPH_FIELDS.items() if s.get(key) is not None]
    found += [v for t in (*(s.get("input_tensor_metadata") or ()), *(s.get("output_tensor_metadata") or ()))
              for v in _tensor(t)]
    return found + _files(s.get("associated_files")) + _units(s.get("input_process_units")) \
        + _units(s.get("output_process_units"))


def min_parser_version(metadata: dict) -> str:
    """The lowest metadata parser version that understands every field `metadata` (a ModelMetadata) sets.

    Args:
        metadata: a ModelMetadata value (dict, as TABLES describes).

    Returns:
        "MAJOR.MINOR.PATCH": "1.0.0" unless a member added later is used.
    """
    found = ["1.0.0", *_files(metadata.get("associated_files"))]
    found += [v for s in metadata.get("subgraph_metadata") or () for v in _subgraph(s)]
    return max(found, key=lambda v: tuple(int(p) for p in v.split(".")))
