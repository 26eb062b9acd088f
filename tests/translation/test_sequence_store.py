"""The ragged top-k store of past token predictions (common.sequence_store), single process and 2-rank gloo."""

import re
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


def test_construction_bounds_and_their_messages():
    SequenceStore([0], vocab_size=2, topk=2)  # one empty sentence, the smallest vocabulary, k = V
    assert SequenceStore([0, 3], 4, topk=1).offsets.tolist() == [0, 0, 3]
    for lengths in ([], [2, -1]):
        with pytest.raises(ValueError, match=r"^a sequence store needs the target length \(>= 0\) of at least one "
                                             r"sentence$"):
            SequenceStore(lengths, 5)
    for vocab, topk in ((1, 1), (5, 0), (5, 6)):
        with pytest.raises(ValueError, match=rf"^need a vocabulary of >= 2 tokens and 1 <= topk <= V; got V={vocab}, "
                                             rf"topk={topk}$"):
            SequenceStore([2], vocab, topk=topk)
    with pytest.raises(ValueError, match="remainder must be one of"):
        SequenceStore([2], 5, topk=2, remainder="drop")
    store = SequenceStore(torch.tensor([[2, 1]]), 9)  # lengths are flattened
    assert (store.topk, store.remainder, store.num_sentences, store.num_rows) == (8, "uniform", 2, 3)


def test_a_fresh_store_has_no_past_and_no_first_epoch():
    store = SequenceStore([2, 2], 6, topk=2)
    assert not store.has_past and store.state_dict()["first_epoch"].item() == -1 and store.topk == 2
    store.begin_epoch(0)
    assert not store.has_past
    store.begin_epoch(5)
    assert not store.has_past  # nothing written yet: no epoch has a past


def test_has_past_from_the_epoch_after_the_first_write_and_an_empty_write_counts_for_nothing():
    store = SequenceStore([2, 2], 6, topk=2)
    store.begin_epoch(0)
    store.record_topk(*store.empty_rows())
    store.begin_epoch(1)
    assert not store.has_past
    store.record_topk(torch.tensor([3]), torch.tensor([[0.5, 0.25]]), torch.tensor([[1, 4]]))
    assert not store.has_past  # still the first writing epoch
    store.begin_epoch(2)
    assert store.has_past and store.state_dict()["first_epoch"].item() == 1
    store.record_topk(torch.tensor([0]), torch.tensor([[0.5, 0.25]]), torch.tensor([[1, 4]]))
    assert store.state_dict()["first_epoch"].item() == 1  # later writes keep the first epoch


def test_an_overlong_target_names_the_sentence_the_position_and_the_room_with_the_prefix_counted():
    store = SequenceStore([3, 2, 4], 10, topk=2)
    # sentence 2 has room for positions 2 and 3; sentence 1's first token, at column 0, is its position 2
    with pytest.raises(ValueError, match=r"^sentence id 1 has a target token at position 2 but the store holds 2 "
                                         r"positions for it: build the store from the target lengths of the data set "
                                         r"being trained on$"):
        store.token_rows(torch.tensor([2, 1]), torch.tensor([[5, 6], [7, 8]]), PAD, prefix=2)
    rows, mask = store.token_rows(torch.tensor([1, 0]), torch.tensor([[5, 6, PAD], [7, 8, 9]]), PAD)
    assert rows.tolist() == [3, 4, 0, 1, 2] and mask.tolist() == [[True, True, False], [True, True, True]]
    with pytest.raises(ValueError, match=r"^target has 1 rows but ids has 2"):
        store.token_rows(torch.tensor([0, 1]), torch.tensor([[5]]), PAD)
    with pytest.raises(ValueError, match=r"^ids must lie in \[0, 3\), being sentence ids of the store's 3 sentences; "
                                         r"got 3$"):
        store.token_rows(torch.tensor([3]), torch.tensor([[5]]), PAD)


def test_past_topk_returns_float32_probabilities_int64_tokens_and_flags_and_checks_the_rows():
    store = SequenceStore([1, 2], 40, topk=2)
    store.record_topk(torch.tensor([2]), torch.tensor([[0.5, 0.125]]), torch.tensor([[39, 7]]))
    probs, tokens, filled = store.past_topk(torch.tensor([2, 0]))
    assert (probs.dtype, tokens.dtype, filled.dtype) == (torch.float32, torch.int64, torch.bool)
    assert probs.tolist() == [[0.5, 0.125], [0.0, 0.0]] and tokens.tolist() == [[39, 7], [0, 0]]
    assert filled.tolist() == [True, False]
    with pytest.raises(ValueError, match=r"^rows must lie in \[0, 3\), being token rows of the store's 3 target "
                                         r"tokens; got 3$"):
        store.past_topk(torch.tensor([3]))
    with pytest.raises(ValueError, match=r"^rows must lie in \[0, 3\)"):
        store.record_topk(torch.tensor([3]), torch.zeros(1, 2), torch.zeros(1, 2, dtype=torch.long))


def test_record_topk_refuses_pairs_of_another_shape():
    store = SequenceStore([4], 9, topk=2)
    rows = torch.tensor([0, 1])
    for probs, tokens in ((torch.zeros(2, 3), torch.zeros(2, 3)), (torch.zeros(1, 2), torch.zeros(1, 2)),
                          (torch.zeros(2, 2), torch.zeros(2, 1))):
        with pytest.raises(ValueError, match=rf"^probs and tokens must both be \(n, k\) = \(2, 2\); got "
                                             rf"{re.escape(str(tuple(probs.shape)))} and "
                                             rf"{re.escape(str(tuple(tokens.shape)))}$"):
            store.record_topk(rows, probs, tokens.long())
    assert not store.filled.any()


def test_ranks_write_every_ranks_rows_from_one_int32_block_with_the_float16_bits_exact(monkeypatch):
    """Two ranks stood in for: this one records rows 0 and 2, the other (by the gather) row 4; the block is
    (row, k tokens, k float16 bit patterns) in int32, and every table ends with all three rows bit for bit."""
    import common.distributed as ddp

    theirs = torch.tensor([[4, 6, 1, *torch.tensor([0.3, 0.2], dtype=torch.float16).view(torch.int16).tolist()]],
                          dtype=torch.int32)
    blocks = []

    def gather(block, group=None):
        blocks.append(block.clone())
        return torch.cat([block, theirs])

    monkeypatch.setattr(ddp, "world_size", lambda: 2)
    monkeypatch.setattr(ddp, "all_gather_variable", gather)
    store = SequenceStore([3, 2], 40000, topk=2)  # int32 tokens
    probs = torch.tensor([[0.7, 0.1], [0.6, 0.3]])
    store.record_topk(torch.tensor([0, 2]), probs, torch.tensor([[39999, 5], [2, 3]]))
    (block,) = blocks
    assert block.dtype == torch.int32 and block[:, :3].tolist() == [[0, 39999, 5], [2, 2, 3]]
    assert torch.equal(block[:, 3:].to(torch.int16).view(torch.float16), probs.half())
    got_p, got_t, filled = store.past_topk(torch.tensor([0, 2, 4, 1]))
    assert torch.equal(got_p[:3], torch.cat([probs.half(), torch.tensor([[0.3, 0.2]], dtype=torch.float16)]).float())
    assert got_t.tolist() == [[39999, 5], [2, 3], [6, 1], [0, 0]] and filled.tolist() == [True, True, True, False]


def test_empty_rows_join_a_step_with_nothing_to_record():
    store = SequenceStore([2], 9, topk=3)
    rows, probs, tokens = store.empty_rows()
    assert rows.shape == (0,) and probs.shape == (0, 3) and tokens.shape == (0, 3)
    assert (rows.dtype, probs.dtype, tokens.dtype) == (torch.int64, torch.float32, torch.int64)
    assert rows.device.type == probs.device.type == tokens.device.type == "cpu"
    assert store.empty_rows("meta")[1].device.type == "meta"


def test_densify_never_gives_negative_or_undefined_mass():
    """Rounded float16 pairs may sum past 1: the uniform remainder is then 0, not negative; all-zero pairs
    renormalised stay zero instead of 0 / 0."""
    uniform = SequenceStore([1], 4, topk=2)
    dense = uniform.densify(torch.tensor([[0.75, 0.5]]), torch.tensor([[2, 0]]))
    assert dense.tolist() == [[0.5, 0.0, 0.75, 0.0]]
    renorm = SequenceStore([1], 4, topk=2, remainder="renormalise")
    assert renorm.densify(torch.zeros(1, 2), torch.tensor([[1, 3]])).tolist() == [[0.0, 0.0, 0.0, 0.0]]
    assert renorm.densify(torch.tensor([[0.25, 0.25]]), torch.tensor([[1, 3]])).tolist() == [[0.0, 0.5, 0.0, 0.5]]
    assert uniform.densify(torch.tensor([[0.25, 0.25]]), torch.tensor([[1, 3]])).tolist() == \
        [[0.125, 0.375, 0.125, 0.375]]


def test_dense_reads_and_writes_check_their_arguments():
    store = SequenceStore([3], 5, topk=2)
    with pytest.raises(ValueError, match=r"^the sequence store is indexed by token row: pass ids= "
                                         r"\(SequenceStore\.token_rows\)$"):
        store.past_probs(torch.tensor([0]))
    with pytest.raises(ValueError, match=r"^the sequence store has no mixed inputs: tokens of different sentences do "
                                         r"not mix$"):
        store.past_probs(torch.tensor([0]), ids=torch.tensor([0]), mix=lambda t: t)
    with pytest.raises(ValueError, match=r"^ids has 2 rows but labels has 1"):
        store.past_probs(torch.tensor([0]), ids=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"^the sequence store is indexed by token row: pass the rows "
                                         r"\(SequenceStore\.token_rows\)$"):
        store.record(None, torch.zeros(1, 5))
    for shape in ((1, 4), (5,)):
        with pytest.raises(ValueError, match=rf"^probs must be \(n, V\) with V=5; got shape "
                                             rf"{re.escape(str(shape))}$"):
            store.record(torch.tensor([0]), torch.full(shape, 0.2))
    store.record(torch.tensor([1]), torch.tensor([[0.1, 0.5, 0.05, 0.3, 0.05]]))
    assert store.past_topk(torch.tensor([1]))[1].tolist() == [[1, 3]]  # the top-2 over the vocabulary
    store.end_epoch()


def test_state_dict_fields_and_a_resume_into_a_later_epoch():
    store = SequenceStore([2, 1], 7, topk=2, remainder="renormalise")
    store.begin_epoch(1)
    store.record_topk(torch.tensor([2]), torch.tensor([[0.5, 0.25]]), torch.tensor([[6, 0]]))
    state = store.state_dict()
    assert set(state) == {"probs_bits", "tokens", "filled", "first_epoch", "lengths", "vocab_size", "topk",
                          "remainder"}
    assert (state["vocab_size"], state["topk"], state["remainder"], state["lengths"].tolist()) == \
        (7, 2, "renormalise", [2, 1])
    fresh = SequenceStore([2, 1], 7, topk=2, remainder="renormalise")
    fresh.begin_epoch(3)
    fresh.load_state_dict(state)
    assert fresh.has_past and fresh.state_dict()["first_epoch"].item() == 1  # decided at once, not at the next epoch
    assert fresh.past_topk(torch.tensor([2]))[0].tolist() == [[0.5, 0.25]]
    with pytest.raises(ValueError, match=r"^the saved sequence store does not fit this run: it holds V=7, topk=2 for "
                                         r"2 sentences, this run needs V=8, topk=2 for 2 \(or the target lengths "
                                         r"differ\)\. Resume with the same data, dictionary and --pskd-topk, or start "
                                         r"a new run\.$"):
        SequenceStore([2, 1], 8, topk=2).load_state_dict(state)
    with pytest.raises(ValueError, match="for 2 sentences, this run needs V=7, topk=2 for 3"):
        SequenceStore([2, 1, 1], 7, topk=2).load_state_dict(state)


def test_a_store_written_before_any_begin_epoch_counts_that_as_epoch_0():
    """fairseq's int32 target sizes become int64 lengths; a write before ``begin_epoch`` belongs to epoch 0, and
    the first writing epoch, an int64 scalar, stays 0 through later writes."""
    import numpy

    store = SequenceStore(numpy.array([2, 1], dtype=numpy.int32), 6, topk=2)
    assert store.state_dict()["lengths"].dtype == torch.int64
    store.record_topk(torch.tensor([1, 2], dtype=torch.int32), torch.full((2, 2), 0.25), torch.tensor([[1, 2], [3, 4]]))
    assert store.tokens[1:].tolist() == [[1, 2], [3, 4]] and store.filled.tolist() == [False, True, True]
    store.begin_epoch(1)
    assert store.has_past
    store.begin_epoch(2)
    store.record_topk(torch.tensor([0]), torch.full((1, 2), 0.25), torch.tensor([[1, 2]]))
    first = store.state_dict()["first_epoch"]
    assert first.dtype == torch.int64 and first.item() == 0


def test_reads_answer_on_the_asked_device():
    """A "meta" device stands in for the model's GPU: past_topk and past_probs answer there, empty_rows builds
    there, and densify keeps the probabilities' dtype and device."""
    meta = torch.device("meta")
    for remainder in ("uniform", "renormalise"):
        store = SequenceStore([2, 1], 6, topk=2, remainder=remainder)
        store.record_topk(torch.tensor([1]), torch.tensor([[0.5, 0.25]]), torch.tensor([[3, 1]]))
        rows = torch.tensor([1, 2])
        assert [t.device.type for t in store.past_topk(rows, meta)] == ["meta"] * 3
        dense = store.past_probs(torch.tensor([0, 5], device=meta), ids=rows)
        assert dense.device.type == "meta" and dense.shape == (2, 6) and dense.dtype == torch.float32
        wide = store.densify(torch.tensor([[0.5, 0.25]], dtype=torch.float64), torch.tensor([[3, 1]]))
        assert wide.dtype == torch.float64
    assert [t.device.type for t in store.empty_rows(meta)] == ["meta"] * 3
