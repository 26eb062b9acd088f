"""Data sets that yield ``(image, target, index)``: the index keys PS-KD's prediction store.

Built by name (:func:`build_datasets`): ``cifar100``, ``imagenet``, ``fashion_mnist`` (the offline demo
set), ``image_folder`` (a user's own ``train/`` and ``val/`` folders of class sub-folders) and ``synthetic``
(learnable random images, for tests). A missing data set raises
:class:`DatasetNotFound`, naming the path that was looked at and how to get the data.

Stand-in data (the rehearsal of the paper profile): :mod:`classification.standin` writes generated data
sets in the real on-disk formats, each with the marker of :mod:`common.standin`. ImageNet's folders need
nothing more; CIFAR-100's pickles cannot pass torchvision's md5 check of the real archive, so
:func:`cifar100` reads a stand-in only when ``PSKD_STANDIN_DATA=1`` (:data:`common.standin.ENV`) is set *and*
the folder holds the marker, checking the files against the md5s the marker lists, and says so on stderr.
Without both, the real check runs unchanged.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from common import standin

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
# The official loaders' CIFAR-100 statistics (PS-KD loader/custom_dataloader.py, CS-KD datasets.py): the
# widely copied CIFAR-10 values rather than CIFAR-100's own, but the paper's numbers were trained with them.
CIFAR100_MEAN, CIFAR100_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)
# AlexNet-style PCA lighting noise of the official ImageNet loader (PS-KD loader/custom_dataloader.py):
# eigenvalues and eigenvectors (columns) of the RGB covariance of ImageNet pixels in [0, 1].
IMAGENET_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009),
                       (-0.5808, -0.0045, -0.8140),
                       (-0.5836, -0.6948, 0.4203))
IMAGENET_TRANSFORMS = ("official", "supplement")
# A user's image folder, when the config names no sizes: supplement A.3's ImageNet sizes (resize to
# 256 x 256, crop 224); with a smaller data.image_size the crop defaults to the whole image.
IMAGE_FOLDER_SIZE, IMAGE_FOLDER_CROP = 256, 224


class DatasetNotFound(FileNotFoundError):
    """A data set is not where the config says; the message says what to put where."""


class UnreadableImage(RuntimeError):
    """An image file of a folder data set cannot be decoded; the message names the file."""


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


class Pretransformed(Dataset):
    """``base`` with a deterministic transform, transformed once: every access returns the tensor that
    ``base[i]`` gives, without decoding and normalising the image again in every epoch (which took most of
    a demo MLP epoch). ``transform`` (none at first) runs on access, so a training transform appended
    later (Cutout) still draws anew each time."""

    def __init__(self, base: Dataset) -> None:
        items = [base[i] for i in range(len(base))]
        self.images = torch.stack([image for image, _ in items])
        self.targets = [int(target) for _, target in items]
        self.transform: Callable | None = None

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = self.images[index]  # a clone for the transform: an in-place one must not alter the cache
        return (self.transform(image.clone()) if self.transform else image), self.targets[index]


def _subset(dataset: Dataset, size: int | None, seed: int = 0) -> Dataset:
    """A fixed random subset (the same for every run and rank), or the whole set when size is None."""
    if size is None or size >= len(dataset):
        return dataset
    keep = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:size].sort().values
    return torch.utils.data.Subset(dataset, keep.tolist())


def cifar100_transforms() -> tuple[Callable, Callable]:
    """The (train, test) transforms of CIFAR-100 (supplement A.3; official PS-KD loader/custom_dataloader.py):
    train random crop 32 with padding 4 + flip; test normalisation only; the official mean and std."""
    from torchvision import transforms

    normalize = transforms.Normalize(CIFAR100_MEAN, CIFAR100_STD)
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize])
    return train_tf, transforms.Compose([transforms.ToTensor(), normalize])


def _standin_cifar100_split(root: str, md5: dict[str, str], train: bool, transform: Callable) -> Dataset:
    """torchvision's CIFAR100 with the stand-in's md5s set on the instance before its ``__init__`` checks them:
    the class keeps the real archive's md5s for every other reader, and the data set pickles as a plain
    CIFAR100 (as DataLoader workers started by spawn need)."""
    from torchvision import datasets

    dataset = datasets.CIFAR100.__new__(datasets.CIFAR100)
    dataset.train_list, dataset.test_list = [["train", md5["train"]]], [["test", md5["test"]]]
    dataset.meta = {**datasets.CIFAR100.meta, "md5": md5["meta"]}
    dataset.__init__(root, train=train, transform=transform)
    return dataset


def _standin_cifar100(root: str, marker: dict, train_tf: Callable, test_tf: Callable) -> DataSplits:
    """A stand-in CIFAR-100 read by torchvision's own CIFAR100 code, its integrity checked against the md5s in
    the marker instead of the real archive's (which a generated file cannot match)."""
    from torchvision import datasets

    folder = Path(root) / datasets.CIFAR100.base_folder
    md5 = marker.get("md5") or {}
    if not {"train", "test", "meta"} <= md5.keys():
        raise DatasetNotFound(f"the stand-in marker {folder / standin.MARKER} lists no md5 of train, test and "
                              f"meta (an interrupted generation?); regenerate it with {standin.COMMAND} cifar100 "
                              "--out DIR")
    print(f"STAND-IN DATA: {folder} is generated stand-in data, not CIFAR-100 ({marker.get('generator')}, seed "
          f"{marker.get('seed')}), read because {standin.ENV}=1: its results measure the pipeline, not the method",
          file=sys.stderr, flush=True)
    try:
        train = _standin_cifar100_split(root, md5, True, train_tf)
        test = _standin_cifar100_split(root, md5, False, test_tf)
    except RuntimeError as err:
        raise DatasetNotFound(f"the stand-in CIFAR-100 at {folder} does not match the md5s of its marker "
                              f"{standin.MARKER} ({err}); regenerate it with {standin.COMMAND} cifar100 "
                              "--out DIR") from err
    return DataSplits(train, test, 100, 3)


def cifar100(root: str, download: bool = False) -> DataSplits:
    """CIFAR-100 with :func:`cifar100_transforms`. A stand-in (see the module docstring) is read only where
    :func:`common.standin.expected` and the folder holds its marker; otherwise torchvision's md5 check of the real
    archive's files decides, as for any user."""
    from torchvision import datasets

    train_tf, test_tf = cifar100_transforms()
    if standin.expected():
        try:
            marker = standin.marker(Path(root) / datasets.CIFAR100.base_folder)
        except standin.StandinError as err:
            raise DatasetNotFound(str(err)) from err
        if marker is not None:
            return _standin_cifar100(root, marker, train_tf, test_tf)
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


class Lighting:
    """AlexNet-style PCA lighting noise (Krizhevsky et al., NeurIPS 2012, Sec. 4.1) on an RGB tensor.

    Transcribes ``Lighting`` of the official PS-KD code (utils/custom_transform.py, from
    eladhoffer/convNet.pytorch): draw alpha ~ N(0, alphastd) for each principal component and add
    ``sum_j eigvec[:, j] * alpha_j * eigval_j`` to every pixel; the result is not clamped.
    """

    def __init__(self, alphastd: float, eigval: tuple[float, ...] = IMAGENET_PCA_EIGVAL,
                 eigvec: tuple[tuple[float, ...], ...] = IMAGENET_PCA_EIGVEC) -> None:
        self.alphastd = alphastd
        self.eigval, self.eigvec = torch.tensor(eigval), torch.tensor(eigvec)

    def __call__(self, img: Tensor) -> Tensor:
        if self.alphastd == 0:
            return img
        alpha = img.new_empty(3).normal_(0, self.alphastd)
        rgb = (self.eigvec.to(img) * (alpha * self.eigval.to(img)).view(1, 3)).sum(1)
        return img + rgb.view(3, 1, 1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alphastd={self.alphastd})"


class TensorColorJitter:
    """Brightness, contrast and saturation jitter of an RGB tensor in [0, 1], in random order, unclamped.

    Transcribes ``ColorJitter`` of the official PS-KD code (utils/custom_transform.py): each part blends the
    image towards black, towards its mean grey level, or towards its greyscale (0.299 R + 0.587 G +
    0.114 B) by ``alpha ~ U(-var, var)``, i.e. scales it by 1 - alpha about that point. torchvision's
    ColorJitter draws the same factors but clamps every result to [0, 1], which the official one does
    not. Draws from torch's generator (the official code uses Python's ``random``).
    """

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4) -> None:
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    @staticmethod
    def _black(img: Tensor) -> Tensor:
        return torch.zeros_like(img)

    @staticmethod
    def _grey(img: Tensor) -> Tensor:
        return (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]).expand_as(img)

    @classmethod
    def _mean_grey(cls, img: Tensor) -> Tensor:
        return cls._grey(img).mean().expand_as(img)

    def __call__(self, img: Tensor) -> Tensor:
        parts = [(var, towards) for var, towards in ((self.brightness, self._black), (self.contrast, self._mean_grey),
                                                     (self.saturation, self._grey)) if var != 0]
        for i in torch.randperm(len(parts)).tolist():
            var, towards = parts[i]
            alpha = float(torch.empty(()).uniform_(-var, var))
            img = torch.lerp(img, towards(img), alpha)
        return img

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation})")


def imagenet_transforms(kind: str = "official") -> tuple[Callable, Callable]:
    """The (train, validation) transforms of ImageNet.

    ``official`` (PS-KD loader/custom_dataloader.py, the code behind the paper's numbers): train
    RandomResizedCrop 224 + flip, then colour jitter 0.4 and lighting noise 0.1 on the tensor;
    validation resizes the shorter side to 256 and centre-crops 224. ``supplement`` (the text of
    supplement A.3): resize to 256 x 256, random crop 224 + flip; validation 256 x 256, centre crop 224.
    """
    from torchvision import transforms

    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    if kind == "official":
        train = [transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                 TensorColorJitter(0.4, 0.4, 0.4), Lighting(0.1), normalize]
        test = [transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), normalize]
    elif kind == "supplement":
        train = [transforms.Resize((256, 256)), transforms.RandomCrop(224), transforms.RandomHorizontalFlip(),
                 transforms.ToTensor(), normalize]
        test = [transforms.Resize((256, 256)), transforms.CenterCrop(224), transforms.ToTensor(), normalize]
    else:
        raise ValueError(f"data.imagenet_transform={kind!r} is not known; choose {' or '.join(IMAGENET_TRANSFORMS)}")
    return transforms.Compose(train), transforms.Compose(test)


def _checked_loader(path: str):
    from torchvision.datasets.folder import default_loader

    try:
        return default_loader(path)
    except Exception as err:
        raise UnreadableImage(f"cannot read image {path}: {err}. Replace or remove this file.") from err


def imagenet(root: str, transform: str = "official") -> DataSplits:
    """ImageNet as ``root/train/<class>/*`` and ``root/val/<class>/*``, with :func:`imagenet_transforms`."""
    from torchvision import datasets

    train_tf, test_tf = imagenet_transforms(transform)
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


def folder_transforms(image_size: int, crop_size: int, mean: tuple[float, ...],
                      std: tuple[float, ...]) -> tuple[Callable, Callable]:
    """The (train, validation) transforms of ``image_folder``: the recipe of supplement A.3 for ImageNet with
    the config's sizes and statistics. Train: resize to image_size x image_size, random crop crop_size,
    horizontal flip; validation: the same resize, centre crop crop_size; both normalised by mean and std."""
    from torchvision import transforms

    if not 0 < crop_size <= image_size:
        raise ValueError(f"data.crop_size={crop_size} must lie in [1, data.image_size={image_size}]")
    normalize = transforms.Normalize(mean, std)
    resize = transforms.Resize((image_size, image_size))
    train = [resize, transforms.RandomCrop(crop_size), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
             normalize]
    test = [resize, transforms.CenterCrop(crop_size), transforms.ToTensor(), normalize]
    return transforms.Compose(train), transforms.Compose(test)


def class_folder(folder: Path, transform: Callable | None = None, classes: list[str] | None = None) -> Dataset:
    """An ``ImageFolder`` of ``folder/<class>/*`` (class index = position in the sorted folder names, or in
    ``classes`` when given, so that a validation folder keeps the training folder's indices even when it
    lacks a class); every image is read as RGB, and one that cannot be read names its file."""
    from torchvision import datasets

    if not folder.is_dir():
        raise DatasetNotFound(f"no folder {folder.resolve()}: expected {folder}/<class name>/ holding that class's "
                              "images, one sub-folder per class")
    found = sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
    if not found:
        raise DatasetNotFound(f"{folder.resolve()} has no class sub-folders: put each class's images in "
                              f"{folder}/<class name>/")
    if classes is not None:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DatasetNotFound(f"{folder.resolve()} has class folder(s) {', '.join(unknown)} that the training "
                                  "folder lacks: a model cannot learn them; move or remove them")
    try:
        dataset = datasets.ImageFolder(str(folder), transform=transform, loader=_checked_loader)
    except FileNotFoundError as err:
        raise DatasetNotFound(f"{folder.resolve()}: {err}. Each class folder needs at least one image") from err
    if classes is not None:
        index = {name: i for i, name in enumerate(classes)}
        dataset.samples = [(path, index[dataset.classes[target]]) for path, target in dataset.samples]
        dataset.imgs, dataset.targets = dataset.samples, [target for _, target in dataset.samples]
        dataset.classes, dataset.class_to_idx = list(classes), index
    return dataset


def image_folder(root: str, image_size: int | None = None, crop_size: int | None = None,
                 mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None) -> DataSplits:
    """A user's images as ``root/train/<class>/*`` and ``root/val/<class>/*`` with :func:`folder_transforms`.

    Sizes default to 256 and min(224, image_size); mean and std to ImageNet's (compute the folder's own with
    ``python -m classification.image_stats ROOT/train``). The classes are the training folder's sub-folders.
    """
    image_size = image_size or IMAGE_FOLDER_SIZE
    crop_size = crop_size or min(IMAGE_FOLDER_CROP, image_size)
    train_tf, test_tf = folder_transforms(image_size, crop_size, mean or IMAGENET_MEAN, std or IMAGENET_STD)
    for split in ("train", "val"):
        if not (Path(root) / split).is_dir():
            raise DatasetNotFound(
                f"data.name=image_folder: no {split} folder at {(Path(root) / split).resolve()}. Expected "
                f"{root}/train/<class>/*.png|jpg and {root}/val/<class>/*.png|jpg; set data.root to the folder "
                "that holds train/ and val/")
    train = class_folder(Path(root) / "train", train_tf)
    test = class_folder(Path(root) / "val", test_tf, classes=train.classes)
    return DataSplits(train, test, len(train.classes), 3)


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
                  test_size: int | None = None, augment: bool = True) -> DataSplits:
    """Fashion-MNIST (60k + 10k, 28x28, 10 classes): the demo set that this machine has offline.

    Read from ``root`` or ``root/FashionMNIST/raw``, else from the Debian package dataset-fashion-mnist
    (/usr/share/datasets/fashion-mnist), else downloaded by torchvision when ``download`` is set.
    Train: random crop 28 with padding 2 + horizontal flip (none with ``augment=False``, the demo's
    over-fitting regime). Optional fixed random subsets. Splits without random transforms are
    :class:`Pretransformed`.
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
    flips_and_shifts = [transforms.RandomCrop(28, padding=2), transforms.RandomHorizontalFlip()] if augment else []
    train_tf = transforms.Compose([*flips_and_shifts, transforms.ToTensor(), normalize])
    test_tf = transforms.Compose([transforms.ToTensor(), normalize])
    train = TensorImages(_read_idx(files["train_images"]), _read_idx(files["train_labels"]), train_tf)
    test = TensorImages(_read_idx(files["test_images"]), _read_idx(files["test_labels"]), test_tf)
    train, test = _subset(train, train_size), Pretransformed(_subset(test, test_size, seed=1))
    return DataSplits(train if augment else Pretransformed(train), test, 10, 1)


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
    dataset.transform = transform if dataset.transform is None else transforms.Compose([dataset.transform, transform])


@dataclass(frozen=True)
class DataRequest:
    """Everything a data set's builder may read: ``data.*`` of a run's config (see :func:`build_datasets`)."""

    root: str
    download: bool = False
    train_size: int | None = None
    test_size: int | None = None
    num_classes: int | None = None
    image_size: int | None = None
    imagenet_transform: str = "official"
    crop_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: bool = True


@dataclass(frozen=True)
class DatasetEntry:
    """A data set of the registry: its builder, and whether the builder cuts the splits to ``train_size`` /
    ``test_size`` itself (else :func:`build_datasets` takes fixed random subsets of what it returns)."""

    build: Callable[[DataRequest], DataSplits]
    sizes_itself: bool = False


# The registry of data sets, by ``data.name``: a new data set is a builder and a line here.
DATASETS: dict[str, DatasetEntry] = {
    "cifar100": DatasetEntry(lambda r: cifar100(r.root, r.download)),
    "imagenet": DatasetEntry(lambda r: imagenet(r.root, r.imagenet_transform)),
    "fashion_mnist": DatasetEntry(lambda r: fashion_mnist(r.root, r.download, r.train_size, r.test_size, r.augment),
                                  sizes_itself=True),
    "image_folder": DatasetEntry(lambda r: image_folder(r.root, r.image_size, r.crop_size, r.mean, r.std)),
    "synthetic": DatasetEntry(lambda r: synthetic(r.num_classes or 10, r.train_size or 512, r.test_size or 256,
                                                  r.image_size or 16), sizes_itself=True),
}


def build_datasets(name: str, root: str, download: bool = False, train_size: int | None = None,
                   test_size: int | None = None, num_classes: int | None = None,
                   image_size: int | None = None, cutout: int | None = None,
                   imagenet_transform: str = "official", crop_size: int | None = None,
                   mean: list[float] | None = None, std: list[float] | None = None,
                   augment: bool = True) -> DataSplits:
    """The train and test sets of ``name`` (a key of :data:`DATASETS`), each yielding ``(image, target, index)``;
    ``cutout`` appends Cutout of that size to the training transform; ``imagenet_transform`` as in
    :func:`imagenet_transforms`; ``image_size``, ``crop_size``, ``mean`` and ``std`` as in :func:`image_folder`
    (``image_size`` is also the side of the synthetic images); ``augment=False`` drops Fashion-MNIST's flips and
    shifts."""
    entry = DATASETS.get(name)
    if entry is None:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    request = DataRequest(root, download, train_size, test_size, num_classes, image_size, imagenet_transform,
                          crop_size, None if mean is None else tuple(mean), None if std is None else tuple(std),
                          augment)
    splits = entry.build(request)
    if cutout:
        from classification.regularizers import Cutout

        _append_train_transform(splits.train, Cutout(cutout))
    if not entry.sizes_itself:
        splits.train, splits.test = _subset(splits.train, train_size), _subset(splits.test, test_size, seed=1)
    return DataSplits(WithIndex(splits.train), WithIndex(splits.test), splits.num_classes, splits.in_channels)

