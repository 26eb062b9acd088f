"""Classification metrics of the paper and supplement A.1, over predicted probabilities.

Top-1 / top-5 error (%), NLL, ECE (%, M equal-width bins), AURC and E-AURC (x1e3). Pure functions over
(n, K) probabilities and (n,) labels, plus :class:`ClassificationMetrics`, a streaming accumulator that
keeps O(1) numbers per sample (its confidence and whether it was right) and reduces across DDP ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor

from common import distributed as ddp

NLL_FLOOR = 1e-12


@dataclass(frozen=True)
class CalibrationBins:
    """Per-bin statistics of a reliability diagram: bin m covers confidences in (lower_m, upper_m]."""

    lower: list[float]
    upper: list[float]
    accuracy: list[float]
    confidence: list[float]
    count: list[int]
    ece: float = field(default=0.0)

    def to_dict(self) -> dict[str, list[float] | list[int] | float]:
        return {"lower": self.lower, "upper": self.upper, "accuracy": self.accuracy,
                "confidence": self.confidence, "count": self.count, "ece": self.ece}


def _check(probs: Tensor, labels: Tensor) -> None:
    if probs.dim() != 2 or labels.dim() != 1 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"expected probs (n, K) and labels (n,); got {tuple(probs.shape)} and {tuple(labels.shape)}")


def _top_k_hits(probs: Tensor, labels: Tensor, correct: Tensor, ks: tuple[int, ...]) -> list[int]:
    """Samples whose label is among the k most probable classes, for each k.

    Top-1 is ``argmax == label`` (as the accuracy of the ECE bins). For k > 1 a label is a hit when
    fewer than k classes are strictly more probable: one comparison pass instead of a slow ``topk``;
    a label tied with the k-th class counts as a hit (``topk`` would break such ties arbitrarily).
    """
    hits = []
    rank = None
    for k in ks:
        if k == 1:
            hits.append(int(correct.sum()))
            continue
        if rank is None:
            p_true = probs.gather(1, labels.long().unsqueeze(1))
            rank = (probs > p_true).sum(dim=1)
        hits.append(int((rank < k).sum()))
    return hits


def top_k_error(probs: Tensor, labels: Tensor, k: int = 1) -> float:
    """Percentage of samples whose label is not among the k most probable classes."""
    _check(probs, labels)
    correct = probs.argmax(dim=1) == labels
    return 100.0 * (1.0 - _top_k_hits(probs, labels, correct, (k,))[0] / labels.shape[0])


def negative_log_likelihood(probs: Tensor, labels: Tensor) -> float:
    """Mean of -log p(label | x) (probabilities floored at 1e-12 so that a zero gives a finite value)."""
    _check(probs, labels)
    p = probs.gather(1, labels.long().unsqueeze(1)).squeeze(1).double()
    return -p.clamp_min(NLL_FLOOR).log().mean().item()


def _bin_edges(n_bins: int) -> Tensor:
    if n_bins < 1:
        raise ValueError(f"the number of ECE bins must be >= 1; got {n_bins}")
    return torch.linspace(0, 1, n_bins + 1)


def _bin_index(confidence: Tensor, n_bins: int) -> Tensor:
    """Bin of each confidence with (lower, upper] bins, as the official code's ``gt(lower) * le(upper)``."""
    inner = _bin_edges(n_bins)[1:-1].to(confidence.device, confidence.dtype)
    return torch.bucketize(confidence, inner, right=False)


def _calibration_from_sums(count: Tensor, correct: Tensor, conf_sum: Tensor, n_bins: int) -> CalibrationBins:
    edges = _bin_edges(n_bins).double()
    total = count.sum().clamp_min(1)
    nonzero = count.clamp_min(1)
    acc, conf = correct / nonzero, conf_sum / nonzero
    ece = ((count / total) * (acc - conf).abs()).sum().item() * 100.0
    return CalibrationBins(
        lower=edges[:-1].tolist(), upper=edges[1:].tolist(),
        accuracy=torch.where(count > 0, acc, 0.0).tolist(),
        confidence=torch.where(count > 0, conf, 0.0).tolist(),
        count=count.long().tolist(), ece=ece,
    )


def _bin_sums(confidence: Tensor, correct: Tensor, n_bins: int) -> tuple[Tensor, Tensor, Tensor]:
    idx = _bin_index(confidence, n_bins)
    zeros = torch.zeros(n_bins, dtype=torch.float64, device=confidence.device)
    return (zeros.index_add(0, idx, torch.ones_like(confidence, dtype=torch.float64)),
            zeros.index_add(0, idx, correct.double()),
            zeros.index_add(0, idx, confidence.double()))


def expected_calibration_error(probs: Tensor, labels: Tensor, n_bins: int = 10) -> CalibrationBins:
    """ECE (%) with ``n_bins`` equal-width bins (supplement A.1), with the per-bin statistics."""
    _check(probs, labels)
    confidence, prediction = probs.max(dim=1)
    return _calibration_from_sums(*_bin_sums(confidence, prediction == labels, n_bins), n_bins)


def _aurc_from(confidence: Tensor, correct: Tensor) -> tuple[float, float]:
    """AURC and E-AURC (x1e3) of Geifman et al. (ICLR 2019), as the official PS-KD code computes them.

    Samples sorted by decreasing confidence (ties keep their order); the risk at coverage i/n is the
    error rate of the first i; AURC is the mean of those n risks; E-AURC subtracts the AURC of an ideal
    ordering with the same error rate r, ``r + (1 - r) * log(1 - r)``.
    """
    n = confidence.numel()
    if n == 0:
        raise ValueError("AURC needs at least one sample")
    order = torch.sort(confidence, descending=True, stable=True).indices
    errors = (~correct[order]).double()
    risks = errors.cumsum(0) / torch.arange(1, n + 1, dtype=torch.float64, device=errors.device)
    area = risks.mean().item()
    r = torch.tensor(risks[-1].item(), dtype=torch.float64)
    optimal = (r + torch.special.xlogy(1 - r, 1 - r)).item()
    return area * 1e3, (area - optimal) * 1e3


def aurc(probs: Tensor, labels: Tensor) -> tuple[float, float]:
    """(AURC, E-AURC), both x1e3, with the maximum probability as the confidence."""
    _check(probs, labels)
    confidence, prediction = probs.max(dim=1)
    return _aurc_from(confidence, prediction == labels)


class ClassificationMetrics:
    """Streaming accumulator of every metric above; exact, and reduced across DDP ranks in ``compute``.

    ``update`` keeps running sums for top-k, NLL and the ECE bins, and each sample's confidence and
    correctness for AURC (which needs a global sort): 5 bytes per sample, not K probabilities.
    With ``distributed=True`` (default) and a process group, ``compute`` covers every rank's samples.
    """

    def __init__(self, n_bins: int = 10, topk: tuple[int, ...] = (1, 5), distributed: bool = True) -> None:
        _bin_edges(n_bins)
        self.distributed = distributed
        self.n_bins = n_bins
        self.topk = topk
        self.reset()

    def reset(self) -> None:
        self._n = 0
        self._topk_hits = [0] * len(self.topk)
        self._nll_sum = 0.0
        self._bins = [torch.zeros(self.n_bins, dtype=torch.float64) for _ in range(3)]
        self._confidence: list[Tensor] = []
        self._correct: list[Tensor] = []

    @torch.no_grad()
    def update(self, probs: Tensor, labels: Tensor) -> None:
        _check(probs, labels)
        labels = labels.to(probs.device).long()
        confidence, prediction = probs.max(dim=1)
        correct = prediction == labels
        for i, hits in enumerate(_top_k_hits(probs, labels, correct, self.topk)):
            self._topk_hits[i] += hits
        p_true = probs.gather(1, labels.unsqueeze(1)).squeeze(1).double()
        self._nll_sum += float(-p_true.clamp_min(NLL_FLOOR).log().sum())
        for acc, part in zip(self._bins, _bin_sums(confidence, correct, self.n_bins), strict=True):
            acc += part.cpu()
        self._confidence.append(confidence.float().cpu())
        self._correct.append(correct.cpu())
        self._n += labels.shape[0]

    def compute(self) -> dict[str, float | dict]:
        """Metrics over every sample seen on every rank: top{k}_err, nll, ece, aurc, eaurc, n, calibration."""
        counts = torch.tensor([self._n, *self._topk_hits, self._nll_sum], dtype=torch.float64)
        bins = torch.stack(self._bins)
        confidence = torch.cat(self._confidence) if self._confidence else torch.zeros(0)
        correct = torch.cat(self._correct) if self._correct else torch.zeros(0, dtype=torch.bool)
        if self.distributed and ddp.world_size() > 1:
            counts, bins = _all_reduce_sum(counts), _all_reduce_sum(bins)
            confidence = ddp.all_gather_variable(confidence)
            correct = ddp.all_gather_variable(correct.to(torch.uint8)).bool()
        n = int(counts[0])
        if n == 0:
            raise ValueError("no samples were given to the metrics")
        calibration = _calibration_from_sums(bins[0], bins[1], bins[2], self.n_bins)
        aurc_value, eaurc_value = _aurc_from(confidence, correct)
        result: dict[str, float | dict] = {
            f"top{k}_err": 100.0 * (1.0 - counts[1 + i].item() / n) for i, k in enumerate(self.topk)
        }
        result.update(nll=counts[-1].item() / n, ece=calibration.ece, aurc=aurc_value, eaurc=eaurc_value,
                      n=n, calibration=calibration.to_dict())
        return result


def _all_reduce_sum(tensor: Tensor) -> Tensor:
    out = tensor.clone()
    dist.all_reduce(out)
    return out


def classification_metrics(probs: Tensor, labels: Tensor, n_bins: int = 10) -> dict[str, float | dict]:
    """All metrics at once for probabilities held in memory (single process)."""
    metrics = ClassificationMetrics(n_bins=n_bins, distributed=False)
    metrics.update(probs, labels)
    return metrics.compute()
