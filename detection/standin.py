"""Detection data made here, in PASCAL VOC's on-disk format, by one generator (the stand-in protocol:
:mod:`common.standin`).

    python -m detection.standin voc --out DIR                          # the paper profile's stand-in VOCdevkit
    python -m detection.standin synthetic --out DIR [--trainval 8] [--test 4]   # the demo's and smoke's set

:func:`make_voc` writes a VOCdevkit as the devkit lays it out
(http://host.robots.ox.ac.uk/pascal/VOC/voc2012/devkit_doc.pdf): ``VOC2007`` (train, val, trainval, test) and,
when asked, ``VOC2012`` (train, val, trainval), each with ``JPEGImages/<id>.jpg``, ``Annotations/<id>.xml`` (size;
per object name, pose, truncated, difficult, 1-based bndbox) and ``ImageSets/Main/<split>.txt`` with the
per-class ``<class>_<split>.txt`` lists. Each object is a filled shape of its class's colour in the devkit's
palette (rectangles and ellipses by turn) over a smooth backdrop, so that a detector can learn it.

* ``voc``: the rehearsal's stand-in: both years, the 20 VOC classes, photo-sized images, so that the paper
  profile's configs read it unchanged.
* ``synthetic`` (:func:`make_synthetic_voc`): the demo's and smoke's small learnable set: VOC2007 only, five
  classes, 224 x 160 images.
"""

from __future__ import annotations

import argparse
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from common.cli import run_main
from common.standin import StandinError, backdrop, claim, finish
from detection.voc import VOC_CLASSES

GENERATOR = "detection.standin"
VOC_SIZES = ((500, 375), (375, 500), (500, 333), (333, 500), (500, 366), (486, 500), (500, 281))
VOC_POSES = ("Frontal", "Rear", "Left", "Right", "Unspecified")
SYNTHETIC_CLASSES = ("bus", "car", "cat", "dog", "person")  # the demo's five


def _voc_colour(label: int) -> tuple[int, int, int]:
    """The colour of VOC class ``label`` (1-20) in the devkit's segmentation palette (VOClabelcolormap.m)."""
    rgb, c = [0, 0, 0], label
    for bit in range(8):
        for channel in range(3):
            rgb[channel] |= ((c >> channel) & 1) << (7 - bit)
        c >>= 3
    return rgb[0], rgb[1], rgb[2]


def _voc_objects(rng: np.random.Generator, width: int, height: int, classes: tuple[str, ...]) -> list[dict]:
    """1-4 objects with 1-based pixel boxes inside the image; one reaching the image's border is truncated, about
    one in eight is difficult (the VOC metric ignores those)."""
    objects = []
    for _ in range(int(rng.integers(1, 5))):
        w = int(rng.integers(40, width * 2 // 3))
        h = int(rng.integers(40, height * 2 // 3))
        x1 = int(rng.integers(1, width - w + 2))
        y1 = int(rng.integers(1, height - h + 2))
        x2, y2 = min(x1 + w, width), min(y1 + h, height)
        objects.append({"name": classes[int(rng.integers(len(classes)))],
                        "pose": VOC_POSES[int(rng.integers(len(VOC_POSES)))],
                        "truncated": int(x1 == 1 or y1 == 1 or x2 == width or y2 == height),
                        "difficult": int(rng.random() < 0.125), "bndbox": (x1, y1, x2, y2)})
    return objects


def _voc_annotation(year: str, image_id: str, width: int, height: int, objects: list[dict]) -> ET.ElementTree:
    """An annotation as the devkit writes it (Annotations/<id>.xml)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = f"VOC{year}"
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = f"The VOC{year} Database"
    ET.SubElement(source, "annotation").text = f"PASCAL VOC{year}"
    ET.SubElement(source, "image").text = "flickr"
    size = ET.SubElement(root, "size")
    for key, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, key).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for obj in objects:
        node = ET.SubElement(root, "object")
        for key in ("name", "pose", "truncated", "difficult"):
            ET.SubElement(node, key).text = str(obj[key])
        box = ET.SubElement(node, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), obj["bndbox"], strict=True):
            ET.SubElement(box, key).text = str(value)
    tree = ET.ElementTree(root)
    ET.indent(tree, space="\t")
    return tree


def _write_voc_year(voc: Path, year: str, splits: dict[str, list[str]], rng: np.random.Generator,
                    classes: tuple[str, ...], sizes: tuple[tuple[int, int], ...]) -> dict[str, int]:
    """One VOC<year> folder ``voc``: images of ``sizes`` (width, height), annotations, ``ImageSets/Main/<split>.txt``
    and, per class, ``<class>_<split>.txt`` (``<id> 1`` the class is in the image, ``-1`` it is not, ``0`` only
    as difficult)."""
    from PIL import ImageDraw

    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    present: dict[str, dict[str, int]] = {}
    n_objects = 0
    for image_id in sorted({i for ids in splits.values() for i in ids}):  # train and val are in trainval too
        width, height = sizes[int(rng.integers(len(sizes)))]
        image = backdrop(rng, width, height)
        draw = ImageDraw.Draw(image)
        objects = _voc_objects(rng, width, height, classes)
        for obj in objects:  # the devkit's boxes are 1-based and inclusive; PIL's are 0-based and inclusive
            x1, y1, x2, y2 = obj["bndbox"]
            shape = draw.ellipse if classes.index(obj["name"]) % 2 else draw.rectangle
            shape((x1 - 1, y1 - 1, x2 - 1, y2 - 1), fill=_voc_colour(classes.index(obj["name"]) + 1))
            flags = present.setdefault(image_id, {})
            flags[obj["name"]] = max(flags.get(obj["name"], 0), 0 if obj["difficult"] else 1)
        image.save(voc / "JPEGImages" / f"{image_id}.jpg", "JPEG", quality=75)
        _voc_annotation(year, image_id, width, height, objects).write(voc / "Annotations" / f"{image_id}.xml")
        n_objects += len(objects)
    main = voc / "ImageSets" / "Main"
    for split, ids in splits.items():
        (main / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for cls in classes:
            (main / f"{cls}_{split}.txt").write_text(
                "".join(f"{i} {present[i].get(cls, -1):2d}\n" for i in ids))
    return {**{split: len(ids) for split, ids in splits.items()}, "objects": n_objects}


def make_voc(out: str | Path, voc2007_trainval: int = 32, voc2007_test: int = 16, voc2012_trainval: int = 32,
             seed: int = 0, classes: tuple[str, ...] = VOC_CLASSES,
             sizes: tuple[tuple[int, int], ...] = VOC_SIZES, flat: bool = False) -> dict[str, Any]:
    """A VOCdevkit in ``out``: VOC2007 with ``train``/``val``/``trainval``/``test`` image lists (ids ``000001``,
    ... with the two sets interleaved as in the real one) and, where ``voc2012_trainval``, VOC2012 with
    ``train``/``val``/``trainval`` (ids ``2008_000001``, ...), of ``classes``, images of ``sizes`` (width,
    height). ``flat``: VOC2007's folders in ``out`` itself (a folder of one's own classes), without VOC2012."""
    if flat and voc2012_trainval:
        raise ValueError("a flat VOC folder holds one year: ask for no VOC2012 images")
    started = time.monotonic()
    root = Path(out)
    years = {"2007": root if flat else root / "VOC2007", **({"2012": root / "VOC2012"} if voc2012_trainval else {})}
    owned = ("Annotations", "JPEGImages", "ImageSets") if flat else tuple(folder.name for folder in years.values())
    claim(root, "voc", owned, seed, GENERATOR)
    rng = np.random.default_rng(seed)
    n07 = voc2007_trainval + voc2007_test
    test_numbers = set(rng.choice(np.arange(1, n07 + 1), size=voc2007_test, replace=False).tolist())
    ids07 = [f"{n:06d}" for n in range(1, n07 + 1)]
    trainval07 = [i for n, i in enumerate(ids07, start=1) if n not in test_numbers]
    trainval12 = sorted(f"{2008 + k % 4}_{k // 4 + 1:06d}" for k in range(voc2012_trainval))
    lists = {"2007": (trainval07, {"test": [i for i in ids07 if i not in trainval07]}), "2012": (trainval12, {})}
    counts = {}
    for year, folder in years.items():
        trainval, extra = lists[year]
        splits = {"train": trainval[0::2], "val": trainval[1::2], "trainval": trainval, **extra}
        counts[f"VOC{year}"] = _write_voc_year(folder, year, splits, rng, tuple(classes), sizes)
    return finish("voc", root, root, owned, seed, GENERATOR, counts, started)


def make_synthetic_voc(root: str | Path, n_trainval: int = 128, n_test: int = 64, size: tuple[int, int] = (160, 224),
                       seed: int = 0, classes: tuple[str, ...] = SYNTHETIC_CLASSES, subdir: str = "VOC2007") -> Path:
    """The demo's small learnable VOC set under ``root/subdir`` (:func:`make_voc`: VOC2007 only, images of
    ``size`` (height, width), five VOC classes or one's own ``classes``); ``subdir=""`` writes the folders into
    ``root`` itself. Returns ``root``."""
    if subdir not in ("VOC2007", ""):
        raise ValueError(f"subdir must be VOC2007 or '' (the folders in root itself); got {subdir!r}")
    height, width = size
    make_voc(root, n_trainval, n_test, 0, seed, classes, ((width, height),), flat=subdir == "")
    return Path(root)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["voc", "synthetic"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--trainval", type=int, default=8, help="synthetic: training images")
    parser.add_argument("--test", type=int, default=4, help="synthetic: test images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.what == "voc":
        print(make_voc(args.out, seed=args.seed))
    else:
        print(make_synthetic_voc(args.out, n_trainval=args.trainval, n_test=args.test, seed=args.seed))


if __name__ == "__main__":
    run_main(main, StandinError)
