"""Session fixtures of the search tests: one real `edgex optimize` run, and a real local Ray head.

`optimize_run` is the issue's done-when command on the demo, `edgex optimize --demo --target android
--trials 12 --out build/opt --json`, with `--epochs 1` and a space without distillation (the slowest stage)
to keep the session short: about 2 minutes. Tests read it, never write into it (copy it first).

`ray_head` is a real Ray head on this machine (exporter/optimize/local_head.py: `ray start --head --block`, 2 CPUs, a temp dir
of its own), stopped through its own process group: `ray stop` would also kill any other Ray instance of this
machine (a user's, another test session's).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SPACE = "distill: [none]\n"
"""The search space file of the shared run: the default space without distillation."""
TRIALS, EPOCHS, SEED = 12, 1, 7
RAY_CPUS = 2


@dataclass
class SearchRun:
    """One `edgex optimize --json` run: the parsed result, its folder and what the command printed."""

    result: object            # the OptimizeResult (from the --json output)
    out: Path
    data: dict                # the --json output
    stderr: str
    seconds: float

    def __iter__(self):       # `result, out = optimize_run`
        return iter((self.result, self.out))


def search_args(out: Path, space: Path, trials: int = TRIALS, *extra: str) -> list[str]:
    """`edgex optimize` arguments of the shared demo search (more options in `extra`)."""
    return ["optimize", "--demo", "--target", "android", "--trials", str(trials), "--epochs", str(EPOCHS),
            "--seed", str(SEED), "--space", str(space), "--out", str(out), "--json", *extra]


def run_search(args: list[str]) -> SearchRun:
    """Run `edgex ARGS` (an optimize with --json); it must exit 0."""
    from exporter.optimize.result import OptimizeResult
    from tests.test_cli import run

    start = time.monotonic()
    done = run(args)
    seconds = time.monotonic() - start
    assert done.exit_code == 0, done.stderr
    data = json.loads(done.stdout)
    out = Path(args[args.index("--out") + 1])
    return SearchRun(OptimizeResult.from_dict(data), out, data, done.stderr, seconds)


@pytest.fixture(scope="session")
def search_space(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "space.yaml"
    path.write_text(SPACE)
    return path


@pytest.fixture(scope="session")
def optimize_run(demo, search_space, tmp_path_factory) -> SearchRun:
    """The done-when search: 12 trials on the demo for android, in-process (`result, out = optimize_run`)."""
    root = tmp_path_factory.mktemp("optimize")
    return run_search(search_args(root / "build" / "opt", search_space))


@dataclass
class RayHead:
    """A running local Ray head: its address and how long it took to answer."""

    address: str
    startup_s: float


@pytest.fixture(scope="module")
def ray_head(demo):
    """A real Ray head on 127.0.0.1 with 2 CPUs (exporter/optimize/local_head.py); its workers see this session's demo cache."""
    from exporter.optimize.local_head import local_ray_head

    start = time.monotonic()
    with local_ray_head(cpus=RAY_CPUS) as address:
        yield RayHead(address, time.monotonic() - start)
