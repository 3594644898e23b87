"""Architectures by name, and the normalising wrapper every trained model carries.

A model built here takes float images in [0, 1] shaped (B, C, H, W) and returns logits: the
dataset's normalisation lives inside the model, so augmentations, attacks and corruptions all work
in image space.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F


class Normalized(nn.Module):
    """(x - mean) / std, then the wrapped network, in channels_last memory layout (faster on CPU and GPU)."""

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last))


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU stages (width, 2x, 4x), each followed by 2x2 max-pooling, then global average pooling
    and a linear head.

    Sized for the default profile on a laptop CPU (about 94k parameters at width 32).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, width), nn.MaxPool2d(2),
            conv_bn_relu(width, 2 * width), nn.MaxPool2d(2),
            conv_bn_relu(2 * width, 4 * width), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """The CIFAR variant of ResNet-18 used by the released code (facts 1.5): 3x3 stem with stride 1,
    no max-pool, BasicBlocks [2, 2, 2, 2] of widths 64/128/256/512, global average pooling, linear head.
    (Average pooling is adaptive so that 28 px images work too; at 32 px it equals the released 4x4 pool.)
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        layers, c_in = [], 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.layers(self.stem(x))))


ARCHS: dict[str, Callable[[int, int], nn.Module]] = {
    "small_cnn": SmallCNN,
    "resnet18": ResNet18,
}


def build_model(arch: str, in_channels: int, num_classes: int,
                mean: tuple[float, ...], std: tuple[float, ...]) -> Normalized:
    """The architecture `arch` for images of `in_channels` channels, wrapped with its normalisation."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; registered: {', '.join(ARCHS)}")
    return Normalized(ARCHS[arch](in_channels, num_classes), mean, std).to(memory_format=torch.channels_last)
