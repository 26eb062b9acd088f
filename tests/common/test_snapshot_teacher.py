import pytest
import torch
from torch import nn

from common import PSKD, FixedAlpha, PredictionStore, SnapshotTeacher, one_hot


class Student(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3))
        self.teacher = SnapshotTeacher(num_classes=3)

    def forward(self, x):
        return self.net(x)


def test_teacher_is_one_hot_before_the_first_snapshot_then_follows_it():
    student = Student()
    labels = torch.tensor([0, 2])
    x = torch.randn(2, 4)
    torch.testing.assert_close(student.teacher.past_probs(labels, inputs=x), one_hot(labels, 3))
    student.teacher.refresh(student)
    student.eval()
    torch.testing.assert_close(student.teacher.past_probs(labels, inputs=x), torch.softmax(student(x), 1))


def test_teacher_stays_out_of_parameters_state_dict_and_optimizer():
    student = Student()
    student.teacher.refresh(student)
    assert not any(k.startswith("teacher") for k in student.state_dict())
    assert len(list(student.parameters())) == 6
    assert all(not p.requires_grad for p in student.teacher.model.parameters())


def test_teacher_is_frozen_until_the_next_refresh_and_eval_mode_by_default():
    student = Student()
    pskd = PSKD(FixedAlpha(0.5), student.teacher)
    pskd.end_epoch(student)
    assert not student.teacher.model.training
    x = torch.randn(16, 4)
    before = student.teacher(x).clone()
    with torch.no_grad():
        for p in student.net.parameters():
            p.add_(1.0)
    torch.testing.assert_close(student.teacher(x), before)
    pskd.end_epoch(student)
    student.eval()
    torch.testing.assert_close(student.teacher(x), student(x))


def test_teacher_output_carries_no_grad_and_train_mode_is_an_option():
    student = Student()
    teacher = SnapshotTeacher(mode="train")
    teacher.refresh(student)
    assert teacher.model.training and not teacher(torch.randn(4, 4)).requires_grad
    with pytest.raises(ValueError):
        SnapshotTeacher(mode="frozen")
    with pytest.raises(RuntimeError, match="num_classes"):
        SnapshotTeacher().past_probs(torch.tensor([0]), inputs=torch.randn(1, 4))


def _mix(lam, perm):
    return lambda t: lam * t + (1 - lam) * t[perm]


def test_mixed_inputs_get_the_mixed_one_hot_before_the_first_snapshot_then_the_snapshot_on_them():
    student = Student()
    labels, x = torch.tensor([0, 2, 1]), torch.randn(3, 4)
    mix = _mix(0.25, torch.tensor([2, 0, 1]))
    pskd = PSKD(FixedAlpha(0.5), student.teacher)
    pskd.begin_epoch(0)
    torch.testing.assert_close(pskd.targets(labels, inputs=x, mix=mix), mix(one_hot(labels, 3)))
    pskd.end_epoch(student)
    student.eval()
    expected = 0.5 * mix(one_hot(labels, 3)) + 0.5 * torch.softmax(student(x), 1)
    torch.testing.assert_close(pskd.targets(labels, inputs=x, mix=mix), expected)


def test_resume_takes_the_snapshot_from_the_restored_model():
    student = Student()
    pskd = PSKD(FixedAlpha(0.5), SnapshotTeacher(num_classes=3))
    restored = PSKD(FixedAlpha(0.5), SnapshotTeacher(num_classes=3))
    restored.load_state_dict(pskd.state_dict())
    assert not restored.past.ready
    restored.resume(student)
    x = torch.randn(5, 4)
    student.eval()
    torch.testing.assert_close(restored.past(x), student(x))


class _ModelSeeingStore(PredictionStore):
    """A store that notes the model it is handed at the epoch end and on resume (the hooks' protocol)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.models = []

    def end_epoch(self, model=None):
        self.models.append(("end_epoch", model))
        super().end_epoch(model)

    def resume(self, model):
        self.models.append(("resume", model))
        super().resume(model)


def test_the_snapshot_mode_hands_the_model_to_the_store_as_well_as_to_the_snapshot():
    student = Student()
    store = _ModelSeeingStore(4, 3)
    pskd = PSKD(FixedAlpha(0.5), store, mixed_inputs="snapshot")
    pskd.end_epoch(student)
    pskd.end_epoch()
    pskd.resume(student)
    assert store.models == [("end_epoch", student), ("end_epoch", None), ("resume", student)]
