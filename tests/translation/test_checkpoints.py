"""translation.checkpoints: a checkpoint_last.pt truncated by a kill during fairseq's copy is set aside and
replaced by the newest whole checkpoint, so that fairseq-train resumes instead of stopping on it."""

import os

import torch

from translation.checkpoints import LAST, repair_last, whole


def _save(path, step):
    torch.save({"step": step, "weights": torch.arange(1000, dtype=torch.float32) * step}, path)


def _truncate_copy(source, target, keep=0.6):
    """What a SIGKILL in the middle of fairseq's PathManager.copy leaves: the source's first bytes."""
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])


def test_a_whole_last_checkpoint_is_left_as_it_is(tmp_path):
    _save(tmp_path / LAST, 4)
    before = (tmp_path / LAST).read_bytes()
    assert repair_last(tmp_path) is None
    assert (tmp_path / LAST).read_bytes() == before
    assert repair_last(tmp_path / "missing") is None  # a first start: nothing to resume from


def test_a_truncated_copy_is_kept_aside_and_replaced_by_the_newest_whole_checkpoint(tmp_path):
    _save(tmp_path / "checkpoint_1_2.pt", 2)
    _save(tmp_path / "checkpoint_1_4.pt", 4)
    os.utime(tmp_path / "checkpoint_1_2.pt", (1, 1))  # older
    _truncate_copy(tmp_path / "checkpoint_1_4.pt", tmp_path / LAST)
    truncated = (tmp_path / LAST).read_bytes()
    assert not whole(tmp_path / LAST)

    line = repair_last(tmp_path)

    assert "checkpoint_1_4.pt" in line and "truncated" in line
    assert torch.load(tmp_path / LAST, weights_only=True)["step"] == 4
    (aside,) = tmp_path.glob(LAST + ".truncated-*")
    assert aside.read_bytes() == truncated  # nothing is lost
    assert not list(tmp_path.glob("*.tmp"))


def test_a_truncated_copy_with_nothing_whole_beside_it_is_kept_and_says_training_restarts(tmp_path):
    _save(tmp_path / "source.bin", 1)
    _truncate_copy(tmp_path / "source.bin", tmp_path / LAST)
    line = repair_last(tmp_path)
    assert "starts again from the beginning" in line
    assert not (tmp_path / LAST).exists()
    assert len(list(tmp_path.glob(LAST + ".truncated-*"))) == 1
