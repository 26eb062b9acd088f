import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common import (
    ClassificationMetrics,
    aurc,
    classification_metrics,
    expected_calibration_error,
    negative_log_likelihood,
    top_k_error,
)


def _random_predictions(n=2000, k=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g) * 2
    logits[torch.arange(n), labels] += 2.0  # about 60 % right, so every metric is non-trivial
    return F.softmax(logits, 1), labels


def _official_aurc(confidence, correct):
    """Straight transcription of the official PS-KD metric loop (sorted, cumulative risk, mean)."""
    pairs = sorted(zip(confidence.tolist(), correct.tolist(), strict=True), key=lambda x: x[0], reverse=True)
    risk, risks = 0, []
    for i, (_, ok) in enumerate(pairs):
        risk += 0 if ok else 1
        risks.append(risk / (i + 1))
    r = risks[-1]
    area = sum(v / len(risks) for v in risks)
    return area * 1e3, (area - (r + (1 - r) * np.log(1 - r))) * 1e3


def test_top_k_error_and_nll_by_hand():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.3, 0.6], [0.2, 0.7, 0.1], [0.4, 0.35, 0.25]])
    labels = torch.tensor([0, 0, 1, 2])
    assert top_k_error(probs, labels, 1) == pytest.approx(50.0)
    assert top_k_error(probs, labels, 2) == pytest.approx(50.0)  # sample 2 (p=0.1) and 4 (p=0.25) miss
    assert top_k_error(probs, labels, 3) == pytest.approx(0.0)
    expected = -(math.log(0.5) + math.log(0.1) + math.log(0.7) + math.log(0.25)) / 4
    assert negative_log_likelihood(probs, labels) == pytest.approx(expected)


def test_ece_by_hand():
    # confidences 0.62 (right), 0.66 (wrong), 0.87 (right), 1.0 (right), 0.25 (wrong)
    probs = torch.tensor([[0.62, 0.38], [0.34, 0.66], [0.87, 0.13], [1.0, 0.0], [0.25, 0.25]])
    labels = torch.tensor([0, 0, 0, 0, 1])
    result = expected_calibration_error(probs, labels, n_bins=10)
    assert result.count == [0, 0, 1, 0, 0, 0, 2, 0, 1, 1]
    assert result.accuracy[6] == pytest.approx(0.5) and result.confidence[6] == pytest.approx(0.64)
    expected = (abs(0 - 0.25) + 2 * abs(0.5 - 0.64) + abs(1 - 0.87) + abs(1 - 1.0)) / 5 * 100
    assert result.ece == pytest.approx(expected, rel=1e-6)


def test_confidences_on_bin_edges_fall_in_the_lower_bin_as_in_the_official_code():
    edges = torch.linspace(0, 1, 11)
    confidence = torch.cat([edges[1:], edges[1:] + 1e-4]).clamp(max=1.0)
    # K = 20 classes, the rest of the mass spread evenly, so that the maximum is ``confidence``
    probs = torch.cat([confidence[:, None], ((1 - confidence) / 19)[:, None].expand(-1, 19)], dim=1)
    labels = torch.zeros(len(confidence), dtype=torch.long)
    official = [int((confidence.gt(lo) & confidence.le(hi)).sum()) for lo, hi in itertools.pairwise(edges)]
    assert expected_calibration_error(probs, labels).count == official


def test_ece_agrees_with_torchmetrics():
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs, labels = _random_predictions()
    for bins in (10, 15):
        theirs = multiclass_calibration_error(probs, labels, num_classes=20, n_bins=bins, norm="l1").item()
        assert expected_calibration_error(probs, labels, bins).ece == pytest.approx(100 * theirs, abs=1e-4)


def test_aurc_agrees_with_the_official_loop_including_ties():
    probs, labels = _random_predictions(n=3000)
    probs = (probs * 20).round() / 20  # many tied confidences
    confidence, prediction = probs.max(1)
    ours = aurc(probs, labels)
    theirs = _official_aurc(confidence, prediction == labels)
    assert ours[0] == pytest.approx(theirs[0], rel=1e-9) and ours[1] == pytest.approx(theirs[1], rel=1e-9)


def test_aurc_extremes():
    labels = torch.tensor([0, 1, 0, 1])
    perfect = F.one_hot(labels, 2).float() * 0.9 + 0.05
    assert aurc(perfect, labels) == (0.0, 0.0)
    # right answers ranked last: risk 1, 1, 2/3, 1/2 over coverages -> mean 19/24
    probs = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.6, 0.4], [0.45, 0.55]])
    assert aurc(probs, labels)[0] == pytest.approx(1e3 * (1 + 1 + 2 / 3 + 1 / 2) / 4)


def test_streaming_accumulator_equals_the_pure_functions():
    probs, labels = _random_predictions(n=1500, k=12)
    metrics = ClassificationMetrics()
    for part_p, part_l in zip(probs.split(128), labels.split(128), strict=True):
        metrics.update(part_p, part_l)
    got = metrics.compute()
    assert got["n"] == 1500
    assert got["top1_err"] == pytest.approx(top_k_error(probs, labels, 1))
    assert got["top5_err"] == pytest.approx(top_k_error(probs, labels, 5))
    assert got["nll"] == pytest.approx(negative_log_likelihood(probs, labels))
    assert got["ece"] == pytest.approx(expected_calibration_error(probs, labels).ece)
    assert (got["aurc"], got["eaurc"]) == pytest.approx(aurc(probs, labels))
    assert got == classification_metrics(probs, labels)


def test_bad_shapes_and_empty_input_are_refused():
    with pytest.raises(ValueError, match="expected probs"):
        top_k_error(torch.rand(3, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="no samples"):
        ClassificationMetrics().compute()
    with pytest.raises(ValueError, match="bins"):
        ClassificationMetrics(n_bins=0)
