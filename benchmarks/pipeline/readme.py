"""A profile's results in the documentation, regenerated from that profile's ``REPORT.md``.

    python -m benchmarks.pipeline.readme results/demo/REPORT.md [--target docs/results.md]

The target (default ``docs/results.md``) holds a block between ``<!-- results:PROFILE -->`` and
``<!-- /results:PROFILE -->``; this replaces it with the report's sections that describe and measure the
profile: what it is, the machine, every table and figure in the paper's order, and the wall time per
stage. The performance section (long benchmark logs) and the failures section stay in the report.
Figures are not in git, so each image becomes the path of its PNG under the report's folder, written
from the repository's root for a target inside the repository, else from the target's folder (absolute
when the report lies outside it). Nothing outside the block changes; a target without the block is
refused, with the markers to add.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from common.cli import UserError, run_main
from common.io import atomic_write_text

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TARGET = REPO / "docs" / "results.md"
SKIPPED_SECTIONS = ("Performance", "Failures")
IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]+)\)$")


def report_sections(report: str) -> list[tuple[str, list[str]]]:
    """(heading, body lines) of each ``## `` section of a report, in order; the title line is dropped."""
    sections: list[tuple[str, list[str]]] = []
    for line in report.splitlines():
        if line.startswith("## "):
            sections.append((line[3:].strip(), []))
        elif sections:
            sections[-1][1].append(line)
    return sections


def results_block(report_path: Path, relative_to: Path) -> list[str]:
    """The block's lines made from ``report_path``: its sections two levels down (``#### ``), images as paths
    (relative to ``relative_to`` when the report lies under it, else absolute)."""
    folder = report_path.parent.resolve()
    where = folder.relative_to(relative_to.resolve()) if folder.is_relative_to(relative_to.resolve()) else folder
    lines = [f"_Regenerated from `{where}/REPORT.md` by `python -m benchmarks.pipeline.readme`; figures are "
             f"the PNG files named, under `{where}/`._", ""]
    for heading, body in report_sections(report_path.read_text()):
        if heading.startswith(SKIPPED_SECTIONS):
            continue
        lines.append(f"#### {heading}")
        for line in body:
            image = IMAGE.match(line.strip())
            lines.append(f"Figure `{where}/{image.group(2)}`." if image else line)
    while lines and not lines[-1].strip():
        lines.pop()
    return [*lines, ""]


def paths_root(target: Path) -> Path:
    """The folder the block's paths start from: the repository's root for a target inside it (a reader
    types them there), else the target's own folder."""
    target = target.resolve()
    return REPO if target.is_relative_to(REPO) else target.parent


def replace_block(text: str, profile: str, block: list[str], name: str = "the target") -> str:
    begin, end = f"<!-- results:{profile} -->", f"<!-- /results:{profile} -->"
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise UserError(f"{name} needs one block '{begin}' ... '{end}' (each on its own line) where the "
                        f"{profile} profile's results go; add the two lines and run this again")
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    return head + begin + "\n" + "\n".join(block) + end + tail


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", help="results/<profile>/REPORT.md, written by benchmarks/run_all.sh")
    parser.add_argument("--target", default=str(DEFAULT_TARGET), metavar="PATH",
                        help="the Markdown file that holds the block (default: docs/results.md)")
    parser.add_argument("--readme", dest="target", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    report, target = Path(args.report), Path(args.target)
    if not report.is_file():
        raise UserError(f"no report at {report}: run `bash benchmarks/run_all.sh PROFILE` first")
    if not target.is_file():
        raise UserError(f"no file at {target}: give --target the Markdown file that holds the results block")
    profile = report.parent.name
    text = replace_block(target.read_text(), profile, results_block(report, paths_root(target)), str(target))
    atomic_write_text(target, text)
    print(f"{target}: the {profile} results block now holds {report}")


if __name__ == "__main__":
    run_main(main)
