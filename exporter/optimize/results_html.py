"""`report.html` and `pareto.png` of a search: the front, the plot, the sensitivity pass, every trial.

The page is self-contained like an export's report (exporter/report_html.py, whose tables and PNG embedding
it reuses): the Pareto table (the pick marked), the plot of size against accuracy (feasible trials in green,
infeasible in red with the limits they broke in the trials table, the front joined, the pick ringed), the
per-layer sensitivity table that ranked the layers the search may skip, and every trial with its state
(complete, pruned early, failed), whether it is feasible and what it broke (or its error).

Example:
    >>> from exporter.optimize.objectives import Objective
    >>> from exporter.optimize.plan import TrialResult
    >>> class Result:   # the fields of an OptimizeResult this module reads
    ...     study, storage, new_trials, sensitivity, pick, bundle = "s", "sqlite:///s.db", 2, [], None, None
    ...     objectives = [Objective("accuracy", "accuracy", "maximize", "%"),
    ...                   Objective("size", "gzip_size", "minimize", "bytes")]
    ...     trials = [TrialResult(0, "complete", [98.0, 40000.0]), TrialResult(1, "complete", [97.5, 9000.0]),
    ...               TrialResult(2, "complete", [99.0, 5000.0], [0.5]), TrialResult(3, "failed", error="boom")]
    >>> png = pareto_png(Result, Result.trials[:2])
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    >>> page = render(Result, {}, Result.trials[:2], png)
    >>> page.startswith("<!doctype html>"), "boom" in page, page.count("data:image/png")
    (True, True, 1)
"""
from __future__ import annotations

import base64
import html
import io

from exporter.optimize.pareto import table_rows

SENSITIVITY_HEADERS = ["layer", "class", "params", "drop pruned 0.9 (pt)", "drop clustered 4 (pt)", "score"]


def _roles(objectives: list) -> tuple[int | None, int | None]:
    """The index of the quality objective (first maximized) and of the size objective (first minimized)."""
    quality = next((i for i, o in enumerate(objectives) if o.direction == "maximize"), None)
    size = next((i for i, o in enumerate(objectives) if o.direction == "minimize"), None)
    return quality, size


def pareto_png(result, front: list) -> bytes:
    """The plot of size (x, log scale) against accuracy (y) of every complete trial, as PNG bytes.

    Args:
        result: the OptimizeResult (trials, objectives, pick).
        front: its Pareto front (joined by a line).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quality, size = _roles(result.objectives)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    try:
        if quality is None or size is None:
            ax.text(0.5, 0.5, "no size and accuracy objectives to plot", ha="center", transform=ax.transAxes)
        else:
            _plot(ax, result, front, quality, size)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _plot(ax, result, front: list, quality: int, size: int) -> None:
    done = [t for t in result.trials if t.state == "complete" and len(t.values) == len(result.objectives)]
    q_obj, s_obj = result.objectives[quality], result.objectives[size]
    for feasible, style in ((True, {"c": "tab:green", "marker": "o", "label": "passes every limit"}),
                            (False, {"c": "tab:red", "marker": "x", "label": "breaks a limit"})):
        points = [t for t in done if t.feasible == feasible]
        if points:
            ax.scatter([t.values[size] for t in points], [t.values[quality] for t in points], s=28, **style)
    if front:
        ax.plot([t.values[size] for t in front], [t.values[quality] for t in front], "-", c="tab:green", lw=1,
                alpha=0.7, label="Pareto front")
    for t in front:
        ax.annotate(str(t.number), (t.values[size], t.values[quality]), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    number = None if result.pick is None else result.pick.number
    picked = [t for t in front if t.number == number]
    if picked:
        ax.scatter([picked[0].values[size]], [picked[0].values[quality]], s=160, facecolors="none",
                   edgecolors="black", linewidths=1.5, label=f"pick (trial {picked[0].number})")
    if done and min(t.values[size] for t in done) > 0:
        ax.set_xscale("log")
    ax.set_xlabel(f"{s_obj.name}: {s_obj.figure} ({s_obj.unit}, log scale)")
    ax.set_ylabel(f"{q_obj.name} ({q_obj.unit})")
    ax.set_title(f"{len(done)} complete trials of {len(result.trials)}")
    ax.grid(alpha=0.3)
    if done:
        ax.legend(fontsize=8, loc="best")


def _sensitivity_rows(rows: list[dict]) -> list[list[str]]:
    pt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    return [[r.get("layer", "?"), r.get("class", "?"), f"{r.get('params', 0):,}", pt(r.get("drop_pruned")),
             pt(r.get("drop_clustered")), pt(r.get("score"))] for r in rows]


def _summary(result) -> str:
    from exporter.optimize.pick import safe_storage

    states = {s: sum(t.state == s for t in result.trials) for s in ("complete", "pruned", "failed")}
    feasible = sum(t.feasible for t in result.trials)
    objectives = ", ".join(f"{o.direction} {o.name} ({o.figure})" for o in result.objectives)
    where = " · ".join(str(getattr(result, k)) for k in ("target", "profile") if getattr(result, k, None))
    pick = ("none: no trial passes every limit" if result.pick is None else
            f"trial {result.pick.number}" + (f", exported to {result.bundle}" if result.bundle else ""))
    items = [f"study {result.study} in {safe_storage(str(result.storage))}" + (f" · {where}" if where else ""),
             f"{len(result.trials)} trials ({result.new_trials} new in this run): "
             + ", ".join(f"{n} {s}" for s, n in states.items()) + f"; {feasible} pass every limit",
             f"objectives: {objectives}", f"pick: {pick}"]
    return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def render(result, plans: dict, front: list, png: bytes) -> str:
    """The whole report.html as a string.

    Args:
        result: the OptimizeResult (study, storage, trials, objectives, sensitivity, pick, bundle).
        plans: trial number -> TrialPlan (for the recipe column).
        front: the Pareto front, smallest first.
        png: `pareto_png`'s bytes, embedded.
    """
    from exporter.report_html import _table

    objectives, pick = result.objectives, None if result.pick is None else result.pick.number
    pareto = _table(*table_rows(front, objectives, plans, pick=pick)) if front else (
        "<p class='fail'>No trial passes every limit: the trials table shows what each broke.</p>")
    trials = _table(*table_rows(sorted(result.trials, key=lambda t: t.number), objectives, plans, front=front,
                                pick=pick))
    sensitivity = (_table(SENSITIVITY_HEADERS, _sensitivity_rows(result.sensitivity)) if result.sensitivity else
                   "<p>No sensitivity pass ran (no evaluation labels or no weighted layers).</p>")
    image = base64.b64encode(png).decode("ascii")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}.fail{color:#b00}")
    status = "PICKED" if result.bundle else "NO PASS"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>edgex optimize: {html.escape(result.study)}"
            f"</title><style>{style}</style></head><body><h1>edgex optimize: {status}</h1>{_summary(result)}"
            f"<h2>Pareto front (feasible, non-dominated; smallest first)</h2>{pareto}"
            f"<h2>Size against accuracy</h2><figure><img alt='Pareto plot' src='data:image/png;base64,{image}'>"
            f"<figcaption>every complete trial; pruned and failed trials have no figures</figcaption></figure>"
            f"<h2>Per-layer sensitivity (quick pass, no training)</h2><p>accuracy drop when one layer alone is "
            f"magnitude-pruned to 0.9 or clustered to 4 values; the most sensitive layers get a skip choice in the "
            f"search.</p>{sensitivity}<h2>Every trial</h2>{trials}</body></html>")
