"""Coral Edge TPU (USB Accelerator, Dev Board): full-integer int8 models compiled by edgetpu_compiler.

Pre-flight refuses what the Edge TPU cannot take at all (listing every problem): a model that is
not fully int8 (QUANTIZE/DEQUANTIZE at the edges aside), float or other non-8-bit I/O, a batch
other than 1, dynamic tensor sizes (-1 in a shape signature), more than one subgraph. It then maps
the ops onto the TPU with edgex's table of Coral's supported operations
(`exporter.analysis.edgetpu_ops`): the compiler maps ops until the first unsupported one, and that
op and everything after it run on the CPU. The report says which ops run where and where the cut is.

When `edgetpu_compiler` is on PATH it compiles the model (`-s -m <runtime version>`), and its log
(`exporter.analysis.edgetpu_log`) replaces the static mapping and the parameter-memory estimate.
It is not installable here (Coral's apt repository only); the bundle then says it is uncompiled and
holds `edgetpu/COMPILE.md` with the exact command. `artifacts.extra["require_compiled"]` (the CLI's
`--require-compiled`) turns a missing compiler into a pre-flight error before anything is packaged.

Estimated for the device: latency = TPU MACs / the profile's effective TPU rate + transfers and
streamed parameters over the host link + invoke overhead + CPU-fallback ops from the cost model;
host RAM = model buffer + host-side tensors + runtime. Measured on this machine: size, accuracy,
fidelity and host latency (LiteRT, the int8 model without the Edge TPU).
"""
from __future__ import annotations

import json

from exporter.analysis.edgetpu_compiler import (COMPILER, INSTALL_COMMANDS, compile_command, compile_for_edgetpu,
                                                compile_instructions, compiler_path)
from exporter.analysis.edgetpu_estimate import EDGETPU_CUSTOM_OP, estimate, split_from_compiled, split_from_mapping
from exporter.errors import ConfigError, PreflightError
from exporter.profile import EdgeTpu
from targets.base import Artifacts, Target, register

_IO_DTYPES = ("uint8", "int8")


def edgetpu_settings(profile) -> EdgeTpu:
    """The profile's `edgetpu` section, already validated by `exporter.profile` when it was loaded.

    Args:
        profile: the device profile.

    Returns:
        The typed section.

    Raises:
        ConfigError: the profile has no `edgetpu` section.
    """
    settings = getattr(profile, "edgetpu", None)
    if settings is None:
        raise ConfigError(f"profile {profile.name} has no 'edgetpu' section "
                          f"({', '.join(EdgeTpu.model_fields)})")
    return settings


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
        problems.append(f"conversion mode {mode}: the Edge TPU runs only full-integer int8 models (--quantize int8)")
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
            problems.append(f"tensor {tensor} has a dynamic size (-1 in its shape signature); the Edge TPU "
                            "needs sizes fixed at compile time")
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


def _ms(value: float) -> str:
    return f"{value:.2g} ms" if value < 0.01 else f"{value:.3f} ms"


def _ops_phrase(names: list[str]) -> str:
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return ", ".join(f"{n} x{c}" if c > 1 else n for n, c in counts.items()) or "none"


@register
class EdgeTpuTarget(Target):
    """A Coral Edge TPU next to a host CPU; full-integer int8 compiled by edgetpu_compiler."""

    name = "edgetpu"
    summary = "Coral Edge TPU (USB Accelerator, Dev Board): edgetpu_compiler, LiteRT + libedgetpu"
    default_profile = "coral-usb"
    runtime = "LiteRT + libedgetpu (Edge TPU delegate)"
    ram_source = "estimated (host side)"
    latency_source = "estimated (TPU MAC rate, host link, CPU cost model)"

    def preflight(self, graph, profile, mode: str, tflite: bytes | None = None) -> list[str]:
        """Refuse what the Edge TPU cannot take; return the static mapping as notes.

        Args:
            tflite: the model bytes, when the caller has them: adds the dynamic-size check and the
                option/constant checks of the op table (measure() runs them otherwise).

        Raises:
            PreflightError: listing every problem, naming the tensor or op at fault.
            ConfigError: the profile's `edgetpu` section is missing or invalid.
        """
        from exporter.analysis.edgetpu_ops import ModelFacts, map_graph

        settings = edgetpu_settings(profile)
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
                         f"{settings.interface} every inference (+{_ms(est['latency_ms']['streamed_parameters'])}, "
                         "estimated)")
        if compiler_path() is None:
            notes.append(f"{COMPILER} not found on PATH: the bundle holds the int8 model uncompiled, with "
                         f"edgetpu/COMPILE.md giving `{' '.join(compile_command(settings.runtime_version))}` "
                         "and how to install the compiler (Coral's apt repository, x86-64)")
        return notes

    def measure(self, artifacts: Artifacts) -> dict:
        from exporter.analysis.edgetpu_ops import ModelFacts, map_graph
        from exporter.analysis.graph import Graph
        from exporter.checks import ESTIMATED, MEASURED, Measurement
        from exporter.measure import measure_host

        profile, graph = artifacts.profile, artifacts.graph
        settings = edgetpu_settings(profile)
        compiler = compiler_path()
        if artifacts.extra.get("require_compiled") and compiler is None:
            raise PreflightError(f"--require-compiled: {COMPILER} not found on PATH, so the model cannot be "
                                 "compiled for the Edge TPU here. Install it (x86-64 Debian/Ubuntu, Coral's apt "
                                 f"repository: {'; '.join(INSTALL_COMMANDS)}) or drop --require-compiled to get "
                                 "an uncompiled bundle with edgetpu/COMPILE.md")
        facts = ModelFacts(artifacts.tflite)
        dynamic = facts.dynamic_tensors(graph)
        if dynamic:
            raise PreflightError(f"pre-flight for {self.name} ({profile.name}) failed:\n  " + "\n  ".join(
                f"tensor {t} has a dynamic size (-1 in its shape signature); the Edge TPU needs sizes fixed at "
                "compile time" for t in dynamic))
        mapping = map_graph(graph, settings.runtime_version, facts, settings.compiler_version)
        figures = measure_host(artifacts.tflite, artifacts.keras_model, artifacts.eval_ds)

        result = compile_for_edgetpu(artifacts.tflite, settings.runtime_version, compiler=compiler) \
            if compiler else None
        log = result.log if result else None
        split = split_from_mapping(graph, mapping)
        if result is not None:
            compiled_graph = Graph.from_bytes(result.compiled_tflite)
            if any(op.name == EDGETPU_CUSTOM_OP for op in compiled_graph.ops):
                split = split_from_compiled(graph, compiled_graph, log.tpu_ops or 0, split.param_bytes)
        est = estimate(split, settings, profile.cost_model,
                       on_chip=log.on_chip_bytes if log else None, streamed=log.off_chip_bytes if log else None)

        static_on = (f"edgex op table (Coral supported operations), runtime {settings.runtime_version}, "
                     f"compiler {settings.compiler_version}")
        cut = (f"cut at op {mapping.cut_index} {mapping.cut_op} ({mapping.cut_reason})"
               if mapping.cut_index is not None else "no cut")
        graph_only = map_graph(graph, settings.runtime_version, None, settings.compiler_version)
        if graph_only.cut_index != mapping.cut_index:  # the pre-flight notes had no options/constants to read
            cut += (f"; the pre-flight note, made without the op options, had "
                    f"{'no cut' if graph_only.cut_index is None else f'the cut at op {graph_only.cut_index}'}")
        if log is not None:
            on, source = f"{COMPILER} {log.compiler_version} log", MEASURED
            tpu_n, cpu_n = log.tpu_ops or 0, log.cpu_ops or 0
            tpu_note = "mapped rows: " + _ops_phrase([r.name for r in log.operators if r.mapped for _ in
                                                      range(r.count)]) + f"; edgex's table predicted {cut}"
            cpu_note = ("; ".join(f"{r.name} x{r.count}: {r.status}" for r in log.cpu_rows()) or "none") + \
                f" (edgex's table predicted {cut})"
        else:
            on, source = static_on, ESTIMATED
            tpu_n, cpu_n = len(mapping.tpu_ops), len(mapping.cpu_ops)
            span = f"ops 0-{len(mapping.tpu_ops) - 1}: " if mapping.tpu_ops else ""
            tpu_note = span + _ops_phrase([o.name for o in mapping.tpu_ops])
            if mapping.cut_index is None:
                cpu_note = "none: every op maps to the Edge TPU; no cut"
            else:
                cpu_note = (f"{cut}; the compiler maps ops only up to the first unsupported one, so ops "
                            f"{mapping.cut_index}-{len(mapping.ops) - 1} run on the CPU: "
                            + _ops_phrase([o.name for o in mapping.cpu_ops]))
        figures["tpu_ops"] = Measurement("tpu_ops", tpu_n, "ops", source, on, tpu_note)
        figures["cpu_ops"] = Measurement("cpu_ops", cpu_n, "ops", source, on, cpu_note)
        command = " ".join(compile_command(settings.runtime_version))
        if result is not None:
            compiled_note = f"compiled by {COMPILER} {log.compiler_version}: model_edgetpu.tflite, edgetpu/compile.log"
            if not str(log.compiler_version or "").startswith(settings.compiler_version + "."):
                compiled_note += (f"; the profile's op tables are for compiler {settings.compiler_version}, "
                                  "this log is what counts")
        else:
            compiled_note = (f"{COMPILER} not found on PATH: bundle not compiled for the Edge TPU; run `{command}` "
                             "(edgetpu/COMPILE.md)")
        figures["compiled"] = Measurement("compiled", 1 if result else 0, "", MEASURED, f"PATH lookup of {COMPILER}",
                                          compiled_note)

        params, lat = est["parameters"], est["latency_ms"]
        link = f"{settings.interface} at {settings.host_bandwidth_mb_per_s:g} MB/s"
        mem_on, mem_source = (f"{COMPILER} log", MEASURED) if log and log.on_chip_bytes is not None \
            else (f"constants of TPU-mapped ops vs the {params['cache_bytes']:,} B cache ({profile.name})", ESTIMATED)
        figures["param_on_chip"] = Measurement(
            "param_on_chip", params["on_chip_bytes"], "bytes", mem_source, mem_on,
            f"parameters of the TPU part: {params['tpu_bytes']:,} B ({split.source}); on-chip cache "
            f"{params['cache_bytes']:,} B")
        streamed = params["streamed_bytes"]
        figures["param_streamed"] = Measurement(
            "param_streamed", streamed, "bytes", mem_source, mem_on,
            f"{streamed:,} B do not fit the on-chip cache and are streamed over {link} every inference: "
            f"+{_ms(lat['streamed_parameters'])}" if streamed else "none: every TPU parameter fits the on-chip cache")
        figures["latency"] = Measurement(
            "latency", lat["total"], "ms", ESTIMATED,
            f"{profile.name}: Edge TPU {settings.tpu_int8_gmacs:g} GMAC/s effective, {link}, host cost model",
            f"TPU {split.tpu_macs:,} MACs = {_ms(lat['tpu_compute'])}; transfers {est['boundary_bytes']:,} B = "
            f"{_ms(lat['transfers'])}; streamed parameters {streamed:,} B = {_ms(lat['streamed_parameters'])}; "
            f"invoke overhead {_ms(lat['invoke_overhead'])}; CPU fallback {len(split.cpu_ops)} ops = "
            f"{_ms(lat['cpu_fallback'])}")
        model_bytes = len(result.compiled_tflite) if result else len(artifacts.tflite)
        runtime = int(profile.cost_model.runtime_ram_bytes)
        ram = model_bytes + est["host_tensor_bytes"] + runtime
        figures["ram"] = Measurement(
            "ram", ram, "bytes", ESTIMATED, f"host side of {profile.name}",
            f"model buffer {model_bytes:,} B (parameters stay in host memory) + host tensors "
            f"{est['host_tensor_bytes']:,} B (I/O and CPU ops, no reuse) + runtime {runtime:,} B (profile); "
            "TPU activations live on the chip")

        artifacts.extra["edgetpu_compile"] = result
        artifacts.extra["edgetpu_mapping"] = {
            "tool": "edgex", "target": self.name, "profile": profile.name, "device": profile.device,
            "io_dtype": graph.input_details()[0].dtype if graph.inputs else None,
            "min_runtime_version": settings.runtime_version, "compiler_version": settings.compiler_version,
            "compiler_found": compiler is not None, "compiled": result is not None,
            "command": compile_command(settings.runtime_version),
            "static_mapping": mapping.to_dict(), "summary": mapping.summary(),
            "compiler_log": log.to_dict() if log else None,
            "estimate": est,
        }
        return figures

    def package(self, artifacts: Artifacts) -> dict[str, bytes]:
        mapping = artifacts.extra.get("edgetpu_mapping")
        files = {}
        if mapping is not None:
            files["edgetpu/mapping.json"] = (json.dumps(mapping, indent=2) + "\n").encode("utf-8")
        result = artifacts.extra.get("edgetpu_compile")
        if result is not None:
            files["model_edgetpu.tflite"] = result.compiled_tflite
            files["edgetpu/compile.log"] = result.log_text().encode("utf-8")
        elif mapping is not None:
            text = compile_instructions(artifacts.profile, edgetpu_settings(artifacts.profile), mapping)
            files["edgetpu/COMPILE.md"] = text.encode("utf-8")
        return files
