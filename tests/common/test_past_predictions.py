"""The prediction store's and the snapshot teacher's contracts, one at a time: argument checks at their bounds,
the fast path once every row is written, the all_gather block of replicated ranks, the node-shared table's
file and groups (with torch.distributed's calls stood in for), checkpoints, and the teacher's snapshot."""

import os
import re

import pytest
import torch
from torch import nn

import common.distributed as ddp
import common.past_predictions as pp
from common import PredictionStore, SnapshotTeacher, one_hot
from common.past_predictions import PastPredictions, check_batch, check_indices, resolve_store_dtype


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.uint8])
def test_check_indices_accepts_every_integer_dtype_and_both_ends_of_the_range(dtype):
    check_indices("ids", torch.tensor([0, 9, 4], dtype=dtype), 10, "sample ids")
    check_indices("ids", torch.tensor([], dtype=dtype), 10, "sample ids")  # an empty batch has no min or max


@pytest.mark.parametrize(("values", "got"), [([0, -1, 3], -1), ([10, 2], 10), ([-3, 12], -3), ([0, 10], 10)])
def test_check_indices_refuses_the_first_value_outside_and_names_it(values, got):
    with pytest.raises(ValueError, match=rf"^ids must lie in \[0, 10\), being sample ids; got {got}$"):
        check_indices("ids", torch.tensor(values), 10, "sample ids")


@pytest.mark.parametrize(("values", "described"), [
    (torch.zeros(3), r"torch\.float32 of shape \(3,\)"),
    (torch.zeros(3, dtype=torch.bool), r"torch\.bool of shape \(3,\)"),
    (torch.zeros(3, dtype=torch.complex64), r"torch\.complex64 of shape \(3,\)"),
    (torch.zeros(2, 3, dtype=torch.long), r"torch\.int64 of shape \(2, 3\)"),
    (torch.tensor(4), r"torch\.int64 of shape \(\)"),
])
def test_check_indices_refuses_anything_but_a_1d_integer_tensor(values, described):
    with pytest.raises(ValueError, match=rf"^labels must be a 1-D tensor of integer class indices; got {described}$"):
        check_indices("labels", values, 10, "class indices")


def test_check_batch_message_names_both_sizes():
    check_batch("probs", 4, 4, "ids")
    with pytest.raises(ValueError, match=r"^probs has 3 rows but ids has 2: give one per sample of the batch$"):
        check_batch("probs", 3, 2, "ids")


def test_store_dtype_by_name_or_by_torch_dtype_and_nothing_else():
    assert resolve_store_dtype("float32") is torch.float32 and resolve_store_dtype("bfloat16") is torch.bfloat16
    assert resolve_store_dtype(torch.float16) is torch.float16
    for bad in (torch.float64, "int8", torch.int8):
        with pytest.raises(ValueError, match=r"^store dtype must be one of \['bfloat16', 'float16', 'float32'\]; got "):
            resolve_store_dtype(bad)
    assert PredictionStore(3, 2, dtype=torch.bfloat16).state_dict()["dtype"] == "bfloat16"


def test_the_smallest_store_is_one_sample_of_two_classes():
    store = PredictionStore(1, 2)
    assert store.table.shape == (1, 2) and store.nbytes == 1 * 2 * 4 + 1
    for n, k in ((0, 2), (1, 1)):
        with pytest.raises(ValueError, match=rf"^a store needs N >= 1 samples and K >= 2 classes; got N={n}, K={k}$"):
            PredictionStore(n, k)
    assert PredictionStore(10, 4).nbytes == 10 * 4 * 4 + 10


def test_node_sharing_falls_back_to_replicated_outside_torch_distributed():
    store = PredictionStore(4, 3, sharing="node")
    assert store.sharing == "replicated" and store._gather_group is None
    store.record(torch.tensor([2]), torch.tensor([[0.2, 0.3, 0.5]]))
    got = store.past_probs(torch.tensor([0]), ids=torch.tensor([2]))
    torch.testing.assert_close(got, torch.tensor([[0.2, 0.3, 0.5]]))


def test_under_torch_distributed_ids_must_fit_the_float32_column_and_node_sharing_needs_a_cpu_table(monkeypatch):
    monkeypatch.setattr(ddp, "is_distributed", lambda: True)
    with pytest.raises(ValueError, match=r"^num_samples=16777216 is too large for the float32 id column"):
        PredictionStore(2**24, 2, device="meta")
    big = PredictionStore(2**24 - 1, 2, device="meta")  # meta: nothing allocated
    assert big.table.shape == (2**24 - 1, 2) and big.table.device.type == big.filled.device.type == "meta"
    with pytest.raises(ValueError, match=r"^sharing='node' maps a table in host shared memory: use device='cpu'$"):
        PredictionStore(4, 3, device="meta", sharing="node")
    monkeypatch.setattr(ddp, "is_distributed", lambda: False)
    PredictionStore(2**24, 2, device="meta")  # one process: no id column, no limit


def test_record_refuses_probs_of_another_width_or_batch_and_a_missing_ids():
    store = PredictionStore(6, 3)
    with pytest.raises(ValueError, match=r"^probs must be \(B, K\) with K=3, the store's number of classes; got shape "
                                         r"\(2, 4\)$"):
        store.record(torch.tensor([0, 1]), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"got shape \(3,\)$"):
        store.record(torch.tensor([0, 1, 2]), torch.zeros(3))
    with pytest.raises(ValueError, match=r"^probs has 3 rows but ids has 2"):
        store.record(torch.tensor([0, 1]), torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"^the prediction store is indexed by sample id: pass the batch's ids$"):
        store.record(None, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"^ids must lie in \[0, 6\), being indices of the store's N=6 training "
                                         r"samples; got 6$"):
        store.record(torch.tensor([6]), torch.zeros(1, 3))
    assert not store.filled.any()


def test_read_checks_labels_against_k_and_the_batch_size():
    store = PredictionStore(6, 3)
    with pytest.raises(ValueError, match=r"^labels must lie in \[0, 3\), being class indices of the store's K=3 "
                                         r"classes; got 3$"):
        store.past_probs(torch.tensor([3]), ids=torch.tensor([0]))
    with pytest.raises(ValueError, match=r"^ids has 2 rows but labels has 1"):
        store.past_probs(torch.tensor([1]), ids=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"^the prediction store is indexed by sample id: pass ids= \(the dataset "
                                         r"indices\)$"):
        store.past_probs(torch.tensor([1]))


def test_past_probs_mixes_the_rows_and_the_one_hot_of_unwritten_ones():
    store = PredictionStore(4, 3)
    store.record(torch.tensor([1]), torch.tensor([[0.5, 0.25, 0.25]]))
    labels, ids = torch.tensor([2, 0]), torch.tensor([1, 3])
    got = store.past_probs(labels, ids=ids, inputs="ignored", mix=lambda t: 0.75 * t + 0.25 * t.flip(0))
    rows = torch.tensor([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]])  # id 3 is unwritten: its label 0, one-hot
    torch.testing.assert_close(got, 0.75 * rows + 0.25 * rows.flip(0))


def test_once_every_row_is_written_the_epoch_end_switches_to_the_table_alone(monkeypatch):
    store = PredictionStore(3, 2)
    store.record(torch.tensor([0, 2]), torch.tensor([[0.9, 0.1], [0.3, 0.7]]))
    store.end_epoch()
    # id 1 is still unwritten: its label's one-hot, and further writes still mark their rows
    torch.testing.assert_close(store.past_probs(torch.tensor([1, 0]), ids=torch.tensor([1, 0])),
                               torch.tensor([[0.0, 1.0], [0.9, 0.1]]))
    store.record(torch.tensor([1]), torch.tensor([[0.6, 0.4]]))
    assert store.filled.tolist() == [True, True, True]
    store.end_epoch()

    def no_fallback(*args, **kwargs):
        raise AssertionError("a complete table needs no one-hot rows")

    monkeypatch.setattr(pp, "one_hot", no_fallback)
    got = store.past_probs(torch.tensor([0, 0, 0]), ids=torch.tensor([2, 1, 0]))
    torch.testing.assert_close(got, torch.tensor([[0.3, 0.7], [0.6, 0.4], [0.9, 0.1]]))


def test_a_complete_half_precision_table_is_read_as_float32():
    store = PredictionStore(2, 2, dtype="float16")
    store.record(torch.tensor([0, 1]), torch.tensor([[0.25, 0.75], [0.5, 0.5]]))
    store.end_epoch()
    got = store.past_probs(torch.tensor([0, 1]), ids=torch.tensor([1, 0]))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, torch.tensor([[0.5, 0.5], [0.25, 0.75]]))


def test_replicated_ranks_write_every_ranks_rows_from_one_gathered_block(monkeypatch):
    """Two ranks: this one records ids 0 and 3, the other (stood in for by the gather) ids 5 and 1; the block
    carries the ids as a float32 column in front of the probabilities, and every table gets all four rows."""
    other_ids, other_probs = torch.tensor([5, 1]), torch.tensor([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    blocks = []

    def gather(block, group=None):
        blocks.append((block.clone(), group))
        theirs = torch.cat([other_ids.float().unsqueeze(1), other_probs], dim=1)
        return torch.cat([block, theirs])

    monkeypatch.setattr(ddp, "world_size", lambda: 2)
    monkeypatch.setattr(ddp, "all_gather_cat", gather)
    store = PredictionStore(6, 3)
    mine = torch.tensor([[0.2, 0.2, 0.6], [0.5, 0.4, 0.1]])
    store.record(torch.tensor([0, 3]), mine)
    ((block, group),) = blocks
    assert group is None and block.dtype == torch.float32
    torch.testing.assert_close(block, torch.tensor([[0.0, 0.2, 0.2, 0.6], [3.0, 0.5, 0.4, 0.1]]))
    expected = torch.zeros(6, 3)
    expected[[0, 3]], expected[[5, 1]] = mine, other_probs
    torch.testing.assert_close(store.table, expected)
    assert store.filled.tolist() == [True, True, False, True, False, True]


def test_one_process_records_without_any_gather(monkeypatch):
    def gather(block, group=None):
        raise AssertionError("one process has nobody to gather from")

    monkeypatch.setattr(ddp, "all_gather_cat", gather)
    store = PredictionStore(4, 2)
    store.record(torch.tensor([3]), torch.tensor([[0.125, 0.875]], dtype=torch.float64))
    assert store.table.dtype == torch.float32 and store.table[3].tolist() == [0.125, 0.875]


def test_state_dict_is_the_table_on_the_cpu_with_its_shape_and_dtype_name():
    store = PredictionStore(3, 2, dtype="float16")
    store.record(torch.tensor([1]), torch.tensor([[0.25, 0.75]]))
    state = store.state_dict()
    assert set(state) == {"table", "filled", "num_samples", "num_classes", "dtype"}
    assert (state["num_samples"], state["num_classes"], state["dtype"]) == (3, 2, "float16")
    assert state["table"].device.type == "cpu" and state["table"].dtype == torch.float16
    assert state["table"][1].tolist() == [0.25, 0.75] and state["filled"].tolist() == [False, True, False]


def test_a_loaded_complete_table_reads_without_fallback_and_a_table_of_the_wrong_shape_is_refused(monkeypatch):
    full = PredictionStore(2, 3)
    full.record(torch.tensor([0, 1]), torch.tensor([[0.2, 0.3, 0.5], [0.7, 0.2, 0.1]]))
    monkeypatch.setattr(ddp, "local_rank", lambda: 1)  # a replicated table is loaded by every local rank
    restored = PredictionStore(2, 3)
    restored.load_state_dict(full.state_dict())
    assert torch.equal(restored.table, full.table) and restored.filled.all()
    monkeypatch.setattr(pp, "one_hot", lambda *a, **k: pytest.fail("a complete table needs no one-hot rows"))
    torch.testing.assert_close(restored.past_probs(torch.tensor([0, 0]), ids=torch.tensor([1, 0])),
                               full.table.flip(0))
    bad = dict(full.state_dict(), table=torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"^the saved prediction store does not fit this run: it holds 2 samples x 3 "
                                         r"classes in float32, this run needs 2 x 3 in float32\. Resume with the same "
                                         r"data set and store dtype as the run that wrote the checkpoint, or start a "
                                         r"new run\.$"):
        PredictionStore(2, 3).load_state_dict(bad)
    with pytest.raises(ValueError, match=r"it holds None samples x 3 classes in float32, this run needs 2 x 3 in "
                                         r"float32\. Resume with the same data set"):
        PredictionStore(2, 3).load_state_dict({k: v for k, v in full.state_dict().items() if k != "num_samples"})


def test_loading_a_partial_table_keeps_the_one_hot_fallback():
    part = PredictionStore(3, 2)
    part.record(torch.tensor([2]), torch.tensor([[0.4, 0.6]]))
    restored = PredictionStore(3, 2)
    restored.mark_filled()
    restored.load_state_dict(part.state_dict())
    torch.testing.assert_close(restored.past_probs(torch.tensor([1, 0]), ids=torch.tensor([0, 2])),
                               torch.tensor([[0.0, 1.0], [0.4, 0.6]]))


def test_to_device_keeps_a_tensor_already_there_and_moves_it_otherwise():
    t = torch.arange(3.0)
    assert pp._to_device(t, torch.device("cpu")) is t
    moved = pp._to_device(t, torch.device("meta"))
    assert moved.device.type == "meta" and moved.shape == (3,)


def _fake_node(monkeypatch, rank, local_rank, local_world_size, token="feedbeef"):
    """torch.distributed's calls stood in for: rank 0 broadcasts its token, the barriers return at once."""
    broadcasts = []

    def broadcast(objects, src):
        broadcasts.append((list(objects), src))
        if rank != src:
            objects[0] = token

    monkeypatch.setattr(pp.dist, "broadcast_object_list", broadcast)
    monkeypatch.setattr(ddp, "rank", lambda: rank)
    monkeypatch.setattr(ddp, "local_rank", lambda: local_rank)
    monkeypatch.setattr(ddp, "local_world_size", lambda: local_world_size)
    monkeypatch.setattr(ddp, "barrier", lambda: None)
    return broadcasts


def test_node_shared_tensor_maps_one_file_that_local_rank_0_creates_and_unlinks(monkeypatch, tmp_path):
    broadcasts = _fake_node(monkeypatch, rank=4, local_rank=0, local_world_size=4)
    unlinked, other_view = [], []
    unlink = os.unlink

    def spy(path):  # another local rank maps the file before it goes
        assert os.path.getsize(path) == 5 * 3 * 2
        other_view.append(torch.from_file(path, shared=True, size=15, dtype=torch.float16).view(5, 3))
        unlinked.append(path)
        unlink(path)

    monkeypatch.setattr(os, "unlink", spy)
    table = pp._node_shared_tensor((5, 3), torch.float16, "table", str(tmp_path))
    assert table.shape == (5, 3) and table.dtype == torch.float16 and not table.any()
    ((path,),) = [unlinked]
    (token,), src = broadcasts[0][0], broadcasts[0][1]
    assert src == 0 and token is None  # rank 4 receives rank 0's token
    assert path == os.path.join(str(tmp_path), "pskd-store-feedbeef-node1-table.bin")
    assert not os.listdir(tmp_path)
    table[2, 1] = 0.5  # one node, one table: a write is seen through every mapping
    assert other_view[0][2, 1].item() == 0.5


def test_node_shared_tensor_of_rank_0_uses_a_fresh_token_and_dev_shm_by_default(monkeypatch):
    broadcasts = _fake_node(monkeypatch, rank=0, local_rank=0, local_world_size=2)
    unlinked, unlink = [], os.unlink
    monkeypatch.setattr(os, "unlink", lambda path: (unlinked.append(path), unlink(path)))
    flags = pp._node_shared_tensor((4,), torch.bool, "filled", None)
    assert flags.shape == (4,) and flags.dtype == torch.bool and not flags.any()
    ((token,), _), (path,) = broadcasts[0], unlinked
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else pp.tempfile.gettempdir()
    assert re.fullmatch(re.escape(folder) + r"/pskd-store-[0-9a-f]{32}-node0-filled\.bin", path), path
    assert token == path.split("pskd-store-")[1][:32]


def test_node_shared_tensor_of_another_local_rank_maps_the_file_without_creating_or_unlinking_it(monkeypatch,
                                                                                                 tmp_path):
    _fake_node(monkeypatch, rank=3, local_rank=1, local_world_size=2)
    path = tmp_path / "pskd-store-feedbeef-node1-table.bin"
    written = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    path.write_bytes(written.numpy().tobytes())  # local rank 0 created and filled it
    monkeypatch.setattr(os, "unlink", lambda p: pytest.fail("only local rank 0 unlinks"))
    table = pp._node_shared_tensor((2, 2), torch.float32, "table", str(tmp_path))
    torch.testing.assert_close(table, written)
    assert path.read_bytes() == written.numpy().tobytes()


@pytest.mark.parametrize(("world", "local", "local_rank", "expected"), [
    (8, 4, 1, [1, 5]), (6, 2, 0, [0, 2, 4]), (6, 2, 1, [1, 3, 5]), (4, 4, 2, None),
])
def test_the_gather_group_is_the_ranks_of_one_local_rank_one_per_node(monkeypatch, world, local, local_rank, expected):
    created = []
    monkeypatch.setattr(ddp, "world_size", lambda: world)
    monkeypatch.setattr(ddp, "local_world_size", lambda: local)
    monkeypatch.setattr(ddp, "local_rank", lambda: local_rank)
    monkeypatch.setattr(pp.dist, "new_group", lambda ranks: created.append(ranks) or tuple(ranks))
    group = pp._same_local_rank_group()
    assert group == (tuple(expected) if expected else None)
    if expected:  # every rank creates every group, in local-rank order
        assert created == [list(range(lr, world, local)) for lr in range(local)]
    else:
        assert created == []


def test_the_gather_group_refuses_a_world_that_is_not_whole_nodes(monkeypatch):
    monkeypatch.setattr(ddp, "world_size", lambda: 6)
    monkeypatch.setattr(ddp, "local_world_size", lambda: 4)
    with pytest.raises(ValueError, match=r"^world size 6 is not a multiple of the local world size 4$"):
        pp._same_local_rank_group()


class _Half(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        return self.fc(x).half()


def test_teacher_snapshot_is_copied_once_then_reloaded_and_answers_float32():
    student = _Half()
    teacher = SnapshotTeacher(num_classes=3)
    with pytest.raises(RuntimeError, match=r"^no snapshot yet: call refresh\(model\) at the end of an epoch first$"):
        _ = teacher.model
    assert not teacher.ready
    teacher.refresh(student)
    copy = teacher.model
    assert copy is not student and not copy.training and not any(p.requires_grad for p in copy.parameters())
    with torch.no_grad():
        student.fc.weight.mul_(-2.0)
    student.train()
    teacher.refresh(student)
    assert teacher.model is copy and not copy.training and not any(p.requires_grad for p in copy.parameters())
    torch.testing.assert_close(copy.fc.weight, student.fc.weight)
    x = torch.randn(4, 2)
    got = teacher.past_probs(torch.zeros(4, dtype=torch.long), inputs=x)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, torch.softmax(student(x).float(), 1))


def test_teacher_in_train_mode_stays_there_and_a_wrapped_student_is_unwrapped():
    class Wrapper(nn.Module):  # the shape of DistributedDataParallel: the network under .module
        def __init__(self, module):
            super().__init__()
            self.module = module

    student = _Half().eval()
    teacher = SnapshotTeacher(mode="train")
    teacher.refresh(Wrapper(student))
    assert isinstance(teacher.model, _Half) and teacher.model.training
    teacher.refresh(Wrapper(student))
    assert teacher.model.training
    with pytest.raises(ValueError, match=r"^mode must be 'eval' or 'train'; got 'frozen'$"):
        SnapshotTeacher(mode="frozen")


def test_teacher_end_epoch_needs_the_model_and_resume_takes_the_restored_one():
    teacher = SnapshotTeacher(num_classes=3)
    with pytest.raises(ValueError, match=r"^the snapshot teacher needs the model at end_epoch\(model\)$"):
        teacher.end_epoch()
    student = _Half()
    teacher.resume(student)
    torch.testing.assert_close(teacher.model.fc.weight, student.fc.weight)
    with pytest.raises(RuntimeError, match=r"^before its first snapshot the teacher answers one-hot labels: give "
                                           r"num_classes$"):
        SnapshotTeacher().past_probs(torch.tensor([0]), inputs=torch.randn(1, 2))
    labels = torch.tensor([2, 0])
    fresh = SnapshotTeacher(num_classes=3)
    torch.testing.assert_close(fresh.past_probs(labels, mix=lambda t: t.flip(0)), one_hot(labels, 3).flip(0))


def test_the_interface_defaults_are_stateless_no_ops():
    class Constant(PastPredictions):
        def past_probs(self, labels, *, ids=None, inputs=None, mix=None):
            return one_hot(labels, 2)

    provider = Constant()
    assert provider.num_classes is None and provider.state_dict() == {}
    provider.record(None, torch.zeros(1, 2))
    provider.end_epoch()
    provider.resume(nn.Linear(1, 2))
    provider.load_state_dict({})


def test_reads_answer_on_the_labels_device():
    """The table stays where it is; a read answers on the device of ``labels`` (a "meta" device stands in for a
    GPU: a CPU table read for meta labels gives meta rows, before and after every row is written)."""
    store = PredictionStore(3, 4)
    store.record(torch.tensor([1]), torch.full((1, 4), 0.25))
    labels, ids = torch.tensor([0, 3], device="meta"), torch.tensor([1, 2])
    for _ in range(2):
        got = store.past_probs(labels, ids=ids)
        assert got.device.type == "meta" and got.shape == (2, 4) and got.dtype == torch.float32
        store.mark_filled()


def test_mark_filled_reads_the_table_alone(monkeypatch):
    store = PredictionStore(3, 2)
    store.record(torch.tensor([0]), torch.tensor([[0.75, 0.25]]))
    store.mark_filled()
    monkeypatch.setattr(pp, "one_hot", lambda *a, **k: pytest.fail("a filled table needs no one-hot rows"))
    torch.testing.assert_close(store.past_probs(torch.tensor([1, 1]), ids=torch.tensor([0, 2])),
                               torch.tensor([[0.75, 0.25], [0.0, 0.0]]))


def test_int32_ids_are_written_as_indices():
    store = PredictionStore(4, 2)
    store.record(torch.tensor([3, 1], dtype=torch.int32), torch.tensor([[0.5, 0.5], [0.125, 0.875]]))
    assert store.filled.tolist() == [False, True, False, True] and store.table[1].tolist() == [0.125, 0.875]


def test_node_sharing_maps_the_table_and_flags_and_gathers_within_the_same_local_rank(monkeypatch, tmp_path):
    """Two nodes of two ranks stood in for (this is rank 2, local rank 0): the table and the flags are mapped
    from files in shm_dir, the per-step gather runs in the group of local rank 0 ([0, 2]), and a checkpoint is
    loaded into the shared table by local rank 0 alone."""
    _fake_node(monkeypatch, rank=2, local_rank=0, local_world_size=2)
    monkeypatch.setattr(ddp, "is_distributed", lambda: True)
    monkeypatch.setattr(ddp, "world_size", lambda: 4)
    monkeypatch.setattr(pp.dist, "new_group", lambda ranks: tuple(ranks))
    mapped, unlink = [], os.unlink
    monkeypatch.setattr(os, "unlink", lambda path: (mapped.append(os.path.relpath(path, tmp_path)), unlink(path)))
    gathered = []

    def gather(block, group=None):
        gathered.append(group)
        return block

    monkeypatch.setattr(ddp, "all_gather_cat", gather)
    store = PredictionStore(5, 3, dtype="float16", sharing="node", shm_dir=str(tmp_path))
    assert store.sharing == "node" and store._gather_group == (0, 2)
    assert [name.rsplit("-", 1)[1] for name in mapped] == ["table.bin", "filled.bin"]
    assert all(name.startswith("pskd-store-feedbeef-node1-") for name in mapped)
    assert (store.table.shape, store.table.dtype, store.filled.shape, store.filled.dtype) == \
        ((5, 3), torch.float16, (5,), torch.bool)
    store.record(torch.tensor([4]), torch.tensor([[0.2, 0.3, 0.5]]))
    assert gathered == [(0, 2)] and store.filled.tolist() == [False, False, False, False, True]
    state = dict(PredictionStore(5, 3, dtype="float16").state_dict(), filled=torch.ones(5, dtype=torch.bool))
    monkeypatch.setattr(ddp, "local_rank", lambda: 1)  # another rank of the node: local rank 0 writes the table
    store.load_state_dict(state)
    assert store.filled.tolist() == [False, False, False, False, True]
    monkeypatch.setattr(ddp, "local_rank", lambda: 0)
    store.load_state_dict(state)
    assert store.filled.all() and not store.table.any()


def test_node_shared_tensor_falls_back_to_the_temporary_folder_without_dev_shm(monkeypatch, tmp_path):
    _fake_node(monkeypatch, rank=0, local_rank=0, local_world_size=1)
    monkeypatch.setattr(pp.os.path, "isdir", lambda path: False)
    monkeypatch.setattr(pp.tempfile, "gettempdir", lambda: str(tmp_path))
    unlinked, unlink = [], os.unlink
    monkeypatch.setattr(os, "unlink", lambda path: (unlinked.append(path), unlink(path)))
    pp._node_shared_tensor((2,), torch.float32, "table", None)
    assert os.path.dirname(unlinked[0]) == str(tmp_path)


class _FakeTensor:
    """Records how ``_to_device`` moves it: CUDA transfers stood in for on a machine without a GPU."""

    def __init__(self, device):
        self.device, self.shape, self.dtype, self.calls = torch.device(device), (2, 3), torch.float16, []

    def pin_memory(self):
        self.calls.append("pin_memory")
        return self

    def to(self, *args, **kwargs):
        self.calls.append(("to", args, kwargs))
        return "moved"

    def copy_(self, src, **kwargs):
        self.calls.append(("copy_", src, kwargs))
        return "copied"


def test_host_to_gpu_moves_go_through_pinned_memory_without_blocking():
    host = _FakeTensor("cpu")
    assert pp._to_device(host, torch.device("cuda")) == "moved"
    assert host.calls == ["pin_memory", ("to", (torch.device("cuda"),), {"non_blocking": True})]


def test_gpu_to_host_moves_copy_into_pinned_memory_without_blocking_and_others_move_plainly(monkeypatch):
    allocated = []

    def empty(shape, **kwargs):
        allocated.append((shape, kwargs))
        return out

    out = _FakeTensor("cpu")
    monkeypatch.setattr(pp.torch, "empty", empty)
    gpu = _FakeTensor("cuda")
    assert pp._to_device(gpu, torch.device("cpu")) == "copied"
    assert allocated == [((2, 3), {"dtype": torch.float16, "pin_memory": True})]
    assert out.calls == [("copy_", gpu, {"non_blocking": True})] and gpu.calls == []
    other = _FakeTensor("meta")  # neither a host-to-GPU nor a GPU-to-host move: a plain .to
    assert pp._to_device(other, torch.device("cpu")) == "moved"
    assert other.calls == [("to", (torch.device("cpu"),), {})] and len(allocated) == 1
