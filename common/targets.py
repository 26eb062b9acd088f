"""PS-KD's softened targets (paper, Eq. 4): (1 - alpha_t) * y + alpha_t * p_{t-1}(x)."""

from __future__ import annotations

import torch
from torch import Tensor


def one_hot(labels: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """(B,) integer labels -> (B, K) one-hot rows of ``dtype``, on the labels' device."""
    if labels.dim() != 1:
        raise ValueError(f"labels must be a 1-D tensor of class indices; got shape {tuple(labels.shape)}")
    out = torch.zeros(labels.shape[0], num_classes, dtype=dtype, device=labels.device)
    return out.scatter_(1, labels.long().unsqueeze(1), 1.0)


def soften_targets(labels: Tensor, past: Tensor, alpha: float) -> Tensor:
    """Eq. 4: ``(1 - alpha) * onehot(labels) + alpha * past``.

    ``past`` holds the (B, K) probabilities of the previous epoch; the result has its dtype and device.
    """
    if past.dim() != 2 or past.shape[0] != labels.shape[0]:
        raise ValueError(f"past must be (B, K) with B = {labels.shape[0]}; got {tuple(past.shape)}")
    target = past * alpha
    target.scatter_add_(
        1, labels.long().unsqueeze(1), torch.full_like(target[:, :1], 1.0 - alpha)
    )
    return target
