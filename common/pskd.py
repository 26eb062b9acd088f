"""PS-KD for any training loop: alpha_t schedule + past predictions + soft-target loss (paper, Alg. 1)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from common.losses import soft_target_cross_entropy
from common.past_predictions import PastPredictions, check_batch, check_indices
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
        past = self.past.past_probs(labels, ids=ids, inputs=inputs)
        # The provider may not know K (a snapshot teacher after epoch 0): the width of its answer is K.
        check_indices("labels", labels, past.shape[1], f"class indices of the K={past.shape[1]} classes")
        return soften_targets(labels, past, self.alpha)

    def loss(self, logits: Tensor, labels: Tensor, *, ids: Tensor | None = None, inputs: Any = None) -> Tensor:
        """The soft-target cross entropy of ``logits`` (B, K) on the Eq. 4 targets; records this step's softmax.

        Checked without a device synchronisation (see :func:`~common.past_predictions.check_indices`): the
        shapes of ``logits``, ``labels`` and ``ids``, K against the provider's, and on the CPU the values of
        ``labels`` (in [0, K)) and ``ids`` (in [0, N), by the store); a ValueError names the argument.
        """
        if logits.dim() != 2:
            raise ValueError(f"logits must be (B, K); got shape {tuple(logits.shape)}")
        check_batch("logits", logits.shape[0], labels.shape[0], "labels")
        if self.past.num_classes is not None and logits.shape[1] != self.past.num_classes:
            raise ValueError(f"logits has {logits.shape[1]} columns but the past predictions hold K="
                             f"{self.past.num_classes} classes: the model's output width must be the number of classes")
        targets = self.targets(labels, ids=ids, inputs=inputs)
        self.past.record(ids, F.softmax(logits.detach().float(), dim=1))
        return soft_target_cross_entropy(logits, targets)

    def end_epoch(self, model: nn.Module | None = None) -> None:
        self.past.end_epoch(model)
