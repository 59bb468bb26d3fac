"""`edgex optimize`: search the compression recipes a device profile allows for the smallest model that passes.

`exporter.optimize(...)` is the search (exporter/optimize/api.py `optimize`). The package and the function
share the name, so this module is callable: `exporter.optimize(demo=True, ...)` runs the search whether
`exporter.optimize` was reached as the package (after `import exporter.optimize.plan`) or through
`exporter`'s lazy attributes. Nothing heavy is imported here (no TensorFlow, Optuna or Ray).

Parts: job.py (what every trial shares), space.py (the search space), sensitivity.py (per-layer sensitivity),
objectives.py (objectives and constraints), trial.py (one trial), plan.py (TrialPlan, TrialResult), study.py
(the Optuna study), budget.py (--trials, --time), runner.py and ray_runner.py (in-process or Ray), result.py
(OptimizeResult), pareto.py, pick.py, results.py and results_html.py (the Pareto front, the pick, the files).

Example:
    >>> import exporter
    >>> callable(exporter.optimize), exporter.optimize.optimize.__module__
    (True, 'exporter.optimize.api')
"""
from __future__ import annotations

import sys
import types

__all__ = ["optimize"]


def __getattr__(name):   # lazy: `import exporter.optimize` stays cheap
    if name == "optimize":
        from exporter.optimize.api import optimize

        return optimize
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """This package, callable as `exporter.optimize.api.optimize`."""

    def __call__(self, *args, **kwargs):
        from exporter.optimize.api import optimize

        return optimize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
