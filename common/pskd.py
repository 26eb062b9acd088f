"""PS-KD for any training loop: alpha_t schedule + past predictions + soft-target loss (paper, Alg. 1)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common.losses import soft_target_cross_entropy
from common.past_predictions import PastPredictions, SnapshotTeacher, check_batch, check_indices
from common.schedules import AlphaSchedule
from common.targets import Mix, soften_targets

#: How PS-KD treats a batch whose inputs were mixed (CutMix), with a provider that keeps predictions (the store):
#: what it keeps for the mixed samples and where their p_{t-1} comes from. See :class:`PSKD`.
MIXED_INPUT_MODES = ("mixed", "clean_only", "clean_forward", "snapshot")
#: By the measurement of ``benchmarks/perf/bench_cutmix_store.py`` (docs/settings.md, "Regularisers").
DEFAULT_MIXED_INPUTS = "snapshot"


def unmixed_rows(mix: Mix, batch: int, device: torch.device | str = "cpu") -> Tensor:
    """(B,) bool: which samples' inputs ``mix`` leaves as they were (for CutMix: the sample is its own partner,
    or its box is empty). ``mix`` is linear in the per-sample tensor, so ``mix(I)`` is its B x B mixing matrix,
    and row i is un-mixed exactly when its diagonal entry is 1 (float64 keeps a 1-pixel box of a 512 x 512
    image, 1 - 2**-18, apart from 1)."""
    weights = mix(torch.eye(batch, dtype=torch.float64, device=device)).diagonal()
    return (weights - 1.0).abs() < 1e-12


def _keeps_predictions(past: PastPredictions) -> bool:
    """Whether ``past`` keeps what :meth:`PastPredictions.record` hands it (the stores override that optional
    hook; the snapshot teacher does not, it answers from its frozen copy)."""
    return type(past).record is not PastPredictions.record


class StoreWithSnapshot(PastPredictions):
    """``mixed_inputs="snapshot"``: a store answers for batches that were not mixed and keeps their softmax; a
    :class:`~common.past_predictions.SnapshotTeacher` of the previous epoch's model answers for mixed inputs,
    asked about the mixed inputs themselves, in eval mode (as ``method.past=teacher``). The checkpoint holds the
    store; the snapshot is taken again from the restored model (:meth:`resume`)."""

    def __init__(self, store: PastPredictions) -> None:
        self.store = store
        self.num_classes = store.num_classes
        self.teacher = SnapshotTeacher(store.num_classes)
        self._closed_without_model = False  # an epoch ended with no model to snapshot

    def past_probs(self, labels: Tensor, *, ids: Tensor | None = None, inputs: Any = None,
                   mix: Mix | None = None) -> Tensor:
        if mix is None:
            return self.store.past_probs(labels, ids=ids)
        if self._closed_without_model and not self.teacher.ready:
            raise ValueError("a mixed batch reads the snapshot of the previous epoch's model: pass the model to "
                             "PSKD.end_epoch(model)")
        return self.teacher.past_probs(labels, ids=ids, inputs=inputs, mix=mix)

    def record(self, ids: Tensor | None, probs: Tensor) -> None:
        self.store.record(ids, probs)

    def end_epoch(self, model: nn.Module | None = None) -> None:
        """The store's epoch end; the snapshot only with the model (a loop that never mixes need not give it)."""
        self.store.end_epoch(model)
        if model is None:
            self._closed_without_model = True
        else:
            self.teacher.end_epoch(model)

    def resume(self, model: nn.Module) -> None:
        self.store.resume(model)
        self.teacher.resume(model)

    def state_dict(self) -> dict[str, Any]:
        return self.store.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.store.load_state_dict(state)


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

    Mixed inputs (CutMix). Alg. 1 keeps each sample's own prediction; the official code has no CutMix
    (lgcnsai/PS-KD-Pytorch, ``main.py`` ``train()`` stores ``softmax(net(inputs))`` of clean images under
    ``input_indices``), and the supplement (Table S1) does not say what its CutMix runs stored. Keeping the
    mixed image's softmax under the receiving sample's id puts the partner's class into that sample's next
    target every epoch, and the targets drift soft: on the demo, ECE 24.7 % against 0.6 % for CutMix alone.
    With a provider that keeps predictions (a store), ``mixed_inputs`` (one of
    :data:`MIXED_INPUT_MODES`) says what is kept for a mixed sample and where its p_{t-1} comes from:

    * ``"mixed"``: the store keeps the softmax of the mixed input; a mixed batch reads the two samples' rows,
      mixed. No extra cost; the drifting behaviour above.
    * ``"clean_only"``: only samples whose input the mix left unchanged (:func:`unmixed_rows`; with a CutMix
      that mixes a whole batch or none, the samples of un-mixed batches) write their softmax; the others keep
      their row. A mixed batch reads rows, mixed. No extra cost; a row is refreshed by a clean view, on
      average every 1 / (1 - cutmix_prob) epochs, and never when every batch is mixed.
    * ``"clean_forward"``: as ``mixed`` for reading, but the loop also runs the model without grad on the
      clean inputs of a mixed batch and passes those logits as ``clean_logits``; their softmax is kept, so
      every row holds the sample's own prediction of this epoch, as Alg. 1 has it. Cost: one forward pass
      without backward on each mixed step.
    * ``"snapshot"`` (default): the store is written as with ``clean_only``, and a mixed batch's p_{t-1} is
      the prediction of a snapshot of the previous epoch's model on the mixed inputs themselves
      (:class:`StoreWithSnapshot`), the only p_{t-1} of a mixed image that Alg. 1's "prediction of the
      previous epoch" defines. Cost: one copy of the model and one forward pass without backward on each
      mixed step; at ``cutmix_prob=1`` it is the snapshot teacher.

    A provider that keeps nothing (the snapshot teacher, which answers about the mixed inputs themselves)
    ignores ``mixed_inputs`` and never asks for ``clean_logits``.
    """

    def __init__(self, schedule: AlphaSchedule, past: PastPredictions,
                 mixed_inputs: str = DEFAULT_MIXED_INPUTS) -> None:
        if mixed_inputs not in MIXED_INPUT_MODES:
            raise ValueError(f"mixed_inputs must be one of {', '.join(MIXED_INPUT_MODES)}; got {mixed_inputs!r}")
        self.schedule = schedule
        keeps = _keeps_predictions(past)
        self.past = StoreWithSnapshot(past) if keeps and mixed_inputs == "snapshot" else past
        self.mixed_inputs = mixed_inputs if keeps else None
        self.alpha = 0.0

    @property
    def wants_clean_logits(self) -> bool:
        """Whether :meth:`loss` and :meth:`record` of a mixed batch need ``clean_logits``: the model's output
        on the batch's clean inputs, from a forward pass without grad, before or after the training forward
        pass of the mixed inputs."""
        return self.mixed_inputs == "clean_forward"

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

    def record(self, logits: Tensor, *, ids: Tensor | None = None, labels: Tensor | None = None,
               mix: Mix | None = None, clean_logits: Tensor | None = None) -> None:
        """Hand this step's softmax of ``logits`` (B, K) to the provider (the store keeps it under ``ids``).

        With ``mix`` (``logits`` are of mixed inputs), what is kept follows ``mixed_inputs`` (class
        docstring): ``mixed``, the softmax of ``logits``; ``clean_forward``, the softmax of ``clean_logits``
        (required; :attr:`wants_clean_logits`); ``clean_only`` and ``snapshot``, the softmax of ``logits`` for
        the rows that :func:`unmixed_rows` finds un-mixed and, for the others, the row the store already holds,
        read back with ``labels`` (required; one-hot where never written). Writing every row keeps the number
        of rows per step equal on every rank, which the store's all_gather under DDP needs.
        """
        probs = F.softmax(logits.detach().float(), dim=1)
        if mix is not None and self.mixed_inputs == "clean_forward":
            if clean_logits is None:
                raise ValueError("mixed_inputs='clean_forward' keeps the softmax of the clean inputs: pass "
                                 "clean_logits= (the model's output on the un-mixed batch, computed without grad)")
            if clean_logits.shape != logits.shape:
                raise ValueError(f"clean_logits must have the shape of logits {tuple(logits.shape)}; got "
                                 f"{tuple(clean_logits.shape)}")
            probs = F.softmax(clean_logits.detach().float(), dim=1)
        elif mix is not None and self.mixed_inputs in ("clean_only", "snapshot"):
            if labels is None:
                raise ValueError(f"mixed_inputs={self.mixed_inputs!r} writes back the held row of each mixed "
                                 "sample: pass labels= (rows never written read as the one-hot label)")
            # No test of whether any row is un-mixed: on a GPU it would wait for the device every step.
            unchanged = unmixed_rows(mix, probs.shape[0], probs.device).unsqueeze(1)
            probs = torch.where(unchanged, probs, self.past.past_probs(labels, ids=ids).to(probs.device))
        self.past.record(ids, probs)

    def loss(self, logits: Tensor, labels: Tensor, *, ids: Tensor | None = None, inputs: Any = None,
             mix: Mix | None = None, clean_logits: Tensor | None = None) -> Tensor:
        """The soft-target cross entropy of ``logits`` (B, K) on the Eq. 4 :meth:`targets`; :meth:`record`\\ s
        this step's softmax. ``mix`` as in :meth:`targets`; ``clean_logits`` as in :meth:`record`.

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
        self.record(logits, ids=ids, labels=labels, mix=mix, clean_logits=clean_logits)
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
