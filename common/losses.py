"""Losses of PS-KD and of its rivals: pure functions over target distributions, plus thin modules.

As in timm's ``loss/cross_entropy.py``, every function takes the targets as (B, K) distributions, so a
trainer that mixes its inputs (CutMix) mixes the targets and calls the same function; the label-taking
modules (:class:`LabelSmoothingCrossEntropy`, :class:`ClassWiseRegularizer`, :class:`TFKDSelfLoss`,
:class:`TFKDRegLoss`) only build the targets from labels and call them. Every loss is averaged over the
batch, as in the papers' equations, unless it reproduces a reference code's reduction. The token losses
(:func:`pskd_token_loss`, :func:`topk_token_loss`) follow fairseq's ``label_smoothed_nll_loss`` instead:
(loss, nll_loss), summed over tokens unless ``reduce=False``.
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
                    ignore_index: int | None = None, reduce: bool = True) -> tuple[Tensor, Tensor]:
    """PS-KD's loss on tokens: H((1 - alpha) y_eps + alpha p_{t-1}, q) (paper, Eq. 4).

    ``lprobs`` (N, V) are the student's log-probabilities, ``target`` (N,) the reference tokens,
    ``past_probs`` (N, V) the previous epoch's probabilities. ``y_eps`` is label smoothing as fairseq
    defines it (1 - eps on the reference, eps / (V - 1) on every other token), so that ``alpha = 0``
    is exactly fairseq's ``label_smoothed_nll_loss``. Cross entropy is linear in the target, so the
    (N, V) target is never built. Positions where ``target == ignore_index`` count zero.
    Returns (loss, nll_loss): summed over tokens, or with ``reduce=False`` per token in the shape that
    fairseq's ``label_smoothed_nll_loss`` gives them.
    """
    smooth = -lprobs.sum(dim=-1, keepdim=True)
    soft = -(past_probs.to(lprobs.dtype) * lprobs).sum(dim=-1, keepdim=True)
    return _token_loss(lprobs, target, smooth, soft, alpha, epsilon, ignore_index, reduce)


REMAINDERS = ("uniform", "renormalise")


def check_remainder(remainder: str) -> str:
    """Return ``remainder``, or raise ValueError unless it is one of :data:`REMAINDERS`: where the probability
    mass outside a stored top-k goes (:func:`topk_token_loss`, :class:`~common.sequence_store.SequenceStore`)."""
    if remainder not in REMAINDERS:
        raise ValueError(f"remainder must be one of {REMAINDERS}; got {remainder!r}")
    return remainder


def topk_token_loss(lprobs: Tensor, target: Tensor, past_probs: Tensor, past_tokens: Tensor, alpha: Tensor | float,
                    epsilon: float = 0.0, ignore_index: int | None = None, remainder: str = "uniform",
                    reduce: bool = True) -> tuple[Tensor, Tensor]:
    """PS-KD's token loss (paper, Eq. 4) with a top-k past: H((1 - a) y_eps + a p_{t-1}, q).

    ``lprobs`` (N, V) log-probabilities of the student, ``target`` (N,), ``past_probs`` / ``past_tokens``
    (N, k) the previous epoch's top-k pairs, ``alpha`` a float or an (N,) per-token weight (0 where a token
    has no past yet: its target is the smoothed one-hot). ``y_eps`` is fairseq's label smoothing (1 - eps
    on the reference, eps / (V - 1) elsewhere), as in :func:`pskd_token_loss`. The past is
    :meth:`~common.sequence_store.SequenceStore.densify`'s: the k entries plus the remainder spread
    uniformly (r / V on every token), or the k entries renormalised. Cross entropy is linear in the target,
    so the (N, V) target is never built: H(p, q) = -sum_k p_k log q[t_k] - (r / V) sum_v log q_v.
    Returns (loss, nll_loss), summed or (``reduce=False``) per token as :func:`pskd_token_loss` does.
    """
    check_remainder(remainder)
    smooth = -lprobs.sum(dim=-1, keepdim=True)
    past_probs = past_probs.to(lprobs.dtype)
    total = past_probs.sum(dim=-1, keepdim=True)
    picked = -lprobs.gather(dim=-1, index=past_tokens.long())
    if remainder == "renormalise":
        soft = (past_probs * picked).sum(dim=-1, keepdim=True) / total.clamp_min(torch.finfo(total.dtype).tiny)
    else:
        rest = (1.0 - total).clamp_min(0.0) / lprobs.size(-1)
        soft = (past_probs * picked).sum(dim=-1, keepdim=True) + rest * smooth
    return _token_loss(lprobs, target, smooth, soft, alpha, epsilon, ignore_index, reduce)


def _token_loss(lprobs: Tensor, target: Tensor, smooth: Tensor, soft: Tensor, alpha: Tensor | float, epsilon: float,
                ignore_index: int | None, reduce: bool) -> tuple[Tensor, Tensor]:
    """``(1 - alpha) * label-smoothed loss + alpha * soft`` and the nll, per (N, 1) token, pads zeroed, then
    reduced as fairseq's ``label_smoothed_nll_loss`` does: summed, or left (N, 1) with an ``ignore_index`` and
    (N,) without one. ``smooth`` is -sum_v log q_v, ``soft`` the cross entropy against the past."""
    target = target.unsqueeze(-1)
    nll = -lprobs.gather(dim=-1, index=target)
    if ignore_index is not None:
        pad = target.eq(ignore_index)
        nll, smooth, soft = (t.masked_fill(pad, 0.0) for t in (nll, smooth, soft))
    eps_i = epsilon / (lprobs.size(-1) - 1)
    hard = (1.0 - epsilon - eps_i) * nll + eps_i * smooth
    if isinstance(alpha, Tensor):
        alpha = alpha.to(lprobs.dtype).reshape(-1, 1)
    loss = (1.0 - alpha) * hard + alpha * soft
    if reduce:
        return loss.sum(), nll.sum()
    if ignore_index is None:
        return loss.squeeze(-1), nll.squeeze(-1)
    return loss, nll


def label_smoothing_targets(labels: Tensor, num_classes: int, epsilon: float) -> Tensor:
    """Label smoothing (Szegedy et al. 2016; supplement A.2): ``(1 - eps) * y + eps / K``."""
    epsilon = check_alpha(epsilon, "epsilon")
    return one_hot(labels, num_classes) * (1.0 - epsilon) + epsilon / num_classes


class LabelSmoothingCrossEntropy(nn.Module):
    """Cross entropy against label-smoothed targets (supplement A.2, eq. for y_LS): the
    :func:`soft_target_cross_entropy` of :func:`label_smoothing_targets`."""

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


def softened_teacher(logits: Tensor, tau: float) -> Tensor:
    """``softmax(logits / tau)``, detached, in float32: a teacher's (or CS-KD partner's) softened
    distribution, the target of :func:`kd_kl`. It only serves as a target, as in the reference codes
    (alinlab/cs-kd train.py lines 136-137, a no-grad forward; Yuan et al.'s train_kd.py line 105,
    ``requires_grad=False``)."""
    return F.softmax(logits.detach().float() / _check_temperature(tau), dim=1)


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


def class_wise_kl(logits: Tensor, partner_probs: Tensor, tau: float) -> Tensor:
    """CS-KD's class-wise regulariser without its weight (Yun et al., CVPR 2020, Eq. 2).

    ``tau^2 * KL(partner_probs || softmax(logits / tau))`` summed over classes and averaged over the batch
    (alinlab/cs-kd train.py lines 95-104, ``KDLoss``). ``partner_probs`` is the softened distribution of
    another sample of the same class, :func:`softened_teacher` of its logits (mixed like the inputs
    where they were mixed); it is detached.
    """
    tau = _check_temperature(tau)
    return kd_kl(logits, partner_probs, tau) * tau**2


class ClassWiseRegularizer(nn.Module):
    """``lambda_cls * class_wise_kl(logits, softened_teacher(partner_logits, tau), tau)``: the term CS-KD
    adds to the cross entropy of the first half of its pair batch."""

    def __init__(self, tau: float = 4.0, lambda_cls: float = 1.0) -> None:
        super().__init__()
        self.tau = _check_temperature(tau)
        if lambda_cls < 0:
            raise ValueError(f"lambda_cls must be >= 0; got {lambda_cls}")
        self.lambda_cls = float(lambda_cls)

    def forward(self, logits: Tensor, partner_logits: Tensor) -> Tensor:
        return self.lambda_cls * class_wise_kl(logits, softened_teacher(partner_logits, self.tau), self.tau)


def tf_kd_self_loss(logits: Tensor, targets: Tensor, teacher_probs: Tensor, alpha: float, tau: float,
                    multiplier: float | None = None) -> Tensor:
    """TF-KD self-training (Yuan et al., CVPR 2020, Eq. 8) against target distributions.

    ``(1 - alpha) * H(targets, softmax(s)) + alpha * tau^2 * KL(teacher_probs || softmax(s / tau))``, where
    ``teacher_probs`` is :func:`softened_teacher` of a pre-trained model of the same architecture and
    ``targets`` the (possibly mixed) one-hot labels. ``multiplier=None``: the batch-mean KL of the
    equation; a number: Yuan et al.'s code (my_loss_function.py ``loss_kd_self``, line 27), whose
    ``nn.KLDivLoss()`` averages over B x K, times that multiplier (a weight of ``multiplier / K``).
    """
    alpha, tau = check_alpha(alpha), _check_temperature(tau)
    kd = tau**2 * kd_kl(logits, teacher_probs, tau, multiplier)
    return (1.0 - alpha) * soft_target_cross_entropy(logits, targets) + alpha * kd


class TFKDSelfLoss(nn.Module):
    """:func:`tf_kd_self_loss` on hard labels and the teacher's logits."""

    def __init__(self, tau: float, alpha: float, multiplier: float | None = None) -> None:
        super().__init__()
        self.tau = _check_temperature(tau)
        self.alpha = check_alpha(alpha)
        self.multiplier = multiplier

    def forward(self, logits: Tensor, labels: Tensor, teacher_logits: Tensor) -> Tensor:
        return tf_kd_self_loss(logits, one_hot(labels, logits.shape[1]), softened_teacher(teacher_logits, self.tau),
                               self.alpha, self.tau, self.multiplier)


def tf_kd_reg_teacher(labels: Tensor, num_classes: int, a: float, tau: float) -> Tensor:
    """The hand-designed teacher of TF-KD reg: softmax(p^d / tau) with p^d = a on the true class and
    (1 - a) / (K - 1) elsewhere (Yuan et al., Eq. 9; my_loss_function.py lines 43-47)."""
    a = check_alpha(a, "a (correct-class probability)")
    p_d = torch.full((labels.shape[0], num_classes), (1.0 - a) / (num_classes - 1), device=labels.device)
    p_d.scatter_(1, labels.long().unsqueeze(1), a)
    return F.softmax(p_d / tau, dim=1)


TF_KD_REG_FORMS = ("paper", "reference")


def _check_form(form: str) -> str:
    if form not in TF_KD_REG_FORMS:
        raise ValueError(f"form must be one of {', '.join(TF_KD_REG_FORMS)}; got {form!r}")
    return form


def tf_kd_reg_loss(logits: Tensor, targets: Tensor, teacher_probs: Tensor, alpha: float, tau: float,
                   form: str = "paper", multiplier: float = 1.0) -> Tensor:
    """TF-KD with a manually designed regularisation teacher (Yuan et al., CVPR 2020, Eq. 9).

    ``teacher_probs`` is :func:`tf_kd_reg_teacher` (mixed like the inputs where they were mixed), ``targets``
    the (possibly mixed) one-hot labels.
    ``form="paper"``: ``(1 - alpha) * H(targets, q) + alpha * KL(teacher || softmax(s / tau))``, batch-mean.
    ``form="reference"``: Yuan et al.'s code (my_loss_function.py ``loss_kd_regularization``, line 47),
    where the student is *not* softened and the KL is ``nn.KLDivLoss()`` (element-wise mean) times
    ``multiplier``: ``(1 - alpha) * H(targets, q) + alpha * multiplier * mean(KL(teacher || softmax(s)))``.
    """
    alpha, tau = check_alpha(alpha), _check_temperature(tau)
    if _check_form(form) == "paper":
        kd = kd_kl(logits, teacher_probs, tau)
    else:
        kd = kd_kl(logits, teacher_probs, 1.0, float(multiplier))
    return (1.0 - alpha) * soft_target_cross_entropy(logits, targets) + alpha * kd


class TFKDRegLoss(nn.Module):
    """:func:`tf_kd_reg_loss` on hard labels, with the teacher :func:`tf_kd_reg_teacher` built from them."""

    def __init__(
        self, tau: float, alpha: float, a: float, form: str = "paper", multiplier: float = 1.0
    ) -> None:
        super().__init__()
        self.tau = _check_temperature(tau)
        self.alpha = check_alpha(alpha)
        self.a = check_alpha(a, "a (correct-class probability)")
        self.form = _check_form(form)
        self.multiplier = float(multiplier)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        teacher = tf_kd_reg_teacher(labels, logits.shape[1], self.a, self.tau)
        return tf_kd_reg_loss(logits, one_hot(labels, logits.shape[1]), teacher, self.alpha, self.tau, self.form,
                              self.multiplier)
