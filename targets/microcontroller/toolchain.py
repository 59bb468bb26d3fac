"""The Arm GNU toolchain: compile generated model data and measure the flash it takes.

`compile_model_data` builds `model_data.cc` for one Cortex-M core with
`arm-none-eabi-gcc -x c++ -std=c++11 -Os -c` and reads the object's sections with
`arm-none-eabi-size -A` (System V format). Flash is `.text* + .rodata* + .data*`
(`.data` is copied from flash to RAM at start-up, so it takes both); the model array
is `const` and lands in `.rodata`. `.bss` takes RAM only.

Example:
    >>> from targets.microcontroller.codegen import model_data_sources
    >>> Path("src").mkdir()
    >>> for name, text in model_data_sources(tiny_tflite, name="digits.tflite").items():
    ...     _ = (Path("src") / name).write_bytes(text)
    >>> result = compile_model_data(Path("src"), cpu="cortex-m4", fpu="fpv4-sp-d16")
    >>> len(tiny_tflite), result.rodata, result.flash       # the model array is all the flash it takes
    (3264, 3264, 3264)
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from exporter.errors import ConfigError, ConversionError

GCC, SIZE = "arm-none-eabi-gcc", "arm-none-eabi-size"
DEBIAN_PACKAGE = "gcc-arm-none-eabi"
SOURCES = ("model_data.cc", "model_data.cpp")  # .cpp: the name in Arduino libraries
_FLAG = re.compile(r"^[a-z0-9][a-z0-9.+_-]*$")
_SECTION = re.compile(r"^(\.\S+)\s+(\d+)\s+(\d+)\s*$")


@dataclass(frozen=True)
class SizeResult:
    """Section sizes of one compiled object, in bytes.

    `object_path` is empty when the object was built in a temporary directory
    that is gone; `command` is the compiler command line.
    """

    text: int
    rodata: int
    data: int
    bss: int
    object_path: str
    command: list[str]

    @property
    def flash(self) -> int:
        """Bytes in flash: `.text + .rodata + .data`."""
        return self.text + self.rodata + self.data


def find_arm_gcc() -> str | None:
    """Path of `arm-none-eabi-gcc` on PATH, or None."""
    return shutil.which(GCC)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConversionError(
            f"{name} not found on PATH: install the Arm GNU toolchain, on Debian/Ubuntu "
            f"`apt-get install {DEBIAN_PACKAGE}` (it brings binutils-arm-none-eabi)")
    return path


def _run(command: list[str], timeout: float, what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                              env={**os.environ, "LC_ALL": "C"})
    except subprocess.TimeoutExpired as exc:
        raise ConversionError(f"{what} did not finish within {timeout:g} s: {' '.join(command)}") from exc
    except OSError as exc:
        raise ConversionError(f"{what} could not start: {exc}") from exc


def _first_errors(stderr: str, count: int = 5) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()] or lines
    return "\n".join(errors[:count]) or "(no output)"


def parse_size_sysv(output: str) -> dict[str, int]:
    """Section name -> size from `arm-none-eabi-size -A -d` output (several sections may share a name)."""
    sections: dict[str, int] = {}
    for line in output.splitlines():
        match = _SECTION.match(line.strip())
        if match:
            sections[match.group(1)] = sections.get(match.group(1), 0) + int(match.group(2))
    return sections


def _sum(sections: dict[str, int], prefix: str) -> int:
    return sum(size for name, size in sections.items() if name == prefix or name.startswith(prefix + "."))


def compile_model_data(source_dir: Path, *, cpu: str, fpu: str | None, timeout: float = 120,
                       out_dir: Path | None = None) -> SizeResult:
    """Compile `model_data.cc` (or `.cpp`) for a Cortex-M core and measure its sections.

    Args:
        source_dir: directory holding `model_data.cc` (or `model_data.cpp`) and `model_data.h`.
        cpu: `-mcpu` value, e.g. "cortex-m4".
        fpu: `-mfpu` value with `-mfloat-abi=hard`, e.g. "fpv4-sp-d16"; None for `-mfloat-abi=soft`.
        timeout: seconds each tool may take. Defaults to 120.
        out_dir: where to keep `model_data.o`; by default a temporary directory, removed.

    Returns:
        A `SizeResult`; `.flash` is the flash the model data takes.

    Raises:
        ConversionError: no toolchain (names the Debian package), a compile error (its first
            lines), a time-out, or `size` output without sections.
        ConfigError: a cpu or fpu value that is not a plain compiler flag value.
    """
    for field, value in (("cpu", cpu), ("fpu", fpu)):
        if value is not None and not (isinstance(value, str) and _FLAG.match(value)):
            raise ConfigError(f"microcontroller.{field} {value!r} is not a valid -m{field} value")
    source = next((Path(source_dir) / f for f in SOURCES if (Path(source_dir) / f).is_file()), None)
    if source is None:
        raise ConversionError(f"no {' or '.join(SOURCES)} in {source_dir}")
    gcc, size = _tool(GCC), _tool(SIZE)
    floats = [f"-mfpu={fpu}", "-mfloat-abi=hard"] if fpu else ["-mfloat-abi=soft"]
    with tempfile.TemporaryDirectory(prefix="edgex-gcc-") as tmp:
        obj = Path(out_dir or tmp) / "model_data.o"
        obj.parent.mkdir(parents=True, exist_ok=True)
        command = [gcc, "-x", "c++", "-std=c++11", f"-mcpu={cpu}", "-mthumb", *floats, "-Os",
                   "-c", str(source), "-o", str(obj)]
        done = _run(command, timeout, GCC)
        if done.returncode != 0:
            raise ConversionError(f"{GCC} failed on {source} (-mcpu={cpu}, exit {done.returncode}):\n"
                                  f"{_first_errors(done.stderr)}")
        listing = _run([size, "-A", "-d", str(obj)], timeout, SIZE)
        sections = parse_size_sysv(listing.stdout)
        if listing.returncode != 0 or not sections:
            raise ConversionError(f"{SIZE} failed on {obj}: {_first_errors(listing.stderr or listing.stdout)}")
    return SizeResult(text=_sum(sections, ".text"), rodata=_sum(sections, ".rodata"),
                      data=_sum(sections, ".data"), bss=_sum(sections, ".bss"),
                      object_path=str(obj) if out_dir else "", command=command)
