"""Table S3's layout from detection run records: one row per run, each class's AP and mAP (%), with the
paper's values and our difference where the run is a VOC2007 run of a Table S3 method.

    python -m benchmarks.report_detection WORK_DIRS OUT_STEM
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common.records import load_records
from common.tables import write_table


def build(records_dir: str | Path, out_stem: str | Path, title: str = "") -> tuple[Path, Path]:
    records = load_records(records_dir)
    if not records:
        raise FileNotFoundError(f"no finished detection records under {records_dir}")
    columns = [k for k in records[0]["final"] if k != "map"] + ["map"]
    return write_table(records, out_stem, ["method"], columns=columns, title=title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records_dir")
    parser.add_argument("out_stem")
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    markdown, _ = build(args.records_dir, args.out_stem, args.title)
    print(markdown.read_text())


if __name__ == "__main__":
    main()
