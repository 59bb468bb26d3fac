"""C/C++ sources for microcontroller bundles: C identifiers, model data, arena size.

Nothing a user controls goes into generated source as it is: a model file name
becomes a C identifier through `c_identifier`, and comments carry only that
identifier, sizes and the sha256 of the model. The sources are C++11 and build
with `arm-none-eabi-gcc -x c++` (see `targets.microcontroller.toolchain`). The Arduino
library built from them is `targets.microcontroller.arduino`.

Example:
    >>> files = model_data_sources(tiny_tflite, name="digits.tflite")
    >>> sorted(files)
    ['model_data.cc', 'model_data.h']
    >>> [line for line in files["model_data.h"].decode().splitlines() if line.startswith("extern")]
    ['extern const unsigned char g_digits_model_data[];']
    >>> b"constexpr size_t kDigitsArenaSize = 5504;" in arena_header(5_000, 0.1, name="digits.tflite")
    True
"""
from __future__ import annotations

import hashlib
import math
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
COMPRESSION_NOTE = (
    "// Weights compressed with TFLM weight compression (look-up tables, proved bit-exact by edgex): TFLM_DECODE\n"
    "// ops decode them into the tensor arena. Needs a TFLM with the DECODE op (kernels/decode.cc, tflite-micro\n"
    "// since late 2025; op_resolver.h registers it with AddDecode). USE_TFLM_COMPRESSION is not needed for it:\n"
    "// that build flag (make USE_TFLM_COMPRESSION=1, bazel --//:with_compression) enables TFLM's older\n"
    "// COMPRESSION_METADATA format; defining it does no harm. Export with --no-compress for an older TFLM.\n")
"""The comment a compressed model's C sources carry (targets/microcontroller/compression.py)."""
ARENA_ALIGNMENT = 16
MAX_IDENTIFIER = 40
_HEX = [f"0x{i:02x}" for i in range(256)]


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


def banner(ident: str, what: str) -> str:
    return f"// {what} of model `{ident}`. Generated by edgex; do not edit.\n"


def model_data_sources(data: bytes, *, name: str, compressed: bool = False) -> dict[str, bytes]:
    """The model flatbuffer as a C++ byte array, 16-byte aligned.

    The array is `const`, so it lands in `.rodata` (flash); TFLM reads it in place.

    Args:
        data: the .tflite bytes.
        name: the model file name; only its `c_identifier` reaches the source.
        compressed: the model holds TFLM-compressed weights (`COMPRESSION_NOTE` goes into both files).

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
    if compressed:
        info += COMPRESSION_NOTE
    header = (f"{banner(ident, 'TFLite flatbuffer')}{info}"
              f"#ifndef {guard}\n#define {guard}\n\n#include <cstddef>\n#include <cstdint>\n\n"
              f"extern const unsigned char {array}[];\n"
              f"constexpr unsigned int {array}_len = {len(data)};\n\n#endif  // {guard}\n")
    rows = ",\n".join("    " + ", ".join(map(_HEX.__getitem__, data[i:i + 12]))
                      for i in range(0, len(data), 12))
    source = (f"{banner(ident, 'TFLite flatbuffer')}{info}"
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
    return (f"{banner(ident, 'Tensor arena size')}"
            f"// Measured: {arena_bytes} bytes, by the TFLM RecordingMicroAllocator on the host\n"
            "// (tflite_micro Python interpreter, reference kernels, AllocateTensors + Invoke).\n"
            f"// Margin: {float(margin):.0%}, then rounded up to {ARENA_ALIGNMENT} bytes. The host is 64-bit,\n"
            "// so its pointers make the persistent part larger than on a 32-bit MCU; optimised\n"
            "// kernels (CMSIS-NN) may ask for different scratch buffers: the margin covers those.\n"
            f"#ifndef {guard}\n#define {guard}\n\n#include <stddef.h>\n\n"
            f"constexpr size_t k{camel_case(ident)}ArenaSize = {size};\n\n#endif  // {guard}\n").encode()
