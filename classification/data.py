"""Data sets that yield ``(image, target, index)``: the index keys PS-KD's prediction store.

Built by name (:func:`build_datasets`): ``cifar100``, ``imagenet``, ``fashion_mnist`` (the offline demo
set) and ``synthetic`` (learnable random images, for tests). A missing data set raises
:class:`DatasetNotFound`, naming the path that was looked at and how to get the data.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)


class DatasetNotFound(FileNotFoundError):
    """A data set is not where the config says; the message says what to put where."""


@dataclass
class DataSplits:
    train: Dataset
    test: Dataset
    num_classes: int
    in_channels: int


class WithIndex(Dataset):
    """``base[i] = (image, target)`` -> ``(image, target, i)``."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Tensor, int, int]:
        image, target = self.base[index]
        return image, int(target), index


class TensorImages(Dataset):
    """Images held in memory as a uint8 (N, H, W[, C]) array, transformed on access."""

    def __init__(self, images: np.ndarray, targets: np.ndarray, transform: Callable | None) -> None:
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} labels")
        self.images, self.targets, self.transform = images, targets, transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        from PIL import Image

        image = Image.fromarray(self.images[index])
        return (self.transform(image) if self.transform else image), int(self.targets[index])


def _subset(dataset: Dataset, size: int | None, seed: int = 0) -> Dataset:
    """A fixed random subset (the same for every run and rank), or the whole set when size is None."""
    if size is None or size >= len(dataset):
        return dataset
    keep = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:size].sort().values
    return torch.utils.data.Subset(dataset, keep.tolist())


def cifar100(root: str, download: bool = False) -> DataSplits:
    """CIFAR-100 (supplement A.3): train random crop 32 with padding 4 + flip; test normalisation only."""
    from torchvision import datasets, transforms

    normalize = transforms.Normalize(CIFAR100_MEAN, CIFAR100_STD)
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize])
    test_tf = transforms.Compose([transforms.ToTensor(), normalize])
    try:
        train = datasets.CIFAR100(root, train=True, transform=train_tf, download=download)
        test = datasets.CIFAR100(root, train=False, transform=test_tf, download=download)
    except (RuntimeError, OSError) as err:
        raise DatasetNotFound(
            f"CIFAR-100 is not under {Path(root).resolve() / 'cifar-100-python'} ({err}). Either set "
            "data.download=true on a machine with internet access, or download "
            "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz and extract it into data.root."
        ) from err
    return DataSplits(train, test, 100, 3)


def _checked_loader(path: str):
    from torchvision.datasets.folder import default_loader

    try:
        return default_loader(path)
    except Exception as err:
        raise RuntimeError(f"cannot read image {path}: {err}. Replace or remove this file.") from err


def imagenet(root: str) -> DataSplits:
    """ImageNet as ``root/train/<class>/*`` and ``root/val/<class>/*`` (supplement A.3 transforms)."""
    from torchvision import datasets, transforms

    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = transforms.Compose([transforms.Resize((256, 256)), transforms.RandomCrop(224),
                                   transforms.RandomHorizontalFlip(), transforms.ToTensor(), normalize])
    test_tf = transforms.Compose([transforms.Resize((256, 256)), transforms.CenterCrop(224),
                                  transforms.ToTensor(), normalize])
    splits = {}
    for split, tf in (("train", train_tf), ("val", test_tf)):
        folder = Path(root) / split
        if not folder.is_dir():
            raise DatasetNotFound(
                f"no ImageNet {split} folder at {folder.resolve()}. Expected {root}/train/<wnid>/*.JPEG and "
                f"{root}/val/<wnid>/*.JPEG (the validation images sorted into class folders); get ILSVRC2012 "
                "from https://image-net.org and set data.root."
            )
        try:
            splits[split] = datasets.ImageFolder(str(folder), transform=tf, loader=_checked_loader)
        except FileNotFoundError as err:
            raise DatasetNotFound(f"malformed ImageNet folder {folder}: {err}") from err
    if splits["train"].classes != splits["val"].classes:
        raise ValueError(f"the class folders of {root}/train and {root}/val differ")
    return DataSplits(splits["train"], splits["val"], len(splits["train"].classes), 3)


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find_fashion_files(folders: list[Path]) -> dict[str, Path] | None:
    names = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
    for folder in folders:
        found = {}
        for key, stem in names.items():
            for candidate in (folder / f"{stem}.gz", folder / stem):
                if candidate.is_file():
                    found[key] = candidate
                    break
        if len(found) == len(names):
            return found
    return None


def fashion_mnist(root: str, download: bool = False, train_size: int | None = None,
                  test_size: int | None = None) -> DataSplits:
    """Fashion-MNIST (60k + 10k, 28x28, 10 classes): the demo set that this machine has offline.

    Read from ``root`` or ``root/FashionMNIST/raw``, else from the Debian package dataset-fashion-mnist
    (/usr/share/datasets/fashion-mnist), else downloaded by torchvision when ``download`` is set.
    Train: random crop 28 with padding 2 + horizontal flip. Optional fixed random subsets.
    """
    from torchvision import transforms

    folders = [Path(root), Path(root) / "FashionMNIST" / "raw", FASHION_MNIST_SYSTEM_DIR]
    files = _find_fashion_files(folders)
    if files is None and download:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(root, train=True, download=True)
        files = _find_fashion_files(folders)
    if files is None:
        raise DatasetNotFound(
            f"Fashion-MNIST not found in {', '.join(str(f) for f in folders)}. Install the Debian package "
            "(apt-get install dataset-fashion-mnist), or set data.download=true on a machine with internet."
        )
    normalize = transforms.Normalize(FASHION_MEAN, FASHION_STD)
    train_tf = transforms.Compose([transforms.RandomCrop(28, padding=2), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize])
    test_tf = transforms.Compose([transforms.ToTensor(), normalize])
    train = TensorImages(_read_idx(files["train_images"]), _read_idx(files["train_labels"]), train_tf)
    test = TensorImages(_read_idx(files["test_images"]), _read_idx(files["test_labels"]), test_tf)
    return DataSplits(_subset(train, train_size), _subset(test, test_size, seed=1), 10, 1)


def synthetic(num_classes: int = 10, train_size: int = 512, test_size: int = 256, image_size: int = 16,
              seed: int = 0) -> DataSplits:
    """Learnable random images: a fixed noisy pattern per class, plus per-sample noise (for tests)."""
    g = np.random.default_rng(seed)
    prototypes = g.integers(0, 256, size=(num_classes, image_size, image_size, 3))

    def make(n: int) -> TensorImages:
        from torchvision import transforms

        targets = g.integers(0, num_classes, size=n)
        noise = g.normal(0, 60, size=(n, image_size, image_size, 3))
        images = np.clip(prototypes[targets] + noise, 0, 255).astype(np.uint8)
        return TensorImages(images, targets, transforms.ToTensor())

    return DataSplits(make(train_size), make(test_size), num_classes, 3)


def _append_train_transform(dataset: Dataset, transform: Callable) -> None:
    from torchvision import transforms

    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    dataset.transform = transforms.Compose([dataset.transform, transform])


def build_datasets(name: str, root: str, download: bool = False, train_size: int | None = None,
                   test_size: int | None = None, num_classes: int | None = None,
                   image_size: int | None = None, cutout: int | None = None) -> DataSplits:
    """The train and test sets of ``name``, each yielding ``(image, target, index)``; ``cutout`` appends
    Cutout of that size to the training transform."""
    if name == "cifar100":
        splits = cifar100(root, download)
    elif name == "imagenet":
        splits = imagenet(root)
    elif name == "fashion_mnist":
        splits = fashion_mnist(root, download, train_size, test_size)
    elif name == "synthetic":
        splits = synthetic(num_classes or 10, train_size or 512, test_size or 256, image_size or 16)
    else:
        raise ValueError(f"unknown data set {name!r}; choose cifar100, imagenet, fashion_mnist or synthetic")
    if cutout:
        from classification.regularizers import Cutout

        _append_train_transform(splits.train, Cutout(cutout))
    if name in ("cifar100", "imagenet"):
        splits.train, splits.test = _subset(splits.train, train_size), _subset(splits.test, test_size, seed=1)
    return DataSplits(WithIndex(splits.train), WithIndex(splits.test), splits.num_classes, splits.in_channels)

