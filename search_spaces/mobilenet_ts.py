"""A small MobileNet-like family for `family: torchscript` (search_spaces/mobilenet_ts.yaml).

A 3x3 stem, then three stages of depthwise-separable blocks (3x3 depthwise conv, batch norm,
ReLU, 1x1 pointwise conv, batch norm, ReLU), each stage halving H and W in its first block and
doubling the width; global average pooling and a linear classifier. `width` scales every layer
(MobileNet's width multiplier, rounded to a multiple of 8); `depth` is the number of blocks per
stage. `features` returns the pooled output of the last stage: what the classifier reads.

Exported by `python3 -m dataproxy.export --space search_spaces/mobilenet_ts.yaml ...`; the
export helper calls build(config) with the configuration's parameters, the space's `model:`
settings, and `num_classes` and `input_shape` ([C, H, W]) from the data.
"""

from __future__ import annotations

import torch
from torch import nn


def _round8(x: float) -> int:
    return max(8, int(x + 4) // 8 * 8)


class SeparableBlock(nn.Module):
    """Depthwise 3x3 then pointwise 1x1, each with batch norm and ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.depthwise(x)))
        return torch.relu(self.bn2(self.pointwise(x)))


class MobileNetTiny(nn.Module):
    def __init__(
        self, in_channels: int, num_classes: int, base: int, width: float, depth: int, stages: int
    ) -> None:
        super().__init__()
        c = _round8(base * width)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()
        )
        blocks = []
        for _ in range(stages):
            out = _round8(2 * c)
            for b in range(depth):
                blocks.append(SeparableBlock(c if b == 0 else out, out, 2 if b == 0 else 1))
            c = out
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(c, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build(config: dict) -> nn.Module:
    return MobileNetTiny(
        in_channels=config["input_shape"][0],
        num_classes=config["num_classes"],
        base=config["base_channels"],
        width=config["width"],
        depth=config["depth"],
        stages=config["stages"],
    )
