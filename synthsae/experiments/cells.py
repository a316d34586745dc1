"""Cells: the unit of work of the experiment engine (a sweep trial, one SAE of a recipe, ...).

A `Task` names one cell: its id, its runner `kind` (a name in `RUNNERS`), a JSON-able `spec` (so it
crosses process and machine boundaries without pickling synthsae objects), its folder on the
driver, and the folders of the cells it reads (`inputs`). `execute(task)` runs it anywhere:

- in place (serial / local executors): the runner works in `task.out_dir`, where its training
  checkpoints survive a kill, and the record is written there last;
- in a scratch folder (`scratch=`, Ray workers, which do not share the driver's filesystem): the
  inputs arrive as bytes, and the record comes back with every file the cell wrote (`files`,
  relative path -> bytes; checkpoints excluded) for the driver to write (`store`).

A record is {"status": "ok" | "failed", "error": str, "wall_seconds": float, "row": {scalars},
"data": JSON-able or None}; written atomically as `cell.json`, last, so its presence means the
cell is finished. NaN is stored as null (`synthsae.tables.clean`).
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthsae import io as sio
from synthsae import tables
from synthsae.registry import Registry

CELL_FILE = "cell.json"
TRANSIENT = ("checkpoint",)  # folders a scratch cell does not send back (resume state, not results)


@dataclasses.dataclass(frozen=True)
class Task:
    """One cell to run. id: unique within its run; kind: a `RUNNERS` name; spec: the runner's JSON-able
    input; out_dir: the cell's folder on the driver; device: "cpu", "cuda", ... or None (the config's);
    inputs: cell id -> folder of each cell this one reads (finished before it starts)."""

    id: str
    kind: str
    spec: dict[str, Any]
    out_dir: str
    device: str | None = None
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)


# kind -> runner(spec, folder, inputs: {id: Path}, device, progress) -> {"row": {...}, "data": ...}
RUNNERS: Registry[Callable[..., dict[str, Any]]] = Registry("cell runner")


def read_record(folder: str | Path) -> dict[str, Any] | None:
    """The finished cell's record, or None (not finished: no file, or an unreadable one)."""
    record = tables.read_json_object(Path(folder) / CELL_FILE)
    return record if record is not None and "status" in record else None


def failure_record(why: str) -> dict[str, Any]:
    """The record of a cell that could not report itself (crashed worker, lost node, failed input)."""
    return {"status": "failed", "error": why, "wall_seconds": None, "row": {}, "data": None}


def pack(folder: str | Path, exclude: tuple[str, ...] = TRANSIENT) -> dict[str, bytes]:
    """Every file under `folder` (relative POSIX path -> bytes), except under the `exclude` folders."""
    root = Path(folder)
    out = {}
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and not set(rel.parts[:-1]) & set(exclude) and not path.name.endswith(".tmp"):
                out[rel.as_posix()] = path.read_bytes()
    return out


def unpack(files: dict[str, bytes], folder: str | Path) -> None:
    """Write `pack`ed files under `folder`, each atomically."""
    for rel, data in files.items():
        sio.atomic_write_bytes(Path(folder) / rel, data)


def execute(task: Task, scratch: str | Path | None = None, input_files: dict[str, dict[str, bytes]] | None = None,
            progress: bool = False) -> dict[str, Any]:
    """Run `task` and return its record (see module docstring); never raises for a failing cell:
    the error (type and message; the traceback goes to error.txt) is recorded with status "failed"."""
    t0 = time.perf_counter()
    if scratch is None:
        folder = Path(task.out_dir)
        inputs = {k: Path(v) for k, v in task.inputs.items()}
    else:
        folder = Path(scratch) / "cell"
        inputs = {}
        for k in task.inputs:
            inputs[k] = Path(scratch) / "inputs" / k
            unpack((input_files or {}).get(k, {}), inputs[k])
    folder.mkdir(parents=True, exist_ok=True)
    import synthsae.experiments.engine  # noqa: F401  (registers the runners, also in a fresh worker)

    try:
        out = RUNNERS.get(task.kind)(task.spec, folder, inputs, task.device, progress)
        record = {"status": "ok", "error": "", "row": out.get("row", {}), "data": out.get("data")}
    except Exception as err:  # recorded, never raised: see module docstring
        sio.atomic_write_text(folder / "error.txt", traceback.format_exc())
        record = {"status": "failed", "error": f"{type(err).__name__}: {err}", "row": {}, "data": None}
    record["wall_seconds"] = time.perf_counter() - t0
    record = tables.clean(record)
    tables.write_json(folder / CELL_FILE, record)
    if scratch is not None:
        record = {**record, "files": pack(folder)}
    return record


def store(task: Task, record: dict[str, Any]) -> dict[str, Any]:
    """On the driver: write what a cell sent back (its files, then its record) unless the cell's folder
    already holds a record (it ran in place). Returns the record without the files."""
    files = record.get("files")
    record = {k: v for k, v in record.items() if k != "files"}
    existing = read_record(task.out_dir)
    if existing is not None and files is None:
        return existing
    if files:
        unpack({k: v for k, v in files.items() if k != CELL_FILE}, task.out_dir)
    tables.write_json(Path(task.out_dir) / CELL_FILE, record)
    return record
