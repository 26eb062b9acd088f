"""PS-KD's targets in the Trainer against the paper's formula (Eq. 4), computed here by hand."""

import math

import torch
import torch.nn.functional as F
from tiny import VOCAB

from common import LabelSmoothingCrossEntropy, LinearAlpha
from huggingface.stores import IGNORE_INDEX, ExamplePSKD, TokenPSKD


def test_classifier_loss_is_eq4_against_the_previous_epochs_softmax():
    pskd = ExamplePSKD(num_examples=6, num_classes=3, sharing="replicated")
    pskd.start(LinearAlpha(0.8, 4))
    ids, labels = torch.tensor([4, 1, 5]), torch.tensor([2, 0, 1])
    first, second = torch.randn(3, 3), torch.randn(3, 3)
    assert pskd.begin_epoch(0) == 0.8 * 1 / 4
    loss0, n = pskd.loss_sum(first, labels, ids)  # epoch 0: no row written yet, the one-hot label
    assert n == 3
    torch.testing.assert_close(loss0, F.cross_entropy(first, labels, reduction="sum"))
    pskd.end_epoch()
    alpha = pskd.begin_epoch(1)
    assert math.isclose(alpha, 0.8 * 2 / 4)
    loss1, _ = pskd.loss_sum(second, labels, ids)
    hand = 0.0
    for b in range(3):
        past = [math.exp(v) / sum(math.exp(u) for u in first[b].tolist()) for v in first[b].tolist()]
        log_q = [v - math.log(sum(math.exp(u) for u in second[b].tolist())) for v in second[b].tolist()]
        for k in range(3):
            target = (1 - alpha) * (k == labels[b]) + alpha * past[k]
            hand -= target * log_q[k]
    assert math.isclose(loss1.item(), hand, rel_tol=1e-5)


def _rows(store, i):
    return store.offsets[i].item(), store.offsets[i + 1].item()


def test_causal_lm_store_is_keyed_by_example_and_shifted_position_skipping_minus_100():
    lengths = [2, 4]  # example 0: labels of length 3, example 1: of length 5, less the first position (the shift)
    pskd = TokenPSKD(lengths, VOCAB, topk=3, shift=True)
    pskd.start(LinearAlpha(0.8, 2))
    pskd.begin_epoch(0)
    labels = torch.tensor([[5, 6, IGNORE_INDEX, 8, 9], [7, 8, 9, IGNORE_INDEX, IGNORE_INDEX]])
    ids = torch.tensor([1, 0])  # batch row 0 is example 1, batch row 1 example 0
    logits = torch.randn(2, 5, VOCAB)
    pskd.loss_sum(logits, labels, ids)
    store = pskd.store
    assert store.num_rows == 6
    start0, end0 = _rows(store, 0)
    start1, end1 = _rows(store, 1)
    # example 0: logits at columns 0, 1 score labels 8, 9 -> its rows 0, 1
    assert store.filled[start0:end0].tolist() == [True, True]
    # example 1: shifted labels [6, -100, 8, 9] -> positions 0, 2, 3 written, 1 skipped
    assert store.filled[start1:end1].tolist() == [True, False, True, True]
    top = F.softmax(logits[0, 2], dim=-1).topk(3)
    torch.testing.assert_close(store.probs[start1 + 2].float(), top.values, atol=1e-3, rtol=1e-3)
    assert store.tokens[start1 + 2].long().tolist() == top.indices.tolist()


def test_token_loss_is_eq4_with_the_stored_top_k_and_the_uniform_remainder():
    pskd = TokenPSKD([3], VOCAB, topk=4)  # seq2seq: no shift
    pskd.start(LinearAlpha(0.6, 2))
    labels, ids = torch.tensor([[4, 9, IGNORE_INDEX]]), torch.tensor([0])
    first, second = torch.randn(1, 3, VOCAB), torch.randn(1, 3, VOCAB)
    pskd.begin_epoch(0)
    loss0, n = pskd.loss_sum(first, labels, ids)
    assert n.item() == 2
    torch.testing.assert_close(loss0, F.cross_entropy(first[0, :2], labels[0, :2], reduction="sum"))
    pskd.end_epoch()
    alpha = pskd.begin_epoch(1)
    loss1, _ = pskd.loss_sum(second, labels, ids)
    hand = 0.0
    for j in range(2):
        p = torch.softmax(first[0, j], -1).tolist()
        top = sorted(range(VOCAB), key=lambda v: -p[v])[:4]
        kept = [float(torch.tensor(p[v]).half()) for v in top]  # the store keeps float16
        rest = (1 - sum(kept)) / VOCAB
        past = [rest + (kept[top.index(v)] if v in top else 0.0) for v in range(VOCAB)]
        log_q = torch.log_softmax(second[0, j], -1).tolist()
        hand -= sum(((1 - alpha) * (v == labels[0, j]) + alpha * past[v]) * log_q[v] for v in range(VOCAB))
    assert math.isclose(loss1.item(), hand, rel_tol=1e-5)


def test_label_smoothing_rival_is_the_hosts_label_smoother():
    from transformers.trainer_pt_utils import LabelSmoother

    logits, labels = torch.randn(5, 7), torch.randint(0, 7, (5,))
    host = LabelSmoother(epsilon=0.1)({"logits": logits}, labels)
    torch.testing.assert_close(host, LabelSmoothingCrossEntropy(0.1)(logits, labels))


def test_ls_and_baseline_runs_use_the_hosts_trainer_and_factor(tmp_path):
    from huggingface.train import parse_args, training_arguments

    args = training_arguments(parse_args(["--task", "image", "--method", "ls", "--out", str(tmp_path)]))
    assert type(args).__name__ == "TrainingArguments" and args.label_smoothing_factor == 0.1
