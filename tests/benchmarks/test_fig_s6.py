"""Fig. S6 (supplement A.5): validation images beside each model's top-5 class probabilities by name, built
from two fake runs' saved predictions over generated data; the paper profile's eight ImageNet classes."""

import dataclasses

import numpy as np
import pytest
import torch
import yaml
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from benchmarks.pipeline import figures
from benchmarks.pipeline.specs import TABLES_DIR
from classification import validation_images
from classification.config import load_config
from classification.data import build_datasets

# The caption of Fig. S6, and each class's index in the standard ImageNet order (the sorted wnids
# n01734418, n01737021, n02280649, n02910353, n03179701, n03733805, n04239074, n07747607).
PAPER_CLASSES = {"king snake": 56, "water snake": 58, "cabbage butterfly": 324, "buckle": 464, "desk": 526,
                 "measuring cup": 647, "sliding door": 799, "orange": 950}


def _fake_predictions(labels, num_classes, seed):
    """A run's val_predictions.pt as the trainer saves it: ids in order, float16 probabilities, labels."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(3 * torch.randn(len(labels), num_classes, generator=g), dim=1).half()
    return {"ids": torch.arange(len(labels)), "probs": probs, "labels": torch.as_tensor(labels)}


@pytest.fixture
def synthetic_runs(tmp_path, tiny_overrides):
    """Two fake runs (baseline, ps_kd) over the synthetic test set of a 10-class config, and that config
    as its record holds it."""
    cfg = load_config(None, tiny_overrides(tmp_path, **{"data.num_classes": 10}))
    test = build_datasets("synthetic", "unused", num_classes=10, train_size=96, test_size=64, image_size=8).test
    labels = [test[i][1] for i in range(len(test))]
    runs = {"baseline": _fake_predictions(labels, 10, 1), "ps_kd": _fake_predictions(labels, 10, 2)}
    return runs, dataclasses.asdict(cfg), test, labels


def _drawn(monkeypatch):
    """Keeps the figure that ``figures.probabilities`` saves."""
    kept = []
    save = figures._save

    def keep(fig, path):
        kept.append(fig)
        return save(fig, path)

    monkeypatch.setattr(figures, "_save", keep)
    return kept


def test_each_panel_shows_the_image_and_five_named_bars_with_the_true_class_marked(synthetic_runs, tmp_path,
                                                                                 monkeypatch):
    runs, config, test, labels = synthetic_runs
    kept = _drawn(monkeypatch)
    path = figures.probabilities(runs, tmp_path / "fig_s6.png", 8, "Fig. S6", config=config)
    assert path.is_file() and path.stat().st_size > 0
    fig = kept[0]
    image_axes = [ax for ax in fig.axes if any(isinstance(c, AxesImage) for c in ax.get_children())]
    bar_axes = [ax for ax in fig.axes if ax.patches]
    assert len(image_axes) == 8 and len(bar_axes) == 16  # 8 images, one bar chart per model each
    # one image per class 0..7, the class's first validation image; shown as the model saw it
    chosen = [labels.index(c) for c in range(8)]
    for ax, sample_id in zip(image_axes, chosen, strict=True):
        raw = test[sample_id][0].permute(1, 2, 0).numpy()  # synthetic images are ToTensor only
        expected = (raw - raw.min()) / (raw.max() - raw.min())
        shown = next(c for c in ax.get_children() if isinstance(c, AxesImage)).get_array()
        np.testing.assert_allclose(np.asarray(shown), expected, atol=1e-6)
        assert ax.get_title().startswith(f"true: class {labels[sample_id]}")
    # per image, baseline then ps_kd: its five most probable classes by name, the true one marked red
    for k, ax in enumerate(bar_axes):
        sample_id, run = chosen[k // 2], ("baseline", "ps_kd")[k % 2]
        probs = runs[run]["probs"][sample_id].float().tolist()
        top5 = sorted(range(10), key=lambda c: -probs[c])[:5]
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(bars) == 5
        assert [b.get_width() for b in bars] == pytest.approx([probs[c] for c in top5])
        ticks = [t.get_text() for t in ax.get_yticklabels()]
        true = labels[sample_id]
        assert ticks == [f"class {c} (true)" if c == true else f"class {c}" for c in top5]
        red = [b.get_facecolor()[:3] == pytest.approx((0xB0 / 255, 0x3A / 255, 0x2E / 255)) for b in bars]
        assert red == [c == true for c in top5]
        assert ax.get_title().startswith(run)
        if true not in top5:
            assert "true class not in top 5" in ax.get_title()


def test_fewer_classes_than_images_gives_one_panel_per_class(tmp_path, tiny_overrides):
    cfg = load_config(None, tiny_overrides(tmp_path))  # 4 classes
    test = build_datasets("synthetic", "unused", num_classes=4, train_size=96, test_size=64, image_size=8).test
    labels = [test[i][1] for i in range(len(test))]
    runs = {"baseline": _fake_predictions(labels, 4, 1), "ps_kd": _fake_predictions(labels, 4, 2)}
    positions = figures.choose_images(runs["baseline"]["labels"], 8)
    assert positions == [labels.index(c) for c in range(4)]
    panels = figures.probability_panels(runs, positions, [f"c{i}" for i in range(4)], top=5)
    assert [len(p["runs"]["ps_kd"]["names"]) for p in panels] == [4] * 4  # top-5 of 4 classes: all 4
    path = figures.probabilities(runs, tmp_path / "f.png", 8, config=dataclasses.asdict(cfg))
    assert path.is_file()


def test_a_rebuilt_image_of_another_class_than_the_saved_label_stops_the_figure(synthetic_runs, tmp_path):
    runs, config, _, _ = synthetic_runs
    for run in runs.values():
        run["labels"] = (run["labels"] + 1) % 10
    with pytest.raises(ValueError, match="data set changed"):
        figures.probabilities(runs, tmp_path / "f.png", 8, config=config)


def test_runs_over_different_images_are_refused(synthetic_runs, tmp_path):
    runs, config, _, _ = synthetic_runs
    runs["ps_kd"]["ids"] = runs["ps_kd"]["ids"] + 1
    with pytest.raises(ValueError, match="different images"):
        figures.probabilities(runs, tmp_path / "f.png", 8, config=config)


def test_paper_profile_shows_the_eight_classes_of_the_caption_in_its_order():
    spec = yaml.safe_load((TABLES_DIR / "fig_s6.yaml").read_text())
    assert spec["profiles"]["paper"]["classes"] == list(PAPER_CLASSES)
    names = validation_images.imagenet_class_names()
    assert len(names) == 1000
    for name, index in PAPER_CLASSES.items():
        assert names[index] == name and names.count(name) == 1


def test_imagenet_panels_name_the_classes_and_say_when_the_images_are_not_here(tmp_path, monkeypatch):
    # 1,000-class predictions over 3 images of each paper class (label order shuffled); no ImageNet here
    wanted = list(PAPER_CLASSES.values())
    labels = [wanted[i % 8] for i in (5, 2, 7, 0, 1, 3, 6, 4)] * 3
    runs = {"baseline": _fake_predictions(labels, 1000, 1), "ps_kd": _fake_predictions(labels, 1000, 2)}
    for i, c in enumerate(labels[:8]):  # PS-KD puts its mass on the true class of the first image of each
        runs["ps_kd"]["probs"][i] = 0
        runs["ps_kd"]["probs"][i, c] = 1
    kept = _drawn(monkeypatch)
    config = {"data": {"name": "imagenet", "root": str(tmp_path / "no-imagenet")}}
    figures.probabilities(runs, tmp_path / "f.png", 8, config=config, classes=list(PAPER_CLASSES))
    fig = kept[0]
    image_panels = [ax for ax in fig.axes if ax.get_title().startswith("true:")]
    assert [ax.get_title().split("\n")[0] for ax in image_panels] == [f"true: {n}" for n in PAPER_CLASSES]
    assert all(ax.texts[0].get_text() == "image not\navailable" and not ax.images for ax in image_panels)
    assert "Images not shown: no ImageNet" in fig.get_suptitle()  # the reason, once
    ps_kd = [ax for ax in fig.axes if ax.get_title().startswith("ps_kd")]
    assert [ax.get_yticklabels()[0].get_text() for ax in ps_kd] == [f"{n} (true)" for n in PAPER_CLASSES]


def test_a_class_name_the_data_set_lacks_is_refused(synthetic_runs, tmp_path):
    runs, config, _, _ = synthetic_runs
    with pytest.raises(ValueError, match="king snake"):
        figures.probabilities(runs, tmp_path / "f.png", 8, config=config, classes=["king snake"])


def test_class_names_of_the_suites_data_sets():
    from torchvision.datasets import FashionMNIST

    assert validation_images.class_names("fashion_mnist", 10) == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                       "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert validation_images.class_names("fashion_mnist", 10) == list(FashionMNIST.classes)
    assert validation_images.class_names("synthetic", 3) == ["class 0", "class 1", "class 2"]


def test_an_image_folders_class_names_are_its_folder_names(tmp_path):
    from PIL import Image

    for name in ("cat", "dog"):
        for split in ("train", "val"):
            (tmp_path / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / split / name / "a.png")
    splits = build_datasets("image_folder", str(tmp_path), image_size=8)
    assert validation_images.class_names("image_folder", 2, splits.test) == ["cat", "dog"]
