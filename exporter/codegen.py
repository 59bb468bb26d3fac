"""C/C++ sources for microcontroller bundles: model data, arena size, an Arduino library.

Nothing a user controls goes into generated source as it is: a model file name
becomes a C identifier through `c_identifier`, and comments carry only that
identifier, sizes and the sha256 of the model. The sources are C++11 and build
with `arm-none-eabi-gcc -x c++` (see `exporter.toolchain`).

Example:
    >>> files = model_data_sources(tflite_bytes, name="digits.tflite")
    >>> sorted(files)
    ['model_data.cc', 'model_data.h']
    >>> b"constexpr size_t kDigitsArenaSize = 5504;" in arena_header(5_000, 0.1, name="digits.tflite")
    True
"""
from __future__ import annotations

import hashlib
import math
import operator
import re
import unicodedata
from fractions import Fraction

from exporter.errors import UsageError

C_KEYWORDS = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline
int long register restrict return short signed sizeof static struct switch typedef union unsigned
void volatile while _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn
_Static_assert _Thread_local alignas alignof bool constexpr false nullptr static_assert
thread_local true typeof typeof_unqual _BitInt _Decimal32 _Decimal64 _Decimal128
and and_eq asm bitand bitor catch char8_t char16_t char32_t class compl concept consteval
constinit const_cast co_await co_return co_yield decltype delete dynamic_cast explicit export
friend mutable namespace new noexcept not not_eq operator or or_eq private protected public
reinterpret_cast requires static_cast template this throw try typeid typename using virtual
wchar_t xor xor_eq final override import module
""".split())
"""C11/C23 and C++20 keywords, alternative operator names and contextual keywords."""

MODEL_SUFFIXES = (".tflite", ".tfl", ".lite", ".keras", ".h5")
ARENA_ALIGNMENT = 16
MAX_IDENTIFIER = 40
TFLM_ARDUINO_LIBRARY = "Arduino_TensorFlowLite"
"""The Arduino port of TFLM (github.com/tensorflow/tflite-micro-arduino-examples): the
sketch uses its current API (MicroInterpreter without an ErrorReporter,
`#include <TensorFlowLite.h>`), not the old 2.4.0-ALPHA build of the Library Manager."""
RESOLVER_CONTRACT = ("op_resolver.h must define a type `OpResolver` (e.g. "
                     "`using OpResolver = tflite::MicroMutableOpResolver<N>;`) and "
                     "`TfLiteStatus RegisterOps(OpResolver& resolver)`")
_DTYPES = {"int8": "kTfLiteInt8", "uint8": "kTfLiteUInt8", "int16": "kTfLiteInt16", "float32": "kTfLiteFloat32"}
_HEX = [f"0x{i:02x}" for i in range(256)]
_SAFE_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,30}$")


def c_identifier(text: str) -> str:
    """Turn any file name into a valid, non-reserved C and C++ identifier.

    Steps, in order (deterministic):
    1. drop one model suffix (`.tflite`, `.tfl`, `.lite`, `.keras`, `.h5`), any case;
    2. decompose accents (NFKD) and drop combining marks: "ümlaut" -> "umlaut";
    3. every character outside `[A-Za-z0-9_]` becomes "_";
    4. runs of "_" collapse to one; leading and trailing "_" are stripped;
    5. names longer than 40 characters keep 31 and get "_" plus 8 hex of their sha256;
    6. empty -> "model"; a leading digit gets the prefix "m_";
    7. a C11/C23/C++20 keyword gets the prefix "m_" ("int" -> "m_int").

    The result never starts or ends with "_" and never holds "__", so the names built from it
    (`g_<id>_model_data`, `EDGEX_<ID>_MODEL_DATA_H_`, `k<Id>ArenaSize`) are not reserved either:
    C and C++ reserve every identifier with "__" anywhere or "_" + a capital at the start.

    Args:
        text: a file name (not a path: "/" becomes "_" like any other character).

    Returns:
        A string matching `^[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*$`, at most 42 characters.

    Example:
        >>> c_identifier("123-model (v2).tflite")
        'm_123_model_v2'
    """
    stem = text
    for suffix in MODEL_SUFFIXES:
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = "".join(c for c in unicodedata.normalize("NFKD", stem) if not unicodedata.combining(c))
    ident = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", stem)).strip("_")
    if len(ident) > MAX_IDENTIFIER:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        ident = f"{ident[:31].rstrip('_')}_{digest}"
    ident = ident or "model"
    if ident[0].isdigit() or ident in C_KEYWORDS:
        ident = "m_" + ident
    return ident


def camel_case(identifier: str) -> str:
    """CamelCase of a `c_identifier` result: "my_model_v2" -> "MyModelV2"."""
    return "".join(part[:1].upper() + part[1:] for part in identifier.split("_") if part)


def library_name(name: str) -> str:
    """The Arduino library (and header) name for a model: CamelCase + "Model".

    The suffix keeps the header clear of other libraries' headers
    ("tensor_flow_lite" gives TensorFlowLiteModel.h, not TensorFlowLite.h).
    """
    camel = camel_case(c_identifier(name))
    if camel.endswith("Model") and camel != "Model":
        return camel
    return ("Edgex" if camel == "Model" else camel) + "Model"


def _banner(ident: str, what: str) -> str:
    return f"// {what} of model `{ident}`. Generated by edgex; do not edit.\n"


def model_data_sources(data: bytes, *, name: str) -> dict[str, bytes]:
    """The model flatbuffer as a C++ byte array, 16-byte aligned.

    The array is `const`, so it lands in `.rodata` (flash); TFLM reads it in place.

    Args:
        data: the .tflite bytes.
        name: the model file name; only its `c_identifier` reaches the source.

    Returns:
        {"model_data.h": ..., "model_data.cc": ...} declaring
        `g_<id>_model_data[]` and `g_<id>_model_data_len`.

    Raises:
        UsageError: empty data or data of 4 GiB or more.
    """
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise UsageError("model data for C source must be non-empty bytes")
    if len(data) >= 2**32:
        raise UsageError(f"model data of {len(data)} bytes does not fit an unsigned int length")
    ident = c_identifier(name)
    array, guard = f"g_{ident}_model_data", f"EDGEX_{ident.upper()}_MODEL_DATA_H_"
    info = f"// {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}.\n"
    header = (f"{_banner(ident, 'TFLite flatbuffer')}{info}"
              f"#ifndef {guard}\n#define {guard}\n\n#include <cstddef>\n#include <cstdint>\n\n"
              f"extern const unsigned char {array}[];\n"
              f"constexpr unsigned int {array}_len = {len(data)};\n\n#endif  // {guard}\n")
    rows = ",\n".join("    " + ", ".join(map(_HEX.__getitem__, data[i:i + 12]))
                      for i in range(0, len(data), 12))
    source = (f"{_banner(ident, 'TFLite flatbuffer')}{info}"
              '#include "model_data.h"\n\n'
              "// Aligned to 16 bytes: TFLM reads tensors in place; CMSIS-NN and Ethos-U need it.\n"
              f"alignas(16) const unsigned char {array}[] = {{\n{rows},\n}};\n")
    return {"model_data.h": header.encode(), "model_data.cc": source.encode()}


def arena_size(arena_bytes: int, margin: float) -> int:
    """`arena_bytes * (1 + margin)`, computed exactly, rounded up to 16 bytes.

    Raises:
        UsageError: a measured size that is not a positive integer, or a margin outside [0, 10].
    """
    if isinstance(arena_bytes, bool) or not isinstance(arena_bytes, int) or arena_bytes <= 0:
        raise UsageError(f"measured arena must be a positive whole number of bytes, got {arena_bytes!r}")
    if not isinstance(margin, (int, float)) or not math.isfinite(margin) or not 0 <= margin <= 10:
        raise UsageError(f"arena margin must be a share between 0 and 10, got {margin!r}")
    needed = math.ceil(arena_bytes * (1 + Fraction(repr(float(margin)))))
    return -(-needed // ARENA_ALIGNMENT) * ARENA_ALIGNMENT


def arena_header(arena_bytes: int, margin: float, *, name: str) -> bytes:
    """`model_arena.h`: the tensor arena size, measured on the host plus a margin.

    Args:
        arena_bytes: the arena TFLM's RecordingMicroAllocator reported on the host.
        margin: share added on top, e.g. 0.1 for 10 %.
        name: the model file name (only its identifier is used).

    Returns:
        The header defining `constexpr size_t k<Id>ArenaSize`.

    Raises:
        UsageError: see `arena_size`.
    """
    ident = c_identifier(name)
    size, guard = arena_size(arena_bytes, margin), f"EDGEX_{ident.upper()}_MODEL_ARENA_H_"
    return (f"{_banner(ident, 'Tensor arena size')}"
            f"// Measured: {arena_bytes} bytes, by the TFLM RecordingMicroAllocator on the host\n"
            "// (tflite_micro Python interpreter, reference kernels, AllocateTensors + Invoke).\n"
            f"// Margin: {float(margin):.0%}, then rounded up to {ARENA_ALIGNMENT} bytes. The host is 64-bit,\n"
            "// so its pointers make the persistent part larger than on a 32-bit MCU; optimised\n"
            "// kernels (CMSIS-NN) may ask for different scratch buffers: the margin covers those.\n"
            f"#ifndef {guard}\n#define {guard}\n\n#include <stddef.h>\n\n"
            f"constexpr size_t k{camel_case(ident)}ArenaSize = {size};\n\n#endif  // {guard}\n").encode()


def _count(value, what: str) -> int:
    try:
        number = operator.index(value)  # int or numpy integer, not bool/float
    except TypeError:
        number = 0
    if isinstance(value, bool) or number <= 0:
        raise UsageError(f"{what} must be positive whole numbers, got {value!r}")
    return number


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
    dims = [_count(d, f"input shape {input_shape!r}") for d in input_shape]
    if not dims:
        raise UsageError("input shape must not be empty")
    if str(input_dtype) not in _DTYPES:
        raise UsageError(f"input dtype {input_dtype!r} is not one of {sorted(_DTYPES)}")
    return dims, str(input_dtype), _count(output_size, "output size")


def arduino_library(*, name: str, model_files: dict[str, bytes], resolver_source: str, arena_bytes: int,
                    margin: float, version: str, input_shape, input_dtype: str,
                    output_size: int) -> dict[str, bytes]:
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
        input_shape, input_dtype: of the model's input ("int8", "uint8", "int16", "float32").
        output_size: number of output values (classes) for the top-1 of the sketch.

    Returns:
        Bundle-relative paths mapped to file contents.

    Raises:
        UsageError: a bad argument, named.
    """
    dims, input_dtype, output_size = _check_library_args(model_files, resolver_source, version, input_shape,
                                                         input_dtype, output_size)
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
        f"Needs the {TFLM_ARDUINO_LIBRARY} library (github.com/tensorflow/tflite-micro-arduino-examples).\n"
        "category=Data Processing\nurl=https://github.com/tensorflow/tflite-micro-arduino-examples\n"
        f"architectures=*\ndepends={TFLM_ARDUINO_LIBRARY}\nincludes={lib}.h\n").encode()
    guard = f"EDGEX_{ident.upper()}_LIBRARY_H_"
    files[f"{root}/src/{lib}.h"] = (
        f"{_banner(ident, 'Arduino library')}#ifndef {guard}\n#define {guard}\n\n"
        '#include "model_data.h"\n#include "model_arena.h"\n#include "op_resolver.h"\n\n'
        f"// Input: shape [{', '.join(map(str, dims))}], {input_dtype}. Output: {output_size} values.\n"
        f"constexpr int k{camel}InputSize = {math.prod(dims)};\n"
        f"constexpr int k{camel}OutputSize = {output_size};\n\n#endif  // {guard}\n").encode()
    files[f"{root}/examples/RunInference/RunInference.ino"] = _sketch(ident, camel, lib, input_dtype).encode()
    return files


def _sketch(ident: str, camel: str, lib: str, input_dtype: str) -> str:
    return f"""// RunInference: runs model `{ident}` on an all-zero input once a second and prints
// the latency of Invoke(), the arena used and the top-1 index over Serial (115200 baud).
// Generated by edgex. Needs the {TFLM_ARDUINO_LIBRARY} library.
#include <TensorFlowLite.h>
#include <string.h>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include <{lib}.h>

namespace {{
alignas(16) uint8_t tensor_arena[k{camel}ArenaSize];
OpResolver resolver;
tflite::MicroInterpreter* interpreter = nullptr;
}}  // namespace

static void Halt(const char* message) {{
  Serial.println(message);
  while (true) delay(1000);
}}

static float OutputValue(const TfLiteTensor* output, int i) {{
  switch (output->type) {{
    case kTfLiteInt8: return (output->data.int8[i] - output->params.zero_point) * output->params.scale;
    case kTfLiteUInt8: return (output->data.uint8[i] - output->params.zero_point) * output->params.scale;
    case kTfLiteInt16: return output->data.i16[i] * output->params.scale;
    default: return output->data.f[i];
  }}
}}

void setup() {{
  Serial.begin(115200);
  while (!Serial && millis() < 3000) {{}}
  const tflite::Model* model = tflite::GetModel(g_{ident}_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) Halt("model schema version not supported");
  if (RegisterOps(resolver) != kTfLiteOk) Halt("RegisterOps failed");
  static tflite::MicroInterpreter static_interpreter(model, resolver, tensor_arena, k{camel}ArenaSize);
  interpreter = &static_interpreter;
  if (interpreter->AllocateTensors() != kTfLiteOk) Halt("AllocateTensors failed: arena too small?");
  if (interpreter->input(0)->type != {_DTYPES[input_dtype]}) Halt("input is not {input_dtype} as exported");
  Serial.print("arena used: ");
  Serial.print((unsigned long)interpreter->arena_used_bytes());
  Serial.print(" of ");
  Serial.println((unsigned long)k{camel}ArenaSize);
}}

void loop() {{
  TfLiteTensor* input = interpreter->input(0);
  // Zeros: the real value 0.0, i.e. the zero point of a quantized ({input_dtype}) input.
  if (input->type == kTfLiteInt8 || input->type == kTfLiteUInt8) {{
    memset(input->data.raw, input->params.zero_point, input->bytes);
  }} else {{
    memset(input->data.raw, 0, input->bytes);
  }}
  unsigned long start = micros();
  TfLiteStatus status = interpreter->Invoke();
  unsigned long elapsed = micros() - start;
  if (status != kTfLiteOk) Halt("Invoke failed");
  TfLiteTensor* output = interpreter->output(0);
  int top = 0;
  for (int i = 1; i < k{camel}OutputSize; ++i) {{
    if (OutputValue(output, i) > OutputValue(output, top)) top = i;
  }}
  Serial.print("latency_us: ");
  Serial.print(elapsed);
  Serial.print(" arena_used: ");
  Serial.print((unsigned long)interpreter->arena_used_bytes());
  Serial.print(" top1: ");
  Serial.println(top);
  delay(1000);
}}
"""
