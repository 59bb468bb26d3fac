"""Microcontrollers running TensorFlow Lite Micro (TFLM).

Measured: the exact tensor arena, with the real TFLM interpreter's recording
allocator (in a child process, so a native abort becomes a finding); the
model's flash use, by compiling the generated `model_data.cc` with
arm-none-eabi-gcc for the profile's core and reading `arm-none-eabi-size`.
Mixed (measured + the profile's estimates): `ram`, the arena `model_arena.h`
allocates (measured arena + margin, rounded up to 16) + the runtime's RAM;
`flash`, the model data + the runtime's code. Estimated: latency, from MACs per
op and the profile's cycles per MAC at its clock. The bundle holds the C array, the arena header, an op resolver that
registers exactly the model's ops, and an Arduino library.

Weight compression (targets/microcontroller/compression.py): unless `compress=False` (`--no-compress`) or the
profile's `tflm_compression` is false, the C array holds the model with TFLM's LUT weight compression, proved
bit-exact against the uncompressed model on TFLM (`compression_bit_exact`); `model_flash` and `arena` are
measured on it, `model_flash_uncompressed` and `arena_uncompressed` on the model as converted. The Ethos-U
target (a subclass) never compresses: Vela does not know TFLM's DECODE op.

The profile's `microcontroller:` section is `MicrocontrollerSettings`; `measure` returns
`McuMeasured`, which `extra_checks` and `package` read.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.errors import PreflightError
from pydantic import Field

from targets.base import Artifacts, Measured, Target, TargetOptions, register
from targets.microcontroller.settings import MicrocontrollerSettings

if TYPE_CHECKING:
    from exporter.checks import Check, Measurement
    from targets.microcontroller.compression import CompressionResult
    from targets.microcontroller.tflm import ArenaResult
    from targets.microcontroller.toolchain import SizeResult


def model_identifier(artifacts: Artifacts) -> str:
    """The C identifier of the model, from its source file name."""
    from targets.microcontroller.codegen import c_identifier

    return c_identifier(Path(artifacts.source or "model").stem)


@dataclass
class McuMeasured(Measured):
    """The figures, plus what the bundle is made from.

    `arena`: what TFLM made of the model (`ok` False with a finding when it could not run it);
    `c_sources`: `mcu/` file name -> bytes (model data, arena header when measured, op resolver);
    `compiled`: arm-none-eabi-gcc's section sizes of the model data, None when the profile has no toolchain.
    """

    arena: ArenaResult
    c_sources: dict[str, bytes]
    compiled: SizeResult | None
    compression: CompressionResult | None = None

    def weight_compression(self) -> dict | None:
        """The report's `compression` entry (targets/microcontroller/compression.py)."""
        return None if self.compression is None else self.compression.record()


class McuOptions(TargetOptions):
    """Options of a microcontroller export."""

    compress: bool = Field(True, description="store weights with TFLM weight compression where the profile's TFLM "
                                             "has the DECODE op (tflm_compression); False: as converted")


@register
class MicrocontrollerTarget(Target):
    """A Cortex-M (or other) microcontroller with TFLM; full-integer int8."""

    name = "microcontroller"
    summary = "Microcontrollers, TensorFlow Lite Micro (C array, Arduino library)"
    default_profile = "arduino-nano-33-ble"
    runtime = "TensorFlow Lite Micro"
    ram_source = "mixed (measured TFLM arena + margin + profile runtime)"
    latency_source = "estimated (cycles/MAC)"
    sections = {"microcontroller": MicrocontrollerSettings}
    Options = McuOptions
    static_shapes = ("TFLM needs static shapes (it plans its tensor arena for the sizes stored in the model and "
                     "never resizes an input)")

    def preflight(self, graph, profile, mode: str, tflite: bytes | None = None) -> list[str]:
        from targets.microcontroller.tflm import unsupported_ops

        profile.section("microcontroller")
        missing = unsupported_ops(graph)
        if missing:
            raise PreflightError(f"pre-flight for {self.name} ({profile.name}) failed: TFLM has no kernel for "
                                 f"{', '.join(missing)}. Replace these layers, or choose another target")
        return super().preflight(graph, profile, mode, tflite)

    def measure(self, artifacts: Artifacts) -> McuMeasured:
        from exporter.analysis.graph import Graph
        from targets.microcontroller.codegen import arena_header, model_data_sources
        from targets.microcontroller.mcu_figures import arena_figures, compression_figures, latency_figure
        from targets.microcontroller.tflm import measure_arena, op_resolver_source

        profile, graph = artifacts.profile, artifacts.graph
        mcu: MicrocontrollerSettings = profile.section("microcontroller")
        figures = artifacts.host_figures()
        ident = model_identifier(artifacts)
        lut = self.compression(artifacts, mcu)
        sources = model_data_sources(lut.tflite, name=ident, compressed=lut.compressed)
        flash, compiled = self.flash_figures(artifacts, sources, mcu, lut)
        figures.update(flash)
        arena = measure_arena(lut.tflite)
        figures.update(arena_figures(arena, mcu, int(profile.cost_model.runtime_ram_bytes),
                                     measure_arena(artifacts.tflite) if lut.compressed else None))
        figures["latency"] = latency_figure(graph, profile)
        figures.update(compression_figures(lut))
        files = dict(sources)
        if arena.ok:
            files["model_arena.h"] = arena_header(arena.arena_bytes, mcu.arena_margin, name=ident)
        shipped = Graph.from_bytes(lut.tflite) if lut.compressed else graph
        files["op_resolver.h"] = op_resolver_source(shipped).encode("utf-8")
        return McuMeasured(figures, arena=arena, c_sources=files, compiled=compiled, compression=lut)

    def compression(self, artifacts: Artifacts, mcu: MicrocontrollerSettings) -> CompressionResult:
        """TFLM weight compression of the model, proved bit-exact, or why not (targets/microcontroller/compression.py)."""
        from exporter.option_names import option
        from targets.microcontroller.compression import compress_for_tflm, not_attempted, proof_samples

        if not self.options(artifacts).compress:
            return not_attempted(artifacts.tflite, f"off ({option('compress')})")
        if not mcu.tflm_compression:
            return not_attempted(artifacts.tflite, f"off: profile {artifacts.profile.name} says its TFLM has no DECODE "
                                                   "op (microcontroller.tflm_compression: false)")
        samples, description = proof_samples(artifacts, artifacts.calib)
        return compress_for_tflm(artifacts.tflite, samples, description=description)

    def flash_figures(self, artifacts: Artifacts, sources: dict[str, bytes], mcu: MicrocontrollerSettings,
                      lut: CompressionResult | None = None) -> tuple[dict[str, Measurement], SizeResult | None]:
        """The flash figures of `sources` (the model data) and, when compiled, the compiler's section sizes.

        Without a toolchain in the profile, flash is estimated as model bytes + the runtime's flash. With a
        compressed model (`lut`), `model_flash_uncompressed` is the model as converted, compiled the same way.
        """
        from exporter.checks import MEASURED, MIXED, Measurement
        from targets.microcontroller.codegen import model_data_sources

        model_bytes, runtime = len(artifacts.tflite), int(mcu.runtime_flash_bytes)
        compressed = lut is not None and lut.compressed
        what = (f"compressed model {len(lut.tflite):,} B (model.tflite {model_bytes:,} B)" if compressed
                else f"model.tflite {model_bytes:,} B")
        decode = "; it does not count the DECODE kernel's code" if compressed else ""
        if mcu.toolchain is None:
            stored = len(lut.tflite) if compressed else model_bytes
            return {"flash": Measurement(
                "flash", stored + runtime, "bytes", MIXED, "model bytes + profile runtime",
                f"{what} (measured; not compiled: no compiler for {mcu.cpu} can be installed here) + runtime "
                f"{runtime:,} B (profile estimate{decode})")}, None
        size = _compile(sources, mcu)
        on = f"arm-none-eabi-gcc -mcpu={mcu.cpu}, arm-none-eabi-size"
        figures = {
            "model_flash": Measurement("model_flash", size.flash, "bytes", MEASURED, on, f"model_data.o; {what}"),
            "flash": Measurement("flash", size.flash + runtime, "bytes", MIXED, f"{on} + profile runtime",
                                 f"model_data.o {size.flash:,} B (measured) + runtime {runtime:,} B "
                                 f"(profile estimate{decode})"),
        }
        if compressed:
            plain = _compile(model_data_sources(artifacts.tflite, name=model_identifier(artifacts)), mcu)
            figures["model_flash_uncompressed"] = Measurement(
                "model_flash_uncompressed", plain.flash, "bytes", MEASURED, on,
                f"model_data.o of the model as converted ({model_bytes:,} B): {plain.flash / size.flash:.2f}x "
                "model_flash")
        return figures, size

    def extra_checks(self, artifacts: Artifacts, measured: McuMeasured) -> list[Check]:
        from exporter.checks import MEASURED, Check

        if measured.arena.ok:
            return []
        return [Check("tflm_run", "fail", None, 0, "", MEASURED, "TFLM interpreter on this host", None,
                      measured.arena.finding)]

    def package(self, artifacts: Artifacts, measured: McuMeasured) -> dict[str, bytes]:
        from targets.microcontroller.arduino import arduino_library

        files = {f"mcu/{name}": data for name, data in measured.c_sources.items()}
        arena = measured.arena
        if arena.ok:
            from exporter.io_names import io_record

            graph = artifacts.graph
            inputs, outputs = graph.input_details(), graph.output_details()
            record = io_record(artifacts.tflite, graph, artifacts.io)         # the label output: the sketch's top-1
            label = next(t["index"] for t in record["outputs"] if t["name"] == record["label_output"])
            position = list(graph.outputs).index(label)
            several = len(inputs) > 1
            files.update(arduino_library(
                name=model_identifier(artifacts), model_files=measured.c_sources,
                resolver_source=measured.c_sources["op_resolver.h"].decode("utf-8"),
                arena_bytes=arena.arena_bytes, margin=artifacts.profile.section("microcontroller").arena_margin,
                version="1.0.0", input_shape=[t.shape for t in inputs] if several else inputs[0].shape,
                input_dtype=[t.dtype for t in inputs] if several else inputs[0].dtype,
                output_size=math.prod(outputs[position].shape), output_index=position,
                compressed=measured.compression is not None and measured.compression.compressed))
        return files


def _compile(sources: dict[str, bytes], mcu: MicrocontrollerSettings) -> SizeResult:
    """Compile model data sources for the profile's core (targets/microcontroller/toolchain.py)."""
    from targets.microcontroller.toolchain import compile_model_data

    with tempfile.TemporaryDirectory(prefix="edgex-cc-") as tmp:
        for name, data in sources.items():
            (Path(tmp) / name).write_bytes(data)
        return compile_model_data(Path(tmp), cpu=mcu.cpu, fpu=mcu.fpu)
