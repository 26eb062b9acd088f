"""The registry of adapters: a spec's ``adapter`` -> the module of its door (see :mod:`common.door`).

A new adapter is a door module plus a line here. Doors are imported when a spec of theirs is expanded, so
that planning one adapter's tables never loads another's host framework.
"""

from __future__ import annotations

import importlib
from types import ModuleType

DOORS = {
    "classification": "classification.door",
    "detection": "detection.door",
    "translation": "translation.door",
}


def door(adapter: str) -> ModuleType:
    """The door module of ``adapter``."""
    if adapter not in DOORS:
        raise KeyError(f"no adapter {adapter!r}; the registry (benchmarks/pipeline/doors.py) has {', '.join(DOORS)}")
    return importlib.import_module(DOORS[adapter])
