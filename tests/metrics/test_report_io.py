"""`Report.save` / `Report.load` round trip, and the one NaN -> null rule, CSV writer and formatter."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthsae.metrics import LinearSAE, Report, evaluate, format_value, from_csv, jsonable, rows_to_csv, to_csv

FAST = dict(n=2000, batch_size=700, lipschitz_power_iters=3, lipschitz_samples=16, steering_samples=16)


@pytest.fixture
def tree_report(tree_world):
    D = tree_world.dictionary
    sae = LinearSAE(D.T.clone(), D + 0.05, b_enc=np.full(12, -0.02, dtype=np.float32))
    return evaluate(sae, tree_world, **FAST)


def test_save_then_load_gives_an_equal_report(tmp_path, tree_report):
    assert any(math.isnan(v) for v in tree_report.metrics.values())  # NaN must survive as null and back
    tree_report.save(tmp_path / "r", plots=False)
    data = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert data["metrics"]["latents.rare_count"] is None
    back = Report.load(tmp_path / "r")
    assert back == tree_report
    assert math.isnan(back["latents.rare_count"]) and back.reason("latents.rare_count")
    assert back.tables["features"]["latent"].dtype == np.int64
    assert np.array_equal(back.features["cos"], tree_report.features["cos"])  # full precision
    assert back.table() == tree_report.table()
    assert set(back.figures()) == set(tree_report.figures())


def test_equality_sees_a_changed_value(tmp_path, tree_report):
    tree_report.save(tmp_path / "r", plots=False)
    back = Report.load(tmp_path / "r")
    back.metrics["recovery.mcc"] += 1e-12
    assert back != tree_report
    back = Report.load(tmp_path / "r")
    back.tables["features"]["cos"][0] += 1e-9
    assert back != tree_report
    back = Report.load(tmp_path / "r")
    back.not_applicable.pop("latents.rare")
    assert back != tree_report


def test_load_refuses_a_folder_without_a_report(tmp_path):
    with pytest.raises(ValueError, match="metrics.json"):
        Report.load(tmp_path)
    (tmp_path / "metrics.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="metrics"):
        Report.load(tmp_path)


def test_jsonable_is_the_nan_to_null_rule():
    value = {"a": np.float32(1.5), "b": float("nan"), "c": (np.array([1.0, np.inf]), np.int64(3)), "d": "x"}
    assert jsonable(value) == {"a": 1.5, "b": None, "c": [[1.0, None], 3], "d": "x"}


def test_format_value():
    assert format_value(float("nan")) == "n/a" and format_value(None) == "n/a"
    assert format_value(3.0) == "3" and format_value(np.int64(7)) == "7"
    assert format_value(0.123456) == "0.1235" and format_value(True) == "True"


def test_rows_to_csv_fills_missing_keys_with_empty_cells():
    text = rows_to_csv([{"a": 1, "b": float("nan")}, {"a": 2, "c": "x"}])
    assert text.splitlines() == ["a,b,c", "1,,", "2,,x"]


@settings(max_examples=60, deadline=None)
@given(ints=st.lists(st.integers(-10**12, 10**12), min_size=1, max_size=8), data=st.data())
def test_csv_round_trip_is_exact(ints, data):
    n = len(ints)
    floats = data.draw(st.lists(st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64),
                                          st.just(float("nan"))), min_size=n, max_size=n))
    table = {"i": np.array(ints, dtype=np.int64), "f": np.array(floats), "b": np.array(ints) > 0}
    back = from_csv(to_csv(table))
    assert back["i"].dtype == np.int64 and np.array_equal(back["i"], table["i"])
    assert np.array_equal(back["f"], table["f"], equal_nan=True)
    assert np.array_equal(back["b"], table["b"].astype(np.int64))
