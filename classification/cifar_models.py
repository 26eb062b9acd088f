"""The paper's larger CIFAR-100 models: ResNet-101, DenseNet-121 and ResNeXt-29 (8x64d).

All take 32x32 inputs with a 3x3 stem and no max-pool, as in the CIFAR code that the PS-KD, CS-KD and
TF-KD papers build on. ResNet-101 and DenseNet-121 follow the official PS-KD models/preact_resnet.py
(``CIFAR_ResNet101_Bottle``) and models/densenet_cifar.py (``CIFAR_DenseNet121``) layer for layer, with
PyTorch's default initialisation as there; ResNeXt-29 follows models/resnext.py, initialisation
included. Published parameter counts (100 classes): ResNet-101 42.7 M, DenseNet-121 7.0 M, ResNeXt-29
8x64d 34.5 M (Xie et al., CVPR 2017, Table 7: 34.4 M with 10 classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Bottleneck(nn.Module):
    """He et al. (CVPR 2016) bottleneck: 1x1, 3x3 (stride), 1x1 x4, projection shortcut where shapes change."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(in_planes, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != out:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class BottleneckResNet(nn.Module):
    def __init__(self, blocks: list[int], num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        layers, in_planes = [], 64
        for planes, n, stride in zip((64, 128, 256, 512), blocks, (1, 2, 2, 2), strict=True):
            for s in [stride] + [1] * (n - 1):
                layers.append(Bottleneck(in_planes, planes, s))
                in_planes = planes * Bottleneck.expansion
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))


class DenseLayer(nn.Module):
    def __init__(self, in_planes: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_planes), nn.ReLU(inplace=True), nn.Conv2d(in_planes, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(inplace=True), nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.body(x), x], dim=1)


class DenseNet(nn.Module):
    """DenseNet-BC (Huang et al., CVPR 2017): growth 32, compression 0.5, 3x3 stem of 2 x growth channels."""

    def __init__(self, blocks: list[int], num_classes: int, in_channels: int = 3, growth: int = 32,
                 reduction: float = 0.5) -> None:
        super().__init__()
        planes = 2 * growth
        layers: list[nn.Module] = [nn.Conv2d(in_channels, planes, 3, 1, 1, bias=False)]
        for i, n in enumerate(blocks):
            for _ in range(n):
                layers.append(DenseLayer(planes, growth))
                planes += growth
            if i < len(blocks) - 1:
                out = int(planes * reduction)
                layers += [nn.BatchNorm2d(planes), nn.ReLU(inplace=True), nn.Conv2d(planes, out, 1, bias=False),
                           nn.AvgPool2d(2)]
                planes = out
        layers += [nn.BatchNorm2d(planes), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class ResNeXtBlock(nn.Module):
    """Aggregated transformations (Xie et al., Fig. 3c): 1x1 to C x d, grouped 3x3, 1x1 to the output."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, cardinality: int, width: int) -> None:
        super().__init__()
        inner = cardinality * width
        self.body = nn.Sequential(
            nn.Conv2d(in_planes, inner, 1, bias=False), nn.BatchNorm2d(inner), nn.ReLU(inplace=True),
            nn.Conv2d(inner, inner, 3, stride, 1, groups=cardinality, bias=False), nn.BatchNorm2d(inner),
            nn.ReLU(inplace=True),
            nn.Conv2d(inner, out_planes, 1, bias=False), nn.BatchNorm2d(out_planes),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_planes))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ResNeXt29(nn.Module):
    """ResNeXt-29 for CIFAR: 3 stages of 3 blocks, widths 64 x cardinality doubling per stage.

    The topology is the official models/resnext.py ``CifarResNeXt(cardinality=8, depth=29, base_width=64,
    widen_factor=4)``, and so is the initialisation (resnext.py lines 93-104), not PyTorch's defaults:
    kaiming normal (fan_in, gain sqrt 2) on the classifier weight, kaiming normal with mode fan_out on
    every conv weight (gain sqrt 2; fan_out = out_channels x 9 for the grouped 3x3 too, as torch computes
    it from the weight's shape), BN weights 1 and every bias (BN and classifier) 0.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, cardinality: int = 8, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        blocks, in_planes = [], 64
        for stage, stride in enumerate((1, 2, 2)):
            out = 256 * 2**stage
            for s in (stride, 1, 1):
                blocks.append(ResNeXtBlock(in_planes, out, s, cardinality, width * 2**stage))
                in_planes = out
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(in_planes, num_classes)
        nn.init.kaiming_normal_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))
