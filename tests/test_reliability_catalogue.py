"""Every case of the reliability catalogue (../shared/reliability.md) is covered by at least one test.

A test says which cases it covers with `@pytest.mark.reliability(N, ...)` (registered in
pyproject.toml). This file reads the test sources with `ast`, without importing or running them,
collects those numbers and checks them against the catalogue's numbered cases. The catalogue lives
in the `shared` folder beside the repository; where it is absent, the 43 cases it had when the
markers were added (CASES) are required instead. Never skipped.
"""
from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent
CATALOGUE = Path(__file__).resolve().parents[2] / "shared" / "reliability.md"
CASES = range(1, 44)          # the catalogue's cases when it is not there to read
MARKER = "reliability"
# Cases whose behaviour an open issue builds; each must stay uncovered until that issue lands, and
# must leave this table the moment a test covers it (test_pending_cases_are_really_pending).
PENDING: dict[int, str] = {}

# "N. Title": a number at the start of a line or after a space, then ". " and text on the same line.
# Several items can share a line ("7. Misspelled key ... 8. Wrong type ..."); "1.5" or "→ 2." at
# the end of a line are not items.
_ITEM = re.compile(r"(?:^|(?<=\s))(\d{1,3})\.[ \t]+(?=\S)")


def parse_catalogue(text: str) -> dict[int, str]:
    """The numbered cases of the catalogue: number -> the text on its first line.

    Numbers are taken in increasing order only, so a stray "N. " inside an item's text (which would
    go back or repeat) is not mistaken for a case.
    """
    cases: dict[int, str] = {}
    last = 0
    for line in text.splitlines():
        found = [m for m in _ITEM.finditer(line)]
        for i, match in enumerate(found):
            number = int(match.group(1))
            if number <= last:
                continue
            end = found[i + 1].start() if i + 1 < len(found) else len(line)
            cases[number] = line[match.end():end].strip()
            last = number
    return cases


def catalogue() -> dict[int, str]:
    """The catalogue's cases (number -> title), or CASES with no titles when the file is absent."""
    if CATALOGUE.is_file():
        return parse_catalogue(CATALOGUE.read_text(encoding="utf-8"))
    return {n: f"(no title: {CATALOGUE} not found)" for n in CASES}


def _is_reliability_mark(node: ast.expr) -> bool:
    """`pytest.mark.reliability` or `mark.reliability` (after `from pytest import mark`)."""
    if not (isinstance(node, ast.Attribute) and node.attr == MARKER):
        return False
    owner = node.value
    if isinstance(owner, ast.Attribute):
        return owner.attr == "mark" and isinstance(owner.value, ast.Name) and owner.value.id == "pytest"
    return isinstance(owner, ast.Name) and owner.id == "mark"


def _marks(node: ast.expr) -> list[ast.Call]:
    """The reliability mark calls in a decorator or in a `pytestmark = ...` value."""
    if isinstance(node, (ast.List, ast.Tuple)):
        return [call for element in node.elts for call in _marks(element)]
    if isinstance(node, ast.Call) and _is_reliability_mark(node.func):
        return [node]
    return []


def collect_marks(root: Path = TESTS) -> tuple[dict[int, list[str]], list[str]]:
    """(case -> the tests marked with it, problems with the marks themselves) for every test file under root."""
    covered: dict[int, list[str]] = defaultdict(list)
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found: list[tuple[str, ast.Call]] = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found += [(f"{rel}::{node.name}", call) for d in node.decorator_list for call in _marks(d)]
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                      for t in node.targets):
                found += [(f"{rel} (pytestmark)", call) for call in _marks(node.value)]
        for where, call in found:
            numbers = [a.value for a in call.args if isinstance(a, ast.Constant) and type(a.value) is int]
            if not call.args or call.keywords or len(numbers) != len(call.args):
                problems.append(f"{where}: line {call.lineno}: reliability() takes case numbers only "
                                f"(integer literals), got {ast.unparse(call)}")
            for number in numbers:
                covered[number].append(where)
    return covered, problems


def test_catalogue_is_found_or_the_known_cases_are_used():
    cases = catalogue()
    assert set(CASES) <= set(cases), (
        f"{CATALOGUE}: numbered cases {sorted(set(CASES) - set(cases))} not found; "
        f"parsed {sorted(cases)}")
    assert all(cases.values()), [n for n, title in cases.items() if not title]


def test_every_catalogue_case_is_covered_by_a_test():
    cases = catalogue()
    covered, _ = collect_marks()
    missing = [n for n in sorted(cases) if not covered.get(n) and n not in PENDING]
    assert not missing, (
        f"{len(missing)} of the {len(cases)} reliability cases have no test marked "
        f"@pytest.mark.reliability(N):\n" + "\n".join(f"  {n}. {cases[n]}" for n in missing))


def test_pending_cases_are_really_pending():
    covered, _ = collect_marks()
    done = {n: covered[n] for n in PENDING if covered.get(n)}
    assert not done, f"cases now covered by tests; remove them from PENDING: {done}"


def test_marks_name_real_cases():
    cases = catalogue()
    covered, problems = collect_marks()
    unknown = [f"{where}: case {n} is not in the catalogue" for n, tests in sorted(covered.items())
               if n not in cases for where in tests]
    assert not problems + unknown, "\n".join(problems + unknown)


def test_without_the_catalogue_the_known_cases_are_required(monkeypatch, tmp_path):
    """No shared folder beside the repository: the check still runs, against CASES."""
    monkeypatch.setitem(globals(), "CATALOGUE", tmp_path / "missing.md")
    assert sorted(catalogue()) == list(CASES)


def test_parser_reads_items_sharing_a_line_and_skips_figures():
    text = ("Exit codes: 0 all pass · 1 a limit. 130 interrupted.\n## Model\n1. First → refused (3).\n"
            "2. Second, sparsity 1.5 → 2.\n   more text → 2. continued\n"
            "3. Third → 2 naming it. 4. Fourth\n## Later\n5. Fifth\n")
    assert parse_catalogue(text) == {1: "First → refused (3).", 2: "Second, sparsity 1.5 → 2.",
                                     3: "Third → 2 naming it.", 4: "Fourth", 5: "Fifth"}


def test_collector_reads_decorators_pytestmark_and_refuses_bad_arguments(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "import pytest\nfrom pytest import mark\n"
        "pytestmark = [pytest.mark.timeout(5), pytest.mark.reliability(9)]\n"
        "@pytest.mark.parametrize('a', [1])\n@pytest.mark.reliability(1, 2)\ndef test_a(a): pass\n"
        "@mark.reliability(3)\nclass TestB:\n    @pytest.mark.reliability(4)\n    def test_c(self): pass\n"
        "@pytest.mark.reliability('5')\ndef test_d(): pass\n@pytest.mark.other(6)\ndef test_e(): pass\n")
    covered, problems = collect_marks(tmp_path / "tests")
    assert dict(covered) == {9: ["tests/test_x.py (pytestmark)"], 1: ["tests/test_x.py::test_a"],
                             2: ["tests/test_x.py::test_a"], 3: ["tests/test_x.py::TestB"],
                             4: ["tests/test_x.py::test_c"]}
    assert len(problems) == 1 and "test_d" in problems[0] and "'5'" in problems[0]
