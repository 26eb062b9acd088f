"""The stand-in data sets of the paper profile's catalogue (each adapter's generator) read through the suite's
own loaders: classification.data for CIFAR-100 and ImageNet, mmdet's datasets built from the paper profile's
detection configs for VOC, translation's IWSLT readers and recipes; and the paper profile's data check finds all
four. Expected values come from how the stand-ins were asked for and from outside references (the CIFAR page's
pickle recipe, torchvision's real CIFAR-100 md5s and ImageNet class names, the VOC devkit's XML), not from the
generator."""

import hashlib
import os
import pickle
import pickletools
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from benchmarks.pipeline import standin as catalogue
from classification.data import DatasetNotFound, build_datasets
from classification.standin import imagenet_wnids, make_cifar100, make_imagenet
from common.standin import ENV as STANDIN_ENV
from common.standin import MARKER as STANDIN_MARKER
from common.standin import StandinError
from translation.standin import make_iwslt15

REPO = Path(__file__).resolve().parents[2]
PAPER = yaml.safe_load((REPO / "benchmarks" / "profiles" / "paper.yaml").read_text())
STANDINS = catalogue.catalogue(PAPER)
# torchvision's md5 of the real archive's train file (also on the CIFAR page's archive): the real check's reference
REAL_CIFAR100_TRAIN_MD5 = "16019d7e3df5f24257cddd939b257f8d"
CIFAR_KEYS = {b"data", b"fine_labels", b"coarse_labels", b"filenames", b"batch_label"}


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _load_bytes(path):
    """The CIFAR page's own ``unpickle`` recipe."""
    with open(path, "rb") as fo:
        return pickle.load(fo, encoding="bytes")


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """``standin(name)``: the summary of the catalogue's stand-in ``name`` at its sizes (the rehearsal's), written
    once."""
    made = {}

    def get(name):
        if name not in made:
            entry = STANDINS[name]
            made[name] = catalogue.make_one(tmp_path_factory.mktemp("standin") / entry["standin"]["folder"], entry)
        return made[name]

    return get


# -------------------------------------------------------------------------------------------------- CIFAR-100

def test_cifar100_pickles_have_the_real_archives_format(standin):
    folder = Path(standin("cifar100")["path"]) / "cifar-100-python"
    assert sorted(p.name for p in folder.iterdir()) == sorted([STANDIN_MARKER, "meta", "test", "train"])
    for split, n in (("train", 2000), ("test", 500)):
        batch = _load_bytes(folder / split)
        assert set(batch) == CIFAR_KEYS
        assert batch[b"data"].dtype.name == "uint8" and batch[b"data"].shape == (n, 3072)
        assert Counter(batch[b"fine_labels"]) == dict.fromkeys(range(100), n // 100)
        assert len(batch[b"filenames"]) == n and batch[b"filenames"][0].endswith(b".png")
        assert batch[b"batch_label"] == {"train": b"training batch 1 of 1", "test": b"testing batch 1 of 1"}[split]
    meta = _load_bytes(folder / "meta")
    assert set(meta) == {b"fine_label_names", b"coarse_label_names"}
    fine, coarse = meta[b"fine_label_names"], meta[b"coarse_label_names"]
    assert len(fine) == len(set(fine)) == 100 and len(coarse) == len(set(coarse)) == 20
    assert fine[:3] == [b"apple", b"aquarium_fish", b"baby"] and fine[-1] == b"worm"  # the real meta's first/last
    batch = _load_bytes(folder / "train")
    pairs = {(fine[f], coarse[c]) for f, c in zip(batch[b"fine_labels"], batch[b"coarse_labels"], strict=True)}
    assert len(pairs) == 100  # each class has one superclass: some of the CIFAR page's table
    assert {(b"beaver", b"aquatic_mammals"), (b"maple_tree", b"trees"), (b"tractor", b"vehicles_2"),
            (b"keyboard", b"household_electrical_devices")} <= pairs
    # Written as Python 2 did: strings are str (BINSTRING) opcodes, none a Python 3 unicode or bytes object
    ops = {op.name for op, _, _ in pickletools.genops((folder / "meta").read_bytes())}
    assert "SHORT_BINSTRING" in ops and not ops & {"BINUNICODE", "SHORT_BINUNICODE", "BINBYTES", "SHORT_BINBYTES"}


def test_cifar100_stand_in_loads_through_the_suite_only_in_rehearsal_mode(standin, monkeypatch, capsys):
    root = standin("cifar100")["path"]
    monkeypatch.delenv(STANDIN_ENV, raising=False)
    with pytest.raises(DatasetNotFound, match=r"CIFAR-100 is not under .*corrupted"):
        build_datasets("cifar100", root)  # the real md5 check refuses it

    monkeypatch.setenv(STANDIN_ENV, "1")
    splits = build_datasets("cifar100", root)
    assert "STAND-IN DATA" in capsys.readouterr().err
    assert (len(splits.train), len(splits.test), splits.num_classes, splits.in_channels) == (2000, 500, 100, 3)
    test_file = _load_bytes(Path(root) / "cifar-100-python" / "test")
    image, target, index = splits.test[7]
    assert image.shape == (3, 32, 32) and index == 7 and target == test_file[b"fine_labels"][7]
    # the test transform is ToTensor + Normalize: undo it and compare with the file's red/green/blue planes
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    pixels = [(image[c] * std[c] + mean[c]) * 255 for c in range(3)]
    row = torch.from_numpy(test_file[b"data"][7].reshape(3, 32, 32)).float()
    assert all(float((pixels[c] - row[c]).abs().max()) < 1e-3 for c in range(3))
    assert splits.test.base.classes[:2] == ["apple", "aquarium_fish"]
    # torchvision's class keeps the real archive's md5s, and the data set pickles (DataLoader workers by spawn)
    from torchvision.datasets import CIFAR100

    assert CIFAR100.train_list == [["train", REAL_CIFAR100_TRAIN_MD5]]
    assert type(pickle.loads(pickle.dumps(splits.train.base))) is CIFAR100


def test_cifar100_without_its_marker_or_corrupted_fails_the_md5_check(standin, tmp_path, monkeypatch):
    monkeypatch.setenv(STANDIN_ENV, "1")
    unmarked = tmp_path / "unmarked"
    shutil.copytree(standin("cifar100")["path"], unmarked)
    (unmarked / "cifar-100-python" / STANDIN_MARKER).unlink()
    with pytest.raises(DatasetNotFound, match=r"CIFAR-100 is not under .*corrupted.*cifar-100-python\.tar\.gz"):
        build_datasets("cifar100", str(unmarked))

    corrupted = tmp_path / "corrupted"
    shutil.copytree(standin("cifar100")["path"], corrupted)
    train = corrupted / "cifar-100-python" / "train"
    data = bytearray(train.read_bytes())
    data[-100] ^= 0xFF  # one pixel byte: the pickle still loads, only the md5 tells
    train.write_bytes(bytes(data))
    with pytest.raises(DatasetNotFound, match="does not match the md5s of its marker"):
        build_datasets("cifar100", str(corrupted))
    monkeypatch.delenv(STANDIN_ENV)
    with pytest.raises(DatasetNotFound, match="CIFAR-100 is not under"):
        build_datasets("cifar100", str(corrupted))


def test_generation_is_seeded_and_never_overwrites_real_data(tmp_path):
    a = make_cifar100(tmp_path / "a", train_per_class=1, test_per_class=1, seed=3)
    b = make_cifar100(tmp_path / "b", train_per_class=1, test_per_class=1, seed=3)
    c = make_cifar100(tmp_path / "c", train_per_class=1, test_per_class=1, seed=4)
    files = ("train", "test", "meta")
    digest = {k: [_md5(Path(s["path"]) / "cifar-100-python" / f) for f in files] for k, s in (("a", a), ("b", b),
                                                                                                ("c", c))}
    assert digest["a"] == digest["b"] and digest["a"][:2] != digest["c"][:2] and digest["a"][2] == digest["c"][2]
    # JPEGs too, and regenerating a stand-in replaces it whole (no stale class folder stays)
    make_imagenet(tmp_path / "imagenet", classes=3)
    make_imagenet(tmp_path / "imagenet", classes=2)
    make_imagenet(tmp_path / "imagenet_again", classes=2)
    jpegs = [sorted((p.relative_to(root), _md5(p)) for p in root.rglob("*.JPEG"))
             for root in (tmp_path / "imagenet", tmp_path / "imagenet_again")]
    assert jpegs[0] == jpegs[1] and len(jpegs[0]) == 4
    # A folder holding the data set without the marker is someone's real data
    real = tmp_path / "real" / "cifar-100-python"
    real.mkdir(parents=True)
    (real / "train").write_bytes(b"the real archive")
    with pytest.raises(StandinError, match="looks like the real cifar100"):
        make_cifar100(tmp_path / "real")
    assert (real / "train").read_bytes() == b"the real archive"
    with pytest.raises(StandinError, match="holds the stand-in imagenet"):
        make_iwslt15(tmp_path / "imagenet")


# -------------------------------------------------------------------------------------------------- ImageNet

def test_the_wnids_are_ilsvrc2012s_in_torchvisions_class_order():
    from torchvision.datasets.imagenette import Imagenette
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    wnids = imagenet_wnids()
    assert len(wnids) == len(set(wnids)) == len(_IMAGENET_CATEGORIES) == 1000 and wnids == sorted(wnids)
    # torchvision's Imagenette names ten wnids; each sits at the index of its name in torchvision's 1,000
    for wnid, names in Imagenette._WNID_TO_CLASS.items():
        assert _IMAGENET_CATEGORIES[wnids.index(wnid)] == names[0]


def test_imagenet_stand_in_loads_through_the_suite(standin):
    root = Path(standin("imagenet")["path"])
    splits = build_datasets("imagenet", str(root))
    assert (len(splits.train), len(splits.test), splits.num_classes) == (1000, 1000, 1000)
    train = splits.train.base
    assert train.classes[0] == "n01440764" and train.classes[-1] == "n15075141"
    image, target, index = splits.train[999]
    assert image.shape == (3, 224, 224) and target == 999 and index == 999
    assert splits.test[0][0].shape == (3, 224, 224)
    val = sorted(p.name for p in (root / "val").rglob("*.JPEG"))
    assert val == [f"ILSVRC2012_val_{n:08d}.JPEG" for n in range(1, 1001)]
    sizes, modes = Counter(), {}
    for i, (path, _) in enumerate(train.samples):
        with Image.open(path) as im:
            assert im.format == "JPEG"
            sizes[im.size] += 1
            modes.setdefault(im.mode, []).append(i)
    assert len(sizes) >= 5 and max(max(s) for s in sizes) <= 640 and sizes[(500, 375)] > 50
    assert len(modes["RGB"]) > 900 and len(modes["L"]) >= 10 and len(modes["CMYK"]) == 1  # as ImageNet has them
    for mode in ("L", "CMYK"):  # converted to RGB by the loader
        assert splits.train[modes[mode][0]][0].shape == (3, 224, 224)
    assert standin("imagenet")["bytes"] < 40 * 2**20


# --------------------------------------------------------------------------------------------------------- VOC

def test_voc_files_are_in_the_devkit_format(standin):
    root = Path(standin("voc0712")["path"])
    from detection.voc import VOC_CLASSES

    expected = {"VOC2007": {"trainval": 32, "test": 16}, "VOC2012": {"trainval": 32}}
    for year, splits in expected.items():
        main = root / year / "ImageSets" / "Main"
        ids = {split: main.joinpath(f"{split}.txt").read_text().split() for split in splits}
        assert {split: len(v) for split, v in ids.items()} == splits
        if year == "VOC2007":
            assert sorted(ids["trainval"] + ids["test"]) == [f"{n:06d}" for n in range(1, 49)]  # two disjoint sets
        else:
            assert ids["trainval"][0].startswith("2008_")
        assert sorted(main.joinpath("train.txt").read_text().split() + main.joinpath("val.txt").read_text().split()) \
            == sorted(ids["trainval"])
        for image_id in ids["trainval"]:
            ann = ET.parse(root / year / "Annotations" / f"{image_id}.xml").getroot()
            width, height = int(ann.findtext("size/width")), int(ann.findtext("size/height"))
            with Image.open(root / year / "JPEGImages" / f"{image_id}.jpg") as im:
                assert im.size == (width, height) and max(im.size) <= 500
            objects = ann.findall("object")
            assert objects
            for obj in objects:
                assert obj.findtext("name") in VOC_CLASSES and obj.findtext("pose")
                assert obj.findtext("truncated") in ("0", "1") and obj.findtext("difficult") in ("0", "1")
                x1, y1, x2, y2 = (int(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
                assert 1 <= x1 < x2 <= width and 1 <= y1 < y2 <= height
            # the per-class list says 1 where the class is in the image (not only as difficult)
            label = {c: -1 for c in VOC_CLASSES}
            for obj in objects:
                label[obj.findtext("name")] = max(label[obj.findtext("name")], 1 - int(obj.findtext("difficult")))
            for cls in ("dog", "person"):
                lines = dict(line.split() for line in main.joinpath(f"{cls}_trainval.txt").read_text().splitlines())
                assert int(lines[image_id]) == label[cls]


def _detection_config(name, standin, data_key):
    """A paper-profile detection config with the profile's own data options pointing at the stand-in."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(REPO / "detection" / "configs" / name))
    options = [o.format(path=standin("voc0712")["path"]) for o in PAPER["data"][data_key]["detection"]]
    cfg.merge_from_dict(dict(o.split("=", 1) for o in options))
    return cfg


@pytest.mark.parametrize("name,data_key,trainval", [("faster-rcnn_r152_fpn_voc07.py", "voc2007", 32),
                                                    ("faster-rcnn_r50_fpn_voc0712_mmdet.py", "voc0712", 64)])
def test_voc_stand_in_loads_through_the_paper_detection_configs(standin, name, data_key, trainval):
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules

    import detection  # noqa: F401 - registers RobustVOCDataset

    register_all_modules()
    cfg = _detection_config(name, standin, data_key)
    train = DATASETS.build(cfg.train_dataloader.dataset)
    test = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(train) == 3 * trainval and len(test) == 16  # mmdet's VOC recipe repeats trainval 3 times
    sample = train[0]
    inputs, boxes = sample["inputs"], sample["data_samples"].gt_instances.bboxes
    assert inputs.shape[0] == 3 and max(inputs.shape[1:]) <= 1000 and min(inputs.shape[1:]) <= 600
    assert len(boxes) >= 1
    # every annotated object of a test image is one of mmdet's instances, difficult ones flagged as ignored
    info = test.get_data_info(0)
    ann = ET.parse(info["xml_path"]).getroot()
    assert [inst["ignore_flag"] for inst in info["instances"]] == [int(o.findtext("difficult"))
                                                                   for o in ann.findall("object")]
    assert test.metainfo["dataset_type"] == "VOC2007"


# ------------------------------------------------------------------------------------------------- IWSLT 2015

# The rehearsal's sizes (the catalogue's): six test sets of TALKS talks of SEGMENTS segments, the last of each
# talk the typographic apostrophe's sentence.
TALKS, SEGMENTS = (STANDINS["iwslt15"]["standin"]["sizes"][k] for k in ("test_talks_per_set", "segments_per_talk"))
TEST_PAIRS = 6 * TALKS * SEGMENTS


def test_iwslt15_release_is_read_by_both_readers(standin):
    from translation.corpus import fairseq_test, fairseq_train, iwslt15

    root = Path(standin("iwslt15")["path"])
    assert (root / "en-de" / "train.tags.en-de.en").is_file()
    train, test = iwslt15(root)
    assert (len(train), len(test)) == (23 * 100, TEST_PAIRS) and not train.dropped
    assert 'It\'s "great" & fun.' in train.src and "Es ist \"toll\" & lustig." in train.tgt
    last = SEGMENTS - 1
    assert test.src[last] == "It’s the end." and test.tgt[last] == "Das ist das Ende."
    # prepare-iwslt14.sh's filters: <url>, <talkid>, <keywords> lines dropped; <speaker>, <title>,
    # <description>, <reviewer>, <translator> stay as sentences (tags of title and description removed)
    sides, dropped = fairseq_train(root, "en", "de")
    assert dropped == 3 * 23 and len(sides["en"]) == len(sides["de"]) == 23 * (100 + 5)
    assert sides["de"][1] == "Speaker 0: Warum Gärten zählen"
    lines = fairseq_test(root, "en", "de")
    assert len(lines["en"]) == len(lines["de"]) == TEST_PAIRS and lines["en"][last] == "It's the end."


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["fairseq-iwslt14", "cased"])
def test_iwslt15_release_is_prepared_by_both_recipes(standin, tmp_path, recipe):
    from translation.prepare import prepare_iwslt15

    extra = {"valid_size": 100} if recipe == "cased" else {}
    summary = prepare_iwslt15(Path(standin("iwslt15")["path"]), tmp_path / "out", bpe_merges=200, recipe=recipe,
                              **extra)
    assert summary["dropped_by_length_filter"] == 0  # the grammar's pairs are within clean-corpus-n's ratio
    if recipe == "fairseq-iwslt14":
        kept = 23 * (100 + 5)
        assert summary["pairs"] == {"train": kept - kept // 23, "valid": kept // 23, "test": TEST_PAIRS}
    else:
        assert summary["pairs"] == {"train": 2300 - 100, "valid": 100, "test": TEST_PAIRS}
    for src, tgt in (("en", "de"), ("de", "en")):  # fairseq-preprocess's files of both directions
        assert (tmp_path / "out" / "bin" / f"{src}-{tgt}" / f"train.{src}-{tgt}.{src}.bin").is_file()


# ------------------------------------------------------------------------------------------- the paper profile

def test_the_paper_profiles_data_check_finds_every_stand_in(standin, monkeypatch, tmp_path):
    from benchmarks.pipeline.plan import resolve_data

    standins = {name: standin(name) for name in STANDINS}
    for summary in standins.values():
        monkeypatch.setenv(summary["env"], summary["path"])
    found = resolve_data(PAPER["data"], tmp_path)
    assert set(found) == {"cifar100", "imagenet", "voc2007", "voc0712", "iwslt15"}
    missing = [name for name, item in found.items() if not item.found]
    assert not missing, {name: found[name].looked_at for name in missing}
    assert all(os.path.samefile(found[n].path, standins[k]["path"]) for n, k in (("voc0712", "voc0712"),
                                                                                 ("iwslt15", "iwslt15")))
