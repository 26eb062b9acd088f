import gzip

import numpy as np
import pytest
import torch

from classification import data
from classification.data import DatasetNotFound, build_datasets
from classification.models import MODELS, build_model, count_parameters


def test_datasets_yield_image_target_index():
    splits = build_datasets("synthetic", "unused", num_classes=3, train_size=10, test_size=5, image_size=8)
    image, target, index = splits.train[7]
    assert image.shape == (3, 8, 8) and 0 <= target < 3 and index == 7
    assert len(splits.train) == 10 and len(splits.test) == 5


def test_missing_cifar100_names_the_path_and_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFound, match=r"cifar-100-python.*data.download=true"):
        build_datasets("cifar100", str(tmp_path / "nowhere"))


def test_missing_imagenet_names_the_expected_layout(tmp_path):
    with pytest.raises(DatasetNotFound, match=r"train/<wnid>"):
        build_datasets("imagenet", str(tmp_path))


def test_corrupt_imagenet_image_is_named(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split / "n01").mkdir(parents=True)
        (tmp_path / split / "n01" / "broken.JPEG").write_bytes(b"not a jpeg")
    splits = build_datasets("imagenet", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"broken\.JPEG"):
        splits.train[0]


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_idx_files_and_subsets(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "absent")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 50), ("t10k", 20)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    splits = build_datasets("fashion_mnist", str(tmp_path), train_size=30)
    assert (len(splits.train), len(splits.test), splits.num_classes, splits.in_channels) == (30, 20, 10, 1)
    image, target, index = splits.test[13]
    assert image.shape == (1, 28, 28) and target == 3 and index == 13
    # without augmentation a training image is the same tensor every time it is read (the demo's regime)
    plain = build_datasets("fashion_mnist", str(tmp_path), train_size=30, augment=False)
    assert all(torch.equal(plain.train[i][0], plain.train[i][0]) for i in range(30))
    augmented = [splits.train[0][0] for _ in range(20)]
    assert any(not torch.equal(augmented[0], other) for other in augmented[1:])


def test_fashion_mnist_without_random_transforms_is_transformed_once(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "absent")
    rng = np.random.default_rng(1)
    raw = {prefix: rng.integers(0, 255, (n, 28, 28)) for prefix, n in (("train", 40), ("t10k", 12))}
    for prefix, images in raw.items():
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(len(images)) * 7) % 10)
    plain = build_datasets("fashion_mnist", str(tmp_path), augment=False)
    for split, prefix in ((plain.train, "train"), (plain.test, "t10k")):
        expected = (raw[prefix] / 255.0 - 0.2860) / 0.3530  # Fashion-MNIST's normalisation, in float64
        for i in (0, 5, len(expected) - 1):
            image, target, index = split[i]
            assert image.shape == (1, 28, 28) and (target, index) == ((i * 7) % 10, i)
            np.testing.assert_allclose(image[0].numpy(), expected[i], rtol=0, atol=1e-5)
    # Cutout appended to the cached training set still draws a new square on every read, on a copy
    cut = build_datasets("fashion_mnist", str(tmp_path), augment=False, cutout=8)
    reads = [cut.train[3][0] for _ in range(10)]
    assert all((r == 0).sum() >= 8 for r in reads) and any(not torch.equal(reads[0], r) for r in reads[1:])
    assert torch.equal(cut.train.base.images[3], plain.train.base.images[3])


def test_missing_fashion_mnist_says_which_package(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "absent")
    with pytest.raises(DatasetNotFound, match="dataset-fashion-mnist"):
        build_datasets("fashion_mnist", str(tmp_path))


@pytest.mark.parametrize(("name", "channels", "size"), [("preact_resnet18", 3, 32), ("resnet8", 1, 28),
                                                         ("resnet20", 3, 32), ("mlp1024", 1, 28),
                                                         ("mlp1024", 3, 32)])
def test_models_give_logits(name, channels, size):
    model = build_model(name, num_classes=7, in_channels=channels).eval()
    assert model(torch.randn(2, channels, size, size)).shape == (2, 7)


def test_parameter_counts_match_the_published_architectures():
    # PreAct ResNet-18 for CIFAR-100: 11.22 M; ResNet-20 for CIFAR-10: 0.27 M (He et al. 2016, Table 6)
    assert count_parameters(build_model("preact_resnet18", 100)) == pytest.approx(11.22e6, rel=0.01)
    assert count_parameters(build_model("resnet20", 10)) == pytest.approx(0.27e6, rel=0.02)
    assert "resnet152" in MODELS
    with pytest.raises(ValueError, match="choose one of"):
        build_model("vgg", 10)
