"""Run by the tflite-support venv's Python: its own reading of bare metadata flatbuffers.

Usage: python parse_buffers.py BUFFER...

Prints one JSON line: for each buffer, {"json": tflite-support's `convert_to_json` (flatc's JSON
from metadata_schema.fbs), parsed; "min_parser_version": its native GetMinimumMetadataParserVersion}.
tflite-support is imported inside `main`: pytest's --doctest-modules imports this file in edgex's own
environment, which has no tflite-support.
"""
import json
import sys


def main(paths: list) -> list:
    from tensorflow_lite_support.metadata.cc.python import _pywrap_metadata_version
    from tensorflow_lite_support.metadata.python import metadata

    out = []
    for path in paths:
        with open(path, "rb") as fh:
            buffer = fh.read()
        out.append({"json": json.loads(metadata.convert_to_json(buffer)),
                    "min_parser_version": _pywrap_metadata_version.GetMinimumMetadataParserVersion(buffer)})
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
