"""Stand-in data sets for the rehearsal of the paper profile: generated here, no download, each in
its real data set's on-disk format, so that the paper profile's own loaders read them unchanged.

    python -m benchmarks.pipeline.standin_data {cifar100,imagenet,voc,iwslt15,all} --out DIR [--seed 0]

``--out`` is the folder that the profile's variable names (``PSKD_CIFAR100``, ``PSKD_IMAGENET``, ``PSKD_VOC``,
``PSKD_IWSLT15``); ``all`` writes DIR/cifar100, DIR/imagenet, DIR/VOCdevkit and DIR/iwslt15 and prints the four
assignments. Each data set:

* ``cifar100``: ``cifar-100-python/{train,test,meta}``, the pickles that the CIFAR page
  (https://www.cs.toronto.edu/~kriz/cifar.html) describes, written as the real ones are (Python 2 pickles), so
  that its own ``unpickle`` recipe (``encoding="bytes"``) and torchvision (``encoding="latin1"``) both read them.
  torchvision's md5 check of the real archive refuses them; classification.data reads them only where the run
  sets ``PSKD_STANDIN_DATA=1`` (see its docstring).
* ``imagenet``: ``train/<wnid>/<wnid>_<k>.JPEG`` and ``val/<wnid>/ILSVRC2012_val_<n>.JPEG`` for the 1,000 ILSVRC2012
  classes (``imagenet_wnids.txt`` beside this file, in the standard sorted order), JPEGs of ImageNet's common
  sizes (500 x 375, 375 x 500, 500 x 333, ...), a few greyscale and one CMYK as the real set has.
* ``voc``: a VOCdevkit with VOC2007 (trainval, test) and VOC2012 (trainval) as the devkit lays them out
  (http://host.robots.ox.ac.uk/pascal/VOC/voc2012/devkit_doc.pdf): ``JPEGImages/<id>.jpg``,
  ``Annotations/<id>.xml`` (size; per object name, pose, truncated, difficult, 1-based bndbox) and
  ``ImageSets/Main/<split>.txt`` with the per-class ``<class>_<split>.txt`` lists, over the 20 VOC classes.
* ``iwslt15``: the extracted IWSLT 2015 EN-DE release (https://wit3.fbk.eu/2015-01, texts/en/de/en-de.tgz):
  ``en-de/train.tags.en-de.{en,de}`` (talks with their header lines) and the XML sets
  ``IWSLT15.TED(X).<set>.en-de.{en,de}.xml`` of translation.corpus.IWSLT_TEST_SETS, one ``<seg id="N">`` a line.

Every generator is deterministic (seeded), writes the marker ``PSKD_STANDIN.json`` (classification.data's
STANDIN_MARKER: data set, generator, seed, counts; for CIFAR-100 the md5 of each pickle) so that a person or a
record can tell a stand-in from the real set, refuses to overwrite a folder that holds the data set without
that marker (real data), and returns what it wrote: counts, files, bytes and seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import shutil
import struct
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from classification.data import STANDIN_ENV, STANDIN_MARKER, standin_marker

GENERATOR = "benchmarks.pipeline.standin_data"
WNIDS_FILE = Path(__file__).resolve().parent / "imagenet_wnids.txt"
ENV = {"cifar100": "PSKD_CIFAR100", "imagenet": "PSKD_IMAGENET", "voc": "PSKD_VOC", "iwslt15": "PSKD_IWSLT15"}
# Where `all` puts each data set under --out: the default folder names of benchmarks/profiles/paper.yaml's paths.
ALL_FOLDERS = {"cifar100": "cifar100", "imagenet": "imagenet", "voc": "VOCdevkit", "iwslt15": "iwslt15"}

# CIFAR-100's 20 superclasses and their 5 classes each, as the CIFAR page lists them; the meta file's names
# are these (singular, "_" for spaces), the fine ones in alphabetical order as in the real meta.
CIFAR100_SUPERCLASSES = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
CIFAR100_FINE = sorted(name for names in CIFAR100_SUPERCLASSES.values() for name in names)
CIFAR100_COARSE = sorted(CIFAR100_SUPERCLASSES)

# ImageNet's most common image sizes (width, height); most photos are 500 px on the longer side.
IMAGENET_SIZES = ((500, 375), (375, 500), (500, 333), (333, 500), (500, 500), (500, 400), (640, 480), (500, 281))
VOC_SIZES = ((500, 375), (375, 500), (500, 333), (333, 500), (500, 366), (486, 500), (500, 281))
VOC_POSES = ("Frontal", "Rear", "Left", "Right", "Unspecified")


# ----------------------------------------------------------------------------------------------- common parts

def _claim(folder: Path, data_set: str, owned: Iterable[str], seed: int) -> None:
    """Make ``folder`` ready for a fresh stand-in: refuse where it holds one of the ``owned`` entries without a
    stand-in marker (real data, never overwritten), else remove the previous stand-in's entries and write a
    marker without counts (replaced when the generation is complete), so that an interrupted generation can be
    redone and is not taken for a complete one."""
    folder.mkdir(parents=True, exist_ok=True)
    present = [name for name in owned if (folder / name).exists()]
    marker = standin_marker(folder)
    if present and marker is None:
        raise FileExistsError(f"{folder} holds {', '.join(present)} but no {STANDIN_MARKER}: it looks like the real "
                              f"{data_set}, which this generator does not overwrite; choose another --out")
    if marker is not None and marker.get("data_set") != data_set:
        raise FileExistsError(f"{folder} holds the stand-in {marker.get('data_set')}; write the {data_set} stand-in "
                              "into another --out")
    for name in present:
        if (folder / name).is_dir():
            shutil.rmtree(folder / name)
        else:
            (folder / name).unlink()
    _write_marker(folder, {"data_set": data_set, "generator": GENERATOR, "seed": seed, "complete": False})


def _write_marker(folder: Path, marker: dict[str, Any]) -> None:
    (folder / STANDIN_MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _finish(data_set: str, out: Path, folder: Path, owned: Iterable[str], seed: int, counts: dict[str, Any],
            started: float, **extra: Any) -> dict[str, Any]:
    """Write the complete marker into ``folder`` and return the summary of the stand-in: the folder for the
    profile's variable (``out``), the counts, and the files, bytes and seconds of what was written."""
    _write_marker(folder, {"data_set": data_set, "generator": GENERATOR, "seed": seed, "complete": True,
                           "counts": counts, **extra})
    entries = [folder / name for name in (*owned, STANDIN_MARKER)]
    files = [p for entry in entries for p in ([entry] if entry.is_file() else entry.rglob("*")) if p.is_file()]
    return {"data_set": data_set, "path": str(out), "env": ENV[data_set], "counts": counts, "files": len(files),
            "bytes": sum(p.stat().st_size for p in files), "seconds": round(time.monotonic() - started, 2)}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _backdrop(rng: np.random.Generator, width: int, height: int):
    """A smooth colour field (four random corner colours, bilinearly spread): quick to make, and it compresses
    like a photo's sky or wall rather than like noise, so the JPEGs stay small."""
    from PIL import Image

    corners = rng.integers(0, 256, size=(2, 2, 3), dtype=np.uint8)
    return Image.fromarray(corners).resize((width, height), Image.Resampling.BILINEAR)


# ------------------------------------------------------------------------------------------------- CIFAR-100

# numpy's array reconstructor (numpy._core.multiarray._reconstruct in numpy 2, numpy.core.multiarray's in 1.x)
_reconstruct = np.zeros(0).__reduce__()[0]

class _Python2Pickler(pickle._Pickler):
    """A protocol-2 pickler that writes what Python 2's cPickle wrote for the CIFAR files: every string (the dict
    keys, the names, the array's raw bytes) as a Python 2 ``str`` (SHORT_BINSTRING / BINSTRING), which Python 3
    loads as ``str`` with ``encoding="latin1"`` (torchvision) and as ``bytes`` with ``encoding="bytes"`` (the
    CIFAR page's recipe: ``b'data'``); a numpy array through ``numpy.core.multiarray._reconstruct``, the name
    numpy 1.x wrote and numpy 2 still loads. The pure-Python pickler is used because its dispatch table can be
    extended; the C pickler's cannot."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_python2_str(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_python2_str
    dispatch[bytes] = save_python2_str

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is np.ndarray:  # numpy's own state tuple, with the data as one C-ordered byte string
            return _reconstruct, (np.ndarray, (0,), b"b"), (1, obj.shape, obj.dtype, False, obj.tobytes())
        return NotImplemented

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is _reconstruct:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)



def _dump_python2(obj: dict, path: Path) -> None:
    with path.open("wb") as f:
        _Python2Pickler(f, protocol=2).dump(obj)


def _cifar_images(rng: np.random.Generator, labels: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """(N, 3072) uint8 rows in the CIFAR layout (the 1024 red values of the 32 x 32 image row by row, then
    green, then blue): each image its class's pattern plus noise, so a network can learn something."""
    noise = rng.normal(0, 40, size=(len(labels), 32, 32, 3))
    images = np.clip(prototypes[labels] + noise, 0, 255).astype(np.uint8)
    return images.transpose(0, 3, 1, 2).reshape(len(labels), 3072)


def make_cifar100(out: str | Path, train_per_class: int = 20, test_per_class: int = 5,
                  seed: int = 0) -> dict[str, Any]:
    """A stand-in CIFAR-100 in ``out/cifar-100-python/`` (the folder the real archive extracts to): ``train`` and
    ``test`` dicts with ``data`` (uint8, N x 3072), ``fine_labels``, ``coarse_labels``, ``filenames`` and
    ``batch_label``; ``meta`` with ``fine_label_names`` and ``coarse_label_names``. The classes are balanced
    (``train_per_class`` and ``test_per_class`` images each), in a seeded random order."""
    started = time.monotonic()
    root = Path(out)
    folder = root / "cifar-100-python"
    owned = ("train", "test", "meta")
    _claim(folder, "cifar100", owned, seed)
    rng = np.random.default_rng(seed)
    coarse_of = {fine: CIFAR100_COARSE.index(coarse) for coarse, names in CIFAR100_SUPERCLASSES.items()
                 for fine in names}
    prototypes = rng.integers(0, 256, size=(100, 32, 32, 3)).astype(np.float64)
    counts = {}
    for split, per_class, batch_label in (("train", train_per_class, "training batch 1 of 1"),
                                          ("test", test_per_class, "testing batch 1 of 1")):
        labels = rng.permutation(np.repeat(np.arange(100), per_class))
        _dump_python2({"filenames": [f"{CIFAR100_FINE[c]}_s_{i:06d}.png" for i, c in enumerate(labels)],
                       "batch_label": batch_label,
                       "fine_labels": [int(c) for c in labels],
                       "coarse_labels": [coarse_of[CIFAR100_FINE[c]] for c in labels],
                       "data": _cifar_images(rng, labels, prototypes)}, folder / split)
        counts[split] = len(labels)
    _dump_python2({"fine_label_names": CIFAR100_FINE, "coarse_label_names": CIFAR100_COARSE}, folder / "meta")
    md5 = {name: _md5(folder / name) for name in ("train", "test", "meta")}
    return _finish("cifar100", root, folder, owned, seed, counts, started, md5=md5)


# -------------------------------------------------------------------------------------------------- ImageNet

def imagenet_wnids() -> list[str]:
    """The 1,000 ILSVRC2012 class ids (WordNet synsets) in the standard class-index order (sorted)."""
    return WNIDS_FILE.read_text(encoding="ascii").split()


def _imagenet_image(rng: np.random.Generator, index: int, colour: tuple[int, int, int]):
    """One photo-like image: a smooth backdrop with an ellipse of its class's colour; every 50th greyscale and
    the 7th CMYK, as ImageNet has greyscale JPEGs and a few CMYK ones (which a loader must convert to RGB)."""
    from PIL import ImageDraw

    width, height = IMAGENET_SIZES[int(rng.integers(len(IMAGENET_SIZES)))]
    image = _backdrop(rng, width, height)
    w, h = int(rng.integers(width // 4, width * 3 // 4)), int(rng.integers(height // 4, height * 3 // 4))
    x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
    ImageDraw.Draw(image).ellipse((x, y, x + w, y + h), fill=colour)
    if index == 7:
        return image.convert("CMYK")
    return image.convert("L") if index % 50 == 0 else image


def make_imagenet(out: str | Path, train_per_class: int = 1, val_per_class: int = 1, seed: int = 0,
                  classes: int | None = None) -> dict[str, Any]:
    """A stand-in ImageNet in ``out``: ``train/<wnid>/<wnid>_<k>.JPEG`` and ``val/<wnid>/ILSVRC2012_val_<n>.JPEG``
    (validation images sorted into class folders, as classification.data expects), for the first ``classes``
    wnids (all 1,000 by default)."""
    started = time.monotonic()
    root = Path(out)
    owned = ("train", "val")
    _claim(root, "imagenet", owned, seed)
    rng = np.random.default_rng(seed)
    wnids = imagenet_wnids()[:classes]
    colours = rng.integers(0, 256, size=(len(wnids), 3))
    index, counts = 0, {"classes": len(wnids), "train": 0, "val": 0}
    val_number = 0
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        for c, wnid in enumerate(wnids):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for k in range(per_class):
                if split == "train":
                    name = f"{wnid}_{k + 1}.JPEG"
                else:
                    val_number += 1
                    name = f"ILSVRC2012_val_{val_number:08d}.JPEG"
                colour = tuple(int(v) for v in colours[c])
                _imagenet_image(rng, index, colour).save(folder / name, "JPEG", quality=75)
                index += 1
                counts[split] += 1
    return _finish("imagenet", root, root, owned, seed, counts, started)


# ------------------------------------------------------------------------------------------- PASCAL VOC

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


def _write_voc_year(root: Path, year: str, splits: dict[str, list[str]], rng: np.random.Generator,
                    classes: tuple[str, ...]) -> dict[str, int]:
    """One VOC<year> folder: images, annotations, ``ImageSets/Main/<split>.txt`` and, per class,
    ``<class>_<split>.txt`` (``<id> 1`` the class is in the image, ``-1`` it is not, ``0`` only as difficult)."""
    from PIL import ImageDraw

    voc = root / f"VOC{year}"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    present: dict[str, dict[str, int]] = {}
    n_objects = 0
    for image_id in sorted({i for ids in splits.values() for i in ids}):  # train and val are in trainval too
        width, height = VOC_SIZES[int(rng.integers(len(VOC_SIZES)))]
        image = _backdrop(rng, width, height)
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
             seed: int = 0) -> dict[str, Any]:
    """A stand-in VOCdevkit in ``out``: VOC2007 with ``train``/``val``/``trainval``/``test`` image lists (ids
    ``000001``, ... with the two sets interleaved as in the real one) and VOC2012 with ``train``/``val``/
    ``trainval`` (ids ``2008_000001``, ...), photo-sized JPEGs of the 20 VOC classes drawn as filled shapes of
    their palette colour."""
    from detection.voc import VOC_CLASSES

    started = time.monotonic()
    root = Path(out)
    owned = ("VOC2007", "VOC2012")
    _claim(root, "voc", owned, seed)
    rng = np.random.default_rng(seed)
    n07 = voc2007_trainval + voc2007_test
    test_numbers = set(rng.choice(np.arange(1, n07 + 1), size=voc2007_test, replace=False).tolist())
    ids07 = [f"{n:06d}" for n in range(1, n07 + 1)]
    trainval07 = [i for n, i in enumerate(ids07, start=1) if n not in test_numbers]
    ids12 = [f"{2008 + k % 4}_{k // 4 + 1:06d}" for k in range(voc2012_trainval)]
    trainval12 = sorted(ids12)
    counts = {}
    for year, trainval, extra in (("2007", trainval07, {"test": [i for i in ids07 if i not in trainval07]}),
                                  ("2012", trainval12, {})):
        splits = {"train": trainval[0::2], "val": trainval[1::2], "trainval": trainval, **extra}
        counts[f"VOC{year}"] = _write_voc_year(root, year, splits, rng, VOC_CLASSES)
    return _finish("voc", root, root, owned, seed, counts, started)


# ---------------------------------------------------------------------------------------------- IWSLT 2015

# Parallel phrases (German, English) of a small grammar; a sentence is subject verb object time place, with
# the German verb second and its time before the object, as a translation model must learn.
_SUBJECTS = (("Der Hund", "The dog"), ("Die Katze", "The cat"), ("Der Lehrer", "The teacher"),
             ("Die Ärztin", "The doctor"), ("Das Mädchen", "The girl"), ("Mein Großvater", "My grandfather"),
             ("Unsere Nachbarin", "Our neighbour"), ("Der Forscher", "The researcher"))
_VERBS = (("sieht", "sees"), ("sucht", "looks for"), ("mag", "likes"), ("findet", "finds"), ("baut", "builds"),
          ("trägt", "carries"), ("öffnet", "opens"), ("zählt", "counts"))
_OBJECTS = (("den Ball", "the ball"), ("das Haus", "the house"), ("einen Apfel", "an apple"),
            ("das Buch", "the book"), ("die Straße", "the street"), ("einen Schlüssel", "a key"),
            ("die Tür", "the door"), ("zwölf Steine", "twelve stones"))
_TIMES = (("heute", "today"), ("morgen", "tomorrow"), ("oft", "often"), ("jetzt", "now"), ("wieder", "again"))
_PLACES = (("im Garten", "in the garden"), ("in der Stadt", "in the city"), ("am Fluss", "by the river"),
           ("zu Hause", "at home"), ("im Büro", "in the office"))


def _sentence(rng: np.random.Generator) -> tuple[str, str]:
    """One (English, German) pair of the grammar."""
    (s_de, s_en), (v_de, v_en), (o_de, o_en), (t_de, t_en), (p_de, p_en) = (
        part[int(rng.integers(len(part)))] for part in (_SUBJECTS, _VERBS, _OBJECTS, _TIMES, _PLACES))
    return f"{s_en} {v_en} {o_en} {p_en} {t_en}.", f"{s_de} {v_de} {t_de} {o_de} {p_de}."


# The release's dev and test sets: (kind, name) of translation.corpus.IWSLT_TEST_SETS' six sets.
IWSLT_SETS = (("TED", "dev2010"), ("TEDX", "dev2012"), ("TED", "tst2010"), ("TED", "tst2011"), ("TED", "tst2012"),
              ("TED", "tst2013"))


def _talk_header(talk: int, lang: str) -> list[str]:
    """The header lines of a talk in ``train.tags`` (both sides have them, line for line)."""
    title = {"en": f"Speaker {talk}: Why gardens matter", "de": f"Speaker {talk}: Warum Gärten zählen"}[lang]
    return [f"<url>http://www.ted.com/talks/speaker_{talk}.html</url>",
            "<keywords>talks, science, cities</keywords>",
            f"<speaker>Speaker {talk}</speaker>",
            f"<talkid>{1000 + talk}</talkid>",
            f"<title>{title}</title>",
            f"<description>TED Talk Subtitles and Transcript: talk {talk} on gardens.</description>",
            f'<reviewer href="http://www.ted.com/profiles/{talk}">Reviewer {talk}</reviewer>',
            f'<translator href="http://www.ted.com/profiles/{talk + 1}">Translator {talk}</translator>']


def _xml_set(kind: str, name: str, lang: str, docs: list[tuple[int, list[str]]]) -> str:
    """An IWSLT XML set (``srcset`` for English, ``refset`` for German): per talk a ``<doc>`` with its header
    lines, then one ``<seg id="N">`` a line, its text XML-escaped."""
    from xml.sax.saxutils import escape

    side = "srcset" if lang == "en" else "refset"
    trglang = "" if lang == "en" else ' trglang="german" refid="ref"'
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<mteval>",
             f'<{side} setid="iwslt2015-{name}" srclang="english"{trglang}>']
    for talk, segs in docs:
        lines += [f'<doc docid="{talk}" genre="lectures">',
                  f"<url>http://www.ted.com/talks/{kind.lower()}_{talk}.html</url>",
                  f"<description>TED Talk Subtitles and Transcript: {name} talk {talk}.</description>",
                  "<keywords>talks, science</keywords>", f"<speaker>Speaker {talk}</speaker>",
                  f"<talkid>{talk}</talkid>", f"<title>Talk {talk} of {name}</title>"]
        lines += [f'<seg id="{n}"> {escape(text)} </seg>' for n, text in enumerate(segs, 1)]
        lines.append("</doc>")
    return "\n".join([*lines, f"</{side}>", "</mteval>"]) + "\n"


def make_iwslt15(out: str | Path, talks: int = 23, sentences_per_talk: int = 100, test_talks_per_set: int = 2,
                 segments_per_talk: int = 15, seed: int = 0) -> dict[str, Any]:
    """A stand-in of the extracted IWSLT 2015 EN-DE release in ``out/en-de/``: ``train.tags.en-de.{en,de}``
    (``talks`` talks, each its header lines then ``sentences_per_talk`` aligned sentences) and the six XML sets
    (``test_talks_per_set`` talks of ``segments_per_talk`` segments each). Each talk has one sentence with an
    apostrophe, quotes and an ampersand (tokeniser escaping), and each XML talk one with a typographic
    apostrophe (’, which prepare-iwslt14.sh replaces)."""
    started = time.monotonic()
    root = Path(out)
    owned = ("en-de",)
    _claim(root, "iwslt15", owned, seed)
    folder = root / "en-de"
    folder.mkdir()
    rng = np.random.default_rng(seed)
    train: dict[str, list[str]] = {"en": [], "de": []}
    for talk in range(talks):
        for lang in ("en", "de"):
            train[lang] += _talk_header(talk, lang)
        for k in range(sentences_per_talk):
            en, de = ('It\'s "great" & fun.', 'Es ist "toll" & lustig.') if k == 0 else _sentence(rng)
            train["en"].append(en)
            train["de"].append(de)
    for lang, lines in train.items():
        (folder / f"train.tags.en-de.{lang}").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    test_pairs = 0
    for s, (kind, name) in enumerate(IWSLT_SETS):
        docs: dict[str, list[tuple[int, list[str]]]] = {"en": [], "de": []}
        for t in range(test_talks_per_set):
            talk = 500 + 10 * s + t
            pairs = [_sentence(rng) for _ in range(segments_per_talk - 1)] + [("It’s the end.", "Das ist das Ende.")]
            docs["en"].append((talk, [en for en, _ in pairs]))
            docs["de"].append((talk, [de for _, de in pairs]))
            test_pairs += len(pairs)
        for lang in ("en", "de"):
            (folder / f"IWSLT15.{kind}.{name}.en-de.{lang}.xml").write_text(_xml_set(kind, name, lang, docs[lang]),
                                                                             encoding="utf-8")
    counts = {"talks": talks, "train_pairs": talks * sentences_per_talk, "header_lines": 8 * talks,
              "test_sets": len(IWSLT_SETS), "test_pairs": test_pairs}
    return _finish("iwslt15", root, root, owned, seed, counts, started)


# ---------------------------------------------------------------------------------------------------- CLI

MAKERS = {"cifar100": make_cifar100, "imagenet": make_imagenet, "voc": make_voc, "iwslt15": make_iwslt15}


def environment(made: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The variables that point a profile's data sets at the stand-ins ``made`` (each maker's summary, by data
    set), and :data:`classification.data.STANDIN_ENV`, without which the CIFAR-100 stand-in is refused."""
    return {**{entry["env"]: str(entry["path"]) for entry in made.values()}, STANDIN_ENV: "1"}


def make_all(out: str | Path, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Every stand-in with its default sizes, under ``out/<cifar100|imagenet|VOCdevkit|iwslt15>``."""
    return {name: make(Path(out) / ALL_FOLDERS[name], seed=seed) for name, make in MAKERS.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=[*MAKERS, "all"])
    parser.add_argument("--out", required=True, help="the folder to write (what the profile's PSKD_* variable names; "
                                                     "for all, the folder of the four)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    made = make_all(args.out, args.seed) if args.what == "all" else {args.what: MAKERS[args.what](args.out,
                                                                                                  seed=args.seed)}
    for summary in made.values():
        print(f"{summary['data_set']}: {json.dumps(summary['counts'])}, {summary['files']} files, "
              f"{summary['bytes'] / 2**20:.1f} MiB in {summary['seconds']} s -> {summary['path']}")
    print("point the paper profile at them:")
    for summary in made.values():
        print(f"  export {summary['env']}={Path(summary['path']).resolve()}")


if __name__ == "__main__":
    main()
