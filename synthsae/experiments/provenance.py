"""Run metadata of a recipe report: how the numbers were made, and the command that makes them again.

`run_metadata(...)` returns a flat dict shown under "Run" in report.md and stored under "run" in
metrics.json: wall time of this invocation and the summed time of its cells (a resumed run did part
of its work earlier), the synthsae version and git commit (with "+dirty" when the work tree has
uncommitted changes; "unknown" outside a git checkout), torch and Python versions, the device, torch's
intra-op thread count, the command line this process was started with, and a command that reproduces
the report from the `recipe.toml` written next to it (the full config, so it does not depend on the
defaults of a later version).
"""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

RECIPE_TOML = "recipe.toml"


def git_commit() -> str:
    """The commit of the synthsae source tree ("+dirty" if modified), or "unknown"."""
    root = Path(__file__).resolve().parents[2]  # synthsae/experiments/provenance.py -> the checkout
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def recipe_toml(name: str, config: Any) -> str:
    """The TOML that `synthsae run FILE` reads back into exactly this recipe config."""
    return f'recipe = "{name}"\n' + config.to_toml()


def _invocation() -> str:
    """This process's command line, with the synthsae CLI entry point written as `synthsae`."""
    argv = list(sys.argv)
    if not argv or argv[0] in ("", "-", "-c"):
        return "(python)"
    first = Path(argv[0])
    if first.name == "synthsae" or first.as_posix().endswith(("synthsae/cli.py", "synthsae/__main__.py")):
        argv[0] = "synthsae"
    return shlex.join(argv)


def run_metadata(out_dir: str | Path, device: Any, wall_seconds: float, reproduce: list[str] | None = None,
                 cell_seconds: float | None = None) -> dict[str, Any]:
    """The "Run" table of a report (see the module docstring). reproduce: the command (argv list) that
    makes the report again (default: `synthsae run <out>/recipe.toml`, for recipes); cell_seconds:
    the summed time of the cells, over every invocation of a resumed run."""
    import torch

    import synthsae

    out = Path(out_dir)
    dev = str(device) if device is not None else "cpu"
    meta: dict[str, Any] = {
        "wall time (this invocation)": f"{wall_seconds:.1f} s",
    }
    if cell_seconds is not None:
        meta["cell time (sum over cells, all invocations)"] = f"{cell_seconds:.1f} s"
    if reproduce is None:
        reproduce = ["synthsae", "run", str(out / RECIPE_TOML), "--out", str(out) + "-rerun", "--device", dev]
    meta.update({
        "synthsae version": getattr(synthsae, "__version__", "unknown"),
        "git commit": git_commit(),
        "torch version": torch.__version__,
        "python": platform.python_version(),
        "device": dev,
        "threads (torch intra-op)": str(torch.get_num_threads()),
        "invoked as": _invocation(),
        "reproduce": shlex.join(reproduce),
    })
    return meta


def metadata_markdown(meta: dict[str, Any]) -> list[str]:
    """The "## Run" section of a report.md, as lines."""
    from synthsae import tables

    lines = ["## Run", "", "| | |", "|---|---|"]
    lines += [f"| {tables.md(str(k))} | {tables.md(v if isinstance(v, str) else tables.fmt(v))} |"
              for k, v in meta.items()]
    return lines + [""]
