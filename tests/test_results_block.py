"""docs/results.md's generated demo block still matches what the code's tables are: each table of a spec has the
spec's rows for the demo profile (their labels and seed counts, in order), its label columns, and its metric
columns; every spec the demo profile runs has its section. A block left behind by a change of the specs, the
labels, the methods or the columns fails here: regenerate it (docs/results.md says how)."""

import re
from pathlib import Path

import pytest

from benchmarks.pipeline.plan import Expander
from benchmarks.pipeline.specs import TABLES_DIR, load_profile, load_specs
from common.tables import CLASSIFICATION_COLUMNS, COLUMN_TITLES

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results.md"
SPEC_LINE = re.compile(r"^_spec: `benchmarks/tables/([a-z0-9_]+)\.yaml`_$")


def demo_block(text: str) -> dict[str, list[str]]:
    """The lines of each spec's section in the demo block, by spec id."""
    block = text.split("<!-- results:demo -->", 1)[1].split("<!-- /results:demo -->", 1)[0]
    sections: dict[str, list[str]] = {}
    current = None
    for line in block.splitlines():
        if line.startswith("#### "):
            current = None
        found = SPEC_LINE.match(line.strip())
        if found:
            current = sections.setdefault(found.group(1), [])
        elif current is not None:
            current.append(line)
    return sections


def first_table(lines: list[str]) -> list[list[str]]:
    """The cells of the first Markdown table in ``lines``, header first, the separator row left out."""
    rows = []
    for line in lines:
        if line.startswith("|"):
            if set(line.replace("|", "").strip()) <= {"-"}:
                continue
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    return rows


def metric_titles(header: list[str], labels: int) -> list[str]:
    """The metric columns of a table's header: after the labels and ``seeds``, without ``paper`` and ``Δ``."""
    return [title for title in header[labels + 1:] if title not in ("paper", "Δ")]


def expected_metrics(spec) -> list[str] | None:
    """The column titles of a spec's table: its own ``columns``, classification's metrics, or (detection) the
    demo's synthetic classes and mAP; None where they come only from the records."""
    if spec.columns:
        columns = list(spec.columns)
    elif spec.adapter == "classification":
        columns = list(CLASSIFICATION_COLUMNS)
    elif spec.adapter == "detection":
        from detection.standin import SYNTHETIC_CLASSES

        columns = [*SYNTHETIC_CLASSES, "map"]
    else:
        return None
    return [COLUMN_TITLES.get(c, c) for c in columns]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    specs = load_specs(TABLES_DIR)
    plan = Expander(specs, list(specs), load_profile("demo"), tmp_path_factory.mktemp("demo")).expand()
    return specs, plan, demo_block(RESULTS.read_text(encoding="utf-8"))


def test_every_spec_of_the_demo_has_its_section(demo):
    specs, plan, sections = demo
    assert set(sections) == {sid for sid in plan.selected if plan.rows.get(sid) or specs[sid].adapter is None}


def test_each_table_has_the_specs_rows_labels_and_columns(demo):
    specs, plan, sections = demo
    tables = [sid for sid in plan.selected if specs[sid].kind in ("table", "search") and plan.rows.get(sid)]
    assert tables
    for sid in tables:
        rows = plan.rows[sid]
        cells = first_table(sections[sid])
        assert cells, f"{sid}: no table in docs/results.md"
        header, body = cells[0], cells[1:]
        label_keys = list(rows[0].labels)
        if specs[sid].kind == "search":  # one line per row: its method, its trial (none for a fixed row), ...
            assert header[0] == label_keys[0] and len(body) == len(rows), sid
            assert [line[0] for line in body] == [next(iter(r.labels.values())) for r in rows], sid
            continue
        assert header[:len(label_keys) + 1] == [*label_keys, "seeds"], sid
        assert [row[:len(label_keys)] for row in body] == [list(r.labels.values()) for r in rows], sid
        assert [row[len(label_keys)] for row in body] == [str(len(r.runs)) for r in rows], sid
        wanted = expected_metrics(specs[sid])
        if wanted is not None:
            assert metric_titles(header, len(label_keys)) == wanted, sid


def test_the_check_fails_on_a_stale_block():
    text = RESULTS.read_text(encoding="utf-8")
    sections = demo_block(text)
    table = first_table(sections["cifar100_main"])
    assert table[0][:3] == ["model", "method", "seeds"]
    stale = demo_block(text.replace("| ps_kd |", "| pskd |"))
    assert [row[1] for row in first_table(stale["cifar100_main"])[1:]] != [row[1] for row in table[1:]]
