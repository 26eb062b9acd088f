from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss

from common import pskd_token_loss
from translation.criterion import PSKDCriterion

PAD = 1


def _batch():
    torch.manual_seed(0)
    lprobs = F.log_softmax(torch.randn(5, 6), dim=-1)
    past = F.softmax(torch.randn(5, 6), dim=-1)
    target = torch.tensor([2, 4, PAD, 0, PAD])
    return lprobs, target, past


def test_alpha_zero_is_exactly_fairseqs_label_smoothed_loss():
    lprobs, target, past = _batch()
    for eps in (0.0, 0.1):
        ours = pskd_token_loss(lprobs, target, past, 0.0, eps, ignore_index=PAD)
        theirs = label_smoothed_nll_loss(lprobs, target, eps, ignore_index=PAD)
        torch.testing.assert_close(ours[0], theirs[0])
        torch.testing.assert_close(ours[1], theirs[1])


def test_pskd_token_loss_by_hand_with_padding_and_label_smoothing():
    lprobs, target, past = _batch()
    alpha, eps, vocab = 0.6, 0.1, 6
    expected = 0.0
    for row, t, p in zip(lprobs.tolist(), target.tolist(), past.tolist(), strict=True):
        if t == PAD:
            continue
        y = [eps / (vocab - 1)] * vocab
        y[t] = 1 - eps
        q = [(1 - alpha) * a + alpha * b for a, b in zip(y, p, strict=True)]
        expected += -sum(qi * li for qi, li in zip(q, row, strict=True))
    loss, nll = pskd_token_loss(lprobs, target, past, alpha, eps, ignore_index=PAD)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert nll.item() == pytest.approx(-(lprobs[0, 2] + lprobs[1, 4] + lprobs[3, 0]).item(), rel=1e-6)


class _Task:
    def __init__(self):
        self.target_dictionary = SimpleNamespace(pad=lambda: PAD)
        self.seen = []

    def begin_epoch(self, epoch, model):
        self.seen.append(epoch)


def test_teacher_is_refreshed_at_every_epoch_start_and_never_registered():
    task = _Task()
    criterion = PSKDCriterion(task, sentence_avg=False, label_smoothing=0.1, alpha_T=0.8, max_epoch=4)
    model = torch.nn.Linear(3, 3)
    task.begin_epoch(1, model)
    assert task.seen == [1] and criterion.alpha == pytest.approx(0.2) and not criterion.teacher.ready
    task.begin_epoch(2, model)
    assert criterion.alpha == pytest.approx(0.4) and criterion.teacher.ready
    x = torch.randn(2, 3)
    torch.testing.assert_close(criterion.teacher(x), model(x))
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not torch.allclose(criterion.teacher(x), model(x))  # frozen until the next epoch
    task.begin_epoch(3, model)
    torch.testing.assert_close(criterion.teacher(x), model(x))
    assert criterion.state_dict() == {} and list(criterion.parameters()) == []
    assert not criterion.teacher.model.training


def test_linear_schedule_needs_max_epoch_and_alpha_is_checked():
    with pytest.raises(ValueError, match=r"epochs must be given.*--max-epoch"):
        PSKDCriterion(_Task(), False, 0.1, alpha_T=0.8, max_epoch=0)
    with pytest.raises(ValueError, match=r"alpha_T must lie in \[0, 1\]"):
        PSKDCriterion(_Task(), False, 0.1, alpha_T=1.5, max_epoch=3)


def test_fixed_schedule_runs_without_max_epoch():
    criterion = PSKDCriterion(_Task(), False, 0.1, alpha_T=0.3, pskd_schedule="fixed", max_epoch=0)
    criterion.begin_epoch(7, torch.nn.Linear(3, 3))
    assert criterion.alpha == pytest.approx(0.3) and criterion.teacher.ready
