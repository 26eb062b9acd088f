"""PS-KD's past predictions for sequence models: a ragged per-sentence, per-position top-k store.

With teacher forcing, sentence i is fed the same target prefix in every epoch, so the distribution the
model predicted at target position j of sentence i in epoch t-1 is exactly the paper's p_{t-1}(x) for that
token (Alg. 1, one "sample" per target token). A dense (tokens x vocabulary) table is impossible; the
distributions are peaked, so each position keeps its top-k (probability, token) pairs, as token-level
distillation from top-k teacher distributions does (Tan et al., ICLR 2019, k = 8).

Layout: one row per target token of the training set, sentence after sentence (``offsets[i]`` is the first
row of sentence i, preallocated from the data set's target lengths); per row, k probabilities in float16
and k token ids in int16 (vocabulary < 32768) or int32, plus one "written" flag. Row r = offsets[i] + j.

:class:`SequenceStore` is a :class:`~common.past_predictions.PastPredictions` provider whose samples are
these token rows: ``past_probs`` / ``record`` take and give dense (n, V) rows, so :class:`~common.pskd.PSKD`
can drive it on a small vocabulary. A translation loss must never build an (n, V) target, so its path is
the sparse pair :meth:`SequenceStore.past_topk` / :meth:`SequenceStore.record_topk` and
:func:`~common.losses.topk_token_loss`, which scatters the k entries into the smoothed one-hot inside the cross
entropy.

The mass outside the top-k (``remainder``): ``"uniform"`` (default) spreads it evenly over the whole
vocabulary, ``"renormalise"`` rescales the k entries to sum to 1. Uniform is the closer target: its total
variation distance to the full distribution is never larger (renormalising moves the whole remainder r
onto the k entries, distance r exactly; uniform's is at most r), and it keeps KL(full || stored) finite.
Measured (``python -m benchmarks.perf.bench_translation_store remainder``) on a small Transformer trained 6
epochs on the demo corpus, k = 8: total variation 0.40 (uniform) vs 0.74 (renormalised), relative error of
the cross entropy against the stored target 0.25 vs 0.43; uniform was closer at k = 4, 8 and 16.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from common import distributed as ddp
from common.losses import check_remainder
from common.past_predictions import PastPredictions, check_batch, check_indices
from common.targets import Mix, one_hot


def token_dtype(vocab_size: int) -> torch.dtype:
    """int16 holds token ids below 32768 (half the bytes of int32)."""
    return torch.int16 if vocab_size <= 2**15 else torch.int32


class SequenceStore(PastPredictions):
    """Top-k past predictions per (sentence id, target position), for one training set.

    Args:
        lengths: target length (tokens, end-of-sentence included) of every training sentence, by id
            (fairseq: ``task.dataset("train").tgt_sizes``).
        vocab_size: V, the model's output width.
        topk: k, the (probability, token) pairs kept per position.
        remainder: where the probability mass outside the top-k goes (module docstring).
        device: where the table lives.

    Under torch.distributed every rank holds the whole table: :meth:`record_topk` all_gathers every rank's
    (rows, probabilities, tokens) once per step, so ranks may record different numbers of tokens (sentences
    differ in length), but every rank must call it at every step, as fairseq's lockstep training does.
    """

    def __init__(self, lengths: Sequence[int] | Tensor, vocab_size: int, topk: int = 8, remainder: str = "uniform",
                 device: str | torch.device = "cpu") -> None:
        lengths = torch.as_tensor(lengths, dtype=torch.long).flatten()
        if lengths.numel() < 1 or bool((lengths < 0).any()):
            raise ValueError("a sequence store needs the target length (>= 0) of at least one sentence")
        if vocab_size < 2 or not 1 <= topk <= vocab_size:
            raise ValueError(f"need a vocabulary of >= 2 tokens and 1 <= topk <= V; got V={vocab_size}, topk={topk}")
        self.remainder = check_remainder(remainder)
        self.num_classes = int(vocab_size)
        self.topk = int(topk)
        self.device = torch.device(device)
        self.lengths = lengths.to(self.device)
        self.offsets = torch.zeros(lengths.numel() + 1, dtype=torch.long, device=self.device)
        torch.cumsum(self.lengths, 0, out=self.offsets[1:])
        self.num_rows = int(self.offsets[-1])
        self.probs = torch.zeros(self.num_rows, self.topk, dtype=torch.float16, device=self.device)
        self.tokens = torch.zeros(self.num_rows, self.topk, dtype=token_dtype(vocab_size), device=self.device)
        self.filled = torch.zeros(self.num_rows, dtype=torch.bool, device=self.device)
        #: Whether the current epoch (see :meth:`begin_epoch`) comes after the one that wrote the first rows:
        #: the first epoch needs no reads. The first writing epoch travels in state_dict, so that a run resumed
        #: in the middle of its first epoch, or at its end, decides as the uninterrupted run did.
        self.has_past = False
        self._epoch = 0
        self._first_epoch = torch.full((), -1, dtype=torch.long)

    @property
    def num_sentences(self) -> int:
        return self.lengths.numel()

    @property
    def nbytes(self) -> int:
        """Bytes of the table, flags and offsets (what a checkpoint holds, bar the offsets)."""
        return sum(t.element_size() * t.nelement() for t in (self.probs, self.tokens, self.filled, self.offsets))

    def token_rows(self, ids: Tensor, target: Tensor, pad: int, prefix: int = 0) -> tuple[Tensor, Tensor]:
        """Rows of the (B, L) right-padded ``target`` of sentences ``ids``: (rows, mask), where ``mask`` (B, L)
        marks the non-pad positions and ``rows`` (mask.sum(),) their table rows in row-major order.

        ``prefix``: the target columns the caller dropped (fairseq's ``--ignore-prefix-size``), so that
        column c is position c + prefix of the sentence.
        """
        check_indices("ids", ids, self.num_sentences, f"sentence ids of the store's {self.num_sentences} sentences")
        check_batch("target", target.shape[0], ids.shape[0], "ids")
        mask = target.ne(pad)
        ids = ids.to(self.device)
        positions = torch.arange(prefix, prefix + target.shape[1], device=self.device)
        mask_here = mask.to(self.device)
        # Checked where it costs no device synchronisation (see check_indices); on a GPU an overlong target
        # would write into the next sentence's rows.
        if self.device.type == "cpu":
            too_long = mask_here & (positions.unsqueeze(0) >= self.lengths.index_select(0, ids).unsqueeze(1))
            if bool(too_long.any()):
                row, col = (int(v) for v in too_long.nonzero()[0])
                raise ValueError(f"sentence id {int(ids[row])} has a target token at position {col + prefix} but the "
                                 f"store holds {int(self.lengths[ids[row]])} positions for it: build the store from "
                                 "the target lengths of the data set being trained on")
        rows = (self.offsets.index_select(0, ids).unsqueeze(1) + positions.unsqueeze(0))[mask_here]
        return rows, mask

    def _check_rows(self, rows: Tensor) -> None:
        check_indices("rows", rows, self.num_rows, f"token rows of the store's {self.num_rows} target tokens")

    def past_topk(self, rows: Tensor, device: torch.device | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(n, k) float32 probabilities, (n, k) int64 token ids and (n,) written flags of ``rows``."""
        self._check_rows(rows)
        rows = rows.to(self.device)
        out = (self.probs.index_select(0, rows), self.tokens.index_select(0, rows), self.filled.index_select(0, rows))
        device = device or self.device
        return out[0].to(device).float(), out[1].to(device).long(), out[2].to(device)

    def record_topk(self, rows: Tensor, probs: Tensor, tokens: Tensor) -> None:
        """Write (n, k) ``probs`` and ``tokens`` under ``rows``; under DDP, every rank's rows into every table."""
        self._check_rows(rows)
        if probs.shape != (rows.shape[0], self.topk) or tokens.shape != probs.shape:
            raise ValueError(f"probs and tokens must both be (n, k) = ({rows.shape[0]}, {self.topk}); got "
                             f"{tuple(probs.shape)} and {tuple(tokens.shape)}")
        rows = rows.to(probs.device)
        if ddp.world_size() > 1:
            # One int32 block, one variable-length gather: rows and tokens exactly, the float16 probabilities
            # bit for bit (their int16 pattern widened), with no 2**24 limit on the row index.
            bits = probs.detach().to(torch.float16).view(torch.int16).to(torch.int32)
            block = torch.cat([rows.to(torch.int32).unsqueeze(1), tokens.to(torch.int32), bits], dim=1)
            block = ddp.all_gather_variable(block)
            rows, tokens = block[:, 0].long(), block[:, 1:1 + self.topk]
            probs = block[:, 1 + self.topk:].to(torch.int16).view(torch.float16)
        rows = rows.to(self.device, torch.long)
        self.probs.index_copy_(0, rows, probs.detach().to(self.device, torch.float16))
        self.tokens.index_copy_(0, rows, tokens.to(self.device, self.tokens.dtype))
        self.filled.index_fill_(0, rows, True)
        if rows.numel() and int(self._first_epoch) < 0:
            self._first_epoch.fill_(self._epoch)

    def empty_rows(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor]:
        """(rows, probs, tokens) with zero rows: for a step that records nothing but must join the all_gather."""
        return (torch.zeros(0, dtype=torch.long, device=device), torch.zeros(0, self.topk, device=device),
                torch.zeros(0, self.topk, dtype=torch.long, device=device))

    def densify(self, probs: Tensor, tokens: Tensor) -> Tensor:
        """(n, V) distributions from (n, k) top-k pairs, the remainder placed as ``self.remainder`` says."""
        if self.remainder == "renormalise":
            probs = probs / probs.sum(dim=1, keepdim=True).clamp_min(torch.finfo(probs.dtype).tiny)
            dense = torch.zeros(probs.shape[0], self.num_classes, dtype=probs.dtype, device=probs.device)
        else:
            rest = (1.0 - probs.sum(dim=1, keepdim=True)).clamp_min(0.0) / self.num_classes
            dense = rest.expand(-1, self.num_classes).clone()
        return dense.scatter_add_(1, tokens, probs)

    def past_probs(self, labels: Tensor, *, ids: Tensor | None = None, inputs: Any = None,
                   mix: Mix | None = None) -> Tensor:
        """Dense (n, V) rows for token rows ``ids`` (see :meth:`token_rows`); an unwritten row answers its
        one-hot ``labels``, as :class:`~common.past_predictions.PredictionStore` does. For small vocabularies
        and tests: a translation loss uses :meth:`past_topk` and :func:`~common.losses.topk_token_loss`."""
        if ids is None:
            raise ValueError("the sequence store is indexed by token row: pass ids= (SequenceStore.token_rows)")
        if mix is not None:
            raise ValueError("the sequence store has no mixed inputs: tokens of different sentences do not mix")
        check_batch("ids", ids.shape[0], labels.shape[0], "labels")
        probs, tokens, filled = self.past_topk(ids, labels.device)
        dense = self.densify(probs, tokens)
        return torch.where(filled.unsqueeze(1), dense, one_hot(labels, self.num_classes, dense.dtype))

    def record(self, ids: Tensor | None, probs: Tensor) -> None:
        """Keep the top-k of dense (n, V) ``probs`` under token rows ``ids``."""
        if ids is None:
            raise ValueError("the sequence store is indexed by token row: pass the rows (SequenceStore.token_rows)")
        if probs.dim() != 2 or probs.shape[1] != self.num_classes:
            raise ValueError(f"probs must be (n, V) with V={self.num_classes}; got shape {tuple(probs.shape)}")
        values, tokens = probs.detach().topk(self.topk, dim=1)
        self.record_topk(ids, values, tokens)

    def begin_epoch(self, epoch: int) -> None:
        """Number the epoch that starts (any increasing count); sets :attr:`has_past`. Optional: reads always
        answer per row (an unwritten row has no past); the flag lets a host skip reads in the first epoch."""
        self._epoch = int(epoch)
        first = int(self._first_epoch)
        self.has_past = 0 <= first < self._epoch

    def end_epoch(self, model: nn.Module | None = None) -> None:
        """Every rank waits for the others' writes: the next epoch reads them."""
        ddp.barrier()

    def state_dict(self) -> dict[str, Any]:
        """The live tensors (no copy): a checkpoint written later holds the rows as they are then. The
        float16 probabilities travel as their int16 bit pattern, so that savers that widen half tensors to
        float32 (fairseq's ``move_to_cpu``) keep them at two bytes."""
        return {"probs_bits": self.probs.view(torch.int16), "tokens": self.tokens, "filled": self.filled,
                "first_epoch": self._first_epoch, "lengths": self.lengths, "vocab_size": self.num_classes,
                "topk": self.topk, "remainder": self.remainder}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        found = (state.get("vocab_size"), state.get("topk"), tuple(state["lengths"].shape))
        expected = (self.num_classes, self.topk, tuple(self.lengths.shape))
        if found != expected or not torch.equal(state["lengths"].to(self.device), self.lengths):
            raise ValueError(f"the saved sequence store does not fit this run: it holds V={found[0]}, topk={found[1]} "
                             f"for {found[2][0]} sentences, this run needs V={expected[0]}, topk={expected[1]} for "
                             f"{expected[2][0]} (or the target lengths differ). Resume with the same data, "
                             "dictionary and --pskd-topk, or start a new run.")
        self.probs.view(torch.int16).copy_(state["probs_bits"])
        self.tokens.copy_(state["tokens"])
        self.filled.copy_(state["filled"])
        self._first_epoch.fill_(int(state["first_epoch"]))
        self.begin_epoch(self._epoch)
