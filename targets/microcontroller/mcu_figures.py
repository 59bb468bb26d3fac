"""The figures of a microcontroller export beyond flash: arena and RAM, latency, weight compression.

`arena` and `ram` are measured on the model the C array holds (compressed: its DECODE ops write the decoded
weights into the arena, so it needs more than the model as converted, `arena_uncompressed`).
`compression_bit_exact` is the share of samples whose outputs were bit-identical, compressed against
uncompressed, on TFLM (targets/microcontroller/compression.py).
"""
from __future__ import annotations

from exporter.checks import ESTIMATED, MEASURED, MIXED, Measurement

ON = "TFLM interpreter on this host (RecordingMicroAllocator)"


def arena_figures(arena, mcu, overhead: int, plain=None) -> dict[str, Measurement]:
    """`arena` and `ram` from a measured arena; `arena_uncompressed` from `plain`, the uncompressed model's.

    Args:
        arena: the `ArenaResult` of the model the bundle holds (no figures unless `ok`).
        mcu: the profile's `MicrocontrollerSettings` (arena margin).
        overhead: the profile's runtime RAM, bytes.
        plain: the `ArenaResult` of the model as converted, when the bundle holds it compressed; else None.
    """
    from targets.microcontroller.codegen import ARENA_ALIGNMENT, arena_size

    if not arena.ok:
        return {}
    allocated = arena_size(arena.arena_bytes, mcu.arena_margin)
    decoded = ""
    if plain is not None and plain.ok:
        decoded = (f"; {arena.arena_bytes - plain.arena_bytes:+,} B against the uncompressed model: the DECODE ops "
                   "write the decoded weights into the arena")
    figures = {
        "arena": Measurement("arena", arena.arena_bytes, "bytes", MEASURED, ON,
                             f"head {arena.head_bytes:,} B + tail {arena.tail_bytes:,} B{decoded}"),
        "ram": Measurement(
            "ram", allocated + overhead, "bytes", MIXED, "measured arena + margin + profile runtime",
            f"model_arena.h allocates {allocated:,} B: arena {arena.arena_bytes:,} B (measured, {ON}) "
            f"+ margin {mcu.arena_margin:.0%} (profile), rounded up to {ARENA_ALIGNMENT}; "
            f"+ runtime {overhead:,} B (profile estimate)"),
    }
    if plain is not None and plain.ok:
        figures["arena_uncompressed"] = Measurement("arena_uncompressed", plain.arena_bytes, "bytes", MEASURED, ON,
                                                    "the model as converted, without weight compression")
    return figures


def latency_figure(graph, profile) -> Measurement:
    """The estimated latency: MACs at the profile's cycles per MAC and clock, on one core."""
    from exporter.analysis.cost_model import estimate_latency_ms, one_core_phrase

    return Measurement(
        "latency", estimate_latency_ms(graph, profile.cost_model), "ms", ESTIMATED,
        f"cost model of {profile.name}: {profile.cost_model.int8_cycles_per_mac} cycles/int8 MAC "
        f"at {profile.cost_model.clock_mhz} MHz",
        f"{graph.total_macs:,} MACs over {len(graph.ops)} ops; {one_core_phrase('TFLM', profile.threads)}")


def compression_figures(lut) -> dict[str, Measurement]:
    """`compression_bit_exact` (%) when the bundle holds a compressed model; else none (nothing to prove)."""
    if not lut.compressed or lut.total is None:
        return {}
    tensors = sum(p.status == "compressed" for p in lut.plans)
    dropped = sum(p.status == "dropped" for p in lut.plans)
    return {"compression_bit_exact": Measurement(
        "compression_bit_exact", 100.0 * lut.identical / lut.total, "%", MEASURED,
        f"TFLM interpreter on this host, {lut.samples}",
        f"{lut.identical:,}/{lut.total:,} samples with outputs identical to the uncompressed model's; {tensors} "
        f"tensor(s) compressed, {dropped} dropped for differing outputs")}
