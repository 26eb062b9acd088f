"""PS-KD for any training loop: alpha_t schedule + past predictions + soft-target loss (paper, Alg. 1)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from common.losses import soft_target_cross_entropy
from common.past_predictions import PastPredictions
from common.schedules import AlphaSchedule
from common.targets import soften_targets


class PSKD:
    """Progressive self-knowledge distillation, one call per step.

    >>> pskd = PSKD(LinearAlpha(0.8, epochs), PredictionStore(len(train_set), num_classes))
    >>> for epoch in range(epochs):
    ...     pskd.begin_epoch(epoch)
    ...     for inputs, labels, ids in loader:
    ...         loss = pskd.loss(model(inputs), labels, ids=ids)
    ...         ...
    ...     pskd.end_epoch(model)

    ``loss`` builds the targets of Eq. 4 from the previous epoch's predictions, returns the soft-target
    cross entropy, and hands this step's softmax to the provider (the store keeps it for the next epoch).
    """

    def __init__(self, schedule: AlphaSchedule, past: PastPredictions) -> None:
        self.schedule = schedule
        self.past = past
        self.alpha = 0.0

    def begin_epoch(self, epoch: int) -> float:
        """Set and return alpha_t for ``epoch`` (counted from 0)."""
        self.alpha = self.schedule(epoch)
        return self.alpha

    def targets(self, labels: Tensor, *, ids: Tensor | None = None, inputs: Any = None) -> Tensor:
        """Eq. 4: ``(1 - alpha_t) * y + alpha_t * p_{t-1}`` for this batch."""
        return soften_targets(labels, self.past.past_probs(labels, ids=ids, inputs=inputs), self.alpha)

    def loss(self, logits: Tensor, labels: Tensor, *, ids: Tensor | None = None, inputs: Any = None) -> Tensor:
        targets = self.targets(labels, ids=ids, inputs=inputs)
        self.past.record(ids, F.softmax(logits.detach().float(), dim=1))
        return soft_target_cross_entropy(logits, targets)

    def end_epoch(self, model: nn.Module | None = None) -> None:
        self.past.end_epoch(model)
