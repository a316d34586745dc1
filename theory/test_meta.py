"""Meta-test: every claim test in theory/ states Claim / Source / Conditions / Check and is listed in
theory/README.md's table (and every test the table names exists).

Read from the source (ast), not by importing: the check needs no hypothesis run.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

THEORY = Path(__file__).resolve().parent
PARTS = ("Claim", "Source", "Conditions", "Check")


def claim_modules() -> list[Path]:
    return sorted(p for p in THEORY.glob("test_*.py") if p.name != Path(__file__).name)


def claim_tests() -> dict[tuple[str, str], str]:
    """(file name, test name) -> docstring ("" when absent), for every module-level test function."""
    tests = {}
    for path in claim_modules():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
                tests[(path.name, node.name)] = ast.get_docstring(node) or ""
    return tests


def listed_tests(readme: str) -> list[tuple[str, str]]:
    """(file name, test name) of every `file.py::test` in the README's claims table; a row written
    `…::test` refers to the file of the row above it."""
    listed, last_file = [], None
    table = readme.split("## Claims", 1)[1]
    for line in table.splitlines():
        if not line.startswith("|"):
            continue
        for ref in re.findall(r"`([^`\s]+::[^`\s]+)`", line):
            file, name = ref.split("::")
            if file in ("…", "..."):
                assert last_file is not None, f"theory/README.md: {line!r} says '…' with no file above it"
                file = last_file
            last_file = file
            listed.append((file, name))
    return listed


def missing_parts(doc: str) -> list[str]:
    """The parts absent from a docstring, or out of order, or with nothing after their label."""
    found = []
    for part in PARTS:
        # "**Part**: text" or "**Part** (a qualifier): text", each followed by some text
        match = re.search(rf"\*\*{part}\*\*(?: \([^)]*\))?:\s*\S", doc, flags=re.S)
        found.append(match.start() if match else -1)
    bad = [part for part, pos in zip(PARTS, found) if pos < 0]
    if not bad and found != sorted(found):
        bad = [f"order {' / '.join(PARTS)}"]
    return bad


def test_claim_modules_follow_the_naming_scheme():
    """Every test module of theory/ is a claim module, so no test escapes the checks below."""
    names = [p.name for p in claim_modules()]
    assert names, "theory/ has no claim modules"
    assert all(re.fullmatch(r"test_theory_\w+\.py", n) for n in names), names


def test_every_claim_test_states_claim_source_conditions_check():
    tests = claim_tests()
    assert len(tests) >= 20  # the parser finds the suite (29 tests when this was written)
    bad = {f"{f}::{t}": missing_parts(doc) for (f, t), doc in tests.items() if missing_parts(doc)}
    assert not bad, f"docstrings without **Claim** / **Source** / **Conditions** / **Check**: {bad}"


def test_every_claim_test_is_in_the_readme_table_and_every_row_exists():
    tests = set(claim_tests())
    listed = listed_tests((THEORY / "README.md").read_text())
    assert not sorted(tests - set(listed)), f"tests missing from theory/README.md: {sorted(tests - set(listed))}"
    assert not sorted(set(listed) - tests), f"README rows naming no test: {sorted(set(listed) - tests)}"


def test_the_checks_can_fail():
    """The helpers above reject what they must (so the two tests above are not vacuous)."""
    assert missing_parts("**Claim**: a. **Source**: b. **Conditions**: c.") == ["Check"]
    assert missing_parts("**Claim**: a. **Check**: d. **Source**: b. **Conditions**: c.") == [
        "order Claim / Source / Conditions / Check"]
    assert missing_parts("**Claim**: a. **Source**: b. **Conditions**: c. **Check** (exact): d.") == []
    assert missing_parts("**Claim**: a. **Source**: b. **Conditions**: c. **Check**:") == ["Check"]
    rows = "## Claims\n| 1 | x | y | `test_theory_a.py::test_one` | holds |\n| 1 | x | y | `…::test_two` | holds |\n"
    assert listed_tests(rows) == [("test_theory_a.py", "test_one"), ("test_theory_a.py", "test_two")]
