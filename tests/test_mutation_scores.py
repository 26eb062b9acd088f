"""The mutation scores the README gives are docs/mutation.md's, for the files pyproject.toml mutates.

The README's table (file, killed / total, score) and docs/mutation.md's "after" columns are written by hand from
``bash benchmarks/mutation.sh --summary``; this keeps the two pages and the mutated files from drifting apart,
and each score equal to its counts.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| ([\w/]+\.py) \|(.*)\|$", re.M)
COUNT = re.compile(r"^(\d+) / (\d+)$")


def _cells(page: str) -> dict[str, list[str]]:
    text = (REPO / page).read_text()
    section = text[text.index("mutation.sh"):]
    return {m.group(1): [c.strip() for c in m.group(2).split("|")] for m in ROW.finditer(section)}


def _check_score(killed_total: str, score: str) -> None:
    killed, total = map(int, COUNT.match(killed_total).groups())
    assert 0 <= killed <= total
    assert abs(float(score.rstrip(" %")) - 100 * killed / total) < 0.05, f"{killed} / {total} is not {score}"


def test_the_readme_gives_every_mutated_file_with_its_count_and_score():
    mutated = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"]
    readme = _cells("README.md")
    assert list(readme) == mutated
    for cells in readme.values():
        _check_score(cells[0], cells[1])


def test_the_readme_and_docs_mutation_md_give_the_same_counts():
    readme, docs = _cells("README.md"), _cells("docs/mutation.md")
    assert list(docs) == list(readme)
    for name, cells in docs.items():
        before, after = cells[0:2], cells[2:4]
        if COUNT.match(before[0]):  # "not run (N)" before a file's first round
            _check_score(*before)
        assert after == readme[name], name
