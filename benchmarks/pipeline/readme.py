"""The README's results for a profile, regenerated from that profile's ``REPORT.md``.

    python -m benchmarks.pipeline.readme results/demo/REPORT.md [--readme README.md]

The README holds a block between ``<!-- results:PROFILE -->`` and ``<!-- /results:PROFILE -->``; this
replaces it with the report's sections that describe and measure the profile: what it is, the machine,
every table and figure in the paper's order, and the wall time per stage. The performance section (long
benchmark logs) and the failures section stay in the report. Figures are not in git, so each image
becomes the path of its PNG under the report's folder. Nothing outside the block changes; a README
without the block is refused, with the markers to add.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from common.cli import UserError, run_main
from common.io import atomic_write_text

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
    """The README lines made from ``report_path``: its sections one level down (``### ``), images as paths."""
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


def replace_block(readme: str, profile: str, block: list[str]) -> str:
    begin, end = f"<!-- results:{profile} -->", f"<!-- /results:{profile} -->"
    if readme.count(begin) != 1 or readme.count(end) != 1 or readme.index(begin) > readme.index(end):
        raise UserError(f"the README needs one block '{begin}' ... '{end}' (each on its own line) where the "
                        f"{profile} profile's results go; add the two lines and run this again")
    head, rest = readme.split(begin, 1)
    tail = rest.split(end, 1)[1]
    return head + begin + "\n" + "\n".join(block) + end + tail


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", help="results/<profile>/REPORT.md, written by benchmarks/run_all.sh")
    parser.add_argument("--readme", default=str(Path(__file__).resolve().parents[2] / "README.md"))
    args = parser.parse_args(argv)
    report, readme = Path(args.report), Path(args.readme)
    if not report.is_file():
        raise UserError(f"no report at {report}: run `bash benchmarks/run_all.sh PROFILE` first")
    profile = report.parent.name
    text = replace_block(readme.read_text(), profile, results_block(report, readme.parent))
    atomic_write_text(readme, text)
    print(f"{readme}: the {profile} results block now holds {report}")


if __name__ == "__main__":
    run_main(main)
