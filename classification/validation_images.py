"""A finished classification run's validation images as its model saw them, and its classes' names: what
Fig. S6 (supplement A.5) shows beside each model's predicted probabilities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from classification import data
from classification.config import config_from_dict
from classification.runtime import run_datasets


@dataclass
class ValidationSet:
    """A run's validation images as its model saw them (``dataset[id] = (image, target, id)``, the ids of its
    ``val_predictions.pt``), its class names, and the normalisation to undo for display (``None``: stretch
    each image to [0, 1])."""

    dataset: Any
    class_names: list[str]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None

    def image(self, sample_id: int) -> tuple[np.ndarray, int]:
        """Image ``sample_id`` as an (H, W) or (H, W, 3) array in [0, 1], and its class."""
        image, target, _ = self.dataset[sample_id]
        image = image.float()
        if self.mean is not None and self.std is not None:
            image = image * torch.tensor(self.std).view(-1, 1, 1) + torch.tensor(self.mean).view(-1, 1, 1)
        else:
            image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-12)
        array = image.clamp(0, 1).permute(1, 2, 0).numpy()
        return (array[..., 0] if array.shape[2] == 1 else array), int(target)


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet class names in the standard index order (the sorted wnids, which is also the order
    of an ImageFolder of ``val/<wnid>/``), as torchvision's weights metadata holds them offline."""
    from torchvision.models import ResNet152_Weights

    return list(ResNet152_Weights.IMAGENET1K_V1.meta["categories"])


def _folder_classes(dataset: Any) -> list[str] | None:
    """The ``classes`` of the torchvision data set under the suite's wrappers (``WithIndex.base``,
    ``Subset.dataset``), if it has them."""
    while dataset is not None and not hasattr(dataset, "classes"):
        inner = getattr(dataset, "base", None)
        dataset = inner if inner is not None else getattr(dataset, "dataset", None)
    return None if dataset is None else list(dataset.classes)


def class_names(data_name: str, num_classes: int, test_set: Any = None) -> list[str]:
    """Readable names of a data set's classes, by class index: Fashion-MNIST's and ImageNet's from
    torchvision (no data needed), CIFAR-100's and an image folder's from the data set itself, else
    ``class <i>``."""
    from torchvision.datasets import FashionMNIST

    if data_name == "fashion_mnist":
        return list(FashionMNIST.classes)
    if data_name == "imagenet" and num_classes == 1000:
        return imagenet_class_names()
    found = _folder_classes(test_set) if test_set is not None else None
    if found is not None and len(found) == num_classes:
        return found
    return [f"class {i}" for i in range(num_classes)]


def validation_set(config: Mapping[str, Any]) -> ValidationSet:
    """The validation set of a classification run from the config its record holds, built by the adapter's
    own :func:`classification.runtime.run_datasets` (so the ids are those of its saved predictions);
    raises :class:`classification.data.DatasetNotFound` where the data set is not on this machine."""
    cfg = config_from_dict(dict(config))
    splits = run_datasets(cfg)
    stats = {"cifar100": (data.CIFAR100_MEAN, data.CIFAR100_STD), "imagenet": (data.IMAGENET_MEAN, data.IMAGENET_STD),
             "fashion_mnist": (data.FASHION_MEAN, data.FASHION_STD),
             "image_folder": (tuple(cfg.data.mean or data.IMAGENET_MEAN), tuple(cfg.data.std or data.IMAGENET_STD))}
    mean, std = stats.get(cfg.data.name, (None, None))
    return ValidationSet(splits.test, class_names(cfg.data.name, splits.num_classes, splits.test), mean, std)
