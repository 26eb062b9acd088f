"""The registry of the adapters' doors (see :mod:`common.door`): the entry points of the group
``pskd_bench.doors`` (pyproject.toml's ``[project.entry-points."pskd_bench.doors"]``), each an adapter's name
and the module of its door.

A new adapter is a door module plus a line there, in this repository's pyproject.toml or in the adapter's own
package; nothing in the driver names an adapter. Doors are imported when a spec of theirs is expanded, so
that planning one adapter's tables never loads another's host framework.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from types import ModuleType

GROUP = "pskd_bench.doors"


def registry() -> dict[str, str]:
    """Each registered adapter's name and the module of its door."""
    return {point.name: point.value for point in entry_points(group=GROUP)}


def adapters() -> list[str]:
    """The registered adapters' names, sorted."""
    return sorted(registry())


def door(adapter: str) -> ModuleType:
    """The door module of ``adapter``."""
    doors = registry()
    if adapter not in doors:
        raise LookupError(f"no adapter {adapter!r} in the registry (entry points {GROUP}: {', '.join(sorted(doors))}); "
                       f"register its door in pyproject.toml's [project.entry-points.\"{GROUP}\"] and install "
                       "again (bash benchmarks/setup_env.sh)")
    return importlib.import_module(doors[adapter])
