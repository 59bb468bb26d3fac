"""A stand-in for LiteRT's `benchmark_model`: a POSIX sh script (the stub phone has no Python).

`write_stand_in(path, fixture)` writes an executable `#!/bin/sh` script that checks its flags as a
strict tool would (only the flags edgex passes are known; `--graph` must name an existing file;
threads, warm-up, runs, op profiling and one delegate flag must be given), fails like the real
tool when the graph is missing, and otherwise prints `fixtures/benchmark_model/<fixture>` (in the
tool's real output format, see that folder's README) with its thread count lines set to
`--num_threads`. How edgex ran it shows in the stub adb server's request log.
"""
from __future__ import annotations

import os
from pathlib import Path

FIXTURES = Path(__file__).resolve().with_name("fixtures") / "benchmark_model"

_SCRIPT = r"""#!/bin/sh
# Stand-in for LiteRT's benchmark_model (tests/hil/benchmark_stand_in.py): strict flags, fixture output.
graph= threads= warmup= runs= profiling= delegate=
for arg in "$@"; do
  case "$arg" in
    --graph=*) graph=${arg#*=} ;;
    --num_threads=*) threads=${arg#*=} ;;
    --warmup_runs=*) warmup=${arg#*=} ;;
    --num_runs=*) runs=${arg#*=} ;;
    --warmup_min_secs=0|--min_secs=0|--max_secs=*) ;;
    --enable_op_profiling=true) profiling=1 ;;
    --use_xnnpack=true|--use_xnnpack=false|--use_gpu=true|--use_nnapi=true)
      [ -z "$delegate" ] || { echo "ERROR: stand-in: two delegate flags" >&2; exit 2; }
      delegate=$arg ;;
    *) echo "ERROR: stand-in: unexpected flag $arg" >&2; exit 2 ;;
  esac
done
for value in "$threads" "$warmup" "$runs"; do
  case "$value" in ''|*[!0-9]*) echo "ERROR: stand-in: --num_threads, --warmup_runs, --num_runs must be numbers" >&2; exit 2 ;; esac
done
[ -n "$profiling" ] && [ -n "$delegate" ] || { echo "ERROR: stand-in: op profiling and a delegate flag are expected" >&2; exit 2; }
if [ ! -f "$graph" ]; then
  echo "INFO: STARTING!"
  echo "ERROR: Failed to initialize model loader with path $graph" >&2
  echo "ERROR: Benchmarking failed." >&2
  exit 1
fi
sed -e "s/^INFO: Num threads: \[[0-9]*\]/INFO: Num threads: [$threads]/" \
    -e "s/^INFO: #threads used for CPU inference: \[[0-9]*\]/INFO: #threads used for CPU inference: [$threads]/" <<'FIXTURE'
@FIXTURE@
FIXTURE
"""


def write_stand_in(path: Path, fixture: str = "xnnpack_4_threads.txt") -> Path:
    """Write the stand-in tool at `path` (mode 0755) printing `fixture`; return `path`."""
    text = (FIXTURES / fixture).read_text()
    assert "\nFIXTURE\n" not in text
    path = Path(path)
    path.write_text(_SCRIPT.replace("@FIXTURE@", text.rstrip("\n")))
    os.chmod(path, 0o755)
    return path

