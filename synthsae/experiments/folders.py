"""Output folders: one rule for every command that writes results.

A folder written by synthsae holds a marker file, `synthsae.json`, naming what it holds:

    {"kind": "experiment" | "sweep" | "recipe" | "evaluation" | "world", "name": ..., "digest": ...}

`claim(out, kind, name, digest)` is called once, after the whole config has been validated (and
its worlds built) and before anything is written:

- a new or empty folder is claimed (the marker is written);
- a folder whose marker has the same kind and digest is the same experiment: it is reused, so a
  rerun resumes there;
- a folder holding anything else is refused with a message saying what it holds and how to go on
  (`--out NEW`, or `--overwrite`, which deletes the folder's contents first). A non-empty folder
  without a marker was not written by synthsae: it is refused even with overwrite=True, because
  deleting files we did not write is never our call.

The digest is the caller's: a hash of everything that determines the results (not names, devices
or executors), so a sweep that adds grid points keeps its folder while a changed base experiment
does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from synthsae import io as sio
from synthsae import tables
from synthsae.errors import ConfigError

MARKER = "synthsae.json"
KINDS = ("experiment", "sweep", "recipe", "evaluation", "world")


def digest_of(data: Any) -> str:
    """A stable 12-hex-digit hash of a JSON-able value (keys sorted)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def tensors_digest(tensors: dict[str, Any]) -> str:
    """A 12-hex-digit hash of named tensors' values (e.g. an SAE's state_dict)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def holder(out: str | Path) -> dict[str, Any] | None:
    """What the folder holds according to its marker (None: no marker, or an unreadable one)."""
    return tables.read_json_object(Path(out) / MARKER)


def describe(held: dict[str, Any]) -> str:
    name = held.get("name")
    return f"the {held.get('kind', '?')} {name!r} (digest {held.get('digest')})" if name else \
        f"a {held.get('kind', '?')} (digest {held.get('digest')})"


def claim(out: str | Path, kind: str, name: str, digest: str, overwrite: bool = False) -> Path:
    """Make `out` the folder of this `kind`/`name`/`digest`, or raise ConfigError (see module docstring).

    Returns the folder. overwrite=True deletes the contents of a folder holding another synthsae
    result first (never a folder without a marker, nor one containing the working directory)."""
    if kind not in KINDS:
        raise ValueError(f"kind = {kind!r} is invalid: expected one of {KINDS}")
    out = Path(out)
    me = {"kind": kind, "name": name, "digest": digest}
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is invalid: it is a file, not a folder. Choose another --out folder.")
    held = holder(out)
    if held is not None and held.get("kind") == kind and held.get("digest") == digest:
        if held.get("name") != name:  # same results under a new title: keep the folder, update the title
            sio.atomic_write_json(out / MARKER, me)
        return out
    if held is not None:
        if not overwrite:
            raise ConfigError(
                f"--out {out} holds the results of a different experiment: {describe(held)}, not this {kind} {name!r} "
                f"(digest {digest}). "
                f"Choose a new folder with --out NEW, or pass --overwrite to delete {out} and start over.")
        _empty(out)
    elif out.is_dir() and any(out.iterdir()):
        raise ConfigError(
            f"--out {out} is not empty and was not written by synthsae (it has no {MARKER}; folders written by "
            "synthsae before output folders were claimed have none either), so it may hold something else. Choose a "
            "new folder with --out NEW (--overwrite never deletes files synthsae did not claim).")
    out.mkdir(parents=True, exist_ok=True)
    sio.atomic_write_json(out / MARKER, me)
    return out


def _empty(out: Path) -> None:
    here = Path.cwd().resolve()
    target = out.resolve()
    if target == here or target in here.parents or target == Path(target.anchor) or target == Path.home().resolve():
        raise ConfigError(f"--overwrite {out} is refused: it would delete the working directory, the home folder or "
                         "a filesystem root. Choose another --out folder.")
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            os.unlink(child)
