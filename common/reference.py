"""Published numbers, looked up by table and row: the paper's (common/reference/paper_tables.yaml) and a
few that check a host framework's set-up apart from PS-KD (common/reference/published_baselines.yaml)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

REFERENCE_FILE = Path(__file__).resolve().parent / "reference" / "paper_tables.yaml"
BASELINES_FILE = REFERENCE_FILE.with_name("published_baselines.yaml")


@cache
def paper_tables() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(REFERENCE_FILE.read_text())


@cache
def published_tables() -> dict[str, Any]:
    """The paper's tables and the published baselines, one namespace (a name in both is an error)."""
    import yaml

    baselines = yaml.safe_load(BASELINES_FILE.read_text())
    clash = sorted(set(baselines) & set(paper_tables()))
    if clash:
        raise ValueError(f"{BASELINES_FILE.name} reuses the paper's table name(s) {clash}")
    return {**paper_tables(), **baselines}


def paper_values(table: str, path: list[str] | tuple[str, ...]) -> dict[str, float]:
    """Metric -> published value for the row at ``path`` of ``table`` (empty when the table has no such row).

    Rows are lists in the order of the table's ``columns``, or ``{params, values}`` mappings.
    """
    tables = published_tables()
    if table not in tables:
        raise KeyError(f"no table {table!r} in {REFERENCE_FILE.name} or {BASELINES_FILE.name}; "
                       f"known: {sorted(tables)}")
    node: Any = tables[table]
    columns = node.get("columns")
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return {}
        node = node[key]
    if isinstance(node, dict) and "values" in node:
        node = node["values"]
    if isinstance(node, (int, float)):
        return {"value": float(node)}
    if not isinstance(node, list) or columns is None or len(node) != len(columns):
        return {}
    return {c: float(v) for c, v in zip(columns, node, strict=True)}


def reference_note(reference: dict[str, Any] | None) -> str | None:
    """What stands in the ``paper`` column of a row compared with a published baseline rather than the paper
    (its table's ``source``); None for the paper's own rows and for rows with no reference."""
    if not reference or reference["table"] in paper_tables():
        return None
    return f"its paper column is not the PS-KD paper's but {published_tables()[reference['table']]['source']}"
