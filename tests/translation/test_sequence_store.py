"""The ragged top-k store of past token predictions (common.sequence_store), single process and 2-rank gloo."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss

from common import PSKD, FixedAlpha, SequenceStore, topk_token_loss

PAD = 1
WORKER = Path(__file__).with_name("sequence_store_worker.py")


def test_rows_follow_sentence_offsets_and_skip_padding():
    store = SequenceStore([3, 1, 4], vocab_size=10, topk=2)
    target = torch.tensor([[5, 6, 7, PAD], [8, 9, 2, 3]])
    rows, mask = store.token_rows(torch.tensor([0, 2]), target, PAD)
    assert rows.tolist() == [0, 1, 2, 4, 5, 6, 7] and mask.sum().item() == 7
    rows, _ = store.token_rows(torch.tensor([2]), torch.tensor([[8, 9]]), PAD, prefix=2)
    assert rows.tolist() == [6, 7]
    with pytest.raises(ValueError, match="at position 1 but the store holds 1 positions"):
        store.token_rows(torch.tensor([1]), torch.tensor([[5, 6]]), PAD)
    with pytest.raises(ValueError, match="ids must lie in"):
        store.token_rows(torch.tensor([3]), torch.tensor([[5]]), PAD)


def test_token_dtype_and_bytes():
    small, large = SequenceStore([5, 7], 32768, topk=8), SequenceStore([5, 7], 40000, topk=8)
    assert small.tokens.dtype == torch.int16 and large.tokens.dtype == torch.int32
    assert small.probs.dtype == torch.float16 and small.probs.shape == (12, 8)
    assert small.nbytes == 12 * 8 * (2 + 2) + 12 + 3 * 8
    assert large.nbytes == 12 * 8 * (2 + 4) + 12 + 3 * 8


def test_record_keeps_the_top_k_in_float16_and_densify_places_the_remainder():
    torch.manual_seed(1)
    probs = F.softmax(torch.randn(4, 9) * 2, dim=1)
    rows = torch.tensor([3, 0, 5, 2])
    for remainder in ("uniform", "renormalise"):
        store = SequenceStore([2, 4], 9, topk=3, remainder=remainder)
        store.record(rows, probs)
        got_p, got_t, filled = store.past_topk(rows)
        values, tokens = probs.topk(3, dim=1)
        assert torch.equal(got_t, tokens) and torch.equal(got_p, values.half().float()) and bool(filled.all())
        dense = store.past_probs(torch.zeros(4, dtype=torch.long), ids=rows)
        torch.testing.assert_close(dense.sum(1), torch.ones(4))
        kept = values.half().float()
        if remainder == "uniform":
            expected = ((1 - kept.sum(1, keepdim=True)) / 9).expand(4, 9).clone()
        else:
            kept, expected = kept / kept.sum(1, keepdim=True), torch.zeros(4, 9)
        for i in range(4):
            for j in range(3):
                expected[i, tokens[i, j]] += kept[i, j]
        torch.testing.assert_close(dense, expected)
    unwritten = SequenceStore([2, 4], 9, topk=3).past_probs(torch.tensor([4]), ids=torch.tensor([1]))
    assert torch.equal(unwritten, F.one_hot(torch.tensor([4]), 9).float())


def _dense_reference(lprobs, target, past_p, past_t, alpha, eps, remainder):
    """Eq. 4's target built in full, (1 - a) y_eps + a p, then -sum target * log q over non-pad tokens."""
    n, vocab = lprobs.shape
    total = torch.zeros(())
    for i in range(n):
        if target[i] == PAD:
            continue
        y = torch.full((vocab,), eps / (vocab - 1))
        y[target[i]] = 1 - eps
        kept = past_p[i] / past_p[i].sum() if remainder == "renormalise" else past_p[i]
        p = torch.zeros(vocab) if remainder == "renormalise" else torch.full((vocab,), (1 - past_p[i].sum()) / vocab)
        p = p.index_add(0, past_t[i], kept)
        a = alpha[i] if isinstance(alpha, torch.Tensor) else alpha
        total = total - (((1 - a) * y + a * p) * lprobs[i]).sum()
    return total


@pytest.mark.parametrize("remainder", ["uniform", "renormalise"])
def test_topk_loss_equals_the_dense_target_cross_entropy(remainder):
    torch.manual_seed(2)
    lprobs = F.log_softmax(torch.randn(6, 11), dim=-1)
    target = torch.tensor([2, PAD, 4, 0, 7, PAD])
    past_p, past_t = F.softmax(torch.randn(6, 11), dim=-1).topk(4, dim=-1)
    alpha = torch.tensor([0.3, 0.3, 0.0, 0.3, 0.3, 0.3])
    loss, nll = topk_token_loss(lprobs, target, past_p, past_t, alpha, 0.1, ignore_index=PAD, remainder=remainder)
    expected = _dense_reference(lprobs, target, past_p, past_t, alpha, 0.1, remainder)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(nll, -(lprobs[[0, 2, 3, 4], [2, 4, 0, 7]]).sum())


def test_alpha_zero_is_fairseqs_label_smoothing():
    torch.manual_seed(3)
    lprobs = F.log_softmax(torch.randn(5, 7), dim=-1)
    target = torch.tensor([2, 4, PAD, 0, PAD])
    past_p, past_t = F.softmax(torch.randn(5, 7), dim=-1).topk(3, dim=-1)
    ours = topk_token_loss(lprobs, target, past_p, past_t, 0.0, 0.1, ignore_index=PAD)
    theirs = label_smoothed_nll_loss(lprobs, target, 0.1, ignore_index=PAD)
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-6, atol=1e-6)


def test_pskd_drives_the_store_with_token_rows():
    """PSKD's generic path on a small vocabulary: epoch 0 hard targets, epoch 1 the stored top-k rows."""
    torch.manual_seed(4)
    store = SequenceStore([2, 3], vocab_size=6, topk=2)
    pskd = PSKD(FixedAlpha(0.5), store)
    logits = torch.randn(5, 6)
    labels = torch.tensor([1, 2, 3, 4, 5])
    rows, _ = store.token_rows(torch.tensor([0, 1]), torch.tensor([[1, 2, 0], [3, 4, 5]]), pad=0)
    pskd.begin_epoch(0)
    assert torch.equal(pskd.targets(labels, ids=rows), F.one_hot(labels, 6).float())
    pskd.loss(logits, labels, ids=rows)
    pskd.end_epoch()
    values, tokens = F.softmax(logits, dim=1).topk(2, dim=1)
    past = ((1 - values.half().float().sum(1, keepdim=True)) / 6).expand(5, 6).clone()
    past = past.scatter_add(1, tokens, values.half().float())
    torch.testing.assert_close(pskd.targets(labels, ids=rows), 0.5 * F.one_hot(labels, 6).float() + 0.5 * past)


def test_state_dict_round_trip_and_mismatch():
    torch.manual_seed(5)
    store = SequenceStore([3, 2], 50, topk=4)
    store.begin_epoch(1)
    store.record(torch.tensor([0, 4]), F.softmax(torch.randn(2, 50), dim=1))
    store.end_epoch()
    saved = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in store.state_dict().items()}
    assert saved["probs_bits"].dtype == torch.int16  # fairseq's move_to_cpu would widen float16
    fresh = SequenceStore([3, 2], 50, topk=4)
    fresh.load_state_dict(saved)
    fresh.begin_epoch(1)  # a checkpoint of the middle or end of epoch 1 resumed in epoch 1: no past yet
    assert not fresh.has_past
    fresh.begin_epoch(2)
    assert fresh.has_past and torch.equal(fresh.probs, store.probs) and torch.equal(fresh.tokens, store.tokens)
    assert torch.equal(fresh.filled, store.filled)
    with pytest.raises(ValueError, match="--pskd-topk"):
        SequenceStore([3, 2], 50, topk=8).load_state_dict(saved)
    with pytest.raises(ValueError, match="target lengths differ"):
        SequenceStore([2, 3], 50, topk=4).load_state_dict(saved)


def test_state_dict_is_live():
    """A checkpoint written later (fairseq's task_state holds the dict) sees rows recorded after state_dict()."""
    store = SequenceStore([2], 5, topk=1)
    state = store.state_dict()
    store.begin_epoch(4)
    store.record_topk(torch.tensor([1]), torch.tensor([[0.75]]), torch.tensor([[3]]))
    assert state["probs_bits"][1, 0].item() == torch.tensor(0.75, dtype=torch.float16).view(torch.int16).item()
    assert state["tokens"][1, 0].item() == 3 and bool(state["filled"][1]) and state["first_epoch"].item() == 4


def test_two_gloo_ranks_hold_the_single_process_store(tmp_path, launch_gloo_ranks):
    (single,) = launch_gloo_ranks(WORKER, tmp_path, "store", 1)
    ranks = launch_gloo_ranks(WORKER, tmp_path, "store", 2)
    assert bool(single["filled"].all())
    for result in ranks:
        for key in ("probs", "tokens", "filled"):
            assert torch.equal(result[key], single[key]), key
