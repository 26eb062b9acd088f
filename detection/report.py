"""Table S3's layout from detection run records: one row per run, each class's AP and mAP (%), with the
paper's values and our difference where the run is a VOC2007 run of a Table S3 method.

A run of ``detection/configs/faster-rcnn_r50_fpn_voc0712_mmdet.py`` (mmdet's own R50-FPN VOC07+12
baseline) gets the row ``mmdet_r50_voc0712`` with mmdet's published mAP in the paper column, named as
such under the table: a check of the detector set-up independent of PS-KD.

    python -m detection.report WORK_DIRS OUT_STEM
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from common.io import atomic_write_text
from common.records import load_records
from common.tables import build_rows, to_csv, to_markdown

# mmdet's model zoo, configs/pascal_voc/README.md: Faster R-CNN, R-50, pytorch style, 1x, box AP 80.4, model
# faster_rcnn_r50_fpn_1x_voc0712_20220320_192712-54bef0f3.pth (trained with mmdet 2.x, VOC07+12 trainval,
# VOC2007 test, 11-point AP); mmdet issue #11541 calls it the 0.804 of the 2.22 log.
MMDET_BASELINE = {
    "config": "faster-rcnn_r50_fpn_voc0712_mmdet",
    "row": "mmdet_r50_voc0712",
    "map": 80.4,
    "source": "mmdet model zoo, configs/pascal_voc/README.md: Faster R-CNN R-50 1x, box AP 80.4 "
              "(faster_rcnn_r50_fpn_1x_voc0712_20220320_192712, mmdet 2.x, VOC07+12 trainval, VOC2007 test)",
}


def _label_baseline(record: dict[str, Any]) -> dict[str, Any]:
    """The mmdet baseline's record under its own row, without a Table S3 reference (it is not a paper row)."""
    if record.get("labels", {}).get("config") != MMDET_BASELINE["config"]:
        return record
    return {**record, "labels": {**record["labels"], "method": MMDET_BASELINE["row"]}, "reference": None}


def build(records_dir: str | Path, out_stem: str | Path, title: str = "") -> tuple[Path, Path]:
    records = [_label_baseline(r) for r in load_records(records_dir)]
    if not records:
        raise FileNotFoundError(f"no finished detection records under {records_dir}")
    columns = [k for k in records[0]["final"] if k != "map"] + ["map"]
    rows = build_rows(records, ["method"], columns)
    notes = []
    for row in rows:
        if row.labels["method"] == MMDET_BASELINE["row"]:
            row.cells["map"].paper = MMDET_BASELINE["map"]
            notes.append(f"Row {MMDET_BASELINE['row']}: its paper column is not the PS-KD paper's but mmdet's "
                         f"published baseline ({MMDET_BASELINE['source']}).")
    markdown = (f"### {title}\n\n" if title else "") + to_markdown(rows, columns)
    markdown += "".join(f"\n{note}\n" for note in notes)
    stem = Path(out_stem)
    return (atomic_write_text(stem.with_suffix(".md"), markdown),
            atomic_write_text(stem.with_suffix(".csv"), to_csv(rows, columns)))


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
