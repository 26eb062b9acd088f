"""fairseq-train's ``checkpoint_last.pt``, made whole again before a resume.

fairseq writes the first checkpoint of a save atomically (``torch_persistent_save``: a ``.tmp`` file, then a
rename) and then *copies* it to the others (``checkpoint_utils.save_checkpoint``: ``PathManager.copy``), and
``checkpoint_last.pt`` is usually one of the copies. A job killed during that copy (a preempted Slurm job, a
failed node) leaves a truncated ``checkpoint_last.pt``, and the next ``fairseq-train`` stops on it instead of
resuming. Its source, written moments before in the same save, is intact.
"""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from pathlib import Path

LAST = "checkpoint_last.pt"  # fairseq-train's own name, from which it resumes by default


def whole(path: Path) -> bool:
    """Whether ``path`` is a complete ``torch.save`` file: a zip archive whose central directory, written last,
    is there (a truncated copy lacks it). Reads the directory only, not the tensors."""
    return zipfile.is_zipfile(path)


def repair_last(save_dir: Path) -> str | None:
    """If ``save_dir/checkpoint_last.pt`` is truncated, set it aside (``checkpoint_last.pt.truncated-<time>``,
    never deleted) and put in its place a copy of the newest whole checkpoint of ``save_dir``, written
    atomically; returns the line that says what was done, or None when there was nothing to repair."""
    last = Path(save_dir) / LAST
    if not last.is_file() or whole(last):
        return None
    aside = last.with_name(f"{LAST}.truncated-{time.strftime('%Y%m%d-%H%M%S')}")
    others = [p for p in Path(save_dir).glob("checkpoint*.pt") if p != last and whole(p)]
    last.rename(aside)
    if not others:
        return (f"{last} was truncated (a kill while fairseq copied it) and no other whole checkpoint is in "
                f"{save_dir}: it is kept as {aside.name}, and training starts again from the beginning")
    source = max(others, key=lambda p: p.stat().st_mtime)
    partial = last.with_name(LAST + ".tmp")
    shutil.copyfile(source, partial)
    os.replace(partial, last)
    return (f"{last} was truncated (a kill while fairseq copied it): kept as {aside.name}; resuming from a copy "
            f"of {source.name}, the newest whole checkpoint")
