"""Metrics against the official PS-KD evaluation (benchmarks/perf/official_reference.py, a transcription of
utils/metric.py and main.py's val), including the cases where the official code is not deterministic."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks.perf.official_reference import accuracy, calc_aurc, metric_ece_aurc_eaurc, reliability_bins, val
from common import (
    ClassificationMetrics,
    aurc,
    classification_metrics,
    expected_calibration_error,
    negative_log_likelihood,
    top_k_error,
)
from common import distributed as ddp

# float32 confidences on every decimal edge of 10 bins; float32 0.1, 0.2, 0.3, 0.4, 0.6, 0.8 lie just above
# their decimal, so the official float64 edges put them in the bin above
EDGES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def _random_predictions(n=2000, k=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g) * 2
    logits[torch.arange(n), labels] += 2.0  # about 60 % right, so every metric is non-trivial
    return logits, F.softmax(logits, 1), labels


def _distinct(n, k=10, seed=0):
    """Distinct float32 confidences in [0.45, 0.95), some on bin edges, each right with that probability."""
    g = torch.Generator().manual_seed(seed)
    confidence = torch.randperm(n, generator=g).float() / (2 * n) + 0.45
    wrong = torch.rand(n, generator=g) > confidence
    return _with_confidences(confidence, k), wrong.long() * torch.randint(1, k, (n,), generator=g)


def _tied(n, k=10, seed=0, grid=20):
    """Scores rounded to a grid of 1/grid: many tied confidences, many of them on bin edges."""
    _, probs, labels = _random_predictions(n, k, seed)
    return (probs * grid).round() / grid, labels


def _with_confidences(confidence, k=100):
    """Rows whose maximum is exactly ``confidence`` (float32), the rest spread over k - 1 classes."""
    rest = ((1 - confidence) / (k - 1)).unsqueeze(1).expand(-1, k - 1)
    return torch.cat([confidence.unsqueeze(1), rest], dim=1)


def _official(probs, labels, bin_size=0.1):
    """The official (ECE, AURC, E-AURC), given Python floats as main.py's val gives them."""
    return metric_ece_aurc_eaurc(probs.tolist(), labels.tolist(), bin_size=bin_size)


def _aurc_over_sample_orders(probs, labels, orders, seed=0):
    """Mean and standard error of the official (AURC, E-AURC) over random orders of the samples."""
    rng = np.random.default_rng(seed)
    p, y = probs.double().numpy(), labels.numpy()
    runs = []
    for _ in range(orders):
        perm = rng.permutation(len(y))
        runs.append(calc_aurc(p[perm], y[perm]))
    runs = 1e3 * np.array(runs)
    return runs.mean(0), runs.std(0, ddof=1) / math.sqrt(orders)


def test_top_k_error_and_nll_by_hand():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.3, 0.6], [0.2, 0.7, 0.1], [0.4, 0.35, 0.25]])
    labels = torch.tensor([0, 0, 1, 2])
    assert top_k_error(probs, labels, 1) == pytest.approx(50.0)
    assert top_k_error(probs, labels, 2) == pytest.approx(50.0)  # sample 2 (p=0.1) and 4 (p=0.25) miss
    assert top_k_error(probs, labels, 3) == pytest.approx(0.0)
    expected = -(math.log(0.5) + math.log(0.1) + math.log(0.7) + math.log(0.25)) / 4
    assert negative_log_likelihood(probs, labels) == pytest.approx(expected)


def test_top_k_ties_count_as_the_expectation_over_tie_orders():
    probs = torch.tensor([[0.4, 0.3, 0.3]])
    assert top_k_error(probs, torch.tensor([1]), 2) == pytest.approx(50.0)  # tied with class 2 for 2nd place
    four_way = torch.full((1, 4), 0.25)
    assert top_k_error(four_way, torch.tensor([3]), 1) == pytest.approx(75.0)
    assert top_k_error(four_way, torch.tensor([3]), 3) == pytest.approx(25.0)


def test_top_k_with_ties_is_the_official_topk_averaged_over_every_class_order():
    # torch.topk breaks ties by position; over all orders of the classes every tied class is equally likely
    g = torch.Generator().manual_seed(1)
    logits = torch.randint(0, 3, (300, 4), generator=g).float()  # ties at every place
    labels = torch.randint(0, 4, (300,), generator=g)
    official = []
    for perm in itertools.permutations(range(4)):
        where = torch.tensor(perm).argsort()  # class c sits in column perm.index(c)
        official.append([a.item() for a in accuracy(logits[:, list(perm)], where[labels], topk=(1, 2, 3))])
    expected = 100.0 - np.mean(official, axis=0)  # the official percentages are float32: abs 1e-4
    assert [top_k_error(logits, labels, k) for k in (1, 2, 3)] == pytest.approx(expected.tolist(), abs=1e-4)


def test_nll_is_the_official_cross_entropy_of_the_logits_unbounded():
    logits, probs, labels = _random_predictions(n=500, k=10)
    logits[0, labels[0]] -= 200.0  # the label's float32 probability underflows to 0
    probs = F.softmax(logits, 1)
    assert probs[0, labels[0]] == 0
    official = val([(logits, labels)])["loss"]
    assert negative_log_likelihood(probs, labels, logits=logits) == pytest.approx(official, rel=1e-6)
    # the stored-probabilities form can only floor that zero at 1e-12: -log(1e-12) = 27.6, not about 200
    per_sample = F.cross_entropy(logits, labels, reduction="none").double()
    floored = (per_sample.sum() - per_sample[0] - math.log(1e-12)).item() / 500
    assert per_sample[0] > 150 and negative_log_likelihood(probs, labels) == pytest.approx(floored, rel=1e-6)


def test_ece_by_hand():
    # confidences 0.62 (right), 0.66 (wrong), 0.87 (right), 1.0 (right), 0.25 (wrong)
    probs = torch.tensor([[0.62, 0.38], [0.34, 0.66], [0.87, 0.13], [1.0, 0.0], [0.25, 0.25]])
    labels = torch.tensor([0, 0, 0, 0, 1])
    result = expected_calibration_error(probs, labels, n_bins=10)
    assert result.count == [0, 0, 1, 0, 0, 0, 2, 0, 1, 1]
    assert result.accuracy[6] == pytest.approx(0.5) and result.confidence[6] == pytest.approx(0.64)
    expected = (abs(0 - 0.25) + 2 * abs(0.5 - 0.64) + abs(1 - 0.87) + abs(1 - 1.0)) / 5 * 100
    assert result.ece == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("n_bins", [10, 15, 20, 49])
def test_confidences_on_bin_edges_fall_in_the_official_bins(n_bins):
    edges = torch.tensor(EDGES + [i / n_bins for i in range(1, n_bins + 1)], dtype=torch.float32)
    confidence = torch.cat([edges, edges + 1e-4, edges - 1e-4]).clamp(max=1.0)
    probs = _with_confidences(confidence)
    labels = torch.arange(len(confidence)) % 3  # right on every third row
    lower, upper, accs, confs, counts, _ = reliability_bins(probs.tolist(), labels.tolist(), 1 / n_bins)
    ours = expected_calibration_error(probs, labels, n_bins)
    assert ours.count == counts  # 49 bins: arange makes 50, and 1.0 counts in the last two, as officially
    assert ours.lower == lower and ours.upper == upper  # the very float64 edges
    assert ours.accuracy == pytest.approx(accs) and ours.confidence == pytest.approx(confs)
    assert ours.ece == pytest.approx(_official(probs, labels, 1 / n_bins)[0], rel=1e-9)


def test_float32_decimals_above_their_edge_go_to_the_bin_above():
    probs = _with_confidences(torch.tensor(EDGES, dtype=torch.float32))
    counts = expected_calibration_error(probs, torch.zeros(10, dtype=torch.long)).count
    # 0.1 -> (0.1, 0.2], 0.5 -> (0.4, 0.5] (exact), 0.7 -> (0.6, 0.7] (float32 0.7 < 0.7), 0.9 -> (0.8, 0.9]
    assert counts == [0, 1, 1, 1, 2, 0, 2, 0, 2, 1]


def test_ece_agrees_with_torchmetrics_away_from_the_edges():
    from torchmetrics.functional.classification import multiclass_calibration_error

    _, probs, labels = _random_predictions()
    for bins in (10, 15):
        theirs = multiclass_calibration_error(probs, labels, num_classes=20, n_bins=bins, norm="l1").item()
        assert expected_calibration_error(probs, labels, bins).ece == pytest.approx(100 * theirs, abs=1e-4)


@pytest.mark.parametrize("n", [100, 10_000])
def test_ece_aurc_eaurc_equal_the_official_code_without_ties(n):
    probs, labels = _distinct(n, seed=n)
    ece, area, excess = _official(probs, labels)
    assert expected_calibration_error(probs, labels).ece == pytest.approx(ece, rel=1e-9)
    assert aurc(probs, labels) == pytest.approx((area, excess), rel=1e-9)


def test_eaurc_of_a_perfect_ranking_is_zero_with_the_finite_sum():
    # errors exactly on the 20 lowest confidences: the ranking is the ideal one, so E-AURC = 0; the large-n
    # limit r + (1 - r) ln(1 - r) of the optimum would leave about 1e-3 (x1e3: about 1) at n = 100
    confidence = torch.linspace(0.99, 0.3, 100)
    labels = torch.zeros(100, dtype=torch.long)
    labels[80:] = 1
    area, excess = aurc(_with_confidences(confidence), labels)
    assert excess == pytest.approx(0.0, abs=1e-9)
    assert area == pytest.approx(_official(_with_confidences(confidence), labels)[1], rel=1e-12)


def test_aurc_with_ties_is_the_official_value_averaged_over_every_sample_order():
    # any sort orders tied samples by position only, so averaging over all 7! orders of the input gives the
    # official value averaged uniformly over the orders of each tied group
    confidence = torch.tensor([0.9, 0.9, 0.9, 0.6, 0.6, 0.8, 0.55])
    probs = torch.stack([confidence, 1 - confidence], dim=1)
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 1])
    p, y = probs.double().numpy(), labels.numpy()
    runs = [calc_aurc(p[list(perm)], y[list(perm)]) for perm in itertools.permutations(range(7))]
    expected = 1e3 * np.mean(runs, axis=0)
    assert len({tuple(r) for r in runs}) > 1  # the official value does depend on the order
    assert aurc(probs, labels) == pytest.approx(tuple(expected), rel=1e-12)


@pytest.mark.parametrize(("n", "orders"), [(100, 400), (10_000, 200)])
def test_aurc_with_many_ties_is_the_mean_of_the_official_code_over_sample_orders(n, orders):
    probs, labels = _tied(n, seed=n)
    mean, stderr = _aurc_over_sample_orders(probs, labels, orders)
    assert np.all(stderr > 0)  # the official value depends on the order of the samples
    got = np.array(aurc(probs, labels))
    assert np.all(np.abs(got - mean) <= 5 * stderr + 1e-9), (got, mean, stderr)
    # ties leave the ECE deterministic; every grid value 0.05 * i sits on or near a bin edge
    ece = _official(probs, labels)[0]
    assert expected_calibration_error(probs, labels).ece == pytest.approx(ece, rel=1e-9)


def test_aurc_does_not_depend_on_the_order_of_the_samples():
    probs, labels = _tied(3000)
    perm = torch.randperm(3000, generator=torch.Generator().manual_seed(5))
    assert aurc(probs[perm], labels[perm]) == pytest.approx(aurc(probs, labels), rel=1e-12)


def test_aurc_extremes():
    labels = torch.tensor([0, 1, 0, 1])
    perfect = F.one_hot(labels, 2).float() * 0.9 + 0.05
    assert aurc(perfect, labels) == pytest.approx((0.0, 0.0), abs=1e-12)
    # right answers ranked last: risk 1, 1, 2/3, 1/2 over coverages -> mean 19/24
    probs = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.6, 0.4], [0.45, 0.55]])
    assert aurc(probs, labels)[0] == pytest.approx(1e3 * (1 + 1 + 2 / 3 + 1 / 2) / 4)


def test_streaming_accumulator_with_logits_gives_the_official_validation_numbers():
    logits, _, labels = _random_predictions(n=10_000, k=100, seed=3)
    batches = list(zip(logits.split(128), labels.split(128), strict=True))
    metrics = ClassificationMetrics()
    for part_logits, part_labels in batches:
        metrics.update(F.softmax(part_logits, 1), part_labels, logits=part_logits)
    got = metrics.compute()
    official = val(batches)
    assert got["n"] == 10_000
    assert got["top1_err"] == pytest.approx(100 - official["top1_acc"], abs=1e-4)  # float32 percentages
    assert got["top5_err"] == pytest.approx(100 - official["top5_acc"], abs=1e-4)
    assert got["nll"] == pytest.approx(official["loss"], rel=1e-6)
    for key in ("ece", "aurc", "eaurc"):
        assert got[key] == pytest.approx(official[key], rel=1e-9), key


def test_streaming_accumulator_equals_the_pure_functions():
    logits, probs, labels = _random_predictions(n=1500, k=12)
    metrics = ClassificationMetrics()
    for part_l, part_p, part_y in zip(logits.split(128), probs.split(128), labels.split(128), strict=True):
        metrics.update(part_p, part_y, logits=part_l)
    got = metrics.compute()
    assert got["n"] == 1500
    assert got["top1_err"] == pytest.approx(top_k_error(logits, labels, 1))
    assert got["top5_err"] == pytest.approx(top_k_error(logits, labels, 5))
    assert got["nll"] == pytest.approx(negative_log_likelihood(probs, labels, logits=logits))
    assert got["ece"] == pytest.approx(expected_calibration_error(probs, labels).ece)
    assert (got["aurc"], got["eaurc"]) == pytest.approx(aurc(probs, labels))
    # batches and one call sum the NLL in different orders: equal up to rounding, not bit for bit
    whole = classification_metrics(probs, labels, logits=logits)
    assert got.pop("calibration")["count"] == whole.pop("calibration")["count"]
    assert got == pytest.approx(whole, rel=1e-12)


def test_bad_shapes_and_empty_input_are_refused():
    with pytest.raises(ValueError, match="expected probs"):
        top_k_error(torch.rand(3, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="expected logits"):
        ClassificationMetrics().update(torch.rand(3, 2), torch.tensor([0, 1, 1]), logits=torch.rand(3, 4))
    with pytest.raises(ValueError, match=r"^no samples were given"):
        ClassificationMetrics().compute()
    with pytest.raises(ValueError, match="bins"):
        ClassificationMetrics(n_bins=0)


def test_top_k_error_counts_nan_scores_as_misses() -> None:
    """A diverged model's NaN logits are no hits (they scored 0 % error before), and a NaN class ranks above
    the label, as torch.topk ranks NaN first."""
    logits = torch.tensor([[float("nan")] * 3, [0.0, float("nan"), 1.0], [0.0, 2.0, 1.0]])
    labels = torch.tensor([0, 2, 1])
    assert top_k_error(logits, labels, 1) == pytest.approx(200.0 / 3)
    assert top_k_error(logits, labels, 2) == pytest.approx(100.0 / 3)


def test_default_k_is_top_1_and_wrong_shapes_are_refused_before_any_indexing():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    labels = torch.tensor([1, 2])
    assert top_k_error(probs, labels) == pytest.approx(50.0)  # sample 0's label is 2nd: a top-1 miss only
    assert top_k_error(probs, labels, 2) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="expected probs"):  # 1-D scores, however long the labels
        top_k_error(torch.rand(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="expected probs"):  # (n, 1) labels
        expected_calibration_error(torch.rand(3, 2), torch.tensor([[0], [1], [1]]))
    with pytest.raises(ValueError, match="expected logits"):  # the NLL of logits of another width
        negative_log_likelihood(torch.rand(3, 2), torch.tensor([0, 1, 1]), logits=torch.rand(3, 4))


def test_empty_bins_report_zero_accuracy_and_confidence_as_the_official_compute_bin():
    """utils/metric.py ``compute_bin`` returns (0, 0, 0) for a bin without samples; the reliability diagram
    (common/plots.py) and the records read these lists."""
    probs = torch.tensor([[0.62, 0.38], [0.34, 0.66], [0.87, 0.13], [1.0, 0.0], [0.25, 0.25]])
    labels = torch.tensor([0, 0, 0, 0, 1])
    result = expected_calibration_error(probs, labels)
    assert result.accuracy == pytest.approx([0, 0, 0, 0, 0, 0, 0.5, 0, 1, 1])
    assert result.confidence == pytest.approx([0, 0, 0.25, 0, 0, 0, 0.64, 0, 0.87, 1.0])
    _, _, accs, confs, counts, _ = reliability_bins(probs.tolist(), labels.tolist())
    assert (result.accuracy, result.confidence, result.count) == (pytest.approx(accs), pytest.approx(confs), counts)


def test_one_bin_is_the_gap_between_accuracy_and_mean_confidence():
    """n_bins = 1 is the official bin_size = 1.0: ``np.arange(1.0, 2.0, 1.0)`` is the one bin (0, 1]."""
    probs = torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
    labels = torch.tensor([0, 0, 1, 1])  # right, wrong, wrong, right: accuracy 0.5, mean confidence 0.75
    one = expected_calibration_error(probs, labels, n_bins=1)
    assert (one.lower, one.upper, one.count) == ([0.0], [1.0], [4])
    assert one.ece == pytest.approx(25.0)
    assert one.ece == pytest.approx(_official(probs, labels, bin_size=1.0)[0])
    accumulator = ClassificationMetrics(n_bins=1)
    assert accumulator.n_bins == 1
    accumulator.update(probs, labels)
    assert accumulator.compute()["ece"] == pytest.approx(25.0)


def test_classification_metrics_uses_the_bins_it_is_given():
    probs, labels = _distinct(300, seed=4)
    got = classification_metrics(probs, labels, n_bins=15)
    _, upper, accs, confs, counts, _ = reliability_bins(probs.tolist(), labels.tolist(), 1 / 15)
    assert got["ece"] == pytest.approx(_official(probs, labels, 1 / 15)[0], rel=1e-9)
    assert len(counts) == 15 and got["calibration"]["count"] == counts and got["calibration"]["upper"] == upper
    assert got["calibration"]["accuracy"] == pytest.approx(accs)
    assert got["calibration"]["confidence"] == pytest.approx(confs)


def test_the_calibration_record_holds_the_official_per_bin_lists_by_name():
    """The ``calibration`` entry of a result (read by common/plots.py's reliability diagram and the records)
    names the lists of utils/metric.py's bin loop: bounds, per-bin accuracy, mean confidence, count."""
    probs, labels = _distinct(500, seed=2)
    lower, upper, accs, confs, counts, ces = reliability_bins(probs.tolist(), labels.tolist())
    # both entry points: the result's entry and the calibration object's own record
    for record in (classification_metrics(probs, labels)["calibration"],
                   expected_calibration_error(probs, labels).to_dict()):
        assert set(record) == {"lower", "upper", "accuracy", "confidence", "count", "ece"}
        assert record["lower"] == pytest.approx(lower) and record["upper"] == pytest.approx(upper)
        assert record["accuracy"] == pytest.approx(accs) and record["confidence"] == pytest.approx(confs)
        assert record["count"] == counts
        assert record["ece"] == pytest.approx(100 * sum(ces) / 500, rel=1e-9)


def test_aurc_of_one_sample_of_only_errors_and_of_none():
    """utils/metric.py ``calc_aurc``: one right sample has risk 0; with every sample wrong the risk is 1 at every
    coverage and the optimal ordering is no better (its sum is i / i = 1 for each i), so E-AURC is 0."""
    right, wrong = torch.tensor([[0.7, 0.3]]), torch.tensor([[0.3, 0.7]])
    assert aurc(right, torch.tensor([0])) == pytest.approx((0.0, 0.0), abs=1e-12)
    assert aurc(wrong, torch.tensor([0])) == pytest.approx((1000.0, 0.0), abs=1e-9)
    probs = torch.tensor([[0.6, 0.4], [0.6, 0.4], [0.6, 0.4], [0.2, 0.8], [0.2, 0.8]])
    labels = torch.tensor([1, 1, 1, 0, 0])
    assert aurc(probs, labels) == pytest.approx((1000.0, 0.0), abs=1e-9)
    assert aurc(probs, labels) == pytest.approx(_official(probs, labels)[1:], abs=1e-9)
    with pytest.raises(ValueError, match=r"^AURC needs at least one sample"):
        aurc(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))


class _TwoRanks:
    """A world of two ranks in one process, standing in for gloo: rank 1's collectives are recorded first, then
    rank 0's are answered with both ranks' tensors, matched in call order as a process group matches them.
    all_reduce needs the same shape and dtype on both ranks (torch.distributed.all_reduce); a gather concatenates
    in rank order."""

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch
        self.sent: list[tuple[str, torch.Tensor]] = []
        monkeypatch.setattr(ddp, "world_size", lambda: 2)

    def record_rank_1(self, metrics):
        def alone(kind):  # rank 1's collectives see its own tensor only, and are kept for rank 0
            def collective(tensor):
                self.sent.append((kind, tensor.clone()))
                return tensor.clone()

            return collective

        self.monkeypatch.setattr(ddp, "all_reduce_sum", alone("reduce"))
        self.monkeypatch.setattr(ddp, "all_gather_variable", alone("gather"))
        metrics.compute()

    def compute_rank_0(self, metrics):
        def reduce(tensor):
            kind, other = self.sent.pop(0)
            assert kind == "reduce" and other.shape == tensor.shape and other.dtype == tensor.dtype
            return tensor + other

        def gather(tensor):
            kind, other = self.sent.pop(0)
            assert kind == "gather" and other.shape[1:] == tensor.shape[1:] and other.dtype == tensor.dtype
            return torch.cat([tensor, other])

        self.monkeypatch.setattr(ddp, "all_reduce_sum", reduce)
        self.monkeypatch.setattr(ddp, "all_gather_variable", gather)
        result = metrics.compute()
        assert self.sent == []  # rank 0 joined every collective of rank 1 (a rank that skips one hangs the group)
        return result


def _accumulate(batches, **kwargs):
    metrics = ClassificationMetrics(**kwargs)
    for logits, labels in batches:
        metrics.update(F.softmax(logits, 1), labels, logits=logits)
    return metrics


def _assert_official(got, batches):
    official = val(batches)
    assert got["n"] == sum(len(labels) for _, labels in batches)
    assert got["top1_err"] == pytest.approx(100 - official["top1_acc"], abs=1e-4)
    assert got["top5_err"] == pytest.approx(100 - official["top5_acc"], abs=1e-4)
    assert got["nll"] == pytest.approx(official["loss"], rel=1e-6)
    for key in ("ece", "aurc", "eaurc"):
        assert got[key] == pytest.approx(official[key], rel=1e-9), key


def test_two_ranks_report_the_official_numbers_of_every_sample(monkeypatch):
    """compute() sums the counts and bins of both ranks and gathers their confidences for AURC: rank 0's result
    is the official main.py ``val`` over both ranks' batches (the default is distributed)."""
    logits, _, labels = _random_predictions(n=700, k=12, seed=6)
    batches = list(zip(logits.split(128), labels.split(128), strict=True))
    rank_0, rank_1 = batches[:2], batches[2:]  # 256 and 444 samples
    world = _TwoRanks(monkeypatch)
    world.record_rank_1(_accumulate(rank_1))
    _assert_official(world.compute_rank_0(_accumulate(rank_0)), batches)


def test_a_rank_without_samples_joins_every_collective_with_nothing(monkeypatch):
    """A test set smaller than the world leaves a rank without samples; its zeros must match the other rank's
    states in shape and dtype, and add no sample."""
    logits, _, labels = _random_predictions(n=300, k=12, seed=7)
    batches = list(zip(logits.split(128), labels.split(128), strict=True))
    world = _TwoRanks(monkeypatch)
    world.record_rank_1(_accumulate(batches))
    _assert_official(world.compute_rank_0(ClassificationMetrics()), batches)


def test_without_distributed_a_rank_reports_its_own_samples_and_calls_no_collective(monkeypatch):
    logits, probs, labels = _random_predictions(n=300, k=12, seed=8)
    batches = list(zip(logits.split(128), labels.split(128), strict=True))
    monkeypatch.setattr(ddp, "world_size", lambda: 2)
    for name in ("all_reduce_sum", "all_gather_variable"):
        monkeypatch.setattr(ddp, name, lambda tensor: pytest.fail("a collective under distributed=False"))
    _assert_official(_accumulate(batches, distributed=False).compute(), batches)
    _assert_official(classification_metrics(probs, labels, logits=logits), batches)


def test_nan_confidences_are_in_no_bin_and_one_tie_for_aurc_as_in_the_official_code():
    """Diverged samples (NaN softmax rows) next to finite ones. utils/metric.py ``compute_bin``: ``x > lower and
    x <= upper`` is false for NaN, so the sample is in no bin but counts in ``total``: the ECE stays finite.
    ``calc_aurc``: ``np.argsort`` puts NaN last and the reversal ranks it first, in whatever order the (shuffled)
    samples came: the expectation over every sample order is the reference, as for tied confidences."""
    nan = float("nan")
    probs = torch.tensor([[0.9, 0.1], [nan, nan], [0.3, 0.7], [nan, nan], [0.6, 0.4], [0.2, 0.8]])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])  # argmax of a NaN row is 0: one NaN sample right, one wrong
    _, _, accs, confs, counts, ces = reliability_bins(probs.tolist(), labels.tolist())
    ours = expected_calibration_error(probs, labels)
    assert ours.count == counts and sum(counts) == 4
    assert ours.accuracy == pytest.approx(accs) and ours.confidence == pytest.approx(confs)
    assert ours.ece == pytest.approx(100 * sum(ces) / 6, rel=1e-9)
    p, y = probs.double().numpy(), labels.numpy()
    runs = [calc_aurc(p[list(perm)], y[list(perm)]) for perm in itertools.permutations(range(6))]
    assert len({tuple(r) for r in runs}) > 1  # the official value depends on the order of the NaN samples
    expected = tuple(1e3 * np.mean(runs, axis=0))
    assert aurc(probs, labels) == pytest.approx(expected, rel=1e-12)
    swapped = torch.tensor([0, 3, 2, 1, 4, 5])
    assert aurc(probs[swapped], labels[swapped]) == pytest.approx(expected, rel=1e-12)
    streamed = classification_metrics(probs, labels)
    assert (streamed["ece"], streamed["aurc"], streamed["eaurc"]) == pytest.approx((ours.ece, *expected))
