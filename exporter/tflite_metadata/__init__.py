"""TFLite metadata (`TFLITE_METADATA`) in the models of the targets whose apps read it (android, linux).

The schema is tflite-support's `metadata_schema.fbs` (tensorflow/tflite-support,
tensorflow_lite_support/metadata/); tflite-support itself pins protobuf < 4 and cannot share
edgex's environment, so edgex writes the flatbuffer with the `flatbuffers` package:

- schema.py: the schema's tables, enums and unions as data; `min_parser_version`'s rules;
- flatbuf.py: writes and reads a metadata flatbuffer from that description;
- info.py: the model's name, version, description, author and licence (the export options);
- content.py: what goes in, made from the export (I/O, normalization, value ranges, labels);
- model_file.py: insertion into the model and the associated-files zip, as tflite-support's
  `MetadataPopulator` does them; reading them back;
- step.py: the export step between `build` and `assess`; summary.py: what `edgex inspect` prints.

Nothing heavy is imported at package level.
"""
