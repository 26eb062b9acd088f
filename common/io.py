"""Atomic file writes: a reader never sees half a file, and a crash never destroys the old one; reads of
torch files that name the file when it cannot be read."""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from common.cli import UserError


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    data = json.dumps(obj, indent=2, sort_keys=False, allow_nan=True).encode() + b"\n"
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


class UnreadableFile(UserError):
    """A file that exists but cannot be read back: truncated, corrupt, or not a file of this suite."""


# What torch.load raises on a truncated or foreign file: RuntimeError ("PytorchStreamReader failed reading zip
# archive", seen here for cuts at any point), EOFError (an empty file), UnpicklingError (a cut or disallowed
# pickle), and on other platforms OSError (a user reported "[Errno 22] Invalid argument"), BadZipFile, ValueError.
_READ_ERRORS = (OSError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError)


def load_tensors(path: str | os.PathLike) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``; a failure raises :class:`UnreadableFile`
    naming ``path`` and torch's reason. ``weights_only=True`` unpickles tensors and plain containers only, so
    a file cannot run code when it is loaded; the suite's own files hold nothing else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except _READ_ERRORS as err:
        if isinstance(err, pickle.UnpicklingError) and "Weights only" in str(err):
            raise UnreadableFile(f"{path} is not a file of this suite: torch.load(weights_only=True) refuses it (it "
                                 "is corrupt, or holds objects whose loading could run code)") from err
        # torch's first sentence says what failed; the rest is advice meant for torch's own users.
        reason = re.split(r"(?<=[.!?])\s", " ".join(str(err).split()), maxsplit=1)[0][:200].rstrip(".")
        detail = f"{type(err).__name__}: {reason}" if reason else f"{type(err).__name__}: it ends early"
        raise UnreadableFile(f"{path} is unreadable, truncated or corrupt ({detail})") from err
