"""Arm Ethos-U NPUs (Corstone-300 class): Vela-compiled int8 models run by TFLM on the Cortex-M.

Vela (ethos-u-vela) compiles the int8 model for the profile's accelerator and system
config: the ops it can place run on the NPU inside one `ethos-u` custom op, the rest
stay TFLM ops on the CPU. The report gives the NPU/CPU split, Vela's SRAM and flash
plan and its cycle estimate turned into latency at the profile's NPU clock (ops left
on the CPU are added from the cost model). The bundle holds the Vela-optimised model,
Vela's summary and the C array of the optimised model, compiled with arm-none-eabi-gcc
for the profile's core to measure its flash.

A profile has the `microcontroller:` section (the Cortex-M) and the `ethos_u:` section
(`EthosUSettings`); `measure` returns `EthosUMeasured`, which `package` reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from targets.base import Artifacts, Measured, TargetOptions, register
from targets.ethos_u.settings import EthosUSettings
from targets.microcontroller.settings import MicrocontrollerSettings
from targets.microcontroller.target import MicrocontrollerTarget, model_identifier

if TYPE_CHECKING:
    from targets.ethos_u.vela import VelaResult
    from targets.microcontroller.toolchain import SizeResult


@dataclass
class EthosUMeasured(Measured):
    """The figures, plus what the bundle is made from.

    `vela`: Vela's output (optimised model, summary, log, command); `c_sources`: `mcu/` file name -> bytes of
    the optimised model's C array and op resolver; `compiled`: arm-none-eabi-gcc's section sizes of that model
    data, None when the profile has no toolchain.
    """

    vela: VelaResult
    c_sources: dict[str, bytes]
    compiled: SizeResult | None


@register
class EthosUTarget(MicrocontrollerTarget):
    """A Cortex-M with an Arm Ethos-U NPU; full-integer int8 compiled by Vela."""

    name = "ethos-u"
    summary = "Arm Ethos-U NPUs (Vela-compiled, TFLM on the Cortex-M)"
    default_profile = "corstone-300-u55-128"
    runtime = "TFLM + Ethos-U driver (Vela)"
    ram_source = "estimated (Vela SRAM plan)"
    latency_source = "estimated (Vela cycles)"
    sections = {"microcontroller": MicrocontrollerSettings, "ethos_u": EthosUSettings}
    Options = TargetOptions   # no weight compression (`compress`): Vela does not know TFLM's DECODE op
    static_shapes = "Vela needs static shapes (it compiles the NPU command stream for fixed tensor sizes, and TFLM " \
                    "never resizes an input)"

    def preflight(self, graph, profile, mode: str, tflite: bytes | None = None) -> list[str]:
        profile.section("ethos_u")
        return super().preflight(graph, profile, mode, tflite)

    def measure(self, artifacts: Artifacts) -> EthosUMeasured:
        from exporter.analysis.cost_model import estimate_latency_ms, one_core_phrase
        from exporter.analysis.graph import Graph
        from exporter.checks import ESTIMATED, MEASURED, Measurement
        from targets.ethos_u.vela import compile_for_ethos_u
        from targets.microcontroller.codegen import model_data_sources
        from targets.microcontroller.tflm import op_resolver_source

        profile = artifacts.profile
        npu: EthosUSettings = profile.section("ethos_u")
        mcu: MicrocontrollerSettings = profile.section("microcontroller")
        figures = artifacts.host_figures()
        vela = compile_for_ethos_u(artifacts.tflite, accelerator_config=npu.accelerator_config,
                                   system_config=npu.system_config, memory_mode=npu.memory_mode)
        optimised = Graph.from_bytes(vela.optimised_tflite)
        on = f"Vela {npu.accelerator_config}, {npu.system_config}/{npu.memory_mode}"
        figures["npu_ops"] = Measurement("npu_ops", vela.npu_ops, "ops", MEASURED, on, "ops placed on the NPU")
        figures["cpu_ops"] = Measurement("cpu_ops", vela.cpu_ops, "ops", MEASURED, on,
                                         "ops left to TFLM on the CPU: " + (", ".join(vela.cpu_op_names) or "none"))
        figures["vela_sram"] = Measurement("vela_sram", vela.sram_bytes, "bytes", ESTIMATED, on, "Vela's SRAM plan")
        figures["vela_flash"] = Measurement("vela_flash", vela.flash_bytes, "bytes", ESTIMATED, on,
                                            "Vela's off-chip flash plan (weights and command stream)")
        overhead = int(profile.cost_model.runtime_ram_bytes)
        figures["ram"] = Measurement("ram", vela.sram_bytes + overhead, "bytes", ESTIMATED,
                                     f"{on} SRAM plan + profile runtime",
                                     f"Vela SRAM {vela.sram_bytes:,} B (Vela's plan, estimated) + runtime "
                                     f"{overhead:,} B (profile estimate)")
        cpu_part = CpuPart(optimised)
        npu_ms = vela.latency_ms(npu.npu_clock_mhz)
        cpu_ms = estimate_latency_ms(cpu_part, profile.cost_model) if cpu_part.ops else 0.0
        figures["latency"] = Measurement(
            "latency", npu_ms + cpu_ms, "ms", ESTIMATED, f"{on} cycle estimate at {npu.npu_clock_mhz} MHz",
            f"NPU {vela.cycles:,} cycles = {npu_ms:.4f} ms; CPU ops {cpu_ms:.4f} ms (cost model; "
            f"{one_core_phrase('TFLM', profile.threads)})")
        sources = model_data_sources(vela.optimised_tflite, name=model_identifier(artifacts))
        flash, compiled = self.flash_figures(artifacts, sources, mcu)
        figures.update(flash)
        c_sources = {**sources, "op_resolver.h": op_resolver_source(optimised).encode("utf-8")}
        return EthosUMeasured(figures, vela=vela, c_sources=c_sources, compiled=compiled)

    def extra_checks(self, artifacts: Artifacts, measured: EthosUMeasured) -> list:
        return []

    def package(self, artifacts: Artifacts, measured: EthosUMeasured) -> dict[str, bytes]:
        vela = measured.vela
        files = {f"mcu/{name}": data for name, data in measured.c_sources.items()}
        files["ethos_u/model_vela.tflite"] = vela.optimised_tflite
        files["ethos_u/vela_summary.csv"] = vela.summary_csv.encode("utf-8")
        files["ethos_u/vela.log"] = vela.log.encode("utf-8")
        files["ethos_u/vela_command.txt"] = (" ".join(vela.command) + "\n").encode("utf-8")
        return files


class CpuPart:
    """The ops of a Vela-optimised graph that stay on the CPU (all but the ethos-u custom op)."""

    def __init__(self, graph):
        from targets.ethos_u.vela import ETHOS_U_OP

        self.ops = [op for op in graph.ops if op.name != ETHOS_U_OP]
