"""Tables and serialization: one number formatter, one NaN -> null rule, one CSV writer.

Rules used by `run`, `sweep` and the recipes (and meant for every other table writer):

- `clean(v)`: the value as stored. numpy / torch scalars become Python numbers; NaN and +-inf
  become None ("not measured / not defined": JSON has no NaN). Containers are cleaned recursively.
- `restore(v)`: the reverse for a number read back: None -> NaN.
- `fmt(v)`: the value as shown to a reader: None / NaN -> "n/a", integers (and integer-valued
  floats below 1e9) without decimals, other floats to 4 significant digits.
- `to_csv(rows)`: row dicts -> CSV text, columns in first-seen order, a missing key or a NaN as an
  empty cell, floats in full precision (repr), so the CSV round-trips exactly.
- `markdown_table(rows)`: row dicts -> markdown lines, cells through `fmt`, pipes escaped.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

NA = "n/a"


def clean(v: Any) -> Any:
    """JSON-safe copy: NaN / inf -> None, numpy / torch scalars -> Python, containers recursively."""
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 1) == 0:
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def restore(v: Any) -> Any:
    """A stored number back: None -> NaN (other values unchanged)."""
    return math.nan if v is None else v


def restore_row(row: dict[str, Any], text_columns: Sequence[str] = ()) -> dict[str, Any]:
    """A stored row back: None -> NaN except in `text_columns` (kept as stored)."""
    return {k: (v if k in text_columns else restore(v)) for k, v in row.items()}


def fmt(v: Any) -> str:
    """A value for a reader (see module docstring)."""
    v = clean(v)
    if v is None:
        return NA
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e9:
            return str(int(v))
        return f"{v:.4g}"
    return str(v)


def columns_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Union of the rows' keys, in first-seen order."""
    return list(dict.fromkeys(k for row in rows for k in row))


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Row dicts -> CSV text (see module docstring)."""
    cols = list(columns) if columns is not None else columns_of(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for row in rows:
        writer.writerow(["" if (v := clean(row.get(c))) is None else v for c in cols])
    return buf.getvalue()


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> Path:
    """`to_csv` written atomically."""
    from synthsae import io as sio

    return sio.atomic_write_text(path, to_csv(rows, columns))


def write_json(path: str | Path, obj: Any) -> Path:
    """`clean(obj)` as JSON, written atomically."""
    from synthsae import io as sio

    return sio.atomic_write_json(path, clean(obj))


def md(text: Any) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
                   headers: Sequence[str] | None = None) -> list[str]:
    """Markdown lines of a table (`headers` default to the column names)."""
    if not rows:
        return ["(no rows)"]
    cols = list(columns) if columns is not None else columns_of(rows)
    head = list(headers) if headers is not None else cols
    out = ["| " + " | ".join(md(h) for h in head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(md(fmt(row.get(c))) for c in cols) + " |" for row in rows]
    return out
