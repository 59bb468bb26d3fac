"""`edgex optimize`: search the compression recipes a device profile allows for the smallest model that passes.

The command parses its options and calls `exporter.optimize` (exporter/optimize/api.py); the model and data
options are `edgex export`'s (exporter/cli_options.py `data_options`). Exit 0 with a pick, 1 when no trial
passes (its message names the closest trial and the limits that bind it), 2 for bad input, 130 on Ctrl-C
(finished trials stay in the study). Only click is imported here: `edgex --help` stays light.

Example:
    >>> optimize.main(["--help"], prog_name="edgex optimize", standalone_mode=False)   # doctest: +ELLIPSIS
    Usage: edgex optimize [OPTIONS] [MODEL]
    ...
"""
from __future__ import annotations

from dataclasses import dataclass

import click

from exporter.cli_options import SectionedCommand, data_options, option_group
from exporter.errors import EXIT_CODES

__all__ = ["SearchOptions", "optimize"]

EXIT_HELP = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()) + "."
PICK_HELP = "smallest (default: the smallest size that passes), fastest, most-accurate"
SAMPLER_HELP = "tpe (default: multivariate TPE) or nsga2 (NSGA-II); both treat every limit as a hard constraint"


@dataclass(frozen=True)
class SearchOptions:
    """The search's target, budget, study, runner and pick (the `exporter.optimize` keywords of the same names)."""

    target: str
    profile: str | None
    limits: tuple[str, ...]
    trials: int
    time: str | None
    storage: str | None
    study: str | None
    space: str | None
    ray: str | None
    trial_cpus: int
    batch: int | None
    pick: str
    sampler: str
    seed: int
    epochs: int

    def to_api(self) -> dict:
        """The `exporter.optimize` keywords."""
        import dataclasses

        return {**dataclasses.asdict(self), "limits": list(self.limits) or None}


search_options = option_group(
    "Target and search", SearchOptions, "search",
    click.option("--target", "-t", default="android", show_default=True, help="Target kind (see `edgex targets`)."),
    click.option("--profile", "-p", help="Profile name or YAML path; default: the target's default profile."),
    click.option("--limit", "limits", multiple=True, metavar="NAME=VALUE",
                 help="Override a limit for this search, e.g. model_size=40KB (repeatable). Every limit is a hard "
                      "constraint."),
    click.option("--trials", type=int, default=20, show_default=True,
                 help="Finished trials the study should hold; earlier runs count (12, then 14: 2 new trials)."),
    click.option("--time", metavar="DURATION", help="Stop asking new trials after this long, e.g. 45s, 30m, 2h."),
    click.option("--storage", metavar="URL",
                 help="The study's database (any SQLAlchemy URL, e.g. postgresql://host/db); default: "
                      "sqlite:///OUT.study.db beside --out."),
    click.option("--study", metavar="NAME",
                 help="The study's name; default: edgex-TARGET-PROFILE-<hash of the model, space and objectives>."),
    click.option("--space", metavar="FILE", help="A YAML file narrowing or widening the search space."),
    click.option("--ray", metavar="auto|HOST:PORT",
                 help="Run trials as tasks on a Ray cluster (auto: the one this machine started); default: "
                      "one at a time in this process."),
    click.option("--trial-cpus", type=int, default=1, show_default=True, help="CPUs each Ray trial asks for."),
    click.option("--batch", type=int, help="Trials in flight (running or queued); default: 1 in-process, cluster "
                                           "CPUs // --trial-cpus + 1 on Ray. The same seed and batch give the same "
                                           "trials."),
    click.option("--pick", default="smallest", show_default=True, metavar="RULE",
                 help=f"Which Pareto trial becomes the bundle: {PICK_HELP}."),
    click.option("--sampler", default="tpe", show_default=True, metavar="NAME",
                 help=f"Optuna sampler: {SAMPLER_HELP}."),
    click.option("--seed", type=int, default=7, show_default=True, help="Seed of the sampler and of every trial."),
    click.option("--epochs", type=int, default=2, show_default=True, help="Fine-tuning epochs per stage."),
)


@click.command(cls=SectionedCommand, epilog=EXIT_HELP)
@click.argument("model", required=False)
@data_options
@search_options
@click.option("--out", "-o", required=True,
              help="Results folder: optimize.json, report.html, pareto.png, pareto/trial-N.yaml and bundle/ (the "
                   "pick). An earlier optimize output there is replaced; anything else is refused (exit 2).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def optimize(model, data, search, out, as_json):
    """Search compression recipes for MODEL under a device profile's limits; export the pick as a bundle."""
    from exporter.errors import LimitError
    from exporter.input_shapes import from_option
    from exporter.optimize.api import optimize as run

    try:
        result = run(model, demo=data.demo, trust_model=data.trust_model, calib=data.calib, eval=data.eval_,
                     labels=data.labels, train=data.train, normalize=data.normalize,
                     input_shapes=from_option(data.input_shapes), label_output=data.label_output, out=out,
                     **search.to_api())
    except LimitError as exc:
        if getattr(exc, "result", None) is not None:
            _show(exc.result, as_json)
        raise
    _show(result, as_json)


def _show(result, as_json: bool) -> None:
    """The result as JSON on stdout, or the Pareto table."""
    if as_json:
        from exporter.cli_show import print_json

        print_json(result.to_dict())
        return
    from exporter.optimize.results import show

    show(result)
    click.echo(f"{result.new_trials} new trial(s), {len(result.trials)} in study {result.study}")
