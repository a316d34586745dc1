"""Conformance of every metric family in the registry (`synthsae.metrics.FAMILIES`).

Each family: every key it declares has a section of `Report.table()`, a one-line doc and a row in
docs/metrics.md; every key it produces is declared; a NaN always comes with a reason. The checks
are functions (`declaration_problems`, `report_problems`) so that the tests can show they fail on
a fake family without registering it for good.
"""

import math
import pkgutil
import re
from pathlib import Path

import pytest
import torch

from synthsae.metrics import (
    FAMILIES,
    LinearSAE,
    Family,
    MetricKey,
    Output,
    all_keys,
    evaluate,
    all_families,
    key_spec,
    sections,
)
import synthsae.metrics.families as families_pkg
from synthsae.testing.metrics import ExplicitWorld

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
FAST = dict(n=2000, batch_size=700, lipschitz_power_iters=3, lipschitz_samples=16, steering_samples=16)
ALL = tuple(f.name for f in all_families())


def documented_keys(text: str) -> set[str]:
    """Keys of the `| key | ... |` tables of docs/metrics.md: the first backticked word of each row.
    Tables with another first header (e.g. stability(), not an `evaluate` family) are skipped."""
    keys, in_table = set(), False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == "key":
            in_table = True
        elif in_table and not set(cells[0]) <= set("-: "):
            found = re.match(r"`([^`]+)`", cells[0])
            assert found, f"docs/metrics.md: a key row without a `key`: {line!r}"
            keys.add(found.group(1))
    return keys


DOCUMENTED = documented_keys(DOCS.read_text())


def declaration_problems(family: type[Family], documented: set[str]) -> list[str]:
    """What is wrong with a family's declarations (empty when it conforms)."""
    out = []
    titles = set(sections())
    for k in family.keys:
        if k.section not in titles:
            out.append(f"{k.name}: section {k.section!r} is not a Report section")
        if k.name not in documented:
            out.append(f"{k.name}: not documented in docs/metrics.md")
        if not k.doc.strip():
            out.append(f"{k.name}: no one-line doc")
    if family.timed and f"timing.{family.name}" not in documented:
        out.append(f"timing.{family.name}: not documented in docs/metrics.md")
    return out


def report_problems(report) -> list[str]:
    """Keys of a Report without a declaration, a section or a doc row, and NaNs without a reason."""
    out = []
    titles = set(sections())
    for key, value in report.metrics.items():
        spec = key_spec(key)
        if spec is None:
            out.append(f"{key}: declared by no family")
            continue
        if spec.section not in titles:
            out.append(f"{key}: no section")
        if spec.name not in DOCUMENTED:
            out.append(f"{key}: not documented")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            out.append(f"{key}: {type(value).__name__} is not a number")
        elif math.isnan(value) and not report.reason(key):
            out.append(f"{key}: NaN without a not_applicable reason")
        elif math.isinf(value):
            out.append(f"{key}: infinite")
    return out


# ---- declarations ---------------------------------------------------------------------------------

@pytest.mark.parametrize("family", all_families(), ids=lambda f: f.name)
def test_every_declared_key_has_a_section_a_doc_and_a_docs_row(family):
    assert declaration_problems(family, DOCUMENTED) == []


def test_every_documented_key_is_declared():
    declared = {k.name for k in all_keys()}
    assert DOCUMENTED - declared == set()


def test_one_module_per_family():
    modules = {info.name for info in pkgutil.iter_modules(families_pkg.__path__)}
    owners = [f.__module__.rsplit(".", 1)[1] for f in all_families()]
    assert sorted(owners) == sorted(modules)  # each module registers exactly one family
    assert [f.name for f in all_families()] == list(ALL)


class _Undocumented(Family):
    name = "fake_undocumented"
    order = 999
    core = True
    keys = (MetricKey("fake.undocumented_value", "a key nobody wrote into docs/metrics.md", "Reconstruction"),)

    def finalize(self) -> Output:
        return Output(metrics={"fake.undocumented_value": 1.0})


def test_the_checks_fail_on_an_undocumented_key():
    assert declaration_problems(_Undocumented, DOCUMENTED) == [
        "fake.undocumented_value: not documented in docs/metrics.md"]
    assert "fake.undocumented_value" not in DOCUMENTED


def test_a_key_without_a_section_or_doc_cannot_be_declared():
    with pytest.raises(ValueError, match="section"):
        MetricKey("fake.x", "a doc", "")
    with pytest.raises(ValueError, match="one-line"):
        MetricKey("fake.x", "", "Reconstruction")
    with pytest.raises(ValueError, match="example"):
        MetricKey("fake.rate@t", "a doc", "Reconstruction", pattern=r"fake\.rate@[0-9.]+", example="fake.rate")


def test_the_docs_parser_reads_one_key_per_row():
    text = "| key | formula |\n|---|---|\n| `a.b` | x |\n| `c.d@t` | y |\n\n| other | z |\n|---|---|\n| `e.f` | w |\n"
    assert documented_keys(text) == {"a.b", "c.d@t"}


# ---- evaluated reports ------------------------------------------------------------------------------

def _orthonormal(m, d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0][:m].float()


def _sae(D, seed, noise=0.3):
    g = torch.Generator().manual_seed(seed)
    W = D + noise * torch.randn(D.shape, generator=g) / D.shape[1] ** 0.5
    return LinearSAE(W.T.clone(), W, b_enc=torch.full((D.shape[0],), -0.05))


def _worlds():
    """Worlds on which each family is applicable (hierarchy + groups), and degenerate ones."""
    parents = [-1, -1, 0, 1] + [-1] * 6
    groups = [-1, -1, -1, -1, 0, 0, 0, 1, 1, -1]
    rich = ExplicitWorld(_orthonormal(10, 20, 0), [0.4] * 4 + [0.3] * 6, parents=parents, groups=groups,
                         magnitudes=(0.5, 1.5))
    silent = ExplicitWorld(_orthonormal(6, 12, 1), [0.0] * 6, parents=[-1, 0, -1, -1, -1, -1], noise=0.1,
                           groups=[0, 0, 1, 1, -1, -1])
    return rich, silent


@pytest.mark.parametrize("family", all_families(), ids=lambda f: f.name)
def test_a_family_produces_only_declared_documented_keys_and_explains_nans(family):
    rich, _ = _worlds()
    report = evaluate(_sae(rich.dictionary, 1), rich, **FAST, seed=2, metrics=(family.name,),
                      amortization_l1=0.05, amortization_l2=0.1)
    assert family.name not in report.not_applicable
    produced = [k for k in report.metrics if family.declares(k)]
    assert produced, family.name
    assert report_problems(report) == []


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_every_key_of_every_family_conforms_on_a_rich_world(l2):
    rich, _ = _worlds()
    report = evaluate(_sae(rich.dictionary, 3), rich, **FAST, seed=4, metrics=ALL, amortization_l1=0.05,
                      amortization_l2=l2)
    assert report_problems(report) == []
    declared_once = {k.name for f in all_families() for k in f.keys}
    seen = {key_spec(k).name for k in report.metrics}
    missing = declared_once - seen - {"lipschitz.exact_bound", "lipschitz.exact_near_max",
                                      "lipschitz.exact_jacobian_max"}
    assert missing == set()
    if l2 == 0.0:
        assert "lipschitz.exact" in report.not_applicable


def test_nans_of_a_world_where_nothing_fires_have_reasons():
    # no true feature ever fires (samples are pure noise): firing scores, shrinkage, absorption are undefined;
    # downstream refuses such a world (its readout has no scale)
    _, silent = _worlds()
    sae = LinearSAE.from_dictionary(silent.dictionary, threshold=10.0)  # never fires on the noise either
    report = evaluate(sae, silent, **FAST, metrics=tuple(n for n in ALL if n != "downstream"))
    assert math.isnan(report["recovery.firing_f1"]) and report.reason("recovery.firing_f1")
    assert math.isnan(report["recovery.shrinkage_median"]) and report.reason("recovery.shrinkage_median")
    assert math.isnan(report["recovery.mmcs_sae_to_true_alive"])
    assert report_problems(report) == []


def test_not_applicable_families_are_named_with_their_reason(flat_world):
    report = evaluate(LinearSAE.from_dictionary(flat_world.dictionary), flat_world, **FAST, metrics=ALL)
    assert "hierarchy" in report.not_applicable["absorption"]
    assert "groups" in report.not_applicable["subspaces"]
    assert "amortization_l1" in report.not_applicable["amortization"]
    assert report_problems(report) == []


class _NanWithoutReason(Family):
    name = "fake_nan"
    order = 999
    core = True
    keys = (MetricKey("recovery.fake_nan", "a NaN nobody explains", "Recovery of the true dictionary"),)

    def finalize(self) -> Output:
        return Output(metrics={"recovery.fake_nan": float("nan")})


class _Undeclared(Family):
    name = "fake_undeclared"
    order = 999
    core = True
    keys = (MetricKey("recovery.fake_declared", "declared", "Recovery of the true dictionary"),)

    def finalize(self) -> Output:
        return Output(metrics={"recovery.fake_other": 0.5})


def test_the_report_checks_fail_on_a_fake_family(monkeypatch, flat_world):
    # registered for this test only: monkeypatch restores the registry afterwards
    monkeypatch.setitem(FAMILIES._items, _NanWithoutReason.name, _NanWithoutReason)
    report = evaluate(LinearSAE.from_dictionary(flat_world.dictionary), flat_world, **FAST, metrics=())
    assert "recovery.fake_nan: not documented" in report_problems(report)
    assert "recovery.fake_nan: NaN without a not_applicable reason" in report_problems(report)


def test_evaluate_refuses_a_key_its_family_did_not_declare(monkeypatch, flat_world):
    monkeypatch.setitem(FAMILIES._items, _Undeclared.name, _Undeclared)
    with pytest.raises(ValueError, match="does not declare"):
        evaluate(LinearSAE.from_dictionary(flat_world.dictionary), flat_world, **FAST, metrics=())


def test_registry_is_restored_after_fake_families():
    assert {f.name for f in all_families()} == set(ALL)


def test_table_prints_every_key_under_its_declared_section(tree_world):
    report = evaluate(LinearSAE.from_dictionary(tree_world.dictionary), tree_world, **FAST)
    text = report.table()
    order = [text.index(f"\n{t}\n") for t in sections() if f"\n{t}\n" in text]
    assert order == sorted(order) and len(order) >= 8
    for key in report.metrics:
        title = key_spec(key).section
        block = text.split(f"\n{title}\n", 1)[1].split("\n\n", 1)[0]
        assert key.split(".", 1)[1] in block, key
