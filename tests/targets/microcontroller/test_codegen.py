"""Generated C/C++ sources: hostile names, compiled with arm-none-eabi-gcc, sizes, alignment, Arduino library."""
from __future__ import annotations

import math
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from targets.microcontroller import codegen, toolchain
from targets.microcontroller.arduino import arduino_library
from targets.microcontroller.codegen import arena_header, c_identifier, model_data_sources
from exporter.errors import ConfigError, ConversionError, UsageError
from targets.microcontroller.toolchain import compile_model_data, find_arm_gcc

HOSTILE = ["model.tflite", "123-model", "my model (v2).tflite", "int", "class", "__init", "_Bad",
           "ümlaut.tflite", "", 'evil*/\n#include "x"', 'evil*/\n#include "x".tflite', "register", "new",
           "delete", "x" * 300, "中文.tflite", "a..b--c", "_"]
# Names whose identifier once led to reserved C/C++ names in the generated source ("int" gave
# `g_int__model_data`: a double underscore is reserved anywhere in C++).
RESERVED_TRAPS = ["__init__", "a__b", "123", "int", "ÿ€.keras", "y" * 300, "_Reserved", "sizeof_.tflite",
                  "long__.h5", "9__9", "__", "a_" * 30 + "_" * 12, "while.tflite"]
CORES = [("cortex-m4", "fpv4-sp-d16"), ("cortex-m33", None), ("cortex-m55", None)]
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESOLVER = """#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
using OpResolver = tflite::MicroMutableOpResolver<3>;
inline TfLiteStatus RegisterOps(OpResolver& resolver) {
  if (resolver.AddConv2D() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddFullyConnected() != kTfLiteOk) return kTfLiteError;
  return resolver.AddSoftmax();
}
"""
# Minimal stand-ins for Arduino.h and the TFLM headers, with the signatures of the real ones,
# so the sketch and the library header get a C++ syntax and name check without TFLM sources.
STUBS = {
    "Arduino.h": """#include <stdint.h>
#include <stddef.h>
unsigned long micros(); unsigned long millis(); void delay(unsigned long);
struct SerialStub { void begin(long); explicit operator bool() const;
  template <class T> void print(T); template <class T> void println(T); };
extern SerialStub Serial;
""",
    "TensorFlowLite.h": "",
    "tensorflow/lite/schema/schema_generated.h": "#define TFLITE_SCHEMA_VERSION (3)\n",
    "tensorflow/lite/micro/micro_mutable_op_resolver.h": '#include "tensorflow/lite/micro/micro_interpreter.h"\n',
    "tensorflow/lite/micro/micro_interpreter.h": """#pragma once
#include <stdint.h>
#include <stddef.h>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef enum { kTfLiteFloat32 = 1, kTfLiteInt16 = 7, kTfLiteInt8 = 9, kTfLiteUInt8 = 3 } TfLiteType;
typedef union { float* f; char* raw; uint8_t* uint8; int16_t* i16; int8_t* int8; } TfLitePtrUnion;
typedef struct { float scale; int32_t zero_point; } TfLiteQuantizationParams;
typedef struct { TfLiteType type; TfLitePtrUnion data; TfLiteQuantizationParams params; size_t bytes; } TfLiteTensor;
namespace tflite {
struct Model { uint32_t version() const; };
const Model* GetModel(const void* buf);
class MicroOpResolver {};
template <unsigned int N> class MicroMutableOpResolver : public MicroOpResolver {
 public: TfLiteStatus AddConv2D(); TfLiteStatus AddFullyConnected(); TfLiteStatus AddSoftmax(); };
class MicroInterpreter {
 public:
  MicroInterpreter(const Model*, const MicroOpResolver&, uint8_t*, size_t);
  TfLiteStatus AllocateTensors(); TfLiteStatus Invoke();
  TfLiteTensor* input(size_t); TfLiteTensor* output(size_t); size_t arena_used_bytes() const;
};
}  // namespace tflite
""",
}



def test_the_toolchain_is_installed():
    assert find_arm_gcc(), "arm-none-eabi-gcc is missing: `make sysdeps` installs gcc-arm-none-eabi"


@pytest.fixture(scope="module")
def tflite_bytes(tiny_model, tiny_data):
    from exporter.stages.convert import ConvertConfig, convert

    return convert(tiny_model, ConvertConfig(mode="int8", io_dtype="int8"), calib=tiny_data[0])


def _write(directory: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_bytes(data)
    return directory


def _gcc(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def _readelf(obj: str, flag: str) -> str:
    return subprocess.run(["arm-none-eabi-readelf", flag, "-W", obj], capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.reliability(25)
def test_identifiers_of_hostile_names_are_valid_and_unreserved():
    idents = [c_identifier(name) for name in HOSTILE]
    for name, ident in zip(HOSTILE, idents):
        assert IDENT.match(ident), (name, ident)
        assert ident not in codegen.C_KEYWORDS and ident not in {"int", "class", "new", "delete", "register"}
        assert not ident.startswith("_") and not ident.endswith("_") and "__" not in ident, ident
        assert len(ident) <= 42 and c_identifier(name) == ident, "deterministic and bounded"
        assert IDENT.match(codegen.library_name(name)) and codegen.library_name(name)[0].isupper()
    assert idents[:4] == ["model", "m_123_model", "my_model_v2", "m_int"]
    assert c_identifier("ümlaut.tflite") == "umlaut" and c_identifier("") == "model"
    assert [c_identifier(ident) for ident in idents] == idents, "idempotent: callers may pass an identifier"
    # The compilers agree: every identifier is an ordinary name in C11 and C++17.
    decls = "".join(f"int {ident} = 0;\n" for ident in sorted(set(idents)))
    for lang, std in (("c", "c11"), ("c++", "c++17")):
        done = subprocess.run(["arm-none-eabi-gcc", "-x", lang, f"-std={std}", "-fsyntax-only", "-"],
                              input=decls, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr


@pytest.mark.reliability(25)
@pytest.mark.parametrize("name", HOSTILE)
def test_model_data_compiles_for_each_core_with_exact_size_and_alignment(tflite_bytes, tmp_path, name):
    files = model_data_sources(tflite_bytes, name=name)
    text = b"".join(files.values()).decode("ascii")  # raw names never reach the source
    assert "*/" not in text and "/*" not in text and '"x"' not in text
    includes = [line for line in text.splitlines() if line.lstrip().startswith("#include")]
    assert includes == ["#include <cstddef>", "#include <cstdint>", '#include "model_data.h"']
    ident = c_identifier(name)
    symbol = f"g_{ident}_model_data"
    assert f"constexpr unsigned int {symbol}_len = {len(tflite_bytes)};".encode() in files["model_data.h"]
    src = _write(tmp_path, files)
    for cpu, fpu in CORES:
        result = compile_model_data(src, cpu=cpu, fpu=fpu, out_dir=tmp_path / cpu)
        assert result.rodata == len(tflite_bytes) and result.text == 0 and result.data == 0 == result.bss
        assert len(tflite_bytes) <= result.flash <= len(tflite_bytes) + 16
        float_abi = "-mfloat-abi=hard" if fpu else "-mfloat-abi=soft"
        assert f"-mcpu={cpu}" in result.command and float_abi in result.command
        symbols = [line.split() for line in _readelf(result.object_path, "-s").splitlines()]
        entry = next(row for row in symbols if row and row[-1] == symbol)
        assert int(entry[2]) == len(tflite_bytes) and entry[4] == "GLOBAL" and int(entry[1], 16) % 16 == 0
        rodata = next(line for line in _readelf(result.object_path, "-S").splitlines() if " .rodata " in line)
        assert int(rodata.split()[-1]) >= 16, rodata
    blob = tmp_path / "rodata.bin"
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", "--only-section=.rodata", result.object_path,
                    str(blob)], check=True)
    assert blob.read_bytes() == tflite_bytes, "the array holds the model byte for byte"


def test_odd_length_data_and_twelve_bytes_per_line(tmp_path):
    data = bytes(range(256)) * 2 + b"\x7f"
    files = model_data_sources(data, name="odd")
    rows = [line for line in files["model_data.cc"].decode().splitlines() if line.startswith("    0x")]
    assert len(rows) == math.ceil(len(data) / 12) and all(row.count("0x") == 12 for row in rows[:-1])
    result = compile_model_data(_write(tmp_path, files), cpu="cortex-m0plus", fpu=None)
    assert result.flash == len(data) and result.object_path == ""


@pytest.mark.parametrize("measured,margin", [(160, 0.1), (1000, 0.0), (1, 0.25), (5000, 0.1), (12345, 0.2),
                                             (136 * 1024, 0.15), (7, 1.0)])
def test_arena_header_is_measured_plus_margin_rounded_to_16(measured, margin):
    text = arena_header(measured, margin, name="digits.tflite").decode()
    value = int(re.search(r"constexpr size_t kDigitsArenaSize = (\d+);", text).group(1))
    needed = math.ceil(measured * (1 + Fraction(str(margin))))
    assert value == -(-needed // 16) * 16 and value % 16 == 0 and value >= measured * (1 + margin) - 1e-6
    assert f"Measured: {measured} bytes" in text and "RecordingMicroAllocator" in text and f"{margin:.0%}" in text
    assert arena_header(160, 0.1, name="x").decode().count("= 176;") == 1


@pytest.mark.parametrize("measured,margin", [(0, 0.1), (-5, 0.1), (1.5, 0.1), (100, -0.1), (100, float("nan"))])
def test_arena_header_refuses_bad_figures(measured, margin):
    with pytest.raises(UsageError):
        arena_header(measured, margin, name="m")


@pytest.fixture(scope="module")
def library(tflite_bytes):
    name = 'my model (v2).tflite'
    files = arduino_library(name=name, model_files=model_data_sources(tflite_bytes, name=name),
                            resolver_source=RESOLVER, arena_bytes=5000, margin=0.1, version="0.1.0",
                            input_shape=np.array([1, 8, 8, 1]), input_dtype="int8", output_size=np.int64(3))
    return files, "arduino/MyModelV2Model"


def test_arduino_library_layout_and_properties(library):
    files, root = library
    assert set(files) == {f"{root}/{p}" for p in (
        "library.properties", "src/MyModelV2Model.h", "src/model_data.h", "src/model_data.cpp",
        "src/model_arena.h", "src/op_resolver.h", "examples/RunInference/RunInference.ino")}
    props = dict(line.split("=", 1) for line in files[f"{root}/library.properties"].decode().splitlines())
    for key in ("name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url",
                "architectures", "depends", "includes"):
        assert props.get(key), key
    assert props["name"] == "MyModelV2Model" and props["includes"] == "MyModelV2Model.h"
    assert props["category"] == "Data Processing" and props["depends"] == "Arduino_TensorFlowLite"
    assert files[f"{root}/src/op_resolver.h"] == RESOLVER.encode()
    header = files[f"{root}/src/MyModelV2Model.h"].decode()
    for include in ("model_data.h", "model_arena.h", "op_resolver.h"):
        assert f'#include "{include}"' in header
    sketch = files[f"{root}/examples/RunInference/RunInference.ino"].decode()
    for needle in ("#include <MyModelV2Model.h>", "alignas(16) uint8_t tensor_arena[kMyModelV2ArenaSize]",
                   "RegisterOps(resolver)", "OpResolver resolver", "tflite::MicroInterpreter",
                   "AllocateTensors()", "micros()", "Invoke()", "arena_used_bytes()",
                   "g_my_model_v2_model_data", "kMyModelV2OutputSize", "Serial.print", "kTfLiteInt8"):
        assert needle in sketch, needle


def test_arduino_sources_compile(library, tmp_path):
    files, root = library
    _write(tmp_path, files)
    _write(tmp_path / "stubs", {k: v.encode() for k, v in STUBS.items()})
    src = tmp_path / root / "src"
    assert compile_model_data(src, cpu="cortex-m4", fpu="fpv4-sp-d16").rodata > 0
    check = tmp_path / "check.cc"
    check.write_text('#include "MyModelV2Model.h"\nstatic_assert(kMyModelV2ArenaSize == 5504, "");\n'
                     "static_assert(kMyModelV2OutputSize == 3 && kMyModelV2InputSize == 64, \"\");\n")
    done = _gcc("-x", "c++", "-std=c++11", "-fsyntax-only", "-I", src, "-I", tmp_path / "stubs", check)
    assert done.returncode == 0, done.stderr
    sketch = tmp_path / root / "examples/RunInference/RunInference.ino"
    done = _gcc("-x", "c++", "-std=c++11", "-Wall", "-Werror", "-fsyntax-only", "-include", "Arduino.h",
                "-I", src, "-I", tmp_path / "stubs", sketch)
    assert done.returncode == 0, done.stderr


def _code_identifiers(text: str) -> set[str]:
    """The identifiers of C/C++ source outside comments, string literals and #include lines."""
    text = re.sub(r"//[^\n]*|/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)
    text = re.sub(r"^\s*#\s*include[^\n]*", " ", text, flags=re.M)
    return set(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", text))


@pytest.mark.reliability(25)
@pytest.mark.parametrize("name", RESERVED_TRAPS)
def test_generated_names_are_never_reserved_and_compile(name, tmp_path):
    """Every identifier edgex writes is unreserved ("__" anywhere, "_" + capital first) and builds."""
    data = bytes(range(64))
    ident = c_identifier(name)
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*", ident) and len(ident) <= 42, ident
    assert ident not in codegen.C_KEYWORDS
    files = arduino_library(name=name, model_files=model_data_sources(data, name=name), resolver_source=RESOLVER,
                            arena_bytes=1000, margin=0.1, version="1.0.0", input_shape=(1, 4), input_dtype="int8",
                            output_size=2)
    generated = {path: body for path, body in files.items() if not path.endswith(("op_resolver.h", ".properties"))}
    for path, body in generated.items():
        text = body.decode("ascii")     # nothing outside ASCII reaches the source
        bad = sorted(i for i in _code_identifiers(text) if "__" in i or re.match(r"_[A-Z]", i))
        assert not bad, f"{path}: reserved identifiers {bad}"
    root = tmp_path / f"arduino/{codegen.library_name(name)}"
    _write(tmp_path, files)
    _write(tmp_path / "stubs", {k: v.encode() for k, v in STUBS.items()})
    assert compile_model_data(root / "src", cpu="cortex-m4", fpu=None).rodata == len(data)
    header = root / "src" / f"{codegen.library_name(name)}.h"
    sketch = root / "examples/RunInference/RunInference.ino"
    for source, extra in ((header, ()), (sketch, ("-include", "Arduino.h"))):
        done = _gcc("-x", "c++", "-std=c++11", "-Wall", "-Werror", "-fsyntax-only", *extra, "-I", root / "src",
                    "-I", tmp_path / "stubs", source)
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("change,word", [({"resolver_source": "void f();"}, "RegisterOps"),
                                         ({"version": "1.0\nname=evil"}, "version"),
                                         ({"input_dtype": "float64"}, "dtype"),
                                         ({"input_shape": (1, 0)}, "shape"), ({"output_size": 2.5}, "output"),
                                         ({"model_files": {"../x.h": b""}}, "x.h")])
def test_arduino_library_refuses_bad_arguments(tflite_bytes, change, word):
    args = dict(name="m", model_files=model_data_sources(tflite_bytes, name="m"), resolver_source=RESOLVER,
                arena_bytes=100, margin=0.1, version="1.0.0", input_shape=(1, 4), input_dtype="int8",
                output_size=2)
    with pytest.raises(UsageError, match=re.escape(word)):
        arduino_library(**{**args, **change})


def test_missing_compiler_names_the_debian_package(tmp_path, monkeypatch):
    _write(tmp_path, model_data_sources(b"\x00" * 8, name="m"))
    monkeypatch.setenv("PATH", "")
    assert find_arm_gcc() is None
    with pytest.raises(ConversionError, match="gcc-arm-none-eabi"):
        compile_model_data(tmp_path, cpu="cortex-m4", fpu=None)


def test_compile_error_and_timeout_are_conversion_errors(tmp_path):
    (tmp_path / "model_data.cc").write_text("this is not C++;\n")
    with pytest.raises(ConversionError, match="error") as info:
        compile_model_data(tmp_path, cpu="cortex-m4", fpu=None)
    assert "model_data.cc" in str(info.value) and info.value.exit_code == 4
    _write(tmp_path, model_data_sources(b"\x00" * 64, name="m"))
    with pytest.raises(ConversionError, match="did not finish"):
        compile_model_data(tmp_path, cpu="cortex-m4", fpu=None, timeout=1e-4)
    with pytest.raises(ConfigError, match="mcpu"):
        compile_model_data(tmp_path, cpu="--evil -o /tmp/x", fpu=None)


def test_size_parser_sums_named_sections():
    out = "m.o  :\nsection   size  addr\n.text   4  0\n.text.f  8  0\n.rodata  100  0\n.rodata.x 3 0\n" \
          ".data 2 0\n.bss 16 0\n.comment 39 0\nTotal 172\n"
    sections = toolchain.parse_size_sysv(out)
    result = toolchain.SizeResult(text=toolchain._sum(sections, ".text"), rodata=toolchain._sum(sections, ".rodata"),
                                  data=toolchain._sum(sections, ".data"), bss=toolchain._sum(sections, ".bss"),
                                  object_path="", command=[])
    assert (result.text, result.rodata, result.data, result.bss, result.flash) == (12, 103, 2, 16, 117)
