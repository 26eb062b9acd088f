"""The adapters' doors (see :mod:`common.door`): a spec's ``adapter`` ``NAME`` is the package ``NAME/`` of the
repository with a module ``NAME/door.py``.

A new adapter is a package with a door; nothing here names one. Doors are imported when a spec of theirs is
expanded, so that planning one adapter's tables never loads another's host framework.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]

DOOR = "door"  # the module of an adapter's package that the driver asks


def adapters() -> list[str]:
    """The packages of the repository that have a door (``common/door.py`` defines the protocol, not a door)."""
    return sorted(path.parent.name for path in REPO.glob(f"*/{DOOR}.py") if path.parent.name != "common")


def door(adapter: str) -> ModuleType:
    """The door module of ``adapter``."""
    if adapter not in adapters():
        raise KeyError(f"no adapter {adapter!r}: an adapter is a package with a {DOOR}.py (found "
                       f"{', '.join(adapters())})")
    return importlib.import_module(f"{adapter}.{DOOR}")
