"""The stand-in data protocol: generated data sets in a real data set's on-disk format, and how a reader tells
them from the real ones.

Each adapter owns the generators of its data sets (``classification.standin``, ``detection.standin``,
``translation.standin``); the paper profile's data catalogue names each one's generator, folder and sizes
(``standin:`` under a data set), and the rehearsal of the profile makes them. A generator:

* claims its folder with :func:`claim`: it refuses a folder that holds the data set without a marker (real
  data is never overwritten) and removes an earlier stand-in there, leaving an incomplete marker until
* :func:`finish` writes the complete marker :data:`MARKER` (data set, generator, seed, counts, extras such as
  md5s) and returns the summary of what was written (path, counts, files, bytes, seconds).

A reader that could take a stand-in for the real set checks :func:`marker` and :func:`expected` (the
variable :data:`ENV` that a rehearsal sets: a real run never does).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

MARKER = "PSKD_STANDIN.json"
ENV = "PSKD_STANDIN_DATA"
COMMAND = "python -m benchmarks.pipeline.standin"  # what makes a stand-in, for the messages that ask for one


class StandinError(ValueError):
    """A stand-in that cannot be written or read (real data in the way, a broken marker)."""


def expected() -> bool:
    """Whether this run expects stand-in data (``PSKD_STANDIN_DATA=1``, set by the rehearsal)."""
    return os.environ.get(ENV) == "1"


def marker(folder: str | Path) -> dict[str, Any] | None:
    """The marker of a stand-in data set in ``folder``, or None where there is none (every real data set)."""
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise StandinError(f"unreadable stand-in marker {path} ({err}); regenerate the stand-in with {COMMAND}") \
            from err


def _write_marker(folder: Path, content: dict[str, Any]) -> None:
    (folder / MARKER).write_text(json.dumps(content, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def claim(folder: Path, data_set: str, owned: Iterable[str], seed: int, generator: str) -> None:
    """Make ``folder`` ready for a fresh stand-in: refuse where it holds one of the ``owned`` entries without a
    marker (real data), else remove the previous stand-in's entries and write a marker without counts (replaced
    by :func:`finish`), so that an interrupted generation is redone, never taken for a complete one."""
    folder.mkdir(parents=True, exist_ok=True)
    present = [name for name in owned if (folder / name).exists()]
    found = marker(folder)
    if present and found is None:
        raise StandinError(f"{folder} holds {', '.join(present)} but no {MARKER}: it looks like the real {data_set}, "
                           "which a stand-in never overwrites; choose another --out")
    if found is not None and found.get("data_set") != data_set:
        raise StandinError(f"{folder} holds the stand-in {found.get('data_set')}; write the {data_set} stand-in "
                           "into another --out")
    for name in present:
        if (folder / name).is_dir():
            shutil.rmtree(folder / name)
        else:
            (folder / name).unlink()
    _write_marker(folder, {"data_set": data_set, "generator": generator, "seed": seed, "complete": False})


def finish(data_set: str, out: Path, folder: Path, owned: Iterable[str], seed: int, generator: str,
           counts: dict[str, Any], started: float, **extra: Any) -> dict[str, Any]:
    """Write the complete marker into ``folder``; the summary of the stand-in: the folder a profile's variable
    points at (``out``), the counts, and the files, bytes and seconds of what was written."""
    _write_marker(folder, {"data_set": data_set, "generator": generator, "seed": seed, "complete": True,
                           "counts": counts, **extra})
    entries = [folder / name for name in (*owned, MARKER)]
    files = [p for entry in entries for p in ([entry] if entry.is_file() else entry.rglob("*")) if p.is_file()]
    return {"data_set": data_set, "path": str(out), "counts": counts, "files": len(files),
            "bytes": sum(p.stat().st_size for p in files), "seconds": round(time.monotonic() - started, 2)}


def backdrop(rng: np.random.Generator, width: int, height: int):
    """A smooth colour field (four random corner colours, bilinearly spread): quick to make, and it compresses
    like a photo's sky or wall rather than like noise, so that JPEGs stay small."""
    from PIL import Image

    corners = rng.integers(0, 256, size=(2, 2, 3), dtype=np.uint8)
    return Image.fromarray(corners).resize((width, height), Image.Resampling.BILINEAR)
