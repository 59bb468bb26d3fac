"""Coral Edge TPU (USB Accelerator, Dev Board): full-integer int8 models compiled by edgetpu_compiler.

Pre-flight refuses what the Edge TPU cannot take at all (listing every problem): a model that is
not fully int8 (QUANTIZE/DEQUANTIZE at the edges aside), float or other non-8-bit I/O, a batch
other than 1, dynamic tensor sizes (-1 in a shape signature), more than one subgraph. It then maps
the ops onto the TPU with edgex's table of Coral's supported operations
(`targets.edgetpu.ops`): the compiler maps ops until the first unsupported one, and that
op and everything after it run on the CPU. The report says which ops run where and where the cut is.

When `edgetpu_compiler` is on PATH it compiles the model (`-s -m <runtime version>`), and its log
(`targets.edgetpu.log`) replaces the static mapping and the parameter-memory estimate.
It is not installable here (Coral's apt repository only); the bundle then says it is uncompiled and
holds `edgetpu/COMPILE.md` with the exact command. The option `require_compiled` (`EdgeTpuOptions`; the
CLI's `--require-compiled`) turns a missing compiler into a pre-flight error before anything is packaged.

Estimated for the device: latency = TPU MACs / the profile's effective TPU rate + transfers and
streamed parameters over the host link + invoke overhead + CPU-fallback ops from the cost model;
host RAM = model buffer + host-side tensors + runtime (`targets.edgetpu.figures`). Measured on this
machine: size, accuracy, fidelity and host latency (LiteRT, the int8 model without the Edge TPU).

The profile's `edgetpu:` section is `EdgeTpuSettings`; `measure` returns `EdgeTpuMeasured` (the mapping
document and the compiler's result), which `package` writes into the bundle.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import Field

from exporter.errors import PreflightError
from exporter.option_names import option
from targets.base import Artifacts, Measured, Target, TargetOptions, register
from targets.edgetpu.compiler import (COMPILER, INSTALL_COMMANDS, CompileResult, compile_command,
                                      compile_instructions, compiler_path)
from targets.edgetpu.estimate import EDGETPU_CUSTOM_OP
from targets.edgetpu.settings import EdgeTpuSettings

_IO_DTYPES = ("uint8", "int8")
_STATIC = "the Edge TPU compiler needs static shapes (every tensor size is fixed at compile time)"


def _static_hint() -> str:
    """Why a dynamic size is refused and what to do, naming the option as the caller spells it."""
    return (f"{_STATIC}; re-export the model with a static input shape ({option('input_shapes')} only sets the "
            "shape LiteRT measures at)")


class EdgeTpuOptions(TargetOptions):
    """Options of an Edge TPU export."""

    require_compiled: bool = Field(False, description="refuse (exit 4) to write a bundle that edgetpu_compiler "
                                                      "did not compile, e.g. because it is not on PATH")


@dataclass
class EdgeTpuMeasured(Measured):
    """The figures, plus what the bundle is made from.

    `mapping`: the document written as `edgetpu/mapping.json` (static mapping, compiler log, estimate);
    `compile`: the compiler's result, None when it was not on PATH.
    """

    mapping: dict
    compile: CompileResult | None


# --- pre-flight requirements ---------------------------------------------------------------------

def _is_edge_conversion(op, graph) -> bool:
    """QUANTIZE of a graph input, or DEQUANTIZE to a graph output: allowed at the edges."""
    if op.name == "QUANTIZE":
        return any(i in graph.inputs for i in op.inputs)
    if op.name == "DEQUANTIZE":
        return any(o in graph.outputs for o in op.outputs)
    return False


def requirement_problems(graph, profile, mode: str, facts=None) -> list[str]:
    """Every reason the Edge TPU cannot take this model at all (empty when it can).

    Args:
        graph: the model's `Graph`.
        profile: the device profile (for its name and I/O dtype).
        mode: the conversion mode.
        facts: `ModelFacts` of the model (shape signatures), or None to skip the dynamic-size check.
    """
    problems = []
    if mode != "int8":
        problems.append(f"conversion mode {mode}: the Edge TPU runs only full-integer int8 models "
                        f"({option('quantize', 'int8')})")
    if graph.subgraph_count != 1:
        problems.append(f"the model has {graph.subgraph_count} subgraphs (control flow); the Edge TPU compiler "
                        "takes a single subgraph")
    want = profile.quantization.int8_io
    for kind, tensors in (("input", graph.input_details()), ("output", graph.output_details())):
        for t in tensors:
            if t.dtype not in _IO_DTYPES:
                problems.append(f"{kind} {t.name!r} is {t.dtype}; the Edge TPU takes uint8 or int8 {kind}s "
                                f"(profile {profile.name} converts with {want} I/O)")
            if t.shape[:1] and t.shape[0] != 1:
                problems.append(f"{kind} {t.name!r} has batch {t.shape[0]}; the Edge TPU runs batch 1")
    if facts is not None:
        for tensor in facts.dynamic_tensors(graph):
            problems.append(f"tensor {tensor} has a dynamic size (-1 in its shape signature); {_static_hint()}")
    for op in graph.ops:
        if op.name == EDGETPU_CUSTOM_OP:
            problems.append(f"op {op.index} is an edgetpu-custom-op: the model is already compiled for the Edge "
                            "TPU; give the uncompiled int8 model")
            continue
        if _is_edge_conversion(op, graph):
            continue
        if op.compute_dtype not in _IO_DTYPES:
            what = ("hybrid (float activations, int8 weights)" if op.compute_dtype == "hybrid"
                    else op.compute_dtype)
            problems.append(f"not fully quantized: op {op.index} {op.name} computes in {what}")
            continue
        floats = [graph.tensors[i] for i in op.inputs
                  if i >= 0 and graph.tensors[i].is_constant and graph.tensors[i].dtype.startswith(("float", "bf"))]
        if floats:
            problems.append(f"not fully quantized: op {op.index} {op.name} has {floats[0].dtype} weight tensor "
                            f"{floats[0].name!r}")
    return problems


@register
class EdgeTpuTarget(Target):
    """A Coral Edge TPU next to a host CPU; full-integer int8 compiled by edgetpu_compiler."""

    name = "edgetpu"
    summary = "Coral Edge TPU (USB Accelerator, Dev Board): edgetpu_compiler, LiteRT + libedgetpu"
    default_profile = "coral-usb"
    runtime = "LiteRT + libedgetpu (Edge TPU delegate)"
    ram_source = "mixed (model file + estimated host tensors + profile runtime)"
    latency_source = "estimated (TPU MAC rate, host link, CPU cost model)"
    sections = {"edgetpu": EdgeTpuSettings}
    static_shapes = _STATIC
    Options = EdgeTpuOptions

    def latency_threads(self, profile) -> int:
        """The profile's `threads`: the CPU-fallback ops run in LiteRT's thread pool on the host CPU."""
        return profile.threads

    def preflight(self, graph, profile, mode: str, tflite: bytes | None = None) -> list[str]:
        """Refuse what the Edge TPU cannot take; return the static mapping as notes.

        Args:
            tflite: the model bytes, when the caller has them: adds the dynamic-size check and the
                option/constant checks of the op table (measure() runs them otherwise).

        Raises:
            PreflightError: listing every problem, naming the tensor or op at fault.
            ConfigError: the profile's `edgetpu` section is missing.
        """
        from targets.edgetpu.estimate import estimate, split_from_mapping
        from targets.edgetpu.figures import ms
        from targets.edgetpu.ops import ModelFacts, map_graph

        settings: EdgeTpuSettings = profile.section("edgetpu")
        facts = ModelFacts(tflite) if tflite is not None else None
        problems = requirement_problems(graph, profile, mode, facts)
        if problems:
            raise PreflightError(f"pre-flight for {self.name} ({profile.name}) failed:\n  " + "\n  ".join(problems))
        mapping = map_graph(graph, settings.runtime_version, facts, settings.compiler_version)
        notes = [mapping.summary()]
        later = [o for o in mapping.cpu_ops if o.unsupported and o.index != mapping.cut_index]
        if later:
            notes.append("also unsupported after the cut: " + "; ".join(
                f"op {o.index} {o.name} ({o.unsupported})" for o in later))
        est = estimate(split_from_mapping(graph, mapping), settings, profile.cost_model)
        streamed = est["parameters"]["streamed_bytes"]
        if streamed:
            notes.append(f"parameters of the TPU part ({est['parameters']['tpu_bytes']:,} B) exceed the "
                         f"{est['parameters']['cache_bytes']:,} B on-chip cache: {streamed:,} B are streamed over "
                         f"{settings.interface} every inference (+{ms(est['latency_ms']['streamed_parameters'])}, "
                         "estimated)")
        if compiler_path() is None:
            notes.append(f"{COMPILER} not found on PATH: the bundle holds the int8 model uncompiled, with "
                         f"edgetpu/COMPILE.md giving `{' '.join(compile_command(settings.runtime_version))}` "
                         "and how to install the compiler (Coral's apt repository, x86-64)")
        return notes

    def measure(self, artifacts: Artifacts) -> EdgeTpuMeasured:
        """Map the ops, compile when the compiler is on PATH, estimate, and measure on the host with LiteRT.

        Raises:
            PreflightError: `require_compiled` without a compiler; a dynamic tensor size (before any work).
            ConversionError: the compiler failed.
        """
        from targets.edgetpu import figures as fig
        from targets.edgetpu.compiler import compile_for_edgetpu
        from targets.edgetpu.estimate import estimate, split_as_compiled
        from targets.edgetpu.ops import map_graph

        profile, graph = artifacts.profile, artifacts.graph
        settings: EdgeTpuSettings = profile.section("edgetpu")
        compiler = self._compiler(self.options(artifacts))
        facts = self._static_facts(artifacts)
        mapping = map_graph(graph, settings.runtime_version, facts, settings.compiler_version)
        figures = artifacts.host_figures()
        result = compile_for_edgetpu(artifacts.tflite, settings.runtime_version, compiler=compiler) \
            if compiler else None
        log = result.log if result else None
        split = split_as_compiled(graph, mapping, result)
        est = estimate(split, settings, profile.cost_model, threads=self.latency_threads(profile),
                       on_chip=log.on_chip_bytes if log else None, streamed=log.off_chip_bytes if log else None)
        figures.update(fig.placement_figures(graph, mapping, log, settings))
        figures["compiled"] = fig.compiled_figure(result, settings)
        figures.update(fig.parameter_figures(est, split, log, profile))
        figures["latency"] = fig.latency_figure(est, split, profile)
        model_bytes = len(result.compiled_tflite) if result else len(artifacts.tflite)
        figures["ram"] = fig.ram_figure(est, model_bytes, profile)
        document = self._mapping_document(artifacts, compiler, mapping, result, est)
        return EdgeTpuMeasured(figures, mapping=document, compile=result)

    def _compiler(self, options: EdgeTpuOptions) -> str | None:
        """The compiler on PATH, or None; refuses a missing one when the export requires compiling."""
        compiler = compiler_path()
        if options.require_compiled and compiler is None:
            required = option("require_compiled")
            raise PreflightError(f"{required}: {COMPILER} not found on PATH, so the model cannot be "
                                 "compiled for the Edge TPU here. Install it (x86-64 Debian/Ubuntu, Coral's apt "
                                 f"repository: {'; '.join(INSTALL_COMMANDS)}) or drop {required} to get "
                                 "an uncompiled bundle with edgetpu/COMPILE.md")
        return compiler

    def _static_facts(self, artifacts: Artifacts):
        """The model's `ModelFacts`; refuses dynamic tensor sizes (pre-flight may not have had the bytes)."""
        from targets.edgetpu.ops import ModelFacts

        facts = ModelFacts(artifacts.tflite)
        dynamic = facts.dynamic_tensors(artifacts.graph)
        if dynamic:
            raise PreflightError(f"pre-flight for {self.name} ({artifacts.profile.name}) failed:\n  " + "\n  ".join(
                f"tensor {t} has a dynamic size (-1 in its shape signature); {_static_hint()}" for t in dynamic))
        return facts

    def _mapping_document(self, artifacts: Artifacts, compiler, mapping, result, est: dict) -> dict:
        """What `edgetpu/mapping.json` holds: the profile's settings, the static mapping, the log, the estimate."""
        profile, graph = artifacts.profile, artifacts.graph
        settings: EdgeTpuSettings = profile.section("edgetpu")
        log = result.log if result else None
        return {
            "tool": "edgex", "target": self.name, "profile": profile.name, "device": profile.device,
            "io_dtype": graph.input_details()[0].dtype if graph.inputs else None,
            "min_runtime_version": settings.runtime_version, "compiler_version": settings.compiler_version,
            "compiler_found": compiler is not None, "compiled": result is not None,
            "command": compile_command(settings.runtime_version),
            "static_mapping": mapping.to_dict(), "summary": mapping.summary(),
            "compiler_log": log.to_dict() if log else None,
            "estimate": est,
        }

    def package(self, artifacts: Artifacts, measured: EdgeTpuMeasured) -> dict[str, bytes]:
        files = {"edgetpu/mapping.json": (json.dumps(measured.mapping, indent=2) + "\n").encode("utf-8")}
        result = measured.compile
        if result is not None:
            files["model_edgetpu.tflite"] = result.compiled_tflite
            files["edgetpu/compile.log"] = result.log_text().encode("utf-8")
        else:
            text = compile_instructions(artifacts.profile, artifacts.profile.section("edgetpu"), measured.mapping)
            files["edgetpu/COMPILE.md"] = text.encode("utf-8")
        return files
