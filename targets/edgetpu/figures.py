"""The report figures of an Edge TPU export: op placement, compilation, parameter memory, latency, host RAM.

Each function turns what `EdgeTpuTarget.measure` found (the static mapping, the compiler's log when
it ran, the estimate) into `Measurement`s that say where they come from: the compiler's log is
`measured`, edgex's op table and cost model are `estimated`; host RAM, which adds the measured model
file to estimated parts, is `mixed`.

Example:
    >>> from exporter.analysis.graph import Graph
    >>> from exporter.profile import load_profile
    >>> from targets.edgetpu.ops import map_graph
    >>> settings = load_profile("coral-usb").section("edgetpu")
    >>> graph = Graph.from_bytes(tiny_tflite)
    >>> mapping = map_graph(graph, settings.runtime_version)
    >>> figures = placement_figures(graph, mapping, None, settings)    # None: the compiler did not run
    >>> figures["tpu_ops"].value, figures["tpu_ops"].source
    (6, 'estimated')
    >>> figures["cpu_ops"].note
    'none: every op maps to the Edge TPU; no cut'
"""
from __future__ import annotations

from exporter.analysis.cost_model import thread_phrase
from exporter.checks import ESTIMATED, MEASURED, MIXED, Measurement
from targets.edgetpu.compiler import COMPILER, compile_command


def ms(value: float) -> str:
    """A duration for a note: two significant digits below 0.01 ms, else three decimals."""
    return f"{value:.2g} ms" if value < 0.01 else f"{value:.3f} ms"


def ops_phrase(names: list[str]) -> str:
    """"CONV_2D x2, SOFTMAX" for a list of op names, in first-seen order; "none" when empty."""
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return ", ".join(f"{n} x{c}" if c > 1 else n for n, c in counts.items()) or "none"


def _cut_phrase(graph, mapping, settings) -> str:
    """Where edgex's table cuts the graph, and whether the pre-flight note (no op options) said otherwise."""
    from targets.edgetpu.ops import map_graph

    cut = (f"cut at op {mapping.cut_index} {mapping.cut_op} ({mapping.cut_reason})"
           if mapping.cut_index is not None else "no cut")
    graph_only = map_graph(graph, settings.runtime_version, None, settings.compiler_version)
    if graph_only.cut_index != mapping.cut_index:  # the pre-flight notes had no options/constants to read
        cut += (f"; the pre-flight note, made without the op options, had "
                f"{'no cut' if graph_only.cut_index is None else f'the cut at op {graph_only.cut_index}'}")
    return cut


def placement_figures(graph, mapping, log, settings) -> dict[str, Measurement]:
    """`tpu_ops` and `cpu_ops`: from the compiler's log when it ran (measured), else from edgex's table."""
    cut = _cut_phrase(graph, mapping, settings)
    if log is not None:
        on, source = f"{COMPILER} {log.compiler_version} log", MEASURED
        tpu_n, cpu_n = log.tpu_ops or 0, log.cpu_ops or 0
        tpu_note = "mapped rows: " + ops_phrase([r.name for r in log.operators if r.mapped for _ in
                                                 range(r.count)]) + f"; edgex's table predicted {cut}"
        cpu_note = ("; ".join(f"{r.name} x{r.count}: {r.status}" for r in log.cpu_rows()) or "none") + \
            f" (edgex's table predicted {cut})"
    else:
        on = (f"edgex op table (Coral supported operations), runtime {settings.runtime_version}, "
              f"compiler {settings.compiler_version}")
        source = ESTIMATED
        tpu_n, cpu_n = len(mapping.tpu_ops), len(mapping.cpu_ops)
        span = f"ops 0-{len(mapping.tpu_ops) - 1}: " if mapping.tpu_ops else ""
        tpu_note = span + ops_phrase([o.name for o in mapping.tpu_ops])
        if mapping.cut_index is None:
            cpu_note = "none: every op maps to the Edge TPU; no cut"
        else:
            cpu_note = (f"{cut}; the compiler maps ops only up to the first unsupported one, so ops "
                        f"{mapping.cut_index}-{len(mapping.ops) - 1} run on the CPU: "
                        + ops_phrase([o.name for o in mapping.cpu_ops]))
    return {"tpu_ops": Measurement("tpu_ops", tpu_n, "ops", source, on, tpu_note),
            "cpu_ops": Measurement("cpu_ops", cpu_n, "ops", source, on, cpu_note)}


def compiled_figure(result, settings) -> Measurement:
    """`compiled`: 1 when edgetpu_compiler ran, 0 (with the command to run) when it was not on PATH."""
    if result is not None:
        log = result.log
        note = f"compiled by {COMPILER} {log.compiler_version}: model_edgetpu.tflite, edgetpu/compile.log"
        if not str(log.compiler_version or "").startswith(settings.compiler_version + "."):
            note += (f"; the profile's op tables are for compiler {settings.compiler_version}, "
                     "this log is what counts")
    else:
        command = " ".join(compile_command(settings.runtime_version))
        note = (f"{COMPILER} not found on PATH: bundle not compiled for the Edge TPU; run `{command}` "
                "(edgetpu/COMPILE.md)")
    return Measurement("compiled", 1 if result else 0, "", MEASURED, f"PATH lookup of {COMPILER}", note)


def link_phrase(settings) -> str:
    """The host link as a note says it: "USB 3.0 at 320 MB/s"."""
    return f"{settings.interface} at {settings.host_bandwidth_mb_per_s:g} MB/s"


def parameter_figures(est: dict, split, log, profile) -> dict[str, Measurement]:
    """`param_on_chip` and `param_streamed`: the compiler's figures when it ran, else constants vs the cache."""
    params, lat = est["parameters"], est["latency_ms"]
    settings = profile.section("edgetpu")
    if log and log.on_chip_bytes is not None:
        mem_on, mem_source = f"{COMPILER} log", MEASURED
    else:
        mem_on = f"constants of TPU-mapped ops vs the {params['cache_bytes']:,} B cache ({profile.name})"
        mem_source = ESTIMATED
    streamed = params["streamed_bytes"]
    return {
        "param_on_chip": Measurement(
            "param_on_chip", params["on_chip_bytes"], "bytes", mem_source, mem_on,
            f"parameters of the TPU part: {params['tpu_bytes']:,} B ({split.source}); on-chip cache "
            f"{params['cache_bytes']:,} B"),
        "param_streamed": Measurement(
            "param_streamed", streamed, "bytes", mem_source, mem_on,
            f"{streamed:,} B do not fit the on-chip cache and are streamed over {link_phrase(settings)} every "
            f"inference: +{ms(lat['streamed_parameters'])}" if streamed
            else "none: every TPU parameter fits the on-chip cache"),
    }


def latency_figure(est: dict, split, profile) -> Measurement:
    """`latency`: TPU compute + transfers + streamed parameters + invoke overhead + CPU fallback (estimated)."""
    settings = profile.section("edgetpu")
    lat, streamed = est["latency_ms"], est["parameters"]["streamed_bytes"]
    return Measurement(
        "latency", lat["total"], "ms", ESTIMATED,
        f"{profile.name}: Edge TPU {settings.tpu_int8_gmacs:g} GMAC/s effective, {link_phrase(settings)}, "
        "host cost model",
        f"TPU {split.tpu_macs:,} MACs = {ms(lat['tpu_compute'])}; transfers {est['boundary_bytes']:,} B = "
        f"{ms(lat['transfers'])}; streamed parameters {streamed:,} B = {ms(lat['streamed_parameters'])}; "
        f"invoke overhead {ms(lat['invoke_overhead'])}; CPU fallback {len(split.cpu_ops)} ops = "
        f"{ms(lat['cpu_fallback'])} (host cost model, LiteRT on {thread_phrase(profile.cost_model, est['cpu_threads'])}"
        "; the TPU part has no CPU threads)")


def ram_figure(est: dict, model_bytes: int, profile) -> Measurement:
    """`ram` on the host: the model buffer (measured) + host-side tensors + the runtime (estimated): mixed."""
    runtime = int(profile.cost_model.runtime_ram_bytes)
    return Measurement(
        "ram", model_bytes + est["host_tensor_bytes"] + runtime, "bytes", MIXED,
        f"host side of {profile.name}: model file + host tensors + profile runtime",
        f"model buffer {model_bytes:,} B (measured: the model file; parameters stay in host memory) + host "
        f"tensors {est['host_tensor_bytes']:,} B (estimated: I/O and CPU ops, no reuse) + runtime {runtime:,} B "
        "(profile estimate); TPU activations live on the chip")
