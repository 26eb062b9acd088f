"""PyramidNet for CIFAR (Han et al., CVPR 2017) with bottleneck blocks and optional ShakeDrop.

The widths grow additively by alpha / N over the N = 3 * (depth - 2) / 9 bottleneck blocks, starting
from 16 channels; a block's output has 4x its width; the shortcut is identity (2x2 average pooling where
the block strides) with zero channels appended; no ReLU after the addition. PyramidNet-200 with
alpha 240 is the paper's (26.6 M parameters for 100 classes). Topology and initialisation (kaiming
normal, fan_out, on the convs; PyTorch's default on the classifier) follow the official PS-KD
models/pyramid.py and models/pyramid_shake_drop.py; ``shakedrop_gate`` is classification/shakedrop.py's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from classification.shakedrop import ShakeDrop, survival_probabilities


class PyramidBottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int, shakedrop: float | None,
                 shakedrop_gate: str = "batch") -> None:
        super().__init__()
        out = planes * self.expansion
        self.branch = nn.Sequential(
            nn.BatchNorm2d(in_planes),
            nn.Conv2d(in_planes, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out),
        )
        self.shakedrop = ShakeDrop(shakedrop, shakedrop_gate) if shakedrop is not None else nn.Identity()
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True) if stride != 1 else nn.Identity()
        self.extra_channels = out - in_planes

    def forward(self, x: Tensor) -> Tensor:
        branch = self.shakedrop(self.branch(x))
        shortcut = self.pool(x)
        if self.extra_channels:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))
        return branch + shortcut


class PyramidNet(nn.Module):
    def __init__(self, depth: int, alpha: float, num_classes: int, in_channels: int = 3,
                 shakedrop: bool = False, p_last: float = 0.5, shakedrop_gate: str = "batch") -> None:
        super().__init__()
        if (depth - 2) % 9:
            raise ValueError(f"a bottleneck PyramidNet has depth 9n+2; got {depth}")
        n = (depth - 2) // 9
        total = 3 * n
        survival = survival_probabilities(total, p_last) if shakedrop else [None] * total
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, width, in_planes = [], 16.0, 16
        for i in range(total):
            width += alpha / total
            stride = 2 if i in (n, 2 * n) else 1
            planes = round(width)
            blocks.append(PyramidBottleneck(in_planes, planes, stride, survival[i], shakedrop_gate))
            in_planes = planes * PyramidBottleneck.expansion
        self.blocks = nn.Sequential(*blocks)
        self.bn_final = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        out = self.blocks(self.bn1(self.conv1(x)))
        out = F.relu(self.bn_final(out))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))
