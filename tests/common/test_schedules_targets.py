import pytest
import torch

from common import SCHEDULE_KINDS, FixedAlpha, LinearAlpha, check_alpha, make_schedule, one_hot, soften_targets


def test_linear_alpha_follows_the_official_epoch_convention():
    schedule = LinearAlpha(0.8, epochs=300)
    assert schedule(0) == pytest.approx(0.8 / 300)
    assert schedule(149) == pytest.approx(0.4)
    assert schedule(299) == pytest.approx(0.8)


def test_linear_alpha_rejects_epochs_outside_the_run():
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        LinearAlpha(0.8, epochs=10)(10)


def test_fixed_alpha_is_constant():
    assert [FixedAlpha(0.4)(e) for e in (0, 5, 100)] == [0.4, 0.4, 0.4]


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_alpha_outside_unit_interval_is_refused(bad):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_alpha(bad)
    with pytest.raises(ValueError, match="alpha_T"):
        LinearAlpha(bad, 10)


def test_make_schedule_builds_each_kind():
    assert SCHEDULE_KINDS == ("linear", "fixed")
    linear = make_schedule("linear", 0.8, 4)
    assert [linear(e) for e in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert [make_schedule("fixed", 0.3, 4)(e) for e in (0, 3)] == [0.3, 0.3]
    assert make_schedule("fixed", 0.3)(1000) == 0.3  # a run of open length (fairseq without --max-epoch)


@pytest.mark.parametrize(("args", "named"), [
    (("cosine", 0.8, 10), "schedule must be one of linear, fixed"),
    (("linear", 1.2, 10), "alpha_T must lie in"),
    (("fixed", -0.1, 10), "alpha_T must lie in"),
    (("linear", 0.8, None), "epochs must be given"),
    (("linear", 0.8, 0), "epochs must be a positive integer"),
    (("linear", 0.8, 2.5), "epochs must be a positive integer"),
    (("fixed", 0.8, -3), "epochs must be a positive integer"),
])
def test_make_schedule_names_the_bad_argument(args, named):
    with pytest.raises(ValueError, match=named):
        make_schedule(*args)


def test_soften_targets_matches_equation_4_by_hand():
    labels = torch.tensor([2, 0])
    past = torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]])
    got = soften_targets(labels, past, 0.3)
    expected = torch.tensor([[0.03, 0.06, 0.7 + 0.21], [0.7 + 0.15, 0.075, 0.075]])
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got.sum(1), torch.ones(2))


def test_soften_targets_with_one_hot_past_is_one_hot():
    labels = torch.tensor([1, 3, 0])
    torch.testing.assert_close(soften_targets(labels, one_hot(labels, 4), 0.8), one_hot(labels, 4))


def test_soften_targets_of_mixed_inputs_mixes_the_label_part():
    labels, perm, lam = torch.tensor([2, 0]), torch.tensor([1, 0]), 0.25
    past = torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]])  # already the past prediction of the mixed inputs
    got = soften_targets(labels, past, 0.3, mix=lambda t: lam * t + (1 - lam) * t[perm])
    expected = torch.tensor([[0.03 + 0.7 * 0.75, 0.06, 0.21 + 0.7 * 0.25],
                             [0.15 + 0.7 * 0.25, 0.075, 0.075 + 0.7 * 0.75]])
    torch.testing.assert_close(got, expected)


def test_alpha_may_be_either_end_of_the_unit_interval():
    """Eq. 4 with alpha = 0 is the one-hot label, with alpha = 1 the past prediction alone: both are allowed."""
    assert check_alpha(0.0) == 0.0 and check_alpha(1) == 1.0
    assert [LinearAlpha(1.0, 2)(e) for e in (0, 1)] == [0.5, 1.0]
    assert FixedAlpha(0.0)(3) == 0.0


def test_the_refusal_names_the_argument():
    with pytest.raises(ValueError, match=r"^alpha must lie in \[0, 1\].*got 1\.5$"):
        check_alpha(1.5)
    with pytest.raises(ValueError, match=r"^alpha_T must lie in"):
        LinearAlpha(1.5, 10)
    with pytest.raises(ValueError, match=r"^alpha must lie in"):
        FixedAlpha(-0.5)


def test_a_run_of_one_epoch_reaches_alpha_T_at_once_and_a_bool_is_no_epoch_count():
    assert LinearAlpha(0.8, 1)(0) == 0.8
    assert LinearAlpha(0.8, 2.0)(1) == 0.8  # a float that is an integer (from a YAML or CLI value)
    for bad in (True, False, "10", 0):
        with pytest.raises(ValueError, match="epochs must be a positive integer"):
            LinearAlpha(0.8, bad)


def test_fixed_alpha_refuses_a_negative_epoch():
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        FixedAlpha(0.4)(-1)


def test_one_hot_keeps_the_dtype_and_device_asked_for_and_refuses_2d_labels():
    labels = torch.tensor([2, 0])
    got = one_hot(labels, 3, torch.float64)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64))
    assert one_hot(labels.to("meta"), 3).device.type == "meta"  # the labels' device, not the default one
    with pytest.raises(ValueError, match=r"1-D tensor of class indices; got shape \(2, 1\)"):
        one_hot(labels.unsqueeze(1), 3)


def test_soften_targets_has_the_dtype_of_the_past_prediction():
    """Under AMP the past prediction may be float16: the target is float16 too, not promoted by a float32 label."""
    labels = torch.tensor([1, 0])
    past = torch.tensor([[0.25, 0.75], [0.5, 0.5]], dtype=torch.float16)
    got = soften_targets(labels, past, 0.5)
    assert got.dtype == torch.float16
    torch.testing.assert_close(got, torch.tensor([[0.125, 0.875], [0.75, 0.25]], dtype=torch.float16))


@pytest.mark.parametrize(("shape", "named"), [((3, 3), r"B = 2; got \(3, 3\)"), ((2, 3, 1), r"B = 2; got \(2, 3, 1\)"),
                                              ((6,), r"B = 2; got \(6,\)")])
def test_soften_targets_refuses_a_past_that_is_not_b_by_k(shape, named):
    with pytest.raises(ValueError, match=named):
        soften_targets(torch.tensor([1, 0]), torch.full(shape, 1 / 3), 0.5)
