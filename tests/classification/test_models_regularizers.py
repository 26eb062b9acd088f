import pytest
import torch

from classification.models import build_model, count_parameters
from classification.regularizers import CutMix, Cutout, MixInfo, cutmix_box
from classification.shakedrop import ShakeDrop, survival_probabilities

# Usual published sizes for 100 classes (M parameters): PreAct ResNet-18 11.2; ResNet-101 (CIFAR) 42.7;
# DenseNet-121 (CIFAR, growth 32) 7.0; ResNeXt-29 8x64d 34.4 (Xie et al., 10 classes) + 0.09 for 100 classes;
# PyramidNet-200, alpha 240, bottleneck 26.6 (Han et al.).
PUBLISHED = {"preact_resnet18": 11.2, "resnet101": 42.7, "densenet121": 7.0, "resnext29_8x64d": 34.5,
             "pyramidnet200": 26.6, "pyramidnet200_shakedrop": 26.6}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_parameter_counts_within_two_percent_of_the_published_figures(name):
    model = build_model(name, num_classes=100)
    millions = count_parameters(model) / 1e6
    print(f"{name}: {millions:.2f} M parameters (published {PUBLISHED[name]} M)")
    assert millions == pytest.approx(PUBLISHED[name], rel=0.02)
    if name in ("densenet121", "resnext29_8x64d", "preact_resnet18"):
        assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_small_pyramidnet_shapes():
    model = build_model("pyramidnet20_shakedrop", num_classes=10)
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)


def test_shakedrop_survival_probabilities_decay_linearly_to_p_last():
    p = survival_probabilities(4, 0.5)
    assert p == pytest.approx([0.875, 0.75, 0.625, 0.5])


def test_shakedrop_forward_backward_statistics():
    torch.manual_seed(0)
    n, p = 20000, 0.6
    layer = ShakeDrop(p)
    x = torch.ones(n, 1, 2, 2, requires_grad=True)
    out = layer(x)
    factor = out[:, 0, 0, 0].detach()
    kept = factor == 1.0
    assert kept.float().mean().item() == pytest.approx(p, abs=0.015)  # b_l ~ Bernoulli(p)
    dropped = factor[~kept]
    assert dropped.min() >= -1 and dropped.max() <= 1 and dropped.mean().abs() < 0.03  # alpha ~ U(-1, 1)
    assert factor.mean().item() == pytest.approx(p, abs=0.02)  # E[b + alpha - b alpha] = p
    out.sum().backward()
    grad = x.grad[:, 0, 0, 0]
    assert torch.all(grad[kept] == 1.0)  # b = 1: the gradient passes unchanged
    assert grad[~kept].min() >= 0 and grad[~kept].max() <= 1  # b = 0: scaled by beta ~ U(0, 1)
    assert grad[~kept].mean().item() == pytest.approx(0.5, abs=0.02)
    layer.eval()
    torch.testing.assert_close(layer(torch.ones(3, 2)), torch.full((3, 2), p))


def test_cutmix_box_has_the_drawn_area_when_not_clipped():
    g = torch.Generator().manual_seed(0)
    for lam in (0.2, 0.5, 0.9):
        while True:
            y0, y1, x0, x1 = cutmix_box(100, 100, lam, g)
            if 0 < y0 and y1 < 100 and 0 < x0 and x1 < 100:
                break
        assert (y1 - y0) * (x1 - x0) / 1e4 == pytest.approx(1 - lam, abs=0.03)


def test_cutmix_pastes_the_partner_box_and_mixes_targets_by_the_kept_area():
    torch.manual_seed(3)
    images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 16, 16).contiguous()
    mixed, info = CutMix(prob=1.0)(images)
    own = (mixed == images).float().mean(dim=(1, 2, 3))
    moved = info.perm != torch.arange(4)
    assert moved.any()
    assert torch.allclose(own[moved], torch.full((int(moved.sum()),), info.lam))  # each keeps lam of itself
    for i in torch.nonzero(moved).flatten().tolist():
        assert torch.all(mixed[i][mixed[i] != images[i]] == float(info.perm[i]))  # the box is the partner's
    targets = torch.eye(4)
    torch.testing.assert_close(info.mix(targets), info.lam * targets + (1 - info.lam) * targets[info.perm])
    assert CutMix(prob=0.0)(images)[1] is None


def test_mixinfo_mixes_pskd_softened_targets_of_both_samples():
    soft = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
    info = MixInfo(perm=torch.tensor([1, 0]), lam=0.25)
    torch.testing.assert_close(info.mix(soft), torch.tensor([[0.325, 0.675], [0.575, 0.425]]))


def test_cutout_zeroes_one_square():
    torch.manual_seed(1)
    cut = Cutout(8)
    for _ in range(20):
        out = cut(torch.ones(3, 32, 32))
        zero = (out == 0).all(dim=0)
        rows, cols = zero.any(dim=1).nonzero(), zero.any(dim=0).nonzero()
        assert zero.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # a rectangle
        assert 16 <= zero.sum() <= 64
    with pytest.raises(ValueError):
        Cutout(0)
