"""Files on disk: atomic writes, safetensors for tensors, JSON for metadata. Never pickle.

A write goes to a temporary file in the same folder, is flushed and fsynced, then renamed over
the target (`os.replace` is atomic on POSIX and Windows), so a crash never leaves a half file.
The result gets the permissions a plain `open(path, "w")` would give (0666 minus the umask; an
existing file keeps its mode), not the 0600 of the temporary file.

A folder of several files (a world, an SAE) is made consistent by its writer: it writes the tensors
first and then a config that records their digest (`tensors_digest`: a sha256 over the tensors'
names, dtypes, shapes and bytes and the metadata, in sorted order, so it does not depend on the
order safetensors happens to write its header in), and the loader refuses a pair whose digests
differ (`read_tensor_file` returns the digest of what it read).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from synthsae.errors import ConfigError


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically; create parent folders. Returns the path."""
    path = Path(path)
    make_folder(path.parent)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder: cannot write a file there. Expected: a file path (or remove the folder)")
    mode = _file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)  # mkstemp creates 0600; give the file its normal permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def make_folder(folder: str | Path) -> Path:
    """Create `folder` (and its parents); a file in the way raises `ValueError` naming it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise ConfigError(f"{blocker} is a file, so the folder {folder} cannot be created there. Expected: a folder "
                         "path (or move the file)") from None
    return folder


def _file_mode(path: Path) -> int:
    """The mode `open(path, "w")` would leave: an existing file's, else 0666 minus the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (os.umask sets it, which races
    with other threads creating files)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """Atomically save CPU-contiguous copies of `tensors` as safetensors."""
    return save_tensors_digest(path, tensors, metadata)[0]


def save_tensors_digest(path: str | Path, tensors: dict[str, torch.Tensor],
                        metadata: dict[str, str] | None = None) -> tuple[Path, str]:
    """`save_tensors`, also returning `tensors_digest` of what was written (to record in a config)."""
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    data = _st_save(flat, metadata=metadata)
    return atomic_write_bytes(path, data), tensors_digest(flat, metadata)


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing or corrupted file raises `ValueError` naming it."""
    return read_tensor_file(path, device).tensors


@dataclasses.dataclass(frozen=True)
class TensorFile:
    """A safetensors file as read: its tensors, its string metadata and `tensors_digest` of both."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    sha256: str


def read_tensor_file(path: str | Path, device: str | torch.device = "cpu") -> TensorFile:
    """Read a safetensors file with its metadata and digest; a missing or corrupted file raises
    `ValueError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: expected a .safetensors file written by synthsae")
    data = path.read_bytes()
    try:
        tensors = _st_load(data)
        (size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + size])
        metadata = header.get("__metadata__") or {}
        if not isinstance(metadata, dict):
            raise TypeError("the __metadata__ entry is not a table")
    except Exception as err:  # safetensors raises its own error types
        raise ConfigError(f"{path} is not a readable safetensors file ({err}); it may be truncated or corrupted") from None
    return TensorFile({k: v.to(device) for k, v in tensors.items()}, dict(metadata), tensors_digest(tensors, metadata))


def tensors_digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> str:
    """sha256 (hex) of named tensors and string metadata, independent of dict and header order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    h.update(json.dumps(sorted((metadata or {}).items())).encode())
    return h.hexdigest()


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: expected a JSON file written by synthsae")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid JSON ({err}); it may be truncated or corrupted") from None
