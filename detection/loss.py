"""PS-KD's classification loss for the RoI head of a two-stage detector."""

from __future__ import annotations

from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.registry import MODELS
from torch import Tensor, nn

from common import one_hot, soft_target_cross_entropy, soften_targets


@MODELS.register_module()
class PSKDClsLoss(nn.Module):
    """Soft-target cross entropy of the RoI classifier against (1 - alpha_t) y + alpha_t p_{t-1} (Eq. 4).

    Called the way mmdet's ``BBoxHead.loss`` calls ``loss_cls``: ``(cls_score (N, C + 1), labels (N,) with the
    background as C, label_weights, avg_factor=, reduction_override=)``; ignored RoIs carry weight 0.
    ``PSKDRoIHead`` adds ``past`` (N, C + 1), the previous epoch's probabilities on the same RoIs, and
    ``alpha`` (alpha_t). Without ``past`` (epoch 0, or a call from a plain bbox head) or with alpha 0
    the target is the one-hot label, i.e. this is cross entropy. Any other argument (a head that passes
    mmdet's ``CrossEntropyLoss`` options such as ``ignore_index``) is a TypeError: this loss would not honour it.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.reduction = reduction

    def forward(self, cls_score: Tensor, labels: Tensor, weight: Tensor | None = None,
                avg_factor: float | None = None, reduction_override: str | None = None, *,
                past: Tensor | None = None, alpha: float = 0.0) -> Tensor:
        reduction = reduction_override or self.reduction
        if past is None or alpha == 0:
            targets = one_hot(labels, cls_score.shape[1])
        else:
            targets = soften_targets(labels, past.to(cls_score.device).float(), alpha)
        per_roi = soft_target_cross_entropy(cls_score, targets, reduction="none")
        if weight is not None:
            weight = weight.float()
        return self.loss_weight * weight_reduce_loss(per_roi, weight, reduction=reduction, avg_factor=avg_factor)
