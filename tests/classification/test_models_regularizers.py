import pytest
import torch

from classification.config import ConfigError, load_config
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


def test_shakedrop_survival_probabilities_are_the_official_ones():
    # official pyramid_shake_drop.py line 135 gives p_drop; PyramidNet-200 has L = 3 * 22 blocks
    blocks = 66
    p_drop = [1. - (1.0 - (0.5 / blocks) * (i + 1)) for i in range(blocks)]
    assert survival_probabilities(blocks, 0.5) == pytest.approx([1 - p for p in p_drop])


def test_shakedrop_sample_gate_forward_backward_statistics():
    torch.manual_seed(0)
    n, p = 20000, 0.6
    layer = ShakeDrop(p, gate="sample")
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


def test_shakedrop_batch_gate_keeps_or_perturbs_the_whole_batch():
    # official models/shakedrop/shakedrop.py: one b_l per forward call (line 14); alpha (line 17) and
    # beta (line 29) one per sample when b_l = 0; the gradient passes unchanged when b_l = 1.
    torch.manual_seed(1)
    p, calls, batch = 0.6, 3000, 16
    layer = ShakeDrop(p)
    assert layer.gate == "batch"
    kept_calls = 0
    for _ in range(calls):
        x = torch.ones(batch, 3, 2, 2, requires_grad=True)
        out = layer(x)
        factor = out.detach()
        assert torch.all(factor == factor[:, :1, :1, :1])  # one factor per sample, over channels and pixels
        factor = factor[:, 0, 0, 0]
        out.sum().backward()
        grad = x.grad[:, 0, 0, 0]
        if torch.all(factor == 1.0):
            kept_calls += 1
            assert torch.all(grad == 1.0)
        else:
            assert torch.all(factor < 1.0) and factor.min() >= -1  # every sample perturbed: alpha in [-1, 1)
            assert factor.unique().numel() > 1  # ... each by its own alpha
            assert torch.all((grad >= 0) & (grad < 1)) and grad.unique().numel() > 1  # ... and its own beta
    assert kept_calls / calls == pytest.approx(p, abs=0.03)  # P(b_l = 1) = p_l


def test_shakedrop_sample_gate_mixes_kept_and_perturbed_samples_in_one_batch():
    torch.manual_seed(2)
    factor = ShakeDrop(0.5, gate="sample")(torch.ones(512, 1))[:, 0]
    kept = factor == 1.0
    assert 0.4 < kept.float().mean().item() < 0.6


@pytest.mark.parametrize("gate", ["batch", "sample"])
def test_model_shakedrop_gate_reaches_every_block_of_the_model(gate):
    torch.manual_seed(3)
    model = build_model("pyramidnet20_shakedrop", num_classes=10, shakedrop_gate=gate).train()
    layers = [m for m in model.modules() if isinstance(m, ShakeDrop)]
    assert [m.gate for m in layers] == [gate] * 6
    assert [m.p_survive for m in layers] == pytest.approx(survival_probabilities(6, 0.5))
    seen = []
    for layer in layers:
        layer.register_forward_hook(lambda _, args, out: seen.append((args[0].flatten(1), out.flatten(1))))
    with torch.no_grad():
        for _ in range(5):
            model(torch.randn(64, 3, 16, 16))
    mixed = 0
    for branch, out in seen:
        largest = branch.abs().argmax(dim=1, keepdim=True)
        factor = out.gather(1, largest) / branch.gather(1, largest)
        torch.testing.assert_close(out, branch * factor, rtol=1e-4, atol=1e-5)  # one factor per sample
        kept = torch.isclose(factor[:, 0], torch.ones(()))
        mixed += bool(kept.any() and not kept.all())
    assert (mixed == 0) if gate == "batch" else (mixed > 0)


def test_shakedrop_gate_config_defaults_to_the_official_batch_gate():
    assert load_config("cifar100_preact_resnet18").model.shakedrop_gate == "batch"
    with pytest.raises(ConfigError, match=r"model\.shakedrop_gate must be one of batch, sample"):
        load_config("cifar100_preact_resnet18", ["model.shakedrop_gate=pixel"])
    with pytest.raises(ValueError, match=r"model\.shakedrop_gate"):
        ShakeDrop(0.5, gate="pixel")


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
