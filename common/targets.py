"""PS-KD's softened targets (paper, Eq. 4): (1 - alpha_t) * y + alpha_t * p_{t-1}(x)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: Mixes any per-sample (B, ...) tensor the way a batch's inputs were mixed (CutMix: ``lam * t + (1 - lam) *
#: t[perm]``), so that targets follow their images, as timm's ``data/mixup.py`` mixes inputs with targets.
Mix = Callable[[Tensor], Tensor]


def one_hot(labels: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """(B,) integer labels -> (B, K) one-hot rows of ``dtype``, on the labels' device."""
    if labels.dim() != 1:
        raise ValueError(f"labels must be a 1-D tensor of class indices; got shape {tuple(labels.shape)}")
    out = torch.zeros(labels.shape[0], num_classes, dtype=dtype, device=labels.device)
    return out.scatter_(1, labels.long().unsqueeze(1), 1.0)


def soften_targets(labels: Tensor, past: Tensor, alpha: float, mix: Mix | None = None) -> Tensor:
    """Eq. 4: ``(1 - alpha) * onehot(labels) + alpha * past``.

    ``past`` holds the (B, K) probabilities of the previous epoch; the result has its dtype and device.
    With ``mix`` (mixed inputs), the label part is ``mix(onehot(labels))`` and ``past`` must already be the
    past prediction of the mixed inputs (:meth:`~common.past_predictions.PastPredictions.past_probs` with the
    same ``mix``). Eq. 4 is linear, so for a store this equals mixing the two samples' softened targets.
    """
    if past.dim() != 2 or past.shape[0] != labels.shape[0]:
        raise ValueError(f"past must be (B, K) with B = {labels.shape[0]}; got {tuple(past.shape)}")
    hard = one_hot(labels, past.shape[1], past.dtype)
    if mix is not None:
        hard = mix(hard)
    return hard * (1.0 - alpha) + past * alpha
