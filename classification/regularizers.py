"""Data regularisers of supplement A.2 that combine with every method: Cutout and CutMix.

(ShakeDrop lives in the model: classification/shakedrop.py, ``model.name=pyramidnet200_shakedrop``.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


class Cutout:
    """Cutout (DeVries & Taylor 2017): zero one ``size`` x ``size`` square per image, centred uniformly on
    the image and clipped at its border. Applied to the normalised tensor, as in the reference code."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"the Cutout size must be >= 1 pixel; got {size}")
        self.size = size

    def __call__(self, image: Tensor) -> Tensor:
        h, w = image.shape[-2:]
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        y0, y1 = max(cy - self.size // 2, 0), min(cy + self.size - self.size // 2, h)
        x0, x1 = max(cx - self.size // 2, 0), min(cx + self.size - self.size // 2, w)
        image = image.clone()
        image[..., y0:y1, x0:x1] = 0.0
        return image

    def __repr__(self) -> str:
        return f"Cutout(size={self.size})"


@dataclass
class MixInfo:
    """A CutMix draw: sample i of the batch took a box from sample ``perm[i]``; ``lam`` of each image is
    its own (the exact area ratio after clipping the box)."""

    perm: Tensor
    lam: float

    def mix(self, per_sample: Tensor) -> Tensor:
        """Mix any per-sample quantity (targets, teacher distributions) the way the images were mixed."""
        return self.lam * per_sample + (1.0 - self.lam) * per_sample[self.perm]


def cutmix_box(height: int, width: int, lam: float, generator: torch.Generator | None = None) -> tuple[int, ...]:
    """CutMix's box (Yun et al., ICCV 2019, Eq. 2): area ratio 1 - lam, centre uniform, clipped."""
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(height * cut), int(width * cut)
    cy = int(torch.randint(height, (), generator=generator))
    cx = int(torch.randint(width, (), generator=generator))
    return (int(np.clip(cy - ch // 2, 0, height)), int(np.clip(cy + ch // 2, 0, height)),
            int(np.clip(cx - cw // 2, 0, width)), int(np.clip(cx + cw // 2, 0, width)))


class CutMix:
    """With probability ``prob``, paste a box of a shuffled partner into every image of the batch.

    lam ~ U(0, 1) (Beta(1, 1)), then corrected to the exact kept area. Targets are mixed by the same
    lam (:meth:`MixInfo.mix`), which for PS-KD mixes the two samples' softened targets.

    The whole batch is mixed or none of it (one draw per batch, as clovaai/CutMix-PyTorch's train.py tests
    ``r < args.cutmix_prob``), so a sample is seen clean in a fraction 1 - ``prob`` of the epochs; inside a
    mixed batch only a sample that drew itself as partner, or an empty box, keeps its image. PS-KD's
    ``method.cutmix_store`` decides what the prediction store keeps for the others (:class:`common.PSKD`).
    """

    def __init__(self, prob: float = 0.5) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"the CutMix probability must lie in [0, 1]; got {prob}")
        self.prob = prob

    def __call__(self, images: Tensor) -> tuple[Tensor, MixInfo | None]:
        if self.prob == 0 or float(torch.rand(())) >= self.prob:
            return images, None
        lam = float(torch.rand(()))
        perm = torch.randperm(images.shape[0], device=images.device)
        y0, y1, x0, x1 = cutmix_box(images.shape[-2], images.shape[-1], lam)
        images = images.clone()
        images[..., y0:y1, x0:x1] = images[perm][..., y0:y1, x0:x1]
        kept = 1.0 - (y1 - y0) * (x1 - x0) / (images.shape[-2] * images.shape[-1])
        return images, MixInfo(perm, kept)
