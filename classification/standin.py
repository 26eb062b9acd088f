"""Stand-ins of the classification data sets, in their real on-disk formats, so that the paper profile's
loaders (:mod:`classification.data`) read them unchanged (the protocol: :mod:`common.standin`).

* CIFAR-100 (:func:`make_cifar100`): ``cifar-100-python/{train,test,meta}``, the pickles that the CIFAR page
  (https://www.cs.toronto.edu/~kriz/cifar.html) describes, written as the real ones are (Python 2 pickles), so
  that its own ``unpickle`` recipe (``encoding="bytes"``) and torchvision (``encoding="latin1"``) both read
  them. torchvision's md5 check of the real archive refuses them; classification.data reads them only where
  the run sets ``PSKD_STANDIN_DATA=1``, against the md5s of the marker.
* ImageNet (:func:`make_imagenet`): ``train/<wnid>/<wnid>_<k>.JPEG`` and ``val/<wnid>/ILSVRC2012_val_<n>.JPEG``
  for the 1,000 ILSVRC2012 classes (``imagenet_wnids.txt`` beside this file, in the standard sorted order),
  JPEGs of ImageNet's common sizes (500 x 375, 375 x 500, 500 x 333, ...), a few greyscale and one CMYK as
  the real set has.
"""

from __future__ import annotations

import hashlib
import pickle
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np

from common.standin import backdrop, claim, finish

GENERATOR = "classification.standin"
WNIDS_FILE = Path(__file__).resolve().parent / "imagenet_wnids.txt"

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


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


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
    claim(folder, "cifar100", owned, seed, GENERATOR)
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
    return finish("cifar100", root, folder, owned, seed, GENERATOR, counts, started, md5=md5)


def imagenet_wnids() -> list[str]:
    """The 1,000 ILSVRC2012 class ids (WordNet synsets) in the standard class-index order (sorted)."""
    return WNIDS_FILE.read_text(encoding="ascii").split()


def _imagenet_image(rng: np.random.Generator, index: int, colour: tuple[int, int, int]):
    """One photo-like image: a smooth backdrop with an ellipse of its class's colour; every 50th greyscale and
    the 7th CMYK, as ImageNet has greyscale JPEGs and a few CMYK ones (which a loader must convert to RGB)."""
    from PIL import ImageDraw

    width, height = IMAGENET_SIZES[int(rng.integers(len(IMAGENET_SIZES)))]
    image = backdrop(rng, width, height)
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
    claim(root, "imagenet", owned, seed, GENERATOR)
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
    return finish("imagenet", root, root, owned, seed, GENERATOR, counts, started)
