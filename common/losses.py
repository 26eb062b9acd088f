"""Losses of PS-KD and of its rivals, as pure functions plus small modules for any training loop.

Every loss is averaged over the batch, as in the papers' equations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common.schedules import check_alpha
from common.targets import one_hot


def soft_target_cross_entropy(logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    """H(targets, softmax(logits)) per sample, averaged over the batch by default: PS-KD's loss (paper,
    Eq. 3 with Eq. 4). ``reduction="none"`` returns the (B,) per-sample values."""
    per_sample = -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
    if reduction == "none":
        return per_sample
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none'; got {reduction!r}")
    return per_sample.mean()


def pskd_token_loss(lprobs: Tensor, target: Tensor, past_probs: Tensor, alpha: float, epsilon: float = 0.0,
                    ignore_index: int | None = None) -> tuple[Tensor, Tensor]:
    """PS-KD's loss on tokens, summed: H((1 - alpha) y_eps + alpha p_{t-1}, q) (paper, Eq. 4).

    ``lprobs`` (N, V) are the student's log-probabilities, ``target`` (N,) the reference tokens,
    ``past_probs`` (N, V) the previous epoch's probabilities. ``y_eps`` is label smoothing as fairseq
    defines it (1 - eps on the reference, eps / (V - 1) on every other token), so that ``alpha = 0``
    is exactly fairseq's ``label_smoothed_nll_loss``. Cross entropy is linear in the target, so the
    (N, V) target is never built. Positions where ``target == ignore_index`` count zero.
    Returns (loss, nll_loss), both summed over tokens.
    """
    target = target.unsqueeze(-1)
    nll = -lprobs.gather(dim=-1, index=target)
    smooth = -lprobs.sum(dim=-1, keepdim=True)
    soft = -(past_probs.to(lprobs.dtype) * lprobs).sum(dim=-1, keepdim=True)
    if ignore_index is not None:
        pad = target.eq(ignore_index)
        nll, smooth, soft = (t.masked_fill(pad, 0.0) for t in (nll, smooth, soft))
    eps_i = epsilon / (lprobs.size(-1) - 1)
    hard = (1.0 - epsilon - eps_i) * nll + eps_i * smooth
    return ((1.0 - alpha) * hard + alpha * soft).sum(), nll.sum()


def label_smoothing_targets(labels: Tensor, num_classes: int, epsilon: float) -> Tensor:
    """Label smoothing (Szegedy et al. 2016; supplement A.2): ``(1 - eps) * y + eps / K``."""
    epsilon = check_alpha(epsilon, "epsilon")
    return one_hot(labels, num_classes) * (1.0 - epsilon) + epsilon / num_classes


class LabelSmoothingCrossEntropy(nn.Module):
    """Cross entropy against label-smoothed targets (supplement A.2, eq. for y_LS)."""

    def __init__(self, epsilon: float = 0.1) -> None:
        super().__init__()
        self.epsilon = check_alpha(epsilon, "epsilon")

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        targets = label_smoothing_targets(labels, logits.shape[1], self.epsilon).to(logits.device)
        return soft_target_cross_entropy(logits, targets)


def _check_temperature(tau: float) -> float:
    tau = float(tau)
    if not tau > 0:
        raise ValueError(f"the temperature tau must be > 0; got {tau}")
    return tau


def kd_kl(logits: Tensor, teacher_probs: Tensor, tau: float, multiplier: float | None = None) -> Tensor:
    """KL(teacher || softmax(logits / tau)), the distillation term shared by CS-KD and TF-KD.

    Summed over classes and averaged over the batch (the papers' equations); with ``multiplier``, the
    reference code's ``nn.KLDivLoss()`` instead: averaged over batch x classes, times ``multiplier``.
    The teacher is detached. Callers multiply by tau^2 where their equation does.
    """
    log_p = F.log_softmax(logits.float() / tau, dim=1)
    teacher_probs = teacher_probs.detach().float()
    if multiplier is None:
        return F.kl_div(log_p, teacher_probs, reduction="batchmean")
    return F.kl_div(log_p, teacher_probs, reduction="sum") / log_p.numel() * multiplier


def class_wise_kl(logits: Tensor, partner_logits: Tensor, tau: float) -> Tensor:
    """CS-KD's class-wise regulariser without its weight (Yun et al., CVPR 2020, Eq. 2).

    ``tau^2 * KL(softmax(partner / tau) || softmax(logits / tau))`` summed over classes and averaged
    over the batch. The partner (another sample of the same class) is detached: it only serves as the
    target, as in the reference code (alinlab/cs-kd), where it comes from a no-grad forward.
    """
    tau = _check_temperature(tau)
    return kd_kl(logits, F.softmax(partner_logits.detach().float() / tau, dim=1), tau) * tau**2


class ClassWiseRegularizer(nn.Module):
    """``lambda_cls * class_wise_kl(...)``: the term CS-KD adds to the cross entropy of the first half."""

    def __init__(self, tau: float = 4.0, lambda_cls: float = 1.0) -> None:
        super().__init__()
        self.tau = _check_temperature(tau)
        if lambda_cls < 0:
            raise ValueError(f"lambda_cls must be >= 0; got {lambda_cls}")
        self.lambda_cls = float(lambda_cls)

    def forward(self, logits: Tensor, partner_logits: Tensor) -> Tensor:
        return self.lambda_cls * class_wise_kl(logits, partner_logits, self.tau)


class TFKDSelfLoss(nn.Module):
    """TF-KD self-training (Yuan et al., CVPR 2020, Eq. 8).

    ``(1 - alpha) * CE(logits, y) + alpha * tau^2 * KL(softmax(t / tau) || softmax(s / tau))`` where the
    teacher is a pre-trained model of the same architecture. ``multiplier=None`` uses the batch-mean KL
    of the equation; a number reproduces the reference code, whose ``nn.KLDivLoss()`` averages over
    B x K and is rescaled by that multiplier (equivalent to a weight of ``multiplier / K``).
    """

    def __init__(self, tau: float, alpha: float, multiplier: float | None = None) -> None:
        super().__init__()
        self.tau = _check_temperature(tau)
        self.alpha = check_alpha(alpha)
        self.multiplier = multiplier

    def kd_term(self, logits: Tensor, teacher_logits: Tensor) -> Tensor:
        """``tau^2 * KL(softmax(t / tau) || softmax(s / tau))``, the part weighted by alpha."""
        teacher = F.softmax(teacher_logits.detach().float() / self.tau, dim=1)
        return self.tau**2 * kd_kl(logits, teacher, self.tau, self.multiplier)

    def forward(self, logits: Tensor, labels: Tensor, teacher_logits: Tensor) -> Tensor:
        ce = F.cross_entropy(logits.float(), labels)
        return (1.0 - self.alpha) * ce + self.alpha * self.kd_term(logits, teacher_logits)


def tf_kd_reg_teacher(labels: Tensor, num_classes: int, a: float, tau: float) -> Tensor:
    """The hand-designed teacher of TF-KD reg: softmax(p^d / tau) with p^d = a on the true class and
    (1 - a) / (K - 1) elsewhere (Yuan et al., Eq. 9)."""
    a = check_alpha(a, "a (correct-class probability)")
    p_d = torch.full((labels.shape[0], num_classes), (1.0 - a) / (num_classes - 1), device=labels.device)
    p_d.scatter_(1, labels.long().unsqueeze(1), a)
    return F.softmax(p_d / tau, dim=1)


class TFKDRegLoss(nn.Module):
    """TF-KD with a manually designed regularisation teacher (Yuan et al., CVPR 2020, Eq. 9).

    ``form="paper"``: ``(1 - alpha) * CE + alpha * KL(softmax(p^d / tau) || softmax(s / tau))``, batch-mean.
    ``form="reference"``: the reference code's loss, where the student is *not* softened and the KL is
    ``nn.KLDivLoss()`` (element-wise mean) times ``multiplier``:
    ``(1 - alpha) * CE + alpha * multiplier * mean(KL(softmax(p^d / tau) || softmax(s)))``.
    """

    def __init__(
        self, tau: float, alpha: float, a: float, form: str = "paper", multiplier: float = 1.0
    ) -> None:
        super().__init__()
        if form not in ("paper", "reference"):
            raise ValueError(f"form must be 'paper' or 'reference'; got {form!r}")
        self.tau = _check_temperature(tau)
        self.alpha = check_alpha(alpha)
        self.a = check_alpha(a, "a (correct-class probability)")
        self.form = form
        self.multiplier = float(multiplier)

    def teacher(self, labels: Tensor, num_classes: int) -> Tensor:
        return tf_kd_reg_teacher(labels, num_classes, self.a, self.tau)

    def kd_term(self, logits: Tensor, teacher_probs: Tensor) -> Tensor:
        """The part weighted by alpha, against :meth:`teacher`'s distribution (possibly mixed)."""
        if self.form == "paper":
            return kd_kl(logits, teacher_probs, self.tau)
        return kd_kl(logits, teacher_probs, 1.0, self.multiplier)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        ce = F.cross_entropy(logits.float(), labels)
        return (1.0 - self.alpha) * ce + self.alpha * self.kd_term(logits, self.teacher(labels, logits.shape[1]))
