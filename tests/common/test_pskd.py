"""PSKD's own checks and bookkeeping, beside the stores and the snapshot teacher it drives."""

import pytest
import torch
from torch import nn

from common import PSKD, FixedAlpha, PredictionStore, SnapshotTeacher, one_hot
from common.pskd import unmixed_rows


def _mix(lam, perm):
    return lambda t: lam * t + (1 - lam) * t[perm]


def test_unmixed_rows_sees_a_mix_of_2_to_the_minus_30_and_answers_on_the_device_asked_for():
    """float64: a sample keeping all but 2**-30 of its image is mixed (float32 would round the weight to 1)."""
    perm = torch.tensor([1, 0, 2])
    assert unmixed_rows(_mix(1 - 2**-30, perm), 3).tolist() == [False, False, True]
    assert unmixed_rows(_mix(1.0, perm), 3).tolist() == [True, True, True]
    assert unmixed_rows(_mix(0.5, perm), 3, "meta").device.type == "meta"


@pytest.mark.parametrize("mixed_inputs", ["mixed", "snapshot"])
def test_a_logits_width_other_than_the_stores_k_is_refused_by_name(mixed_inputs):
    pskd = PSKD(FixedAlpha(0.5), PredictionStore(4, 3), mixed_inputs=mixed_inputs)
    assert pskd.past.num_classes == 3
    labels, ids = torch.tensor([0, 2]), torch.tensor([1, 3])
    with pytest.raises(ValueError, match=r"^logits has 5 columns but the past predictions hold K=3 classes"):
        pskd.loss(torch.zeros(2, 5), labels, ids=ids)


def test_loss_names_the_argument_of_a_bad_shape():
    pskd = PSKD(FixedAlpha(0.5), PredictionStore(4, 3))
    labels, ids = torch.tensor([0, 2]), torch.tensor([1, 3])
    with pytest.raises(ValueError, match=r"^logits must be \(B, K\); got shape \(2, 3, 1\)"):
        pskd.loss(torch.zeros(2, 3, 1), labels, ids=ids)
    with pytest.raises(ValueError, match=r"^logits has 3 rows but labels has 2: give one per sample"):
        pskd.loss(torch.zeros(3, 3), labels, ids=ids)
    teacher = PSKD(FixedAlpha(0.5), SnapshotTeacher())  # K is the width of the snapshot's answer
    teacher.end_epoch(nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"^labels must lie in \[0, 3\), being class indices of the K=3 classes"):
        teacher.targets(torch.tensor([0, 3]), inputs=torch.zeros(2, 4))


def test_alpha_is_zero_until_the_first_epoch_begins():
    """A loop that never calls begin_epoch trains on the labels, whatever the store holds."""
    store = PredictionStore(2, 3)
    pskd = PSKD(FixedAlpha(0.5), store)
    ids, labels = torch.tensor([0, 1]), torch.tensor([0, 2])
    pskd.record(torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0]]), ids=ids)
    pskd.end_epoch()
    assert pskd.alpha == 0.0
    torch.testing.assert_close(pskd.targets(labels, ids=ids), one_hot(labels, 3))
    assert pskd.begin_epoch(1) == 0.5


def test_clean_forward_refuses_clean_logits_of_another_shape_naming_both():
    pskd = PSKD(FixedAlpha(0.5), PredictionStore(4, 3), mixed_inputs="clean_forward")
    with pytest.raises(ValueError, match=r"^clean_logits must have the shape of logits \(2, 3\); got \(2, 4\)$"):
        pskd.record(torch.zeros(2, 3), ids=torch.tensor([0, 1]), mix=_mix(0.5, torch.tensor([1, 0])),
                    clean_logits=torch.zeros(2, 4))
