"""``data.name=image_folder``: a user's folder of PNGs, its statistics command, and a run through the CLI."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from classification.config import ConfigError, load_config
from classification.data import DatasetNotFound, build_datasets

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("cat", "dog", "fox")
COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "fox": (40, 40, 200)}


def _make_folder(root: Path, per_class: dict[str, int], seed: int = 0, skip: tuple[str, ...] = ()) -> None:
    """``root/<split>/<class>/*.png``: each class a colour plus noise, of mixed sizes; one greyscale image."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in per_class.items():
        for cls in CLASSES:
            if cls in skip and split == "val":
                continue
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                h, w = (20, 24) if i % 2 else (24, 18)
                pixels = np.clip(np.array(COLOURS[cls]) + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
                image = Image.fromarray(pixels)
                if split == "train" and cls == "fox" and i == 0:
                    image = image.convert("L")  # read back as RGB, as every image is
                image.save(root / split / cls / f"{i:03d}.png")


def _numpy_stats(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    pixels = np.concatenate([np.asarray(Image.open(p).convert("RGB"), dtype=np.float64).reshape(-1, 3) / 255
                             for p in sorted(folder.rglob("*.png"))])
    return pixels.mean(0), pixels.std(0)


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, OMP_NUM_THREADS="1"))


@pytest.fixture
def images(tmp_path):
    _make_folder(tmp_path / "images", {"train": 8, "val": 4})
    return tmp_path / "images"


def test_splits_have_indices_sizes_classes_and_normalisation(images):
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    splits = build_datasets("image_folder", str(images), image_size=16, crop_size=12, mean=mean, std=std)
    assert (splits.num_classes, splits.in_channels) == (3, 3)
    assert len(splits.train) == 24 and len(splits.test) == 12
    image, target, index = splits.test[5]
    assert image.shape == (3, 12, 12) and index == 5
    assert splits.test.base.classes == list(CLASSES) and target == splits.test.base.targets[5]
    from PIL import Image
    from torchvision.transforms import functional

    path = splits.test.base.samples[5][0]
    resized = functional.resize(Image.open(path).convert("RGB"), [16, 16])
    expected = (functional.center_crop(functional.pil_to_tensor(resized), [12, 12]).float() / 255
                - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    torch.testing.assert_close(image, expected)
    assert splits.train[0][0].shape == (3, 12, 12)


def test_a_validation_folder_without_a_class_keeps_the_training_indices(tmp_path):
    _make_folder(tmp_path / "d", {"train": 2, "val": 2}, skip=("dog",))
    splits = build_datasets("image_folder", str(tmp_path / "d"), image_size=8)
    assert splits.num_classes == 3 and splits.test.base.classes == list(CLASSES)
    assert sorted(set(splits.test.base.targets)) == [0, 2]  # cat and fox keep their training indices


def test_folder_mistakes_name_the_folder(tmp_path, images):
    _make_folder(tmp_path / "only_train", {"train": 1})
    with pytest.raises(DatasetNotFound, match=r"no val folder at .*set data.root to the folder that holds train/"):
        build_datasets("image_folder", str(tmp_path / "only_train"))
    (images / "val" / "wolf").mkdir()
    with pytest.raises(DatasetNotFound, match=r"class folder\(s\) wolf that the training folder lacks"):
        build_datasets("image_folder", str(images))
    (images / "val" / "wolf").rmdir()
    (images / "train" / "owl").mkdir()
    with pytest.raises(DatasetNotFound, match=r"train: Found no valid file for the classes owl"):
        build_datasets("image_folder", str(images))


@pytest.mark.parametrize(("overrides", "message"), [
    (["data.name=cifar100", "data.mean=[0.5,0.5,0.5]"], "only data.name=image_folder reads data.mean"),
    (["data.name=image_folder", "data.mean=[0.5,0.5]"], "data.mean must be three numbers in [0.0, 1.0]"),
    (["data.name=image_folder", "data.std=[0.2,0,0.2]"], "data.std must be three numbers"),
    (["data.name=image_folder", "data.image_size=32", "data.crop_size=40"],
     "data.crop_size=40 must not exceed data.image_size=32"),
    (["data.name=image_folder", "data.crop_size=300"], "data.crop_size=300 must not exceed data.image_size=256"),
    (["data.name=image_folder", "data.crop_size=2"], "data.crop_size must be >= 4"),
])
def test_config_refuses_bad_image_folder_keys(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, overrides)


def test_example_config_loads():
    cfg = load_config("image_folder")
    assert (cfg.data.name, cfg.data.image_size, cfg.data.crop_size, cfg.method.name) == ("image_folder", 64, 56,
                                                                                          "ps_kd")


def test_stats_command_refuses_a_data_root(images):
    done = _run("classification.image_stats", images)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (f"classification.image_stats: error: {images} holds train/ and val/ (it is a "
                                   f"data.root): give its training folder, python -m classification.image_stats "
                                   f"{images / 'train'}")


@pytest.mark.slow
def test_stats_command_then_one_epoch_of_ps_kd_through_the_cli(images, tmp_path):
    stats = _run("classification.image_stats", images / "train")
    assert stats.returncode == 0, stats.stderr
    assert stats.stdout.splitlines()[0] == f"24 images under {images / 'train'}"
    overrides = stats.stdout.strip().splitlines()[-1].split()
    values = {k: json.loads(v) for k, v in (o.split("=", 1) for o in overrides)}
    mean, std = _numpy_stats(images / "train")
    assert values["data.mean"] == pytest.approx(mean.tolist(), abs=6e-5)  # printed with four decimals
    assert values["data.std"] == pytest.approx(std.tolist(), abs=6e-5)

    done = _run("classification.train", "--config", "image_folder", f"data.root={images}", *overrides,
                "data.image_size=16", "data.crop_size=12", "data.batch_size=8", "data.num_workers=0",
                "model.name=resnet8", "optim.epochs=1", "optim.milestones=[]", "runtime.device=cpu",
                f"output_dir={tmp_path / 'runs'}", "name=own")
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "runs" / "own" / "record.json").read_text())
    assert record["labels"]["dataset"] == "image_folder" and record["config"]["data"]["mean"] == values["data.mean"]
    assert 0.0 <= record["final"]["top1_err"] <= 100.0 and len(record["epochs"]) == 1
    assert list((tmp_path / "runs" / "own" / "tb").glob("events.out.tfevents.*"))
