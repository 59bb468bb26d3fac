"""An Arduino library for a microcontroller bundle: the model, its op resolver, arena size and a sketch.

The library's C++ comes from `targets.microcontroller.codegen` (identifiers, model data, arena
header); only identifiers made by `c_identifier`, sizes and dtypes reach generated source.

Example:
    >>> from exporter.analysis.graph import Graph
    >>> from targets.microcontroller.codegen import model_data_sources
    >>> from targets.microcontroller.tflm import op_resolver_source
    >>> sources = model_data_sources(tiny_tflite, name="digits.tflite")
    >>> resolver = op_resolver_source(Graph.from_bytes(tiny_tflite))
    >>> files = arduino_library(name="digits.tflite", model_files=sources, resolver_source=resolver,
    ...                         arena_bytes=5000, margin=0.1, version="1.0.0", input_shape=(1, 8, 8, 1),
    ...                         input_dtype="int8", output_size=10)
    >>> sorted(files)  # doctest: +NORMALIZE_WHITESPACE
    ['arduino/DigitsModel/examples/RunInference/RunInference.ino', 'arduino/DigitsModel/library.properties',
     'arduino/DigitsModel/src/DigitsModel.h', 'arduino/DigitsModel/src/model_arena.h',
     'arduino/DigitsModel/src/model_data.cpp', 'arduino/DigitsModel/src/model_data.h',
     'arduino/DigitsModel/src/op_resolver.h']
"""
from __future__ import annotations

import math
import numbers
import operator
import re
from string import Template

from exporter.errors import UsageError
from targets.microcontroller.codegen import (COMPRESSION_NOTE, arena_header, arena_size, banner, c_identifier,
                                             camel_case, library_name)

TFLM_ARDUINO_LIBRARY = "Arduino_TensorFlowLite"
"""The Arduino port of TFLM (github.com/tensorflow/tflite-micro-arduino-examples): the
sketch uses its current API (MicroInterpreter without an ErrorReporter,
`#include <TensorFlowLite.h>`), not the old 2.4.0-ALPHA build of the Library Manager."""
RESOLVER_CONTRACT = ("op_resolver.h must define a type `OpResolver` (e.g. "
                     "`using OpResolver = tflite::MicroMutableOpResolver<N>;`) and "
                     "`TfLiteStatus RegisterOps(OpResolver& resolver)`")
_DECODE = (", built from tflite-micro sources with the DECODE op (since late 2025): the weights are compressed "
           "for TFLM_DECODE, which older builds of it lack (export with --no-compress for those)")
_DTYPES = {"int8": "kTfLiteInt8", "uint8": "kTfLiteUInt8", "int16": "kTfLiteInt16", "float32": "kTfLiteFloat32"}
_SAFE_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,30}$")


def _count(value, what: str) -> int:
    try:
        number = operator.index(value)  # int or numpy integer, not bool/float
    except TypeError:
        number = 0
    if isinstance(value, bool) or number <= 0:
        raise UsageError(f"{what} must be positive whole numbers, got {value!r}")
    return number


def _per_input(input_shape, input_dtype) -> list[tuple]:
    """(shape, dtype) of every input: one shape and dtype, or a list of shapes and one of dtypes (several inputs)."""
    several = len(input_shape) > 0 and not isinstance(input_shape[0], numbers.Integral)
    if not several:
        return [(input_shape, input_dtype)]
    dtypes = [input_dtype] * len(input_shape) if isinstance(input_dtype, str) else list(input_dtype)
    if len(dtypes) != len(input_shape):
        raise UsageError(f"{len(input_shape)} input shapes but {len(dtypes)} input dtypes")
    return list(zip(input_shape, dtypes))


def _check_library_args(model_files, resolver_source, version, input_shape, input_dtype, output_size):
    for fname in model_files:
        if not _SAFE_FILE.match(fname) or fname.rsplit(".", 1)[-1] not in ("h", "cc", "cpp"):
            raise UsageError(f"model source file name {fname!r} must be a plain .h/.cc/.cpp name")
    if "model_data.h" not in model_files:
        raise UsageError("model_files must hold model_data.h (from model_data_sources)")
    if "RegisterOps" not in resolver_source or "OpResolver" not in resolver_source:
        raise UsageError(RESOLVER_CONTRACT)
    if not _VERSION.match(str(version)):
        raise UsageError(f"library version {version!r} must look like 1.2.3 (letters, digits, . + -)")
    inputs = []
    for shape, dtype in _per_input(input_shape, input_dtype):
        dims = [_count(d, f"input shape {shape!r}") for d in shape]
        if not dims:
            raise UsageError("input shape must not be empty")
        if str(dtype) not in _DTYPES:
            raise UsageError(f"input dtype {dtype!r} is not one of {sorted(_DTYPES)}")
        inputs.append((dims, str(dtype)))
    return inputs, _count(output_size, "output size")


def arduino_library(*, name: str, model_files: dict[str, bytes], resolver_source: str, arena_bytes: int,
                    margin: float, version: str, input_shape, input_dtype: str,
                    output_size: int, output_index: int = 0, compressed: bool = False) -> dict[str, bytes]:
    """An Arduino library holding the model, its op resolver, arena size and an example sketch.

    Layout under `arduino/<LibName>/`: `library.properties`, `src/<LibName>.h`,
    `src/model_data.h`, `src/model_data.cpp`, `src/model_arena.h`, `src/op_resolver.h`,
    `examples/RunInference/RunInference.ino`. `.cc` files are renamed `.cpp`: older
    Arduino IDEs and arduino-cli compile only `.c`, `.cpp` and `.S` in libraries.
    The library depends on Arduino_TensorFlowLite (see `TFLM_ARDUINO_LIBRARY`).

    Args:
        name: the model file name; the library is `library_name(name)`.
        model_files: `model_data_sources(...)`.
        resolver_source: the text of op_resolver.h; see `RESOLVER_CONTRACT`.
        arena_bytes: the arena measured on the host; margin: share added (`arena_header`).
        version: the library version for library.properties.
        input_shape, input_dtype: of the model's input ("int8", "uint8", "int16", "float32"); for a model
            with several inputs a list of shapes and a list of dtypes (or one for all), in the .tflite's order.
            The sketch fills every input.
        output_size: number of output values (classes) for the top-1 of the sketch.
        output_index: the output the sketch takes the top-1 of (its position among the .tflite's outputs).
        compressed: TFLM-compressed weights: library.properties and the header say it needs the DECODE op.

    Returns:
        Bundle-relative paths mapped to file contents.

    Raises:
        UsageError: a bad argument, named.
    """
    inputs, output_size = _check_library_args(model_files, resolver_source, version, input_shape, input_dtype,
                                              output_size)
    if isinstance(output_index, bool) or not isinstance(output_index, numbers.Integral) or output_index < 0:
        raise UsageError(f"output index must be a whole number >= 0, got {output_index!r}")
    ident, lib = c_identifier(name), library_name(name)
    camel, root = camel_case(ident), f"arduino/{lib}"
    files = {f"{root}/src/{f[:-3] + '.cpp' if f.endswith('.cc') else f}": bytes(data)
             for f, data in model_files.items()}
    files[f"{root}/src/model_arena.h"] = arena_header(arena_bytes, margin, name=name)
    files[f"{root}/src/op_resolver.h"] = resolver_source.encode()
    size = arena_size(arena_bytes, margin)
    files[f"{root}/library.properties"] = (
        f"name={lib}\nversion={version}\nauthor=edgex\nmaintainer=edgex\n"
        f"sentence=The {ident} TensorFlow Lite model with its op resolver and tensor arena size.\n"
        f"paragraph=Generated by edgex. Model data in flash, aligned to 16 bytes; tensor arena "
        f"{size} bytes (measured {arena_bytes} with TFLM on the host, plus {float(margin):.0%}). "
        f"Needs the {TFLM_ARDUINO_LIBRARY} library (github.com/tensorflow/tflite-micro-arduino-examples){_DECODE * compressed}.\n"
        "category=Data Processing\nurl=https://github.com/tensorflow/tflite-micro-arduino-examples\n"
        f"architectures=*\ndepends={TFLM_ARDUINO_LIBRARY}\nincludes={lib}.h\n").encode()
    guard = f"EDGEX_{ident.upper()}_LIBRARY_H_"
    files[f"{root}/src/{lib}.h"] = (
        f"{banner(ident, 'Arduino library')}#ifndef {guard}\n#define {guard}\n\n"
        f"{COMPRESSION_NOTE if compressed else ''}"
        '#include "model_data.h"\n#include "model_arena.h"\n#include "op_resolver.h"\n\n'
        f"{_sizes(camel, inputs, output_size, output_index)}\n#endif  // {guard}\n").encode()
    dtypes = [dtype for _, dtype in inputs]
    files[f"{root}/examples/RunInference/RunInference.ino"] = SKETCH.substitute(
        ident=ident, camel=camel, lib=lib, library=TFLM_ARDUINO_LIBRARY, input_dtype="/".join(dict.fromkeys(dtypes)),
        inputs=len(inputs), dtype_enums=", ".join(_DTYPES[d] for d in dtypes), output_index=int(output_index)).encode()
    return files


def _sizes(camel: str, inputs: list, output_size: int, output_index: int) -> str:
    """The header's comment and constants: each input's size (`k<Id>InputSize`, or per input with a count)."""
    if len(inputs) == 1:
        (dims, dtype), = inputs
        return (f"// Input: shape [{', '.join(map(str, dims))}], {dtype}. Output: {output_size} values.\n"
                f"constexpr int k{camel}InputSize = {math.prod(dims)};\n"
                f"constexpr int k{camel}OutputSize = {output_size};\n")
    lines = [f"// Input {i}: shape [{', '.join(map(str, dims))}], {dtype}." for i, (dims, dtype) in enumerate(inputs)]
    lines += [f"// Output {output_index} (the top-1 of RunInference): {output_size} values.",
              f"constexpr int k{camel}InputCount = {len(inputs)};"]
    lines += [f"constexpr int k{camel}Input{i}Size = {math.prod(dims)};" for i, (dims, _) in enumerate(inputs)]
    return "\n".join([*lines, f"constexpr int k{camel}OutputSize = {output_size};", ""])


SKETCH = Template("""// RunInference: runs model `${ident}` on all-zero inputs once a second and prints
// the latency of Invoke(), the arena used and the top-1 index over Serial (115200 baud).
// Generated by edgex. Needs the ${library} library.
#include <TensorFlowLite.h>
#include <string.h>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include <${lib}.h>

namespace {
alignas(16) uint8_t tensor_arena[k${camel}ArenaSize];
OpResolver resolver;
tflite::MicroInterpreter* interpreter = nullptr;
const TfLiteType kInputTypes[${inputs}] = {${dtype_enums}};
}  // namespace

static void Halt(const char* message) {
  Serial.println(message);
  while (true) delay(1000);
}

static float OutputValue(const TfLiteTensor* output, int i) {
  switch (output->type) {
    case kTfLiteInt8: return (output->data.int8[i] - output->params.zero_point) * output->params.scale;
    case kTfLiteUInt8: return (output->data.uint8[i] - output->params.zero_point) * output->params.scale;
    case kTfLiteInt16: return output->data.i16[i] * output->params.scale;
    default: return output->data.f[i];
  }
}

void setup() {
  Serial.begin(115200);
  while (!Serial && millis() < 3000) {}
  const tflite::Model* model = tflite::GetModel(g_${ident}_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) Halt("model schema version not supported");
  if (RegisterOps(resolver) != kTfLiteOk) Halt("RegisterOps failed");
  static tflite::MicroInterpreter static_interpreter(model, resolver, tensor_arena, k${camel}ArenaSize);
  interpreter = &static_interpreter;
  if (interpreter->AllocateTensors() != kTfLiteOk) Halt("AllocateTensors failed: arena too small?");
  for (size_t i = 0; i < ${inputs}; ++i) {
    if (interpreter->input(i)->type != kInputTypes[i]) Halt("an input is not ${input_dtype} as exported");
  }
  Serial.print("arena used: ");
  Serial.print((unsigned long)interpreter->arena_used_bytes());
  Serial.print(" of ");
  Serial.println((unsigned long)k${camel}ArenaSize);
}

void loop() {
  for (size_t i = 0; i < ${inputs}; ++i) {    // every input
    TfLiteTensor* input = interpreter->input(i);
    // Zeros: the real value 0.0, i.e. the zero point of a quantized (${input_dtype}) input.
    if (input->type == kTfLiteInt8 || input->type == kTfLiteUInt8) {
      memset(input->data.raw, input->params.zero_point, input->bytes);
    } else {
      memset(input->data.raw, 0, input->bytes);
    }
  }
  unsigned long start = micros();
  TfLiteStatus status = interpreter->Invoke();
  unsigned long elapsed = micros() - start;
  if (status != kTfLiteOk) Halt("Invoke failed");
  TfLiteTensor* output = interpreter->output(${output_index});
  int top = 0;
  for (int i = 1; i < k${camel}OutputSize; ++i) {
    if (OutputValue(output, i) > OutputValue(output, top)) top = i;
  }
  Serial.print("latency_us: ");
  Serial.print(elapsed);
  Serial.print(" arena_used: ");
  Serial.print((unsigned long)interpreter->arena_used_bytes());
  Serial.print(" top1: ");
  Serial.println(top);
  delay(1000);
}
""")
"""RunInference.ino: one timed inference a second on zeros, printed over Serial. Placeholders:
ident, camel, lib (this library), library (TFLM's Arduino library), input_dtype (the inputs' dtypes),
inputs (their count), dtype_enums (each input's TfLiteType), output_index (the output of the top-1)."""
