"""PS-KD for any training loop: alpha_t schedule + past predictions + soft-target loss (paper, Alg. 1)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from common.losses import soft_target_cross_entropy
from common.past_predictions import PastPredictions, check_batch, check_indices
from common.schedules import AlphaSchedule
from common.targets import Mix, soften_targets


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
    A loop that builds its own loss calls the two halves, :meth:`targets` then :meth:`record`. After a
    resume, :meth:`load_state_dict` then :meth:`resume` with the restored model. The loop never needs to
    know which :class:`~common.past_predictions.PastPredictions` provider it holds.
    """

    def __init__(self, schedule: AlphaSchedule, past: PastPredictions) -> None:
        self.schedule = schedule
        self.past = past
        self.alpha = 0.0

    def begin_epoch(self, epoch: int) -> float:
        """Set and return alpha_t for ``epoch`` (counted from 0)."""
        self.alpha = self.schedule(epoch)
        return self.alpha

    def targets(self, labels: Tensor, *, ids: Tensor | None = None, inputs: Any = None,
                mix: Mix | None = None) -> Tensor:
        """Eq. 4: ``(1 - alpha_t) * y + alpha_t * p_{t-1}`` for this batch.

        With ``mix`` (the inputs were mixed, e.g. by CutMix; ``inputs`` are the mixed ones), ``y`` is the
        mixed label and ``p_{t-1}`` the provider's past prediction of the mixed inputs: for the store, the
        two samples' rows mixed by the kept area, so the target is the mix of their softened targets.
        """
        past = self.past.past_probs(labels, ids=ids, inputs=inputs, mix=mix)
        # The provider may not know K (a snapshot teacher after epoch 0): the width of its answer is K.
        check_indices("labels", labels, past.shape[1], f"class indices of the K={past.shape[1]} classes")
        return soften_targets(labels, past, self.alpha, mix)

    def record(self, logits: Tensor, *, ids: Tensor | None = None) -> None:
        """Hand this step's softmax of ``logits`` (B, K) to the provider (the store keeps it under ``ids``).

        For mixed inputs, each row is kept under the id of the sample that received the mix (no extra
        forward pass of the clean image; a clean view refreshes the row in a later epoch).
        """
        self.past.record(ids, F.softmax(logits.detach().float(), dim=1))

    def loss(self, logits: Tensor, labels: Tensor, *, ids: Tensor | None = None, inputs: Any = None,
             mix: Mix | None = None) -> Tensor:
        """The soft-target cross entropy of ``logits`` (B, K) on the Eq. 4 :meth:`targets`; :meth:`record`\\ s
        this step's softmax. ``mix`` as in :meth:`targets`.

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
        targets = self.targets(labels, ids=ids, inputs=inputs, mix=mix)
        self.record(logits, ids=ids)
        return soft_target_cross_entropy(logits, targets)

    def end_epoch(self, model: nn.Module | None = None) -> None:
        """After the last step of every epoch, on every rank (the store's barrier, the teacher's snapshot)."""
        self.past.end_epoch(model)

    def resume(self, model: nn.Module) -> None:
        """After :meth:`load_state_dict` and the model's weights were restored, before the first resumed epoch."""
        self.past.resume(model)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the provider's state (alpha_t follows from the epoch)."""
        return {"past": self.past.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.past.load_state_dict(state["past"])
