"""Stored device runs read back by `edgex hil report`: wrong-shaped JSON, FIFOs, symlinks, directories,
oversized files and over-long paths are refused cleanly (exit 2 or 3), never exit 70, never a hang."""
from __future__ import annotations

import json
import os

import pytest

from exporter.errors import IntegrityError, UsageError
from exporter.hil import run_files
from exporter.hil.run_files import load_runs, run_problem
from tests.test_cli import run

pytestmark = pytest.mark.timeout(60)

GOOD = {"status": "pass", "created": "2025-01-01T00:00:00+00:00", "bundle": "b", "complete": True,
        "device": {"transport": "local", "id": "host"}, "plan": {}, "notes": [], "checks": [],
        "result": {"runtime": "ai_edge_litert", "runtime_version": "1.0", "accuracy": 97.5},
        "measurements": {"latency": {"value": 1.5, "unit": "ms"}, "ram": {"value": 4096, "unit": "bytes"}},
        "estimates": {"latency": {"estimated": 2.0, "measured": 1.5, "error_pct": 33.3}}}


@pytest.fixture
def bundle(tmp_path):
    """A folder with one good run under hil/ (load_runs needs nothing else)."""
    (tmp_path / "b" / "hil").mkdir(parents=True)
    (tmp_path / "b" / "hil" / "a-good.json").write_text(json.dumps(GOOD))
    return tmp_path / "b"


def report(bundle):
    return run(["hil", "report", str(bundle)])


def test_a_good_run_is_reported(bundle):
    [loaded] = load_runs(bundle)
    assert loaded["status"] == "pass" and loaded["path"].endswith("a-good.json")
    result = report(bundle)
    assert result.exit_code == 0 and "1.500 ms" in result.stdout


@pytest.mark.reliability(40)
@pytest.mark.parametrize("content,problem", [
    ("[1, 2]", "an array, not an object"),
    ('"a string"', "a string, not an object"),
    ("5", "a number, not an object"),
    ("null", "null, not an object"),
    (json.dumps({**GOOD, "measurements": 5}), '"measurements" is a number'),
    (json.dumps({**GOOD, "measurements": {"latency": 5}}), '"measurements.latency" is not an object'),
    (json.dumps({**GOOD, "measurements": {"latency": {"value": "fast"}}}), "latency.value"),
    (json.dumps({**GOOD, "measurements": {"latency": {"value": None}}}), "latency.value"),
    (json.dumps({**GOOD, "estimates": {"latency": {"error_pct": [1]}}}), "error_pct"),
    (json.dumps({**GOOD, "result": {"accuracy": "high"}}), "result.accuracy"),
    (json.dumps({**GOOD, "result": []}), '"result" is an array'),
    (json.dumps({**GOOD, "device": {"id": {"x": 1}}}), "device.id"),
    (json.dumps({**GOOD, "created": 12}), '"created" is a number'),
    (json.dumps({**GOOD, "complete": "yes"}), '"complete" is a string'),
    (json.dumps({**GOOD, "notes": [1]}), '"notes"'),
    ('{"measurements": {"latency": {"value": NaN}}}', "latency.value"),
    ("{not json", "not valid JSON"),
    (b'{"status": "\xff\xfe"}', "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
])
def test_wrong_shaped_runs_are_refused_naming_the_file(bundle, content, problem):
    (bundle / "hil" / "b-bad.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(IntegrityError, match="b-bad.json") as info:
        load_runs(bundle)
    assert problem in str(info.value) and info.value.exit_code == 3
    result = report(bundle)
    assert result.exit_code == 3 and "b-bad.json" in result.stderr and "internal error" not in result.stderr


@pytest.mark.reliability(40)
def test_special_files_named_json_are_refused_without_blocking(bundle, tmp_path):
    hil = bundle / "hil"
    os.mkfifo(hil / "fifo.json")     # opening it for reading would wait for a writer forever (timeout: 60 s)
    result = report(bundle)
    assert result.exit_code == 3 and "fifo.json is a FIFO" in result.stderr
    (hil / "fifo.json").unlink()
    (tmp_path / "outside.json").write_text(json.dumps(GOOD))
    (hil / "link.json").symlink_to(tmp_path / "outside.json")
    with pytest.raises(IntegrityError, match="link.json is a symlink"):
        load_runs(bundle)
    (hil / "link.json").unlink()
    (hil / "dir.json").mkdir()
    with pytest.raises(IntegrityError, match="dir.json is a directory"):
        load_runs(bundle)


def test_oversized_run_is_refused_before_parsing(bundle, monkeypatch):
    monkeypatch.setattr(run_files, "MAX_RUN_BYTES", 1000)
    (bundle / "hil" / "big.json").write_text(json.dumps({**GOOD, "notes": ["x" * 2000]}))
    with pytest.raises(IntegrityError, match="big.json is larger than 1,000 bytes"):
        load_runs(bundle)


def test_temporaries_and_other_names_are_skipped(bundle):
    (bundle / "hil" / ".run-abc.json").write_text("{half-writ")        # a run being written
    (bundle / "hil" / "notes.txt").write_text("not a run")
    assert [r["status"] for r in load_runs(bundle)] == ["pass"]


def test_no_hil_folder_means_no_runs(tmp_path):
    assert load_runs(tmp_path) == [] and load_runs(tmp_path / "missing") == []
    (tmp_path / "hil").write_text("a file, not a folder")
    with pytest.raises(IntegrityError, match="not a directory"):
        load_runs(tmp_path)


def test_markup_in_a_run_file_is_shown_literally(bundle):
    (bundle / "hil" / "b-markup.json").write_text(json.dumps({**GOOD, "created": "[/]", "status": "[bold]x[/bold]",
                                                               "device": {"transport": "[/x]", "id": "[red]"}}))
    result = report(bundle)
    assert result.exit_code == 0, result.stderr
    assert "[bold]x[/bold]" in result.stdout and "[/x]:[red]" in result.stdout


@pytest.mark.reliability(40)
@pytest.mark.parametrize("command", [["hil", "report"], ["hil", "run", "--device", "local"]])
def test_over_long_bundle_paths(tmp_path, command):
    for path in (tmp_path / ("a" * 5000), tmp_path / "/".join(["b" * 200] * 25)):
        args = command[:2] + [str(path)] + command[2:]
        result = run(args)
        assert result.exit_code == 2, (result.exit_code, result.stderr[:300])
        assert "path too long" in result.stderr and len(result.stderr) < 400, "one short line"
    with pytest.raises(UsageError, match="NUL"):
        run_files.check_path("bad\0path")


def test_verify_of_an_over_long_path_is_refused(tmp_path):
    result = run(["verify", str(tmp_path / ("a" * 5000))])
    assert result.exit_code in (2, 3) and "internal error" not in result.stderr, result.stderr[:300]


def test_a_run_written_by_edgex_reads_back(bundle):
    written = run_files.store_run(bundle, {**GOOD, "created": "2025-02-02T10:00:00+00:00"})
    assert written.name == "20250202T100000+0000-host.json"
    assert run_problem(json.loads(written.read_text())) is None
    assert sorted(r["created"][:10] for r in load_runs(bundle)) == ["2025-01-01", "2025-02-02"]
    assert not list((bundle / "hil").glob(".run-*")), "no temporary left"
