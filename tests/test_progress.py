"""synthsae.progress: a tqdm bar on a terminal, a line per 5% elsewhere."""

from __future__ import annotations

import io

import pytest
from tqdm.std import tqdm

from synthsae.progress import LineProgress, progress_bar, write


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(total: int, updates: int, **kw) -> list[str]:
    out = io.StringIO()
    bar = progress_bar(total, "train topk", file=out, unit="step", **kw)
    for i in range(updates):  # as in the trainer: the postfix of a step, then its update
        bar.set_postfix(loss=f"{1 / (i + 1):.3g}", l0="8.0")
        bar.update(1)
    bar.close()
    return out.getvalue().splitlines()


def test_off_a_terminal_one_line_per_five_percent():
    lines = run(1000, 1000)
    assert len(lines) == 20
    assert lines[0].startswith("train topk:   5% (50/1000 step)") and "loss=0.02 l0=8.0" in lines[0]
    assert lines[-1].startswith("train topk: 100% (1000/1000 step)") and "eta" not in lines[-1]
    assert "eta" in lines[0]


@pytest.mark.parametrize("total, updates, expected", [(7, 7, 7), (3, 3, 3), (100_000, 100_000, 20), (1, 1, 1),
                                                      (1000, 333, 7)])
def test_never_more_than_one_line_per_bucket(total, updates, expected):
    """Short loops print at most one line per update, long ones 1/every lines; an interrupted loop
    prints its last count on close (333 = 6 buckets + the close line)."""
    lines = run(total, updates)
    assert len(lines) == expected
    assert lines[-1].split("(")[1].startswith(f"{updates}/{total}")


def test_resumed_run_counts_from_initial():
    lines = run(1000, 500, initial=500)
    assert len(lines) == 10 and lines[0].startswith("train topk:  55% (550/1000")


def test_every_and_unknown_total():
    assert len(run(1000, 1000, every=0.25)) == 4
    lines = run(0, 12)
    assert lines == [lines[0]] and lines[0].startswith("train topk: 12 step")
    with pytest.raises(ValueError, match="every"):
        progress_bar(10, "x", every=0.0)


def test_disabled_and_terminal():
    assert progress_bar(10, "x", enabled=False) is None
    assert isinstance(progress_bar(10, "x", file=io.StringIO()), LineProgress)
    term = FakeTerminal()
    bar = progress_bar(10, "x", file=term)
    assert isinstance(bar, tqdm) and not isinstance(bar, LineProgress)
    bar.update(10)
    bar.close()
    assert "\r" in term.getvalue()  # a bar redrawn in place


def test_write_and_close_twice():
    out = io.StringIO()
    bar = progress_bar(4, "sweep", file=out, unit="trial")
    bar.write("trial 3 failed: boom")
    bar.update(4)
    bar.close()
    bar.close()
    write("evaluating", file=out)
    assert out.getvalue().splitlines() == ["trial 3 failed: boom", out.getvalue().splitlines()[1], "evaluating"]
    assert out.getvalue().splitlines()[1].startswith("sweep: 100% (4/4 trial)")
