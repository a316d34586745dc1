"""The README's Quick start runs as written (users copy it first)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start() -> str:
    text = README.read_text()
    section = text.split("## Quick start", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, "README.md has no python block under '## Quick start'"
    return match.group(1)


@pytest.mark.slow
def test_quick_start_runs_verbatim(capsys):
    namespace: dict = {}
    exec(compile(quick_start(), "README.md#quick-start", "exec"), namespace)
    assert namespace["exact"].converged.all()  # the certified codes it promises
    out = capsys.readouterr().out
    assert out.startswith("World: m = 128 features") and "explained_variance" in out and "mcc" in out
