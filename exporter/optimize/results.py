"""What a search leaves in `--out DIR`, written in one step, and its Pareto table on the console.

    DIR/optimize.json          the OptimizeResult (`--json` prints the same), tagged "format": "edgex-optimize",
                               with the list of files written here
    DIR/report.html            Pareto table and plot, sensitivity table, every trial with state and broken limits
    DIR/pareto.png             size vs accuracy: feasible and infeasible trials, the front joined, the pick marked
    DIR/pareto/trial-NNNN.yaml each Pareto point's recipe, which `edgex export --recipe FILE` takes
    DIR/bundle/                the pick exported again as a normal bundle (exporter/optimize/pick.py)

Everything is built in a temp folder beside DIR and swapped into place (as bundles are, exporter/bundle.py):
an interrupted or failed write leaves an earlier DIR as it was. `check_out` runs before the search and again
before writing: DIR must be missing, an empty folder, or an earlier edgex optimize output whose files are
exactly those its optimize.json lists (plus its bundle, checked as bundles are by exporter/output.py); anything
else is refused (exit 2) untouched. Device runs in the old `bundle/hil/` are carried into the new bundle.

Example:
    >>> check_out("build/opt").name
    'opt'
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from exporter.errors import IntegrityError, LimitError, UsageError
from exporter.option_names import option
from exporter.optimize.pareto import broken_text, pareto_front, table_rows
from exporter.optimize.pick import DEFAULT_PICK, check_pick, choose, export_pick, no_pass_error
from exporter.optimize.plan import TrialPlan

__all__ = ["FORMAT", "MARKER", "check_out", "plans_of", "recipe_yaml", "show", "write"]

FORMAT = "edgex-optimize"
FORMAT_VERSION = 1
MARKER = "optimize.json"
BUNDLE = "bundle"
_MAX_MARKER_BYTES = 64 << 20


def check_out(out) -> Path:
    """Refuse (exit 2) an `--out` that a search must not write; the absolute path otherwise.

    Args:
        out: the results folder (`--out DIR`).

    Returns:
        The absolute DIR.

    Raises:
        UsageError: DIR is a file, a folder that is not an edgex optimize output, one holding files it does
            not list, or its bundle is not a clean edgex bundle (exporter/output.py `check_output`).
    """
    from exporter.output import check_output

    out = Path(os.path.abspath(os.fspath(out)))
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise UsageError(f"{option('out', out)}: {exc.strerror or exc}") from None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{option('out', out)} exists and is not a folder; refusing to replace it")
    check_output(out / BUNDLE)                 # path, parent and writability checks; a bundle there must be clean
    if st is not None:
        _check_old(out)
    return out


def _check_old(out: Path) -> None:
    """An existing DIR must be empty, or an edgex optimize output holding only the files it lists."""
    from exporter.output import walk
    from exporter.safe_read import read_bounded

    entries = walk(out)
    if not entries:
        return
    refuse = f"{option('out', out)} is not an edgex optimize output ({{}}); refusing to replace it"
    if entries.get(MARKER) != "file":
        raise UsageError(refuse.format(f"no {MARKER}"))
    raw = read_bounded(out / MARKER, limit=_MAX_MARKER_BYTES, what=MARKER, error=UsageError)
    try:
        marker = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise UsageError(refuse.format(f"its {MARKER} is not JSON")) from None
    if not isinstance(marker, dict) or marker.get("format") != FORMAT or not isinstance(marker.get("files"), list):
        raise UsageError(refuse.format(f"its {MARKER} is not tagged \"format\": \"{FORMAT}\""))
    listed = {str(name) for name in marker["files"]} | {MARKER, BUNDLE, "pareto"}
    added = sorted(n for n in entries if n not in listed and not n.startswith(BUNDLE + "/"))
    if added:
        raise UsageError(f"{option('out', out)} is an edgex optimize output with files that are not part of it: "
                         f"{', '.join(added[:8])}{' and more' if len(added) > 8 else ''}; move them away first")


def plans_of(result) -> dict[int, TrialPlan]:
    """Trial number -> TrialPlan from `result.plans` (a dict or list of TrialPlans or their dicts); {} without."""
    raw = getattr(result, "plans", None) or {}
    items = raw.values() if isinstance(raw, dict) else raw
    plans = [TrialPlan.from_dict(p) if isinstance(p, dict) else p for p in items]
    return {p.number: p for p in plans}


def recipe_yaml(plan: TrialPlan, trial, *, study: str, objectives: list) -> str:
    """A Pareto point's recipe as YAML `edgex export --recipe FILE` takes, with a comment saying what it is.

    Example:
        >>> from exporter.optimize.plan import TrialResult
        >>> from exporter.optimize.objectives import Objective
        >>> plan = TrialPlan(3, {"prune": 0.8}, {"stages": [{"type": "prune", "config": {"sparsity": 0.8}}]}, "int8")
        >>> text = recipe_yaml(plan, TrialResult(3, "complete", [97.5]), study="s",
        ...                    objectives=[Objective("accuracy", "accuracy", "maximize", "%")])
        >>> print(text.splitlines()[0]); load_recipe_text(text).quantize
        # edgex optimize: trial 3 of study s (on the Pareto front)
        'int8'
    """
    import yaml

    from exporter.optimize.pareto import value_text

    recipe = json.loads(json.dumps({**plan.recipe, **({"quantize": plan.quantize} if plan.quantize else {})}))
    figures = ", ".join(f"{o.name} {value_text(v, o.unit)}" for o, v in zip(objectives, trial.values))
    lines = [f"# edgex optimize: trial {trial.number} of study {study} (on the Pareto front)",
             f"# measured: {figures}" if figures else "# measured: -",
             f"# params: {json.dumps(plan.params, sort_keys=True)}"]
    if plan.target_options:
        lines.append(f"# target options (not part of a recipe): {json.dumps(plan.target_options, sort_keys=True)}")
    return "\n".join(lines) + "\n" + yaml.safe_dump(recipe, sort_keys=False, default_flow_style=None)


def load_recipe_text(text: str):
    """Validate recipe YAML text as `edgex export --recipe FILE` would (for tests and examples)."""
    import tempfile

    from exporter.recipe import load_recipe

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "recipe.yaml"
        path.write_text(text)
        return load_recipe(path)


def _files(result, plans: dict, front: list, marker: dict) -> dict[str, bytes]:
    """The results' files (all but the bundle): name -> bytes."""
    from exporter.optimize.results_html import pareto_png, render

    png = pareto_png(result, front)
    files = {"report.html": render(result, plans, front, png).encode("utf-8"), "pareto.png": png}
    for trial in front:
        if trial.number in plans:
            files[f"pareto/trial-{trial.number:04d}.yaml"] = recipe_yaml(
                plans[trial.number], trial, study=result.study, objectives=result.objectives).encode("utf-8")
    names = sorted([*files, MARKER])
    body = {"format": FORMAT, "format_version": FORMAT_VERSION, **marker, **result.to_dict(), "files": names}
    files[MARKER] = json.dumps(body, indent=2, sort_keys=True, default=str).encode("utf-8")
    return files


def write(out, result, job, *, pick: str = DEFAULT_PICK, progress: bool = False, runner=None):
    """Write a search's results in `out` and export its pick into `out/bundle`, all in one step.

    Args:
        out: the results folder (`--out DIR`).
        result: the OptimizeResult (exporter/optimize/result.py); its `pareto` (the front's TrialResults, smallest
            first), `pick` (the picked TrialResult, or None) and `bundle` (a path or None) are filled in here.
        job: the OptimizeJob the trials ran with (the pick is exported with it).
        pick: the `--pick` rule (exporter/optimize/pick.py `PICKS`). Default "smallest".
        progress: progress bars on stderr while the pick exports. Default False.
        runner: the Runner whose `export_pick` exports the pick (a Ray runner: in a worker, like its trial).
            Default: exported in this process.

    Returns:
        `result`, filled in.

    Raises:
        LimitError: no trial passes (exit 1; the results are written, no bundle), or the pick's re-export broke
            a limit its trial held (the bundle is written, marked failed).
        UsageError: `out` must not be written (see `check_out`).
        ExporterError: the pick's export failed (nothing is written).
    """
    out = check_out(out)
    check_pick(pick)
    plans = plans_of(result)
    front = pareto_front(result.trials, result.objectives)
    chosen = choose(front, result.objectives, pick) if front else None
    result.pareto, result.pick = front, chosen
    result.bundle = None if chosen is None else str(out / BUNDLE)
    exporter = export_pick if runner is None else runner.export_pick
    report = _write_all(out, result, job, plans, front, chosen, pick, progress, exporter)
    if chosen is None:
        raise no_pass_error(result.trials, result.objectives, plans)
    if not report.passed:
        broken = {c.name: {"measured": c.value, "limit": c.limit, "unit": c.unit} for c in report.failed_checks()}
        raise LimitError(f"trial {chosen.number} passed in the search, but exported again for {result.bundle} it "
                         f"breaks {broken_text(broken)} (the bundle is written, marked failed); pick another "
                         f"({option('pick')}) or another Pareto point from {out / 'pareto'}")
    return result


def _write_all(out: Path, result, job, plans, front, chosen, pick, progress, exporter):
    """Build the results (and the pick's bundle) in a temp folder beside `out`, then swap it into place."""
    from exporter.bundle import _fsync_dir, _swap, _write_file
    from exporter.temps import remove_path, remove_stale_temps, temp_path

    if out.parent.is_dir():
        remove_stale_temps(out)
    tmp, report = temp_path(out, "new"), None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(tmp)
        if chosen is not None:
            if chosen.number not in plans:
                raise IntegrityError(f"the study has no plan for trial {chosen.number}: cannot export the pick")
            report = exporter(tmp / BUNDLE, job, chosen, plans[chosen.number], study=result.study,
                              storage=result.storage, progress=progress)
            _carry_runs(out / BUNDLE, tmp / BUNDLE)
        marker = {"pick_rule": pick, "pick_status": None if report is None else report.status}
        for name, data in _files(result, plans, front, marker).items():
            _write_file(tmp / name, data)
        for folder in (tmp, tmp / "pareto"):
            if folder.is_dir():
                _fsync_dir(folder)
        _swap(tmp, out)
        _fsync_dir(out.parent)
    except OSError as exc:
        raise UsageError(f"cannot write the results in {out}: {exc.strerror or exc}; an earlier one there is "
                         "untouched") from None
    finally:
        if os.path.lexists(tmp):
            remove_path(tmp)                  # after a swap: the earlier results
    return report


def _carry_runs(old: Path, new: Path) -> None:
    """Copy the device runs (`hil/<run>.json`) of the old pick's bundle into the new one."""
    import shutil

    from exporter.manifest import is_hil_run
    from exporter.output import walk

    if not old.is_dir():
        return
    for name, kind in walk(old).items():
        if kind == "file" and is_hil_run(name):
            (new / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(old / name, new / name)


def show(result, console=None) -> None:
    """Print the Pareto front as a rich table (stdout by default), and the pick's bundle.

    Args:
        result: the OptimizeResult after `write`.
        console: a rich Console; default exporter.cli_show.console() (stdout, markup off).
    """
    from rich.table import Table

    from exporter.cli_show import console as stdout_console

    console = console or stdout_console()
    pick = None if result.pick is None else result.pick.number
    headers, rows = table_rows(list(result.pareto), result.objectives, plans_of(result), pick=pick)
    table = Table(title=f"Pareto front of {result.study} ({len(result.trials)} trials, {result.new_trials} new)")
    for header in headers[:-3]:                # state, feasible, broken: the same on every Pareto row
        table.add_column(header)
    for row in rows:
        table.add_row(*row[:-3])
    console.print(table if rows else "no trial passes every limit: see report.html for the closest")
    if result.bundle:
        console.print(f"pick: trial {pick} -> {result.bundle}")
