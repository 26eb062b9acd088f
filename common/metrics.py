"""Classification metrics of the paper and supplement A.1, as the official PS-KD code computes them.

Top-1 / top-5 error (%), NLL, ECE (%, equal-width bins), AURC and E-AURC (x1e3), following the
official ``utils/metric.py`` and ``main.py`` ``val`` (lgcnsai/PS-KD-Pytorch). Pure functions over
(n, K) probabilities (optionally the logits they came from) and (n,) labels, plus
:class:`ClassificationMetrics`, a streaming accumulator that keeps O(1) numbers per sample (its
confidence and whether it was right) and reduces across DDP ranks.

Where the official code is not deterministic (the order of tied scores), the expectation over the
orders it could produce is used, so that a result depends neither on the order of the samples nor on
the sorting algorithm:

* top-k: a label tied with other classes at the k-th place counts as the fraction of the tie orders
  (``torch.topk`` in the official ``accuracy`` picks one arbitrarily) in which it is among the top k;
* AURC: a group of m tied confidences holding e errors adds, at its j-th position, j * e / m errors
  in expectation (the official code reverses an unstable ``np.argsort``, over a shuffled test set).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
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


def _check(probs: Tensor, labels: Tensor, logits: Tensor | None = None) -> None:
    if probs.dim() != 2 or labels.dim() != 1 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"expected probs (n, K) and labels (n,); got {tuple(probs.shape)} and {tuple(labels.shape)}")
    if logits is not None and logits.shape != probs.shape:
        raise ValueError(f"expected logits of the shape of probs {tuple(probs.shape)}; got {tuple(logits.shape)}")


def _top_k_hits(scores: Tensor, labels: Tensor, ks: tuple[int, ...]) -> Tensor:
    """Expected number of samples whose label is among the k highest scores, for each k (float64, on the
    device of ``scores``, without a host synchronisation).

    The official ``accuracy`` (main.py, lines 125-139) takes ``torch.topk`` of the logits, which
    breaks ties at the k-th place arbitrarily. Here a label with ``a`` strictly higher classes and
    ``t`` classes at its score (itself included) is a hit in a fraction clamp((k - a) / t, 0, 1) of
    the tie orders: 1 or 0 without ties, and the expectation of the official count with them. A NaN score
    ranks above every number, as in ``torch.topk``, and a NaN score of the label is a miss (compared with
    nothing, it would otherwise count as a hit: a diverged model scored 0 % error).
    """
    s_true = scores.gather(1, labels.long().unsqueeze(1))
    above = ((scores > s_true) | scores.isnan()).sum(dim=1, dtype=torch.int32).double()
    tied = (scores == s_true).sum(dim=1, dtype=torch.int32).clamp_min(1).double()
    valid = (~s_true.isnan()).squeeze(1).double()
    return torch.stack([(((k - above) / tied).clamp(0.0, 1.0) * valid).sum() for k in ks])


def top_k_error(probs: Tensor, labels: Tensor, k: int = 1) -> float:
    """Percentage of samples whose label is not among the k highest scores (ties: see :func:`_top_k_hits`).

    ``probs`` may be probabilities or logits: only their order is used. The official code ranks the
    logits; float32 softmax can tie classes whose logits differ, so pass logits where they exist.
    """
    _check(probs, labels)
    return 100.0 * (1.0 - float(_top_k_hits(probs, labels, (k,))[0]) / labels.shape[0])


def _nll_sum(probs: Tensor, labels: Tensor, logits: Tensor | None) -> Tensor:
    """Sum over samples of -log p(label | x), accumulated in float64 (a 0-d tensor on the inputs' device).

    From logits: the per-sample cross entropy that the official ``val`` averages
    (``nn.CrossEntropyLoss`` of the outputs, main.py line 536), unbounded. From stored probabilities
    only: the probability is floored at 1e-12 so that a float32 zero stays finite (at most 27.6).
    """
    labels = labels.long().unsqueeze(1)
    if logits is not None:
        return -F.log_softmax(logits.float(), dim=1).gather(1, labels).double().sum()
    p = probs.gather(1, labels).double()
    return -p.clamp_min(NLL_FLOOR).log().sum()


def negative_log_likelihood(probs: Tensor, labels: Tensor, logits: Tensor | None = None) -> float:
    """Mean of -log p(label | x): the cross entropy of ``logits`` when given, else of clamped ``probs``."""
    _check(probs, labels, logits)
    return float(_nll_sum(probs, labels, logits)) / labels.shape[0]


def _bin_edges(n_bins: int) -> tuple[Tensor, Tensor]:
    """The official bins (utils/metric.py): ``upper = np.arange(s, 1 + s, s)``, ``lower = upper - s``.

    With s = 1 / n_bins in float64, exactly as the official code builds them. Float32 confidences are
    compared in float64, so float32 0.1, 0.2, 0.3, 0.4, 0.6 and 0.8 (each just above its decimal)
    fall in the bin above the edge, where float32 edges would put them in the bin below. The float64
    edges leave gaps no float32 can fall in (upper[1] = 0.2 < lower[2] = 0.2 + 2.8e-17 for s = 0.1;
    some n_bins give overlaps, where a sample counts in both bins), and for n_bins = 49, 103 or 196
    arange yields one bin more; all as the official code.
    """
    if n_bins < 1:
        raise ValueError(f"the number of ECE bins must be >= 1; got {n_bins}")
    bin_size = 1.0 / n_bins
    upper = np.arange(bin_size, 1 + bin_size, bin_size)
    return torch.from_numpy(upper - bin_size), torch.from_numpy(upper)


def _bin_sums(confidence: Tensor, correct: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Count, correct count and confidence sum per bin, membership ``lower < conf <= upper`` in float64.

    The official code compares Python floats (float64 copies of the float32 softmax) with the float64
    edges, bin by bin; a sample in two overlapping bins or in a gap is counted as there. A NaN confidence
    (a diverged sample) compares false, so it is in no bin, as officially, but still counts in the ECE's n;
    it enters the product below as 0 (any number would do), since 0 * NaN would make every bin's confidence
    sum, and the ECE, NaN.
    """
    conf = confidence.double().unsqueeze(1)
    lower, upper = lower.to(conf.device), upper.to(conf.device)
    member = ((conf > lower) & (conf <= upper)).double()
    values = torch.stack([torch.ones_like(conf[:, 0]), correct.double(), conf[:, 0].nan_to_num()], dim=1)
    sums = member.T @ values
    return sums[:, 0], sums[:, 1], sums[:, 2]


def _calibration_from_sums(count: Tensor, correct: Tensor, conf_sum: Tensor, n: int,
                           lower: Tensor, upper: Tensor) -> CalibrationBins:
    """ECE = 100 * sum_m |acc_m - conf_m| * count_m / n, with n every sample (utils/metric.py)."""
    nonzero = count.clamp_min(1)
    acc, conf = correct / nonzero, conf_sum / nonzero
    ece = float(((acc - conf).abs() * count).sum()) * 100.0 / n
    return CalibrationBins(
        lower=lower.tolist(), upper=upper.tolist(),
        accuracy=torch.where(count > 0, acc, 0.0).tolist(),
        confidence=torch.where(count > 0, conf, 0.0).tolist(),
        count=count.long().tolist(), ece=ece,
    )


def _confidence_and_correct(probs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Maximum probability, and whether its first index (``np.argmax``, as utils/metric.py) is the label."""
    prediction = probs.argmax(dim=1)
    return probs.gather(1, prediction.unsqueeze(1)).squeeze(1), prediction == labels.to(probs.device)


def expected_calibration_error(probs: Tensor, labels: Tensor, n_bins: int = 10) -> CalibrationBins:
    """ECE (%) over the official bins of width 1 / n_bins (supplement A.1), with the per-bin statistics."""
    _check(probs, labels)
    lower, upper = _bin_edges(n_bins)
    confidence, correct = _confidence_and_correct(probs, labels)
    return _calibration_from_sums(*_bin_sums(confidence, correct, lower, upper), labels.shape[0], lower, upper)


def _aurc_from(confidence: Tensor, correct: Tensor) -> tuple[float, float]:
    """AURC and E-AURC (x1e3) of Geifman et al. (ICLR 2019), as utils/metric.py ``calc_aurc`` computes them.

    Samples sorted by decreasing confidence; the risk at coverage i/n is the error rate of the first
    i; AURC is the mean of those n risks. Tied confidences: the expected risk over the orders of each
    tied group (module docstring): at the j-th of m tied samples holding e errors, after a samples
    holding E errors, the risk is (E + j * e / m) / (a + j). E-AURC subtracts the AURC of an ideal
    ordering with the same n_err errors, the official finite sum
    (1 / n) * sum_{i=1..n_err} i / (n - n_err + i), not its large-n limit r + (1 - r) ln(1 - r).
    NaN confidences sort first (the official ascending ``np.argsort`` puts them last, then reverses) and are
    one tied group, compared as +inf: NaN != NaN would make each its own group, and the result depend on
    their order.
    """
    n = confidence.numel()
    if n == 0:
        raise ValueError("AURC needs at least one sample")
    sorted_conf, order = torch.sort(confidence, descending=True)
    errors = (~correct[order].bool()).double()
    _, sizes = torch.unique_consecutive(torch.where(sorted_conf.isnan(), torch.inf, sorted_conf), return_counts=True)
    ends = sizes.cumsum(0)
    starts = ends - sizes
    cum = torch.cat([errors.new_zeros(1), errors.cumsum(0)])
    before, in_group = cum[starts], cum[ends] - cum[starts]
    position = torch.arange(n, dtype=torch.float64)
    start = starts.double().repeat_interleave(sizes)
    j = position - start + 1
    expected_errors = before.repeat_interleave(sizes) + j * (in_group / sizes.double()).repeat_interleave(sizes)
    area = float((expected_errors / (position + 1)).mean())
    n_err = int(cum[-1])
    i = torch.arange(1, n_err + 1, dtype=torch.float64)
    optimal = float((i / (n - n_err + i)).sum()) / n
    return area * 1e3, (area - optimal) * 1e3


def aurc(probs: Tensor, labels: Tensor) -> tuple[float, float]:
    """(AURC, E-AURC), both x1e3, with the maximum probability as the confidence."""
    _check(probs, labels)
    return _aurc_from(*_confidence_and_correct(probs, labels))


class ClassificationMetrics:
    """Streaming accumulator of every metric above; exact, and reduced across DDP ranks in ``compute``.

    ``update`` keeps running sums for top-k, NLL and the ECE bins, and each sample's confidence and
    correctness for AURC (which needs a global sort): 5 bytes per sample, not K probabilities.
    The states live on the device of the inputs, as torchmetrics keeps them, so that ``update`` never
    waits for the device; ``compute`` reduces them through :mod:`common.distributed`, which carries each
    tensor on a device the process group serves (CUDA under NCCL). With ``distributed=True`` (default) and
    a process group, ``compute`` covers every rank's samples.
    """

    def __init__(self, n_bins: int = 10, topk: tuple[int, ...] = (1, 5), distributed: bool = True) -> None:
        self._lower, self._upper = _bin_edges(n_bins)
        self.distributed = distributed
        self.n_bins = n_bins
        self.topk = topk
        self.reset()

    def reset(self) -> None:
        # [n, top-k hits..., NLL sum] and [count, correct, confidence sum] per bin, created on the device of
        # the first batch
        self._sums: Tensor | None = None
        self._bins: Tensor | None = None
        self._confidence: list[Tensor] = []
        self._correct: list[Tensor] = []

    @property
    def device(self) -> torch.device | None:
        """Where the states live: the device of the first batch given to :meth:`update` (None before it)."""
        return None if self._sums is None else self._sums.device

    @torch.no_grad()
    def update(self, probs: Tensor, labels: Tensor, logits: Tensor | None = None) -> None:
        """Add a batch of softmax ``probs``; give the ``logits`` they came from where they exist.

        With logits, top-k ranks the logits and NLL is their cross entropy, as the official ``val``;
        without, both come from the probabilities (NLL floored at 1e-12, see :func:`_nll_sum`).
        ECE and AURC always use the probabilities, as the official code does.
        """
        _check(probs, labels, logits)
        labels = labels.to(probs.device).long()
        scores = probs if logits is None else logits
        confidence, correct = _confidence_and_correct(probs, labels)
        if self._lower.device != probs.device:  # once, not a host-to-device copy of the edges per batch
            self._lower, self._upper = self._lower.to(probs.device), self._upper.to(probs.device)
        sums = torch.cat([torch.full((1,), labels.shape[0], dtype=torch.float64, device=probs.device),
                          _top_k_hits(scores, labels, self.topk).to(probs.device),
                          _nll_sum(probs, labels, logits).to(probs.device).reshape(1)])
        bins = torch.stack(_bin_sums(confidence, correct, self._lower, self._upper))
        if self._sums is None or self._bins is None:
            self._sums, self._bins = sums, bins
        else:
            self._sums += sums.to(self._sums.device)
            self._bins += bins.to(self._bins.device)
        self._confidence.append(confidence.float())
        self._correct.append(correct)

    def compute(self) -> dict[str, float | dict]:
        """Metrics over every sample seen on every rank: top{k}_err, nll, ece, aurc, eaurc, n, calibration."""
        # A rank that saw no sample (a test set smaller than the world) still joins every collective.
        sums = self._sums if self._sums is not None else torch.zeros(2 + len(self.topk), dtype=torch.float64)
        bins = self._bins if self._bins is not None else torch.zeros(3, len(self._upper), dtype=torch.float64)
        device = sums.device
        confidence = torch.cat(self._confidence) if self._confidence else torch.zeros(0, device=device)
        correct = torch.cat(self._correct) if self._correct else torch.zeros(0, dtype=torch.bool, device=device)
        if self.distributed and ddp.world_size() > 1:
            sums, bins = ddp.all_reduce_sum(sums), ddp.all_reduce_sum(bins)
            confidence = ddp.all_gather_variable(confidence)
            correct = ddp.all_gather_variable(correct.to(torch.uint8)).bool()
        counts, bins = sums.cpu(), bins.cpu()
        n = int(counts[0])
        if n == 0:
            raise ValueError("no samples were given to the metrics")
        calibration = _calibration_from_sums(bins[0], bins[1], bins[2], n, self._lower, self._upper)
        aurc_value, eaurc_value = _aurc_from(confidence.cpu(), correct.cpu())
        result: dict[str, float | dict] = {
            f"top{k}_err": 100.0 * (1.0 - counts[1 + i].item() / n) for i, k in enumerate(self.topk)
        }
        result.update(nll=counts[-1].item() / n, ece=calibration.ece, aurc=aurc_value, eaurc=eaurc_value,
                      n=n, calibration=calibration.to_dict())
        return result


def classification_metrics(probs: Tensor, labels: Tensor, n_bins: int = 10,
                           logits: Tensor | None = None) -> dict[str, float | dict]:
    """All metrics at once for probabilities (and optionally their logits) held in memory (single process)."""
    metrics = ClassificationMetrics(n_bins=n_bins, distributed=False)
    metrics.update(probs, labels, logits=logits)
    return metrics.compute()
