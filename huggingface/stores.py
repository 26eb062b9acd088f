"""PS-KD's loss for one batch of each kind of model, over common's stores (paper, Alg. 1 and Eq. 4).

* :class:`ExamplePSKD`: classifiers; :class:`~common.PredictionStore`, one (K,) row per example index, driven by
  :class:`~common.PSKD` (the targets of Eq. 4, then this step's softmax recorded).
* :class:`TokenPSKD`: seq2seq and causal LMs; :class:`~common.SequenceStore`, one top-k row per (example index,
  label position), the loss of Eq. 4 through :func:`~common.topk_token_loss` (never an (n, V) target).

Both return the loss summed over the batch's examples or label tokens, and how many there are, so that the
trainer divides by the host's ``num_items_in_batch`` as transformers' own losses do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from common import PSKD, AlphaSchedule, PredictionStore, SequenceStore, soft_target_cross_entropy, topk_token_loss
from common.past_predictions import check_indices

#: transformers' label of a position without a target (padding, masked prompt tokens).
IGNORE_INDEX = -100


class ExamplePSKD:
    """A classifier's PS-KD: an N x K :class:`~common.PredictionStore` keyed by example index (on the host, so
    that ``sharing="node"`` maps one table per node)."""

    def __init__(self, num_examples: int, num_classes: int, dtype: str = "float32", sharing: str = "node") -> None:
        if num_classes < 2:
            raise ValueError(f"PS-KD needs a classifier of K >= 2 classes (num_labels); got {num_classes}")
        self.store = PredictionStore(num_examples, num_classes, dtype, "cpu", sharing)
        self.pskd: PSKD | None = None

    def start(self, schedule: AlphaSchedule) -> None:
        # No batch is mixed here, so every mixed-input mode writes the store alike; clean_only copies no model.
        self.pskd = PSKD(schedule, self.store, mixed_inputs="clean_only")

    def begin_epoch(self, epoch: int) -> float:
        return self._pskd().begin_epoch(epoch)

    def loss_sum(self, logits: Tensor, labels: Tensor, ids: Tensor) -> tuple[Tensor, int]:
        """H(Eq. 4 targets, softmax(logits)) summed over the batch; this step's softmax goes into the store."""
        if logits.dim() != 2 or labels.dim() != 1:
            raise ValueError(f"PS-KD on a classifier needs (B, K) logits and (B,) class labels; got "
                             f"{tuple(logits.shape)} and {tuple(labels.shape)} (multi-label and regression have no "
                             "one-hot target)")
        pskd = self._pskd()
        targets = pskd.targets(labels, ids=ids)
        pskd.record(logits, ids=ids)
        return soft_target_cross_entropy(logits, targets, reduction="none").sum(), labels.shape[0]

    def end_epoch(self) -> None:
        self.store.end_epoch()

    def _pskd(self) -> PSKD:
        if self.pskd is None:
            raise RuntimeError("PS-KD has no alpha schedule yet: start(schedule) runs at the Trainer's train begin")
        return self.pskd

    def state_dict(self) -> dict[str, Any]:
        return self.store.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.store.load_state_dict(state)


class TokenPSKD:
    """A language model's PS-KD: a :class:`~common.SequenceStore` row per (example index, label position).

    ``lengths[i]``: the label positions example i is trained on (for a causal LM, ``len(labels) - 1``: with
    ``shift=True`` the logits at position j are scored against label j + 1, as the model's own loss and the
    Trainer's label smoother do). Positions labelled -100 (padding, masked prompts) are neither read nor
    written; labels must be padded on the right so that a column is a position of the example.
    """

    def __init__(self, lengths: Sequence[int], vocab_size: int, topk: int = 8, shift: bool = False) -> None:
        if topk > vocab_size:
            raise ValueError(f"pskd_topk={topk} is larger than the vocabulary ({vocab_size} tokens): keep at most "
                             f"{vocab_size} (probability, token) pairs per label token")
        self.store = SequenceStore(lengths, vocab_size, topk)
        self.shift = shift
        self.schedule: AlphaSchedule | None = None
        self.alpha = 0.0

    def start(self, schedule: AlphaSchedule) -> None:
        self.schedule = schedule

    def begin_epoch(self, epoch: int) -> float:
        if self.schedule is None:
            raise RuntimeError("PS-KD has no alpha schedule yet: start(schedule) runs at the Trainer's train begin")
        self.alpha = self.schedule(epoch)
        self.store.begin_epoch(epoch)
        return self.alpha

    def loss_sum(self, logits: Tensor, labels: Tensor, ids: Tensor) -> tuple[Tensor, Tensor]:
        """Eq. 4's cross entropy summed over the label tokens (alpha_t where a token has a past, 0 before); this
        step's top-k of every label token goes into the store."""
        vocab = self.store.num_classes
        if logits.dim() != 3 or logits.shape[-1] != vocab or labels.shape != logits.shape[:2]:
            raise ValueError(f"PS-KD on a language model needs (B, L, V={vocab}) logits and (B, L) labels; got "
                             f"{tuple(logits.shape)} and {tuple(labels.shape)}")
        if self.shift:
            logits, labels = logits[:, :-1], labels[:, 1:]
        mask = labels.ne(IGNORE_INDEX)
        rows, _ = self.store.token_rows(ids, labels, IGNORE_INDEX)
        target = labels[mask]
        check_indices("labels", target, vocab, f"token ids of the model's V={vocab} vocabulary (or -100)")
        lprobs = F.log_softmax(logits[mask].float(), dim=-1)
        k = self.store.topk
        if self.store.has_past and self.alpha > 0:
            past_probs, past_tokens, filled = self.store.past_topk(rows, lprobs.device)
            weight: Tensor | float = filled.to(lprobs.dtype) * self.alpha
        else:  # the first epoch: no past, the one-hot target
            past_probs = lprobs.new_zeros(target.shape[0], k)
            past_tokens = torch.zeros(target.shape[0], k, dtype=torch.long, device=lprobs.device)
            weight = 0.0
        loss, _ = topk_token_loss(lprobs, target, past_probs, past_tokens, weight, remainder=self.store.remainder)
        with torch.no_grad():  # the top-k of log-probabilities is the top-k of probabilities
            top_lprobs, top_tokens = lprobs.detach().topk(k, dim=-1)
        self.store.record_topk(rows, top_lprobs.exp(), top_tokens)
        return loss, mask.sum()

    def end_epoch(self) -> None:
        self.store.end_epoch()

    def state_dict(self) -> dict[str, Any]:
        return self.store.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.store.load_state_dict(state)
