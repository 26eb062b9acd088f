"""PASCAL VOC data: a robust annotation parser and a dataset that uses it (the generated sets: detection.standin).

``RobustVOCDataset`` is mmdet's VOCDataset with a parser that accepts what real annotation tools write
and counts every fix-up (logged once per dataset, kept in ``dataset.fixups``):
* coordinates written as floats ("20.38") are read as mmdet does (``int(float(x))``);
* an empty ``<difficult/>`` means 0;
* class names are matched after lower-casing and removing spaces and "/" ("potted plant" ->
  "pottedplant", "tv/monitor" -> "tvmonitor"); other names are skipped and counted;
* boxes reaching outside the image are clipped to it; boxes empty after clipping are skipped.
Malformed XML stops with an error that names the file.

A user's own classes: set ``metainfo=dict(classes=(...))`` on the datasets and ``num_classes`` in the box head
(detection/configs/my_voc_classes_faster-rcnn_r18_pskd.py); the per-class APs then carry those names.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from mmdet.datasets import VOCDataset
from mmdet.registry import DATASETS
from mmengine.logging import MMLogger

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/ (VOCtrainval_06-Nov-2007.tar, VOCtest_06-Nov-2007.tar)"


class VOCAnnotationError(ValueError):
    """An annotation file that cannot be read; the message names it."""


def canonical_class(name: str) -> str:
    return name.strip().lower().replace(" ", "").replace("/", "")


def parse_objects(xml_path: str | Path, classes: tuple[str, ...], fixups: Counter) -> tuple[list[dict], int, int]:
    """(instances in mmdet's format, width, height) of one VOC XML file; fix-ups are added to ``fixups``."""
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as err:
        raise VOCAnnotationError(f"{xml_path}: malformed XML ({err}); fix or remove this annotation") from err
    size = root.find("size")
    if size is None or size.find("width") is None:
        raise VOCAnnotationError(f"{xml_path}: no <size><width>/<height>; the parser needs the image size")
    width, height = int(float(size.find("width").text)), int(float(size.find("height").text))
    lookup = {canonical_class(c): i for i, c in enumerate(classes)}
    instances = []
    for obj in root.findall("object"):
        raw = (obj.findtext("name") or "").strip()
        label = lookup.get(canonical_class(raw))
        if label is None:
            fixups[f"skipped object of unknown class {raw!r}"] += 1
            continue
        if raw != classes[label]:
            fixups[f"class name {raw!r} read as {classes[label]!r}"] += 1
        difficult_text = (obj.findtext("difficult") or "").strip()
        if not difficult_text:
            fixups["empty <difficult/> read as 0"] += 1
        box = obj.find("bndbox")
        try:
            x1, y1, x2, y2 = (int(float(box.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError, AttributeError) as err:
            raise VOCAnnotationError(f"{xml_path}: object {raw!r} has an unreadable <bndbox> ({err})") from err
        clipped = (max(x1, 1), max(y1, 1), min(x2, width), min(y2, height))
        if clipped != (x1, y1, x2, y2):
            fixups["box clipped to the image"] += 1
        x1, y1, x2, y2 = clipped
        if x2 <= x1 or y2 <= y1:
            fixups["skipped box empty after clipping"] += 1
            continue
        instances.append({"bbox": [x1 - 1, y1 - 1, x2 - 1, y2 - 1], "bbox_label": label,
                          "ignore_flag": int(difficult_text or 0)})
    return instances, width, height


@DATASETS.register_module()
class RobustVOCDataset(VOCDataset):
    """VOCDataset with :func:`parse_objects` (see the module docstring); a missing data root is explained."""

    def __init__(self, *args, **kwargs) -> None:
        self.fixups: Counter = Counter()
        super().__init__(*args, **kwargs)
        if tuple(self._metainfo["classes"]) != VOC_CLASSES:
            # mmdet's VOCMetric prints its table with the 20 VOC names when the folder is called VOC2007 or
            # VOC2012 (dataset_type); a class list of one's own must be printed with its own names.
            self._metainfo["dataset_type"] = None

    def load_data_list(self) -> list[dict]:
        ann_file = Path(self.ann_file)
        if not ann_file.is_file() and tuple(self._metainfo["classes"]) != VOC_CLASSES:
            raise FileNotFoundError(
                f"no image list at {ann_file}. A VOC-format folder holds ImageSets/Main/<split>.txt (one image id "
                "a line), Annotations/<id>.xml and JPEGImages/<id>.jpg; set data_root and ann_file of the "
                "config's train/val/test datasets to it")
        if not ann_file.is_file():
            raise FileNotFoundError(
                f"no VOC image list at {ann_file}. Expected <data_root>/VOC2007/ImageSets/Main/{{trainval,test}}.txt "
                f"with Annotations/ and JPEGImages/ beside it (VOCdevkit layout); get VOC2007 from {VOC_URL}")
        data_list = super().load_data_list()
        if self.fixups:
            summary = ", ".join(f"{k}: {v}" for k, v in sorted(self.fixups.items()))
            MMLogger.get_current_instance().info(f"{ann_file}: annotation fix-ups: {summary}")
        return data_list

    def parse_data_info(self, img_info: dict) -> dict:
        instances, width, height = parse_objects(img_info["xml_path"], self._metainfo["classes"], self.fixups)
        if self.bbox_min_size is not None and not self.test_mode:
            for inst in instances:
                x1, y1, x2, y2 = inst["bbox"]
                if x2 - x1 < self.bbox_min_size or y2 - y1 < self.bbox_min_size:
                    inst["ignore_flag"] = 1
        return {"img_path": str(Path(self.sub_data_root) / img_info["file_name"]), "img_id": img_info["img_id"],
                "xml_path": img_info["xml_path"], "height": height, "width": width, "instances": instances}


