"""Run by a reader venv's Python: what tflite-support's (or MediaPipe's) metadata displayer reads in models.

Usage: python read_metadata.py tflite-support|mediapipe MODEL...

Prints one JSON line: {model path: {"json": the displayer's get_metadata_json(), parsed; "files":
get_packed_associated_file_list(); "contents": each file by get_associated_file_buffer(), as text;
"min_parser_version": what the reader's own native module computes for the metadata buffer}}.
"""
import importlib
import json
import sys

MODULES = {
    "tflite-support": ("tensorflow_lite_support.metadata.python.metadata",
                       "tensorflow_lite_support.metadata.cc.python._pywrap_metadata_version"),
    "mediapipe": ("mediapipe.tasks.python.metadata.metadata",
                  "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"),
}


def main(which: str, paths: list) -> dict:
    names = MODULES[which]
    metadata, version = importlib.import_module(names[0]), importlib.import_module(names[1])
    out = {}
    for path in paths:
        displayer = metadata.MetadataDisplayer.with_model_file(path)
        files = displayer.get_packed_associated_file_list()
        out[path] = {
            "json": json.loads(displayer.get_metadata_json()),
            "files": files,
            "contents": {f: bytes(displayer.get_associated_file_buffer(f)).decode("utf-8") for f in files},
            "min_parser_version": version.GetMinimumMetadataParserVersion(bytes(displayer.get_metadata_buffer())),
        }
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2:])))
