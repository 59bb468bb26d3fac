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
from targets.base import Artifacts, Measured, Target, register
from targets.microcontroller.settings import MicrocontrollerSettings

if TYPE_CHECKING:
    from exporter.checks import Check, Measurement
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
        from exporter.analysis.cost_model import estimate_latency_ms, one_core_phrase
        from exporter.checks import ESTIMATED, MEASURED, MIXED, Measurement
        from targets.microcontroller.codegen import ARENA_ALIGNMENT, arena_header, arena_size, model_data_sources
        from targets.microcontroller.tflm import measure_arena, op_resolver_source

        profile, graph = artifacts.profile, artifacts.graph
        mcu: MicrocontrollerSettings = profile.section("microcontroller")
        figures = artifacts.host_figures()
        ident = model_identifier(artifacts)
        sources = model_data_sources(artifacts.tflite, name=ident)
        flash, compiled = self.flash_figures(artifacts, sources, mcu)
        figures.update(flash)
        arena = measure_arena(artifacts.tflite)
        on = "TFLM interpreter on this host (RecordingMicroAllocator)"
        overhead = int(profile.cost_model.runtime_ram_bytes)
        if arena.ok:
            allocated = arena_size(arena.arena_bytes, mcu.arena_margin)
            figures["arena"] = Measurement("arena", arena.arena_bytes, "bytes", MEASURED, on,
                                           f"head {arena.head_bytes:,} B + tail {arena.tail_bytes:,} B")
            figures["ram"] = Measurement(
                "ram", allocated + overhead, "bytes", MIXED, "measured arena + margin + profile runtime",
                f"model_arena.h allocates {allocated:,} B: arena {arena.arena_bytes:,} B (measured, {on}) "
                f"+ margin {mcu.arena_margin:.0%} (profile), rounded up to {ARENA_ALIGNMENT}; "
                f"+ runtime {overhead:,} B (profile estimate)")
        figures["latency"] = Measurement(
            "latency", estimate_latency_ms(graph, profile.cost_model), "ms", ESTIMATED,
            f"cost model of {profile.name}: {profile.cost_model.int8_cycles_per_mac} cycles/int8 MAC "
            f"at {profile.cost_model.clock_mhz} MHz",
            f"{graph.total_macs:,} MACs over {len(graph.ops)} ops; {one_core_phrase('TFLM', profile.threads)}")
        files = dict(sources)
        if arena.ok:
            files["model_arena.h"] = arena_header(arena.arena_bytes, mcu.arena_margin, name=ident)
        files["op_resolver.h"] = op_resolver_source(graph).encode("utf-8")
        return McuMeasured(figures, arena=arena, c_sources=files, compiled=compiled)

    def flash_figures(self, artifacts: Artifacts, sources: dict[str, bytes],
                      mcu: MicrocontrollerSettings) -> tuple[dict[str, Measurement], SizeResult | None]:
        """The flash figures of `sources` (the model data) and, when compiled, the compiler's section sizes.

        Without a toolchain in the profile, flash is estimated as model bytes + the runtime's flash.
        """
        from exporter.checks import MEASURED, MIXED, Measurement
        from targets.microcontroller.toolchain import compile_model_data

        model_bytes = len(artifacts.tflite)
        runtime = int(mcu.runtime_flash_bytes)
        if mcu.toolchain is None:
            return {"flash": Measurement(
                "flash", model_bytes + runtime, "bytes", MIXED, "model.tflite size + profile runtime",
                f"model.tflite {model_bytes:,} B (measured; not compiled: no compiler for {mcu.cpu} "
                f"can be installed here) + runtime {runtime:,} B (profile estimate)")}, None
        with tempfile.TemporaryDirectory(prefix="edgex-cc-") as tmp:
            for name, data in sources.items():
                (Path(tmp) / name).write_bytes(data)
            size = compile_model_data(Path(tmp), cpu=mcu.cpu, fpu=mcu.fpu)
        on = f"arm-none-eabi-gcc -mcpu={mcu.cpu}, arm-none-eabi-size"
        return {
            "model_flash": Measurement("model_flash", size.flash, "bytes", MEASURED, on,
                                       f"model_data.o; model.tflite is {model_bytes:,} B"),
            "flash": Measurement("flash", size.flash + runtime, "bytes", MIXED, f"{on} + profile runtime",
                                 f"model_data.o {size.flash:,} B (measured) + runtime {runtime:,} B "
                                 "(profile estimate)"),
        }, size

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
                output_size=math.prod(outputs[position].shape), output_index=position))
        return files
