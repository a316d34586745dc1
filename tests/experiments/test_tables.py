"""synthsae.tables: one number formatter, one NaN -> null rule, one CSV writer (used by run, sweep, recipes)."""

import csv
import io
import json
import math

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from synthsae import tables


def test_clean_turns_non_finite_into_null_recursively_and_scalars_into_python():
    data = {"a": math.nan, "b": [1.0, math.inf, np.float32(0.5)], "c": (torch.tensor(2.0), "x"), 3: {"d": -math.inf}}
    cleaned = tables.clean(data)
    assert cleaned == {"a": None, "b": [1.0, None, 0.5], "c": [2.0, "x"], "3": {"d": None}}
    json.dumps(cleaned, allow_nan=False)  # strict JSON
    assert math.isnan(tables.restore(None)) and tables.restore(1.5) == 1.5
    restored = tables.restore_row({"label": None, "x": None}, ("label",))
    assert restored["label"] is None and math.isnan(restored["x"])


def test_fmt():
    assert [tables.fmt(v) for v in (math.nan, None, 3, 3.0, 0.123456, 12345.678, True, "a|b", np.float64(2.5))] == \
        ["n/a", "n/a", "3", "3", "0.1235", "1.235e+04", "True", "a|b", "2.5"]


@given(st.lists(st.floats(allow_nan=True, allow_infinity=False, width=64), min_size=1, max_size=20))
def test_csv_round_trips_floats_exactly_and_writes_nan_as_empty(values):
    rows = [{"i": i, "v": v} for i, v in enumerate(values)]
    text = tables.to_csv(rows)
    back = list(csv.DictReader(io.StringIO(text)))
    for row, v in zip(back, values):
        if math.isnan(v):
            assert row["v"] == ""
        else:
            assert float(row["v"]) == v


def test_csv_columns_in_first_seen_order_with_missing_cells_empty():
    text = tables.to_csv([{"a": 1}, {"b": "x", "a": 2}])
    assert text.splitlines() == ["a,b", "1,", "2,x"]


def test_markdown_table_escapes_and_formats():
    lines = tables.markdown_table([{"name": "a|b", "v": math.nan}, {"name": "c", "v": 0.5}])
    assert lines[0] == "| name | v |" and lines[2] == "| a\\|b | n/a |" and lines[3] == "| c | 0.5 |"
    assert tables.markdown_table([]) == ["(no rows)"]
