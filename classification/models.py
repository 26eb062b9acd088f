"""Classification models, built by name from a registry.

* ``preact_resnet18``: the paper's CIFAR ResNet-18 exactly as the official PS-KD code builds it
  (models/preact_resnet.py, ``CIFAR_ResNet18_preActBasic``), which is not the textbook pre-activation
  ResNet of He et al. (ECCV 2016): a 3x3 conv -> BN -> ReLU stem, the identity shortcut taken from
  relu(bn1(x)) rather than from x, no final BN-ReLU before pooling, PyTorch's default initialisation.
* ``resnet8`` / ``resnet20``: the small CIFAR ResNets of He et al. (CVPR 2016, Sec. 4.2; depth 6n+2),
  fast enough for 28-32 px demos and tests on a CPU.
* ``resnet101``, ``densenet121``, ``resnext29_8x64d`` (classification/cifar_models.py) and
  ``pyramidnet200`` / ``pyramidnet200_shakedrop`` (alpha 240, bottleneck; classification/pyramidnet.py):
  the paper's other CIFAR-100 models; ``pyramidnet20`` / ``pyramidnet20_shakedrop`` (alpha 48) are
  small PyramidNets for CPU demos and tests.
* ``resnet152``: torchvision's ImageNet ResNet-152, randomly initialised (no download).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def add(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = builder
        return builder

    return add


def build_model(name: str, num_classes: int, in_channels: int = 3, shakedrop_gate: str = "batch") -> nn.Module:
    """The model ``name`` with a ``num_classes``-way classifier over ``in_channels``-channel images.

    ``shakedrop_gate`` (``model.shakedrop_gate``) reaches the builders that take it, the ``*_shakedrop``
    ones; the other models have no ShakeDrop and ignore it.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    builder = MODELS[name]
    options = {"shakedrop_gate": shakedrop_gate} if "shakedrop_gate" in inspect.signature(builder).parameters else {}
    return builder(num_classes=num_classes, in_channels=in_channels, **options)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class PreActBlock(nn.Module):
    """``PreActBlock`` of the official models/preact_resnet.py (lines 98-121).

    Both shortcuts start from relu(bn1(x)): the identity one too (the official ``self.shortcut`` is an
    empty ``nn.Sequential`` applied to ``out``), so BN and ReLU also act on the path that skips the block.
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out)
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + shortcut


class PreActResNet(nn.Module):
    """``CIFAR_ResNet`` of the official models/preact_resnet.py (lines 228-262) with ``PreActBlock``.

    Parameter and buffer names are the official ones, so an official state_dict loads as it is. The
    official ``F.avg_pool2d(out, 4)`` is a global average over the 4x4 map of a 32x32 input; the adaptive
    pool here is that same average there and also accepts other input sizes (28x28 Fashion-MNIST).
    """

    def __init__(self, blocks: list[int], num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._stage(64, blocks[0], 1)
        self.layer2 = self._stage(128, blocks[1], 2)
        self.layer3 = self._stage(256, blocks[2], 2)
        self.layer4 = self._stage(512, blocks[3], 2)
        self.linear = nn.Linear(512, num_classes)

    def _stage(self, planes: int, n: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(PreActBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model("preact_resnet18")
def preact_resnet18(num_classes: int, in_channels: int = 3) -> nn.Module:
    return PreActResNet([2, 2, 2, 2], num_classes, in_channels)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small images: three stages of n basic blocks with 16, 32 and 64 channels."""

    def __init__(self, depth: int, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has depth 6n+2; got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        stages, in_planes = [], 16
        for planes, stride in [(16, 1), (32, 2), (64, 2)]:
            for s in [stride] + [1] * (n - 1):
                stages.append(BasicBlock(in_planes, planes, s))
                in_planes = planes
        self.stages = nn.Sequential(*stages)
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1).flatten(1))


@register_model("resnet8")
def resnet8(num_classes: int, in_channels: int = 3) -> nn.Module:
    return CifarResNet(8, num_classes, in_channels)


@register_model("resnet20")
def resnet20(num_classes: int, in_channels: int = 3) -> nn.Module:
    return CifarResNet(20, num_classes, in_channels)


class MLP(nn.Module):
    """A fully connected network over a 28x28 image (other sizes are pooled to 28x28 first): ``depth`` hidden
    ReLU layers of ``width`` units. The demo's over-confident network: on 3,000 Fashion-MNIST images it
    reaches 100 % training accuracy while its test NLL rises, the regime PS-KD is meant to regularise."""

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 1024, depth: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(28), nn.Flatten()]
        features = in_channels * 28 * 28
        for _ in range(depth):
            layers += [nn.Linear(features, width), nn.ReLU()]
            features = width
        layers.append(nn.Linear(features, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


@register_model("mlp1024")
def mlp1024(num_classes: int, in_channels: int = 1) -> nn.Module:
    return MLP(num_classes, in_channels)


@register_model("resnet152")
def resnet152(num_classes: int, in_channels: int = 3) -> nn.Module:
    from torchvision.models import resnet152 as tv_resnet152

    model = tv_resnet152(weights=None, num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return model


@register_model("resnet101")
def resnet101(num_classes: int, in_channels: int = 3) -> nn.Module:
    from classification.cifar_models import BottleneckResNet

    return BottleneckResNet([3, 4, 23, 3], num_classes, in_channels)


@register_model("densenet121")
def densenet121(num_classes: int, in_channels: int = 3) -> nn.Module:
    from classification.cifar_models import DenseNet

    return DenseNet([6, 12, 24, 16], num_classes, in_channels)


@register_model("resnext29_8x64d")
def resnext29_8x64d(num_classes: int, in_channels: int = 3) -> nn.Module:
    from classification.cifar_models import ResNeXt29

    return ResNeXt29(num_classes, in_channels, cardinality=8, width=64)


@register_model("pyramidnet200")
def pyramidnet200(num_classes: int, in_channels: int = 3) -> nn.Module:
    from classification.pyramidnet import PyramidNet

    return PyramidNet(200, 240, num_classes, in_channels)


@register_model("pyramidnet200_shakedrop")
def pyramidnet200_shakedrop(num_classes: int, in_channels: int = 3, shakedrop_gate: str = "batch") -> nn.Module:
    from classification.pyramidnet import PyramidNet

    return PyramidNet(200, 240, num_classes, in_channels, shakedrop=True, shakedrop_gate=shakedrop_gate)


@register_model("pyramidnet20")
def pyramidnet20(num_classes: int, in_channels: int = 3) -> nn.Module:
    from classification.pyramidnet import PyramidNet

    return PyramidNet(20, 48, num_classes, in_channels)


@register_model("pyramidnet20_shakedrop")
def pyramidnet20_shakedrop(num_classes: int, in_channels: int = 3, shakedrop_gate: str = "batch") -> nn.Module:
    from classification.pyramidnet import PyramidNet

    return PyramidNet(20, 48, num_classes, in_channels, shakedrop=True, shakedrop_gate=shakedrop_gate)
