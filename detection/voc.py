"""PASCAL VOC data: a robust annotation parser, a dataset that uses it, and a synthetic VOC generator.

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

import numpy as np
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


SYNTHETIC_CLASSES = ("bus", "car", "cat", "dog", "person")
_COLORS = {"bus": (230, 180, 20), "car": (200, 30, 30), "cat": (120, 120, 120), "dog": (140, 80, 30),
           "person": (40, 90, 220)}


def make_synthetic_voc(root: str | Path, n_trainval: int = 128, n_test: int = 64, size: tuple[int, int] = (160, 224),
                       seed: int = 0, classes: tuple[str, ...] = SYNTHETIC_CLASSES, subdir: str = "VOC2007") -> Path:
    """A small deterministic VOC-format data set under ``root/subdir``: 1-3 objects per image from five VOC
    classes, each a filled shape of its own colour and form (bus/car: rectangles of different aspect,
    cat/dog: ellipses, person: a tall bar) over a noisy gradient background. Returns ``root``.

    Other ``classes`` (a user-class test) are drawn as the five are, the i-th like the (i mod 5)-th of
    ``SYNTHETIC_CLASSES``; ``subdir=""`` writes the folders into ``root`` itself."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    look = {cls: SYNTHETIC_CLASSES[i % len(SYNTHETIC_CLASSES)] for i, cls in enumerate(classes)}
    voc = Path(root) / subdir
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    height, width = size
    names = []
    for index in range(n_trainval + n_test):
        name = f"{index:06d}"
        names.append(name)
        gradient = np.linspace(40, 200, width)[None, :, None] * np.ones((height, 1, 3))
        background = np.clip(gradient + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(background)
        draw = ImageDraw.Draw(image)
        objects = []
        for _ in range(int(rng.integers(1, 4))):
            cls = classes[int(rng.integers(len(classes)))]
            form = look[cls]
            w = int(rng.integers(40, 90)) if form != "person" else int(rng.integers(20, 35))
            h = {"bus": w // 2, "car": w // 3 + 10, "person": w * 3}.get(form, int(w * 0.8))
            h = min(h, height - 2)
            x1, y1 = int(rng.integers(1, width - w)), int(rng.integers(1, height - h))
            box = (x1, y1, x1 + w, y1 + h)
            shape = draw.ellipse if form in ("cat", "dog") else draw.rectangle
            shape(box, fill=_COLORS[form], outline=(0, 0, 0))
            objects.append((cls, box))
        image.save(voc / "JPEGImages" / f"{name}.jpg", quality=95)
        xml = [f"<annotation><filename>{name}.jpg</filename><size><width>{width}</width><height>{height}</height>"
               "<depth>3</depth></size>"]
        for cls, (x1, y1, x2, y2) in objects:
            xml.append(f"<object><name>{cls}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}"
                       f"</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>")
        (voc / "Annotations" / f"{name}.xml").write_text("".join(xml) + "</annotation>\n")
    (voc / "ImageSets/Main/trainval.txt").write_text("\n".join(names[:n_trainval]) + "\n")
    (voc / "ImageSets/Main/test.txt").write_text("\n".join(names[n_trainval:]) + "\n")
    return Path(root)
