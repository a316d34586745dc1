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


@given(st.lists(st.one_of(st.floats(width=64), st.none()), min_size=1, max_size=20))
def test_the_csv_reader_reads_back_what_the_writer_wrote(values):
    # +-inf is a measured value and survives; NaN and None are "not measured" and read back as NaN
    back = tables.from_csv(tables.to_csv([{"v": v} for v in values]))["v"]
    want = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    assert back.dtype == np.float64 and np.array_equal(back, want, equal_nan=True)


def test_rows_and_columns_give_the_same_csv_and_types_round_trip():
    rows = [{"i": 1, "b": True, "x": math.inf, "s": "a,b"}, {"i": -2, "b": False, "x": -math.inf, "s": "c"}]
    columns = {"i": np.array([1, -2]), "b": np.array([True, False]), "x": [math.inf, -math.inf], "s": ["a,b", "c"]}
    text = tables.to_csv(rows)
    assert text == tables.to_csv(columns)
    assert text.splitlines() == ["i,b,x,s", "1,True,inf,\"a,b\"", "-2,False,-inf,c"]
    back = tables.from_csv(text)
    assert back["i"].dtype == np.int64 and back["b"].dtype == bool and back["s"].tolist() == ["a,b", "c"]
    assert back["x"].tolist() == [math.inf, -math.inf]


def test_one_formatter_with_a_digits_option():
    from synthsae.experiments.recipes import _common
    from synthsae.metrics import format_value

    assert format_value is tables.fmt
    assert tables.fmt(0.123456, digits=2) == "0.12" and _common.fmt(0.123456) == "0.123" and _common.fmt(None) == "n/a"


def test_headline_and_plotted_columns_come_from_the_metric_registry():
    from synthsae import metrics
    from synthsae.experiments import run, sweep

    assert run.HEADLINE is metrics.HEADLINE and sweep.PLOTTED is metrics.PLOTTED
    assert ("MCC", "recovery.mcc") in metrics.HEADLINE
