"""One sweep trial: run an experiment and record how it went, atomically, in `trial.json`.

`run_trial` never raises for a failing experiment: the error (type, message; the traceback goes to
`error.txt`) is recorded with status "failed", so one bad trial does not stop a sweep. The record
is written last, so its presence means the trial finished (a resumed sweep skips it).
"""

from __future__ import annotations

import math
import time
import traceback
from pathlib import Path
from typing import Any

from synthsae import io as sio

RECORD_FILE = "trial.json"


def run_trial(config: dict[str, Any], out_dir: str, device: str | None = None) -> dict[str, Any]:
    """Run the experiment `config` (an `ExperimentConfig` dict with one SAE) into `out_dir`.

    Returns (and writes to out_dir/trial.json) {"status": "ok" | "failed", "error": str,
    "wall_seconds": float, "metrics": {key: float | None}} -- metrics of the SAE's report row."""
    from synthsae.experiments.config import ExperimentConfig
    from synthsae.experiments.run import run_experiment

    t0 = time.perf_counter()
    out = Path(out_dir)
    try:
        result = run_experiment(ExperimentConfig.from_dict(config), out, device=device, progress=False)
        row = dict(result.rows[0])
        record = {"status": "ok", "error": "", "metrics": _metrics(row)}
    except Exception as err:  # recorded, never raised: see module docstring
        out.mkdir(parents=True, exist_ok=True)
        sio.atomic_write_text(out / "error.txt", traceback.format_exc())
        record = {"status": "failed", "error": f"{type(err).__name__}: {err}", "metrics": {}}
    record["wall_seconds"] = time.perf_counter() - t0
    write_record(out, record)
    return record


def _metrics(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("label", "variant")
            and (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))}


def failure_record(task, why: str) -> dict[str, Any]:
    """The record of a trial that could not report itself (crashed worker, lost node)."""
    return {"status": "failed", "error": why, "metrics": {}, "wall_seconds": math.nan}


def write_record(out_dir: str | Path, record: dict[str, Any]) -> None:
    clean = dict(record)
    if isinstance(clean.get("wall_seconds"), float) and math.isnan(clean["wall_seconds"]):
        clean["wall_seconds"] = None
    sio.atomic_write_json(Path(out_dir) / RECORD_FILE, clean)


def read_record(out_dir: str | Path) -> dict[str, Any] | None:
    """The trial's record, or None if it has not finished (no file, or an unreadable one)."""
    path = Path(out_dir) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        return sio.read_json(path)
    except ValueError:
        return None
