"""Table S3's layout from detection run records: one row per run, each class's AP and mAP (%), with the
published values and our difference where the run is a VOC2007 run of a Table S3 method.

A run of ``detection/configs/faster-rcnn_r50_fpn_voc0712_mmdet.py`` (mmdet's own R50-FPN VOC07+12
baseline) is the row ``mmdet_r50_voc0712``; its ``paper`` column holds mmdet's published mAP (not the PS-KD
paper's; common/reference/published_baselines.yaml), as a note under the table says: a check of the
detector set-up independent of PS-KD.

    python -m detection.report WORK_DIRS OUT_STEM
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common.records import load_records
from common.reference import reference_note
from common.tables import write_table


def build(records_dir: str | Path, out_stem: str | Path, title: str = "") -> tuple[Path, Path]:
    """``<out_stem>.md`` and ``.csv``: one row per method, its classes' AP then mAP, and a note under the table
    for each row whose paper column is not the PS-KD paper's."""
    records = load_records(records_dir)
    if not records:
        raise FileNotFoundError(f"no finished detection records under {records_dir}")
    columns = [k for k in records[0]["final"] if k != "map"] + ["map"]
    notes = {r["labels"]["method"]: reference_note(r.get("reference")) for r in records}
    return write_table(records, out_stem, ["method"], columns, title=title or None,
                       notes=[f"Row {row}: {note}." for row, note in notes.items() if note])


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
