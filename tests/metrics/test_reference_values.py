"""The registry-driven `evaluate` gives the numbers of the hand-wired `evaluate` it replaced.

data/reference_reports.json holds, for each seeded case of reference_cases.py, the Report metrics
(timing aside), not_applicable reasons, notes and tables computed by the code before the registry
(captured at commit "tests/metrics: seeded reference cases ..."). The refactor moved no
floating-point operation, so values agree to the last bit on the machine that captured them; the
tolerance below (1e-12 relative) only leaves room for another CPU's BLAS round-off.
One deliberate change since: `amortization.code_error` is pooled over samples (a per-sample ratio
exploded where the exact code is zero); its three pinned values were recomputed then.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from synthsae.metrics import evaluate

REFERENCE = json.loads((Path(__file__).parent / "data" / "reference_reports.json").read_text())


def _same(got, want) -> bool:
    if want is None:
        return isinstance(got, float) and math.isnan(got)
    return got == pytest.approx(want, rel=1e-12, abs=1e-14)


def test_every_reference_case_is_pinned(reference_cases):
    assert sorted(reference_cases) == sorted(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_metrics_match_the_hand_wired_evaluate(name, reference_cases):
    sae, world, kw = reference_cases[name]
    report = evaluate(sae, world, **kw)
    want = REFERENCE[name]
    got = {k: v for k, v in report.metrics.items() if not k.startswith("timing.")}
    assert sorted(got) == sorted(want["metrics"])
    wrong = {k: (got[k], v) for k, v in want["metrics"].items() if not _same(got[k], v)}
    assert not wrong
    assert sorted(k for k in report.metrics if k.startswith("timing.")) == want["timing_keys"]
    # every old reason is still given, word for word; new ones only explain NaNs
    assert {k: report.not_applicable.get(k) for k in want["not_applicable"]} == want["not_applicable"]
    assert report.notes == want["notes"]
    assert sorted(report.tables) == sorted(want["tables"])
    for tname, columns in want["tables"].items():
        table = report.tables[tname]
        assert sorted(table) == sorted(columns), tname
        for col, values in columns.items():
            got_col = np.asarray(table[col]).tolist()
            assert len(got_col) == len(values), (tname, col)
            bad = [i for i, (g, w) in enumerate(zip(got_col, values)) if not _same(g, w)]
            assert not bad, (tname, col, bad[:5])
