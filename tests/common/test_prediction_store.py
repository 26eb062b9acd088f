from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F

from common import PSKD, LinearAlpha, PredictionStore, one_hot, soften_targets
from common.past_predictions import check_batch, check_indices


def _probs(n, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.softmax(torch.randn(n, k, generator=g) * 3, dim=1)


def test_unwritten_rows_read_as_one_hot():
    store = PredictionStore(10, 4)
    labels = torch.tensor([3, 0, 2])
    torch.testing.assert_close(store.past_probs(labels, ids=torch.tensor([7, 1, 4])), one_hot(labels, 4))


def test_record_then_read_returns_the_same_rows_exactly_in_fp32():
    store = PredictionStore(20, 5)
    ids = torch.tensor([3, 17, 8, 0])
    probs = _probs(4, 5)
    store.record(ids, probs)
    labels = torch.zeros(4, dtype=torch.long)
    assert torch.equal(store.past_probs(labels, ids=ids), probs)
    mixed = torch.tensor([8, 5])  # one written row, one unwritten
    got = store.past_probs(torch.tensor([1, 2]), ids=mixed)
    assert torch.equal(got[0], probs[2]) and torch.equal(got[1], one_hot(torch.tensor([2]), 5)[0])


@pytest.mark.parametrize(("dtype", "bound"), [("float16", 2**-11), ("bfloat16", 2**-8)])
def test_half_precision_stores_are_within_their_rounding_error(dtype, bound):
    store = PredictionStore(100, 10, dtype=dtype)
    ids = torch.randperm(100)[:64]
    probs = _probs(64, 10)
    store.record(ids, probs)
    got = store.past_probs(torch.zeros(64, dtype=torch.long), ids=ids)
    # relative rounding error of the format, on values <= 1
    assert (got - probs).abs().max().item() <= bound
    assert store.table.dtype == getattr(torch, dtype)
    assert store.nbytes == 100 * 10 * 2 + 100


def test_state_dict_round_trip_and_weights_only_load(tmp_path):
    store = PredictionStore(30, 6, dtype="bfloat16")
    ids = torch.arange(0, 30, 2)
    store.record(ids, _probs(15, 6))
    torch.save(store.state_dict(), tmp_path / "store.pt")
    state = torch.load(tmp_path / "store.pt", weights_only=True)
    assert state["table"].dtype == torch.bfloat16
    restored = PredictionStore(30, 6, dtype="bfloat16")
    restored.load_state_dict(state)
    assert torch.equal(restored.table, store.table) and torch.equal(restored.filled, store.filled)


@pytest.mark.parametrize(("n", "k", "dtype"), [(31, 6, "float32"), (30, 7, "float32"), (30, 6, "float16")])
def test_state_of_another_shape_or_dtype_is_refused_with_a_clear_message(n, k, dtype):
    state = PredictionStore(30, 6).state_dict()
    with pytest.raises(ValueError, match=r"does not fit this run.*30 samples x 6 classes in float32"):
        PredictionStore(n, k, dtype=dtype).load_state_dict(state)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="dtype"):
        PredictionStore(4, 3, dtype="int8")
    with pytest.raises(ValueError, match="sharing"):
        PredictionStore(4, 3, sharing="everywhere")
    with pytest.raises(ValueError, match="ids"):
        PredictionStore(4, 3).past_probs(torch.tensor([0]))


def test_pskd_epoch_two_targets_use_the_softmax_recorded_in_epoch_one():
    """Alg. 1 by hand: targets at epoch t = (1 - alpha_t) y + alpha_t * softmax recorded at epoch t-1."""
    torch.manual_seed(0)
    n, k, epochs = 12, 4, 3
    inputs, labels = torch.randn(n, 5), torch.randint(0, k, (n,))
    model = torch.nn.Linear(5, k)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    pskd = PSKD(LinearAlpha(0.8, epochs), PredictionStore(n, k))
    recorded: dict[int, torch.Tensor] = {}
    for epoch in range(epochs):
        alpha = pskd.begin_epoch(epoch)
        softmax_this_epoch = torch.zeros(n, k)
        for ids in torch.randperm(n).split(4):
            targets = pskd.targets(labels[ids], ids=ids)
            expected_past = recorded[epoch - 1][ids] if epoch else one_hot(labels[ids], k)
            torch.testing.assert_close(targets, soften_targets(labels[ids], expected_past, alpha))
            logits = model(inputs[ids])
            loss = pskd.loss(logits, labels[ids], ids=ids)
            softmax_this_epoch[ids] = F.softmax(logits.detach(), 1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        pskd.end_epoch(model)
        recorded[epoch] = softmax_this_epoch
    assert pskd.alpha == pytest.approx(0.8)


def test_with_cutmix_the_targets_mix_the_softened_targets_and_the_row_goes_to_the_receiving_id():
    store = PredictionStore(6, 4)
    ids, labels = torch.tensor([4, 0, 5]), torch.tensor([1, 3, 0])
    past = _probs(3, 4)
    store.record(ids, past)
    pskd = PSKD(LinearAlpha(0.8, 4), store, "mixed")  # the other modes: tests/classification/test_cutmix_store.py
    pskd.begin_epoch(1)
    lam, perm = 0.3, torch.tensor([2, 0, 1])
    logits = torch.randn(3, 4)
    loss = pskd.loss(logits, labels, ids=ids, mix=lambda t: lam * t + (1 - lam) * t[perm])
    soft = soften_targets(labels, past, 0.4)
    expected = lam * soft + (1 - lam) * soft[perm]
    torch.testing.assert_close(loss, -(expected * F.log_softmax(logits, 1)).sum(1).mean())
    torch.testing.assert_close(store.past_probs(labels, ids=ids), F.softmax(logits, 1))


def test_mark_filled_reads_the_table_without_the_one_hot_fallback():
    store = PredictionStore(5, 3)
    store.mark_filled()
    labels = torch.tensor([0, 2])
    assert torch.equal(store.past_probs(labels, ids=torch.tensor([1, 4])), torch.zeros(2, 3))
    assert store.state_dict()["filled"].all()


def test_pskd_state_round_trip_keeps_the_store():
    pskd = PSKD(LinearAlpha(0.8, 3), PredictionStore(8, 3))
    pskd.record(torch.randn(4, 3), ids=torch.tensor([1, 3, 5, 7]))
    restored = PSKD(LinearAlpha(0.8, 3), PredictionStore(8, 3))
    restored.load_state_dict(pskd.state_dict())
    restored.resume(torch.nn.Linear(2, 3))
    ids, labels = torch.arange(8), torch.zeros(8, dtype=torch.long)
    assert torch.equal(restored.past.past_probs(labels, ids=ids), pskd.past.past_probs(labels, ids=ids))


def test_index_values_are_read_only_on_the_cpu():
    # A "meta" tensor has no values, like a CUDA tensor whose values would have to be read back: only the
    # free dtype and shape checks run on it, the range check is for CPU tensors.
    check_indices("ids", torch.empty(4, dtype=torch.long, device="meta"), 10, "sample ids")
    with pytest.raises(ValueError, match="ids must be a 1-D tensor of integer sample ids"):
        check_indices("ids", torch.empty(4, device="meta"), 10, "sample ids")
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 10\), being sample ids; got 10"):
        check_indices("ids", torch.tensor([3, 10]), 10, "sample ids")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_checks_of_cuda_tensors_never_synchronise():
    labels = torch.tensor([0, 7], device="cuda")  # out of range, but reading that back would synchronise
    probs = torch.full((2, 4), 0.25, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        check_indices("labels", labels, 4, "class indices")
        check_batch("probs", probs.shape[0], labels.shape[0], "labels")
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_pskd_without_the_model_at_epoch_end_serves_clean_batches_and_refuses_mixed_ones():
    """A loop that never mixes may call ``end_epoch()`` without the model; a mixed batch then needs the snapshot."""

    pskd = PSKD(LinearAlpha(0.8, 2), PredictionStore(4, 3))
    labels, ids = torch.tensor([0, 1]), torch.tensor([0, 1])
    pskd.begin_epoch(0)
    pskd.loss(torch.randn(2, 3), labels, ids=ids)
    pskd.end_epoch()
    pskd.begin_epoch(1)
    assert pskd.targets(labels, ids=ids).shape == (2, 3)
    with pytest.raises(ValueError, match=r"pass the model to PSKD\.end_epoch\(model\)"):
        pskd.targets(labels, ids=ids, inputs=torch.randn(2, 5), mix=lambda t: t)


class _RecordingEvent:
    """Stands in for torch.cuda.Event on a machine without CUDA: it records the calls the store makes."""

    made: ClassVar[list["_RecordingEvent"]] = []

    def __init__(self) -> None:
        self.calls: list[str] = []
        _RecordingEvent.made.append(self)

    def record(self) -> None:
        self.calls.append("record")

    def synchronize(self) -> None:
        self.calls.append("synchronize")


@pytest.fixture
def deferred_store(monkeypatch):
    """A store whose device differs from the probabilities' (``cpu:0`` against ``cpu``), so that ``record`` takes
    the path of a model on the GPU and a table on the CPU: copy now, write at the next call."""
    monkeypatch.setattr(_RecordingEvent, "made", [])
    monkeypatch.setattr(torch.cuda, "Event", _RecordingEvent)
    return PredictionStore(6, 4, dtype="float16", device="cpu:0")


def test_a_write_from_another_device_lands_at_the_next_call_after_its_copy_finished(deferred_store):
    store, probs, ids = deferred_store, _probs(2, 4), torch.tensor([4, 1])
    labels = torch.tensor([0, 3])
    store.record(ids, probs)
    assert [e.calls for e in _RecordingEvent.made] == [["record"]]
    assert not store.filled.any() and not store.table.any()  # nothing written inside the training step
    rows = store.past_probs(labels, ids=ids)
    assert _RecordingEvent.made[0].calls == ["record", "synchronize"]  # waited for the copy before writing
    expected = probs.to(torch.float16).float()
    torch.testing.assert_close(rows, expected, rtol=0, atol=0)
    assert store.filled.tolist() == [False, True, False, False, True, False]
    assert store.table.dtype == torch.float16
    store.past_probs(labels, ids=ids)  # a write is applied once
    assert _RecordingEvent.made[0].calls == ["record", "synchronize"]


@pytest.mark.parametrize("finish", ["record", "state_dict", "end_epoch", "mark_filled"])
def test_every_reader_of_the_table_applies_the_pending_write_first(deferred_store, finish):
    store, first = deferred_store, _probs(6, 4, seed=1)
    store.record(torch.arange(6), first)
    if finish == "record":  # a second write waits for the first, and lands after it
        second = _probs(1, 4, seed=2)
        store.record(torch.tensor([2]), second)
        expected = first.to(torch.float16)
        torch.testing.assert_close(store.table, expected, rtol=0, atol=0)
        assert store.filled.all()
        assert [e.calls for e in _RecordingEvent.made] == [["record", "synchronize"], ["record"]]
        store.end_epoch()  # and the second write lands on row 2 over the first
        expected[2] = second[0].to(torch.float16)
        torch.testing.assert_close(store.table, expected, rtol=0, atol=0)
        assert _RecordingEvent.made[1].calls == ["record", "synchronize"]
        return
    table = getattr(store, finish)()
    table = table["table"] if finish == "state_dict" else store.table
    torch.testing.assert_close(table, first.to(torch.float16), rtol=0, atol=0)
    assert _RecordingEvent.made[0].calls == ["record", "synchronize"]
    if finish == "end_epoch":
        rows = store.past_probs(torch.zeros(6, dtype=torch.long), ids=torch.arange(6))
        torch.testing.assert_close(rows, first.to(torch.float16).float(), rtol=0, atol=0)


def test_a_loaded_checkpoint_drops_a_write_still_in_flight(deferred_store):
    store = deferred_store
    saved = PredictionStore(6, 4, dtype="float16").state_dict()
    store.record(torch.tensor([0, 5]), _probs(2, 4))
    store.load_state_dict(saved)
    store.end_epoch()
    assert not store.filled.any() and not store.table.any()
    assert _RecordingEvent.made[0].calls == ["record"]
