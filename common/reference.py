"""The paper's published numbers (common/reference/paper_tables.yaml), looked up by table and row."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

REFERENCE_FILE = Path(__file__).resolve().parent / "reference" / "paper_tables.yaml"


@cache
def paper_tables() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(REFERENCE_FILE.read_text())


def paper_values(table: str, path: list[str] | tuple[str, ...]) -> dict[str, float]:
    """Metric -> paper value for the row at ``path`` of ``table`` (empty when the paper has none).

    Rows are lists in the order of the table's ``columns``, or ``{params, values}`` mappings.
    """
    tables = paper_tables()
    if table not in tables:
        raise KeyError(f"no table {table!r} in {REFERENCE_FILE.name}; known: {sorted(tables)}")
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
