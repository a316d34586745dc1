"""Tables and serialization: one number formatter, one NaN -> null rule, one CSV writer and reader.

Every table and result file of synthsae goes through here (`Report.save` / `Report.load`, `run`,
`sweep`, the recipes, the cells of the engine):

- `clean(v)`: the value as stored in JSON. numpy / torch scalars and arrays become Python numbers
  and lists, tuples become lists, dict keys strings; NaN and +-inf become None ("not measured /
  not defined": JSON has no NaN; the reason a value is missing is stored next to it, e.g. in
  `Report.not_applicable`). Containers are cleaned recursively.
- `restore(v)` / `restore_row` / `restore_arrays`: the reverse for numbers read back: None -> NaN.
- `fmt(v)`: the value as shown to a reader: None / NaN -> "n/a", integers (and integer-valued
  floats below 1e9) without decimals, other floats to 4 significant digits.
- `to_csv(data)`: row dicts (or a dict of equal-length columns) -> CSV text. Columns in first-seen
  order; a missing key, None or NaN is an empty cell; +-inf is `inf` / `-inf` (a measured value, not
  a missing one, and it reads back exactly); floats in full precision (repr); booleans as
  True / False. `from_csv(text)` reads it back into typed columns, so the CSV round-trips exactly.
- `markdown_table(rows)`: row dicts -> markdown lines, cells through `fmt`, pipes escaped.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthsae.errors import require

NA = "n/a"


# ---- the NaN -> null rule -------------------------------------------------------------------------
def clean(v: Any) -> Any:
    """JSON-safe copy (see the module docstring): NaN / inf -> None, numpy / torch -> Python."""
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if hasattr(v, "tolist") and callable(v.tolist) and not isinstance(v, (str, bytes)):
        v = v.tolist()  # numpy / torch scalars and arrays
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def restore(v: Any) -> Any:
    """A stored number back: None -> NaN (other values unchanged)."""
    return math.nan if v is None else v


def restore_row(row: dict[str, Any], text_columns: Sequence[str] = ()) -> dict[str, Any]:
    """A stored row back: None -> NaN except in `text_columns` (kept as stored)."""
    return {k: (v if k in text_columns else restore(v)) for k, v in row.items()}


def restore_arrays(v: Any) -> Any:
    """Stored arrays back: a (nested, rectangular) list of numbers / nulls -> float64 array (null ->
    NaN); dicts recursively; anything else unchanged."""
    if isinstance(v, dict):
        return {k: restore_arrays(x) for k, x in v.items()}
    if not isinstance(v, list):
        return v
    try:
        return np.array([restore(x) for x in v] if all(not isinstance(x, list) for x in v)
                        else [restore_arrays(x) for x in v], dtype=np.float64)
    except (ValueError, TypeError):
        return [restore_arrays(x) for x in v]


# ---- the number formatter -------------------------------------------------------------------------
def fmt(v: Any, digits: int = 4) -> str:
    """A value for a reader (see the module docstring); floats to `digits` significant digits."""
    v = clean(v)
    if v is None:
        return NA
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e9 else f"{v:.{digits}g}"
    return str(v)


# ---- CSV ------------------------------------------------------------------------------------------
def columns_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Union of the rows' keys, in first-seen order."""
    return list(dict.fromkeys(k for row in rows for k in row))


def _cell(v: Any) -> Any:
    """One CSV cell (see the module docstring)."""
    if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 1) == 0:
        v = v.item()  # numpy / torch scalar
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (list, tuple, dict)):
        return str(clean(v))
    return repr(v) if isinstance(v, float) else v  # repr: the shortest text that reads back to the same float


def to_csv(data: Sequence[dict[str, Any]] | Mapping[str, Any], columns: Sequence[str] | None = None) -> str:
    """Row dicts, or a dict of equal-length columns (a list column takes one dtype, as an array would),
    -> CSV text (see the module docstring). `columns`: which columns, in which order (default: all)."""
    if isinstance(data, Mapping):
        cols = list(columns) if columns is not None else list(data)
        arrays = [np.asarray(data[c]) for c in cols]
        n = len(arrays[0]) if arrays else 0
        rows = [[_cell(a[i]) for a in arrays] for i in range(n)]
    else:
        cols = list(columns) if columns is not None else columns_of(data)
        rows = [[_cell(row.get(c)) for c in cols] for row in data]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    writer.writerows(rows)
    return buf.getvalue()


_INT = re.compile(r"-?[0-9]+")
_BOOL = {"True": True, "False": False}


def from_csv(text: str) -> dict[str, np.ndarray]:
    """CSV text written by `to_csv` -> columns: int64 when every cell is an integer, bool when every
    cell is True / False, float64 when every cell is a number or empty (empty = NaN), otherwise str."""
    rows = list(csv.reader(io.StringIO(text)))
    require(len(rows) >= 1, "CSV table", "empty text", "a table has a header line", "text written by to_csv")
    header, body = rows[0], rows[1:]
    out = {}
    for i, name in enumerate(header):
        cells = [r[i] for r in body]
        if cells and all(_INT.fullmatch(c) for c in cells):
            out[name] = np.array([int(c) for c in cells], dtype=np.int64)
        elif cells and all(c in _BOOL for c in cells):
            out[name] = np.array([_BOOL[c] for c in cells], dtype=bool)
        else:
            try:
                out[name] = np.array([float(c) if c else math.nan for c in cells], dtype=np.float64)
            except ValueError:
                out[name] = np.array(cells, dtype=str)
    return out


# ---- files ----------------------------------------------------------------------------------------
def write_csv(path: str | Path, data: Sequence[dict[str, Any]] | Mapping[str, Any],
              columns: Sequence[str] | None = None) -> Path:
    """`to_csv` written atomically."""
    from synthsae import io as sio

    return sio.atomic_write_text(path, to_csv(data, columns))


def write_json(path: str | Path, obj: Any) -> Path:
    """`clean(obj)` as JSON, written atomically."""
    from synthsae import io as sio

    return sio.atomic_write_json(path, clean(obj))


def read_json_object(path: str | Path) -> dict[str, Any] | None:
    """The JSON object stored at `path`, or None when there is none: no file, unreadable JSON (e.g. a
    file cut short by a kill) or not an object. For marker and record files whose absence means
    "not done yet"."""
    from synthsae import io as sio

    if not Path(path).is_file():
        return None
    try:
        data = sio.read_json(path)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# ---- markdown -------------------------------------------------------------------------------------
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
