import math

import pytest
import torch
import torch.nn.functional as F

from common import (
    ClassWiseRegularizer,
    LabelSmoothingCrossEntropy,
    TFKDRegLoss,
    TFKDSelfLoss,
    class_wise_kl,
    label_smoothing_targets,
    soft_target_cross_entropy,
    softened_teacher,
    tf_kd_reg_loss,
    tf_kd_reg_teacher,
    tf_kd_self_loss,
)

LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
LABELS = torch.tensor([0, 2])


def _log_softmax_by_hand(row):
    z = math.log(sum(math.exp(v) for v in row))
    return [v - z for v in row]


def test_soft_target_cross_entropy_by_hand():
    targets = torch.tensor([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])
    expected = 0.0
    for row, t in zip(LOGITS.tolist(), targets.tolist(), strict=True):
        expected += -sum(ti * li for ti, li in zip(t, _log_softmax_by_hand(row), strict=True))
    assert soft_target_cross_entropy(LOGITS, targets).item() == pytest.approx(expected / 2, rel=1e-6)


def test_soft_target_cross_entropy_of_one_hot_is_cross_entropy():
    targets = F.one_hot(LABELS, 3).float()
    assert soft_target_cross_entropy(LOGITS, targets).item() == pytest.approx(F.cross_entropy(LOGITS, LABELS).item())


def test_label_smoothing_matches_torch():
    expected_row = torch.tensor([0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3])
    torch.testing.assert_close(label_smoothing_targets(LABELS, 3, 0.1)[0], expected_row)
    ours = LabelSmoothingCrossEntropy(0.1)(LOGITS, LABELS)
    assert ours.item() == pytest.approx(F.cross_entropy(LOGITS, LABELS, label_smoothing=0.1).item(), rel=1e-6)


def test_class_wise_kl_by_hand():
    partner = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    tau = 4.0
    expected = 0.0
    for own, other in zip(LOGITS.tolist(), partner.tolist(), strict=True):
        log_p = _log_softmax_by_hand([v / tau for v in own])
        log_q = _log_softmax_by_hand([v / tau for v in other])
        expected += sum(math.exp(lq) * (lq - lp) for lq, lp in zip(log_q, log_p, strict=True))
    expected = expected / 2 * tau**2
    assert class_wise_kl(LOGITS, softened_teacher(partner, tau), tau).item() == pytest.approx(expected, rel=1e-5)
    assert ClassWiseRegularizer(tau, 2.0)(LOGITS, partner).item() == pytest.approx(2 * expected, rel=1e-5)


def test_the_partner_and_the_teacher_do_not_receive_gradients():
    own, partner = LOGITS.clone().requires_grad_(), LOGITS.flip(0).clone().requires_grad_()
    ClassWiseRegularizer(4.0)(own, partner).backward()
    assert partner.grad is None and own.grad.abs().sum() > 0
    own.grad = None
    class_wise_kl(own, F.softmax(partner / 4.0, 1), 4.0).backward()
    assert partner.grad is None and own.grad.abs().sum() > 0


def test_tf_kd_self_by_hand_and_reference_form():
    teacher = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    tau, alpha = 6.0, 0.95
    ce = F.cross_entropy(LOGITS, LABELS).item()
    kl_sum = 0.0
    for s, t in zip(LOGITS.tolist(), teacher.tolist(), strict=True):
        log_p = _log_softmax_by_hand([v / tau for v in s])
        log_q = _log_softmax_by_hand([v / tau for v in t])
        kl_sum += sum(math.exp(lq) * (lq - lp) for lq, lp in zip(log_q, log_p, strict=True))
    paper = (1 - alpha) * ce + alpha * tau**2 * kl_sum / 2
    assert TFKDSelfLoss(tau, alpha)(LOGITS, LABELS, teacher).item() == pytest.approx(paper, rel=1e-5)
    reference = (1 - alpha) * ce + alpha * tau**2 * kl_sum / (2 * 3) * 50
    assert TFKDSelfLoss(tau, alpha, multiplier=50)(LOGITS, LABELS, teacher).item() == pytest.approx(reference, rel=1e-5)


def test_tf_kd_reg_by_hand_both_forms():
    tau, alpha, a, K = 20.0, 0.1, 0.9, 3
    ce = F.cross_entropy(LOGITS, LABELS).item()
    paper_kl = reference_kl = 0.0
    for s, y in zip(LOGITS.tolist(), LABELS.tolist(), strict=True):
        p_d = [a if k == y else (1 - a) / (K - 1) for k in range(K)]
        log_q = _log_softmax_by_hand([v / tau for v in p_d])
        log_p_tau = _log_softmax_by_hand([v / tau for v in s])
        log_p = _log_softmax_by_hand(s)
        paper_kl += sum(math.exp(lq) * (lq - lp) for lq, lp in zip(log_q, log_p_tau, strict=True))
        reference_kl += sum(math.exp(lq) * (lq - lp) for lq, lp in zip(log_q, log_p, strict=True))
    paper = (1 - alpha) * ce + alpha * paper_kl / 2
    reference = (1 - alpha) * ce + alpha * 4.0 * reference_kl / (2 * K)
    assert TFKDRegLoss(tau, alpha, a)(LOGITS, LABELS).item() == pytest.approx(paper, rel=1e-5)
    got = TFKDRegLoss(tau, alpha, a, form="reference", multiplier=4.0)(LOGITS, LABELS).item()
    assert got == pytest.approx(reference, rel=1e-5)


def test_tf_kd_losses_take_target_distributions_linearly():
    """A trainer that mixes its inputs (CutMix) calls the same functions with mixed distributions: the CE part
    is then the lam-weighted CE of the two labels, the KD part is taken against the mixed teacher."""
    lam, perm = 0.3, torch.tensor([1, 0])
    targets = F.one_hot(LABELS, 3).float()
    mixed_targets = lam * targets + (1 - lam) * targets[perm]
    teacher = tf_kd_reg_teacher(LABELS, 3, 0.9, 20.0)
    mixed_teacher = lam * teacher + (1 - lam) * teacher[perm]
    ce = lam * F.cross_entropy(LOGITS, LABELS) + (1 - lam) * F.cross_entropy(LOGITS, LABELS[perm])
    kl = F.kl_div(F.log_softmax(LOGITS, 1), mixed_teacher, reduction="sum") / LOGITS.numel()
    got = tf_kd_reg_loss(LOGITS, mixed_targets, mixed_teacher, 0.1, 20.0, "reference", 4.0)
    assert got.item() == pytest.approx((0.9 * ce + 0.1 * 4.0 * kl).item(), rel=1e-5)
    teacher = softened_teacher(LOGITS.flip(0), 6.0)
    kl = F.kl_div(F.log_softmax(LOGITS / 6, 1), teacher, reduction="batchmean")
    got = tf_kd_self_loss(LOGITS, mixed_targets, teacher, 0.95, 6.0)
    assert got.item() == pytest.approx((0.05 * ce + 0.95 * 36 * kl).item(), rel=1e-5)


@pytest.mark.parametrize("make", [lambda: ClassWiseRegularizer(tau=0), lambda: TFKDSelfLoss(tau=-1, alpha=0.5),
                                  lambda: TFKDRegLoss(20, 1.5, 0.9), lambda: TFKDRegLoss(20, 0.1, 0.9, form="x"),
                                  lambda: LabelSmoothingCrossEntropy(2.0),
                                  lambda: tf_kd_reg_loss(LOGITS, LOGITS, LOGITS, 0.1, 20.0, form="code"),
                                  lambda: tf_kd_self_loss(LOGITS, LOGITS, LOGITS, 0.5, tau=0.0)])
def test_bad_hyper_parameters_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_label_smoothing_defaults_to_0_1_and_follows_the_logits_device():
    ours = LabelSmoothingCrossEntropy()(LOGITS, LABELS)
    assert ours.item() == pytest.approx(F.cross_entropy(LOGITS, LABELS, label_smoothing=0.1).item(), rel=1e-6)
    # labels on the CPU, logits elsewhere (the meta device stands in for a GPU): the targets go to the logits
    assert LabelSmoothingCrossEntropy(0.1)(LOGITS.to("meta"), LABELS).device.type == "meta"
    with pytest.raises(ValueError, match=r"^epsilon must lie in \[0, 1\]"):
        LabelSmoothingCrossEntropy(2.0)


def test_class_wise_regularizer_defaults_are_cs_kds_and_its_weight_may_be_any_non_negative_number():
    """alinlab/cs-kd train.py: --temp 4.0, --lamda 1.0; the weight multiplies the term, 0 switches it off."""
    partner = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    tau, expected = 4.0, 0.0
    for own, other in zip(LOGITS.tolist(), partner.tolist(), strict=True):
        log_p = _log_softmax_by_hand([v / tau for v in own])
        log_q = _log_softmax_by_hand([v / tau for v in other])
        expected += sum(math.exp(lq) * (lq - lp) for lq, lp in zip(log_q, log_p, strict=True))
    expected = expected / 2 * tau**2
    assert ClassWiseRegularizer()(LOGITS, partner).item() == pytest.approx(expected, rel=1e-5)
    assert ClassWiseRegularizer(4.0, 0.5)(LOGITS, partner).item() == pytest.approx(expected / 2, rel=1e-5)
    assert ClassWiseRegularizer(4.0, 0.0)(LOGITS, partner).item() == 0.0
    with pytest.raises(ValueError, match=r"^lambda_cls must be >= 0; got -0\.5"):
        ClassWiseRegularizer(4.0, -0.5)


def test_tf_kd_reg_reference_form_defaults_to_a_multiplier_of_one_and_names_a_bad_a():
    tau, alpha, a, K = 20.0, 0.1, 0.9, 3
    ce = F.cross_entropy(LOGITS, LABELS).item()
    kl = 0.0
    for s, y in zip(LOGITS.tolist(), LABELS.tolist(), strict=True):
        p_d = [a if k == y else (1 - a) / (K - 1) for k in range(K)]
        log_q = _log_softmax_by_hand([v / tau for v in p_d])
        kl += sum(math.exp(lq) * (lq - lp) for lq, lp in zip(log_q, _log_softmax_by_hand(s), strict=True))
    expected = (1 - alpha) * ce + alpha * kl / (2 * K)  # nn.KLDivLoss(): the mean over B x K
    assert TFKDRegLoss(tau, alpha, a, form="reference")(LOGITS, LABELS).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match=r"^a \(correct-class probability\) must lie in \[0, 1\]"):
        TFKDRegLoss(tau, alpha, 1.5)
    with pytest.raises(ValueError, match=r"^a \(correct-class probability\) must lie in \[0, 1\]"):
        tf_kd_reg_teacher(LABELS, 3, -0.1, tau)


def test_tf_kd_reg_loss_defaults_to_the_paper_form_and_a_multiplier_of_one():
    tau, alpha, a = 20.0, 0.1, 0.9
    teacher = tf_kd_reg_teacher(LABELS, 3, a, tau)
    targets = F.one_hot(LABELS, 3).float()
    ce = F.cross_entropy(LOGITS, LABELS).item()
    paper_kl = reference_kl = 0.0
    for s, q in zip(LOGITS.tolist(), teacher.tolist(), strict=True):
        paper_kl += sum(qi * (math.log(qi) - lp) for qi, lp in zip(q, _log_softmax_by_hand([v / tau for v in s]),
                                                                  strict=True))
        reference_kl += sum(qi * (math.log(qi) - lp) for qi, lp in zip(q, _log_softmax_by_hand(s), strict=True))
    got = tf_kd_reg_loss(LOGITS, targets, teacher, alpha, tau).item()
    assert got == pytest.approx((1 - alpha) * ce + alpha * paper_kl / 2, rel=1e-5)
    got = tf_kd_reg_loss(LOGITS, targets, teacher, alpha, tau, form="reference").item()
    assert got == pytest.approx((1 - alpha) * ce + alpha * reference_kl / 6, rel=1e-5)
    with pytest.raises(ValueError, match=r"^form must be one of paper, reference; got 'code'$"):
        TFKDRegLoss(tau, alpha, a, form="code")


def test_label_smoothing_targets_name_epsilon_and_the_reg_teacher_follows_the_labels_device():
    with pytest.raises(ValueError, match=r"^epsilon must lie in \[0, 1\]"):
        label_smoothing_targets(LABELS, 3, 1.5)
    assert tf_kd_reg_teacher(LABELS.to("meta"), 3, 0.9, 20.0).device.type == "meta"


def test_a_temperature_below_one_sharpens_and_a_non_positive_one_is_refused():
    got = softened_teacher(LOGITS, 0.5)
    expected = [[math.exp(v) for v in _log_softmax_by_hand([2 * x for x in row])] for row in LOGITS.tolist()]
    torch.testing.assert_close(got, torch.tensor(expected))
    with pytest.raises(ValueError, match=r"^the temperature tau must be > 0; got 0\.0$"):
        softened_teacher(LOGITS, 0)


def test_soft_target_cross_entropy_per_sample_and_refusing_other_reductions():
    targets = torch.tensor([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])
    per_sample = soft_target_cross_entropy(LOGITS, targets, reduction="none")
    assert per_sample.shape == (2,)
    for got, row, t in zip(per_sample.tolist(), LOGITS.tolist(), targets.tolist(), strict=True):
        assert got == pytest.approx(-sum(a * b for a, b in zip(t, _log_softmax_by_hand(row), strict=True)), rel=1e-6)
    with pytest.raises(ValueError, match=r"^reduction must be 'mean' or 'none'; got 'sum'$"):
        soft_target_cross_entropy(LOGITS, targets, reduction="sum")
