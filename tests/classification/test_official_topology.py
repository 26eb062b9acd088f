"""The CIFAR networks against transcriptions of the official PS-KD code (lgcnsai/PS-KD-Pytorch, models/).

The ``Official*`` classes below are written here from the official files, module by module and in the
official attribute order (so ``state_dict`` orders match); they do not import the project's models. Each
project model must have the same ordered list of parameter and buffer shapes, and, given the
transcription's weights copied position by position, the same outputs in eval and train mode.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from classification.cifar_models import BottleneckResNet, DenseNet, ResNeXt29
from classification.models import build_model
from classification.pyramidnet import PyramidNet


# --- models/preact_resnet.py: PreActBlock (lines 98-121), Bottleneck_CIFAR (124-149), CIFAR_ResNet (228-262)
class OfficialPreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out += shortcut
        return out


class OfficialBottleneckCIFAR(nn.Module):
    expansion = 4

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, 4 * planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != 4 * planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, 4 * planes, kernel_size=1, stride=stride, bias=False),
                                          nn.BatchNorm2d(4 * planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += self.shortcut(x)
        return F.relu(out)


class OfficialCIFARResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(block, 64, num_blocks[0], 1)
        self.layer2 = self._make_layer(block, 128, num_blocks[1], 2)
        self.layer3 = self._make_layer(block, 256, num_blocks[2], 2)
        self.layer4 = self._make_layer(block, 512, num_blocks[3], 2)
        self.linear = nn.Linear(512 * block.expansion, num_classes, bias=True)

    def _make_layer(self, block, planes, num_blocks, stride):
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)
        return self.linear(out.view(out.size(0), -1))


# --- models/densenet_cifar.py (lines 12-91)
class OfficialDenseBottleneck(nn.Module):
    def __init__(self, in_planes, growth_rate):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth_rate, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth_rate)
        self.conv2 = nn.Conv2d(4 * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class OfficialTransition(nn.Module):
    def __init__(self, in_planes, out_planes):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=1, bias=False)

    def forward(self, x):
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class OfficialCIFARDenseNet(nn.Module):
    def __init__(self, nblocks, growth_rate, num_classes, reduction=0.5):
        super().__init__()
        self.growth_rate = growth_rate
        planes = 2 * growth_rate
        self.conv1 = nn.Conv2d(3, planes, kernel_size=3, padding=1, bias=False)
        self.dense1, planes = self._dense(planes, nblocks[0])
        self.trans1 = OfficialTransition(planes, math.floor(planes * reduction))
        planes = math.floor(planes * reduction)
        self.dense2, planes = self._dense(planes, nblocks[1])
        self.trans2 = OfficialTransition(planes, math.floor(planes * reduction))
        planes = math.floor(planes * reduction)
        self.dense3, planes = self._dense(planes, nblocks[2])
        self.trans3 = OfficialTransition(planes, math.floor(planes * reduction))
        planes = math.floor(planes * reduction)
        self.dense4, planes = self._dense(planes, nblocks[3])
        self.bn = nn.BatchNorm2d(planes)
        self.linear = nn.Linear(planes, num_classes, bias=True)

    def _dense(self, in_planes, n):
        layers = []
        for _ in range(n):
            layers.append(OfficialDenseBottleneck(in_planes, self.growth_rate))
            in_planes += self.growth_rate
        return nn.Sequential(*layers), in_planes

    def forward(self, x):
        out = self.conv1(x)
        out = self.trans1(self.dense1(out))
        out = self.trans2(self.dense2(out))
        out = self.trans3(self.dense3(out))
        out = self.dense4(out)
        out = F.avg_pool2d(F.relu(self.bn(out)), 4)
        return self.linear(out.view(out.size(0), -1))


# --- models/resnext.py (lines 19-135), topology only (its initialisation is tested below)
class OfficialResNeXtBottleneck(nn.Module):
    def __init__(self, in_channels, out_channels, stride, cardinality, base_width, widen_factor):
        super().__init__()
        d = cardinality * int(base_width * (out_channels / (widen_factor * 64.0)))
        self.conv_reduce = nn.Conv2d(in_channels, d, kernel_size=1, bias=False)
        self.bn_reduce = nn.BatchNorm2d(d)
        self.conv_conv = nn.Conv2d(d, d, kernel_size=3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn = nn.BatchNorm2d(d)
        self.conv_expand = nn.Conv2d(d, out_channels, kernel_size=1, bias=False)
        self.bn_expand = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if in_channels != out_channels:
            self.shortcut.add_module("shortcut_conv", nn.Conv2d(in_channels, out_channels, kernel_size=1,
                                                                stride=stride, bias=False))
            self.shortcut.add_module("shortcut_bn", nn.BatchNorm2d(out_channels))

    def forward(self, x):
        b = F.relu(self.bn_reduce(self.conv_reduce(x)))
        b = F.relu(self.bn(self.conv_conv(b)))
        b = self.bn_expand(self.conv_expand(b))
        return F.relu(self.shortcut(x) + b)


class OfficialCifarResNeXt(nn.Module):
    def __init__(self, cardinality, depth, nlabels, base_width, widen_factor=4):
        super().__init__()
        n = (depth - 2) // 9
        self.stages = [64, 64 * widen_factor, 128 * widen_factor, 256 * widen_factor]
        self.conv_1_3x3 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn_1 = nn.BatchNorm2d(64)
        for i, stride in enumerate((1, 2, 2)):
            stage = nn.Sequential()
            for j in range(n):
                stage.add_module(f"stage_{i + 1}_bottleneck_{j}", OfficialResNeXtBottleneck(
                    self.stages[i] if j == 0 else self.stages[i + 1], self.stages[i + 1], stride if j == 0 else 1,
                    cardinality, base_width, widen_factor))
            setattr(self, f"stage_{i + 1}", stage)
        self.classifier = nn.Linear(self.stages[3], nlabels)

    def forward(self, x):
        x = F.relu(self.bn_1(self.conv_1_3x3(x)))
        x = self.stage_3(self.stage_2(self.stage_1(x)))
        x = F.avg_pool2d(x, 8, 1)
        return self.classifier(x.view(-1, self.stages[3]))


# --- models/pyramid.py / pyramid_shake_drop.py: Bottleneck and the CIFAR branch of PyramidNet
class OfficialPyramidBottleneck(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None, p_shakedrop=None):
        super().__init__()
        self.p_shakedrop = p_shakedrop  # p_drop of this block, or None for pyramid.py's block
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn4 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = self.conv1(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        out = self.bn4(out)
        if self.p_shakedrop is not None:
            assert not self.training, "only ShakeDrop's test-time scaling is transcribed"
            out = (1 - self.p_shakedrop) * out  # shakedrop.py line 23
        shortcut = self.downsample(x) if self.downsample is not None else x
        if out.size(1) != shortcut.size(1):
            zeros = torch.zeros(out.size(0), out.size(1) - shortcut.size(1), *shortcut.shape[2:])
            return out + torch.cat((shortcut, zeros), 1)
        return out + shortcut


class OfficialPyramidNet(nn.Module):
    def __init__(self, depth, alpha, num_classes, shakedrop=False):
        super().__init__()
        n = int((depth - 2) / 9)
        self.addrate = alpha / (3 * n * 1.0)
        # pyramid_shake_drop.py line 135: p_drop of block i (popped in order by pyramidal_make_layer)
        self.ps_shakedrop = [1. - (1.0 - (0.5 / (3 * n)) * (i + 1)) for i in range(3 * n)] if shakedrop else None
        self.input_featuremap_dim = 16
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.featuremap_dim = 16
        self.layer1 = self._make_layer(n)
        self.layer2 = self._make_layer(n, stride=2)
        self.layer3 = self._make_layer(n, stride=2)
        self.bn_final = nn.BatchNorm2d(self.input_featuremap_dim)
        self.fc = nn.Linear(self.input_featuremap_dim, num_classes)

    def _make_layer(self, block_depth, stride=1):
        downsample = nn.AvgPool2d((2, 2), stride=(2, 2), ceil_mode=True) if stride != 1 else None
        self.featuremap_dim = self.featuremap_dim + self.addrate
        layers = [OfficialPyramidBottleneck(self.input_featuremap_dim, round(self.featuremap_dim), stride,
                                            downsample, self._next_p_drop())]
        for _ in range(1, block_depth):
            temp = self.featuremap_dim + self.addrate
            layers.append(OfficialPyramidBottleneck(round(self.featuremap_dim) * 4, round(temp), 1,
                                                    p_shakedrop=self._next_p_drop()))
            self.featuremap_dim = temp
        self.input_featuremap_dim = round(self.featuremap_dim) * 4
        return nn.Sequential(*layers)

    def _next_p_drop(self):
        return self.ps_shakedrop.pop(0) if self.ps_shakedrop is not None else None

    def forward(self, x):
        x = self.bn1(self.conv1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.avg_pool2d(F.relu(self.bn_final(x)), 8)
        return self.fc(x.view(x.size(0), -1))


def _shapes(model):
    return [tuple(t.shape) for t in model.state_dict().values()]


def _randomise_batchnorm(model):
    # Non-trivial BN affine parameters and running statistics, so eval mode exercises every BN.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)


def _assert_same_function(official, project, num_classes, batch=3):
    assert _shapes(project) == _shapes(official)
    _randomise_batchnorm(official)
    project.load_state_dict(dict(zip(project.state_dict(), official.state_dict().values(), strict=True)))
    x = torch.randn(batch, 3, 32, 32)
    for train in (False, True):
        official.train(train)
        project.train(train)
        with torch.no_grad():
            expected = official(x)
            actual = project(x)
        assert actual.shape == (batch, num_classes)
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
    # the train-mode pass updated both models' running statistics alike
    torch.testing.assert_close(list(project.state_dict().values()), list(official.state_dict().values()),
                               rtol=1e-4, atol=1e-5)


def test_preact_resnet18_is_the_official_network():
    torch.manual_seed(0)
    official = OfficialCIFARResNet(OfficialPreActBlock, [2, 2, 2, 2], num_classes=10)
    project = build_model("preact_resnet18", num_classes=10)
    assert list(project.state_dict()) == list(official.state_dict())  # official checkpoints load as they are
    _assert_same_function(official, project, 10)


@pytest.mark.parametrize(("make_official", "make_project", "make_full_official", "make_full_project"), [
    (lambda: OfficialCIFARResNet(OfficialBottleneckCIFAR, [1, 2, 1, 1], 10),
     lambda: BottleneckResNet([1, 2, 1, 1], 10),
     lambda: OfficialCIFARResNet(OfficialBottleneckCIFAR, [3, 4, 23, 3], 100),
     lambda: build_model("resnet101", 100)),
    (lambda: OfficialCIFARDenseNet([1, 2, 1, 2], 8, 10), lambda: DenseNet([1, 2, 1, 2], 10, growth=8),
     lambda: OfficialCIFARDenseNet([6, 12, 24, 16], 32, 100), lambda: build_model("densenet121", 100)),
    (lambda: OfficialCifarResNeXt(2, 29, 10, 4), lambda: ResNeXt29(10, cardinality=2, width=4),
     lambda: OfficialCifarResNeXt(8, 29, 100, 64), lambda: build_model("resnext29_8x64d", 100)),
    (lambda: OfficialPyramidNet(11, 24, 10), lambda: PyramidNet(11, 24, 10),
     lambda: OfficialPyramidNet(200, 240, 100), lambda: build_model("pyramidnet200", 100)),
], ids=["resnet101", "densenet121", "resnext29", "pyramidnet200"])
def test_other_cifar_networks_follow_the_official_topology(make_official, make_project, make_full_official,
                                                           make_full_project):
    # the paper's sizes by their shapes (built on the meta device: no memory, no initialisation), a
    # shallow/narrow instance of the same code by its outputs
    with torch.device("meta"):
        assert _shapes(make_full_project()) == _shapes(make_full_official())
    torch.manual_seed(1)
    _assert_same_function(make_official(), make_project(), 10)


@pytest.mark.parametrize("gate", ["batch", "sample"])
def test_pyramidnet_shakedrop_is_the_official_network_at_test_time(gate):
    torch.manual_seed(2)
    official = OfficialPyramidNet(20, 48, 10, shakedrop=True).eval()
    project = build_model("pyramidnet20_shakedrop", 10, shakedrop_gate=gate).eval()
    assert _shapes(project) == _shapes(official)
    _randomise_batchnorm(official)
    project.load_state_dict(dict(zip(project.state_dict(), official.state_dict().values(), strict=True)))
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(project(x), official(x), rtol=1e-4, atol=1e-5)


def _fan_out(weight):
    return weight.shape[0] * weight[0, 0].numel()


def test_resnext_is_initialised_as_the_official_code():
    # models/resnext.py lines 93-104: kaiming_normal_ (fan_in, gain sqrt 2) on the classifier weight,
    # kaiming_normal_(mode="fan_out") on every conv weight, BN weights 1, every bias 0.
    torch.manual_seed(3)
    model = build_model("resnext29_8x64d", 100)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 9 * 3 + 3 * 1  # stem, 3 per block, 1 projection per stage
    for conv in convs:
        w = conv.weight.detach()
        std = math.sqrt(2.0 / _fan_out(w))
        assert w.std().item() == pytest.approx(std, rel=0.1)
        assert abs(w.mean().item()) < 5 * std / math.sqrt(w.numel())
    fc = model.linear.weight.detach()
    assert fc.std().item() == pytest.approx(math.sqrt(2.0 / fc.shape[1]), rel=0.05)
    assert torch.all(model.linear.bias == 0)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
