"""Architectures by name, the normalising wrapper every trained model carries, and the wrappers of Figures 4 and 9.

A model built here takes float images in [0, 1] shaped (B, C, H, W) and returns logits: the
dataset's normalisation lives inside the model, so augmentations, attacks and corruptions all work
in image space.

The paper's architectures follow the released code (its `model/` folder and `autoattacks/preact_resnet.py`;
docs/released_code.md): the CIFAR models of AugMix that APR copies (AllConvNet, DenseNet, WRN, ResNeXt), the CIFAR
ResNet-18, locuslab's PreActResNet-18 and torchvision's ResNet-50. Every one takes any number of input channels and
classes. Where the released code hard-codes the final average pool for 32 px images, the pool here is adaptive so that 28 px
(Fashion-MNIST) images work too; at 32 px both pool the same 8x8 (or 4x4) map. (AllConvNet keeps its
released pool, which already works at 28 px; see there.) Smaller variants of the same classes serve the
CPU default profile; `ARCHS` lists every name (apr_lib.names.ARCHS) with its constructor arguments.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from apr_lib.data import DATASETS
from apr_lib.spectral import band_recombine


class Normalized(nn.Module):
    """(x - mean) / std, then the wrapped network, in channels_last memory layout (faster on CPU and GPU)."""

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last))


def he_init(model: nn.Module) -> None:
    """The init of AugMix's CIFAR models: convs normal with std sqrt(2 / (k * k * out_channels)) (He, fan-out),
    linear biases zero; batch norms start as the identity, PyTorch's default."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)


def global_pool() -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


# ---- small_cnn: the default profile's first model ----

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


# ---- AllConvNet (Springenberg et al. 2015), as in AugMix ----

class SigmoidGELU(nn.Module):
    """AugMix's GELU approximation x * sigmoid(1.702 x) (not torch's erf or tanh GELU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(1.702 * x) * x


def conv_bn_gelu(c_in: int, c_out: int, kernel_size: int = 3, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size, padding=padding), nn.BatchNorm2d(c_out), SigmoidGELU())


class AllConvNet(nn.Module):
    """AugMix's AllConvNet: three 3x3 conv-BN-GELU of `widths[0]`, 2x2 max-pool and dropout 0.5, three of
    `widths[1]`, max-pool and dropout, an unpadded 3x3 conv, two 1x1 convs, an 8x8 average pool, a linear head.

    Kept from the released code: conv biases, and padding=1 on the two 1x1 convs. That padding adds no
    parameter; it grows the map by 2 px per conv (6 -> 8 -> 10 at 32 px input, 5 -> 7 -> 9 at 28 px), and the
    released AvgPool2d(8) then averages the top-left 8x8 window of that map. That pool is kept as released
    (not made adaptive, which would change the function at 32 px): it gives one value per channel for inputs of
    24 to 55 px, 28 px included.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, widths: tuple[int, int] = (96, 192)):
        super().__init__()
        w1, w2 = widths
        self.features = nn.Sequential(
            conv_bn_gelu(in_channels, w1), conv_bn_gelu(w1, w1), conv_bn_gelu(w1, w1),
            nn.MaxPool2d(2), nn.Dropout(0.5),
            conv_bn_gelu(w1, w2), conv_bn_gelu(w2, w2), conv_bn_gelu(w2, w2),
            nn.MaxPool2d(2), nn.Dropout(0.5),
            conv_bn_gelu(w2, w2, 3, padding=0),
            conv_bn_gelu(w2, w2, 1, padding=1), conv_bn_gelu(w2, w2, 1, padding=1),
            nn.AvgPool2d(8), nn.Flatten())
        self.classifier = nn.Linear(w2, num_classes)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# ---- DenseNet (Huang et al. 2017), as in AugMix ----

class DenseLayer(nn.Module):
    """BN-ReLU-conv3x3 making `growth` new channels, concatenated to the input; with `bottleneck` (DenseNet-BC)
    a BN-ReLU-conv1x1 to 4 * growth channels comes first."""

    def __init__(self, c_in: int, growth: int, bottleneck: bool):
        super().__init__()
        layers: list[nn.Module] = []
        if bottleneck:
            layers += [nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, 4 * growth, 1, bias=False)]
            c_in = 4 * growth
        layers += [nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, growth, 3, padding=1, bias=False)]
        self.new_features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.new_features(x)], dim=1)


def transition(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, c_out, 1, bias=False),
                         nn.AvgPool2d(2))


class DenseNet(nn.Module):
    """DenseNet for 32 px images: a 3x3 conv to 2 * growth channels (as released; Huang et al. start their non-BC
    DenseNets with 16), three dense blocks of (depth - 4) / 3 layers ((depth - 4) / 6 bottleneck layers for
    DenseNet-BC) joined by transitions that keep `reduction` of the channels and halve the size, then BN-ReLU,
    global average pooling and a linear head.

    The released code builds DenseNet-40-12 (growth 12, no bottleneck, reduction 1.0); the paper's text names
    DenseNet-BC (bottleneck, reduction 0.5). The final 8x8 pool of the release is adaptive here.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, depth: int = 40, growth: int = 12,
                 bottleneck: bool = False, reduction: float = 1.0):
        super().__init__()
        convs_per_layer = 2 if bottleneck else 1
        if (depth - 4) % (3 * convs_per_layer):
            raise ValueError(f"DenseNet depth {depth} is not 4 + 3 * {convs_per_layer} * layers per block")
        layers_per_block = (depth - 4) // (3 * convs_per_layer)
        channels = 2 * growth
        features: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)]
        for block in range(3):
            for _ in range(layers_per_block):
                features.append(DenseLayer(channels, growth, bottleneck))
                channels += growth
            if block < 2:
                features.append(transition(channels, math.floor(channels * reduction)))
                channels = math.floor(channels * reduction)
        features += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True), global_pool()]
        self.features = nn.Sequential(*features)
        self.classifier = nn.Linear(channels, num_classes)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# ---- Wide ResNet (Zagoruyko & Komodakis 2016), as in AugMix ----

class WideBlock(nn.Module):
    """Pre-activation block BN-ReLU-conv3x3-BN-ReLU-conv3x3. Where the width changes, the shortcut is a 1x1 conv
    of the pre-activated input (as released); otherwise the raw input."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    """WRN-depth-k: a 3x3 conv to 16 channels, three stages of (depth - 4) / 6 blocks of widths 16k, 32k, 64k
    (strides 1, 2, 2), BN-ReLU, global average pooling, linear head. Dropout 0, as released (so none here);
    the final 8x8 pool of the release is adaptive here."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, depth: int = 40, widen_factor: int = 2):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth {depth} is not 4 + 6 * blocks per stage")
        blocks_per_stage = (depth - 4) // 6
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)]
        c_in = 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            c_out = width * widen_factor
            for i in range(blocks_per_stage):
                layers.append(WideBlock(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
        layers += [nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), global_pool()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in, num_classes)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# ---- ResNeXt (Xie et al. 2017), CIFAR variant as in AugMix ----

class ResNeXtBlock(nn.Module):
    """Bottleneck of type C: conv1x1 to cardinality * d channels (d = planes * base_width / 64), grouped 3x3 conv
    (carrying the stride), conv1x1 to 4 * planes, each with BN; the shortcut is a strided 1x1 conv + BN where
    the shape changes."""

    def __init__(self, c_in: int, planes: int, cardinality: int, base_width: int, stride: int):
        super().__init__()
        group_width = cardinality * (planes * base_width // 64)
        c_out = 4 * planes
        self.branch = nn.Sequential(
            nn.Conv2d(c_in, group_width, 1, bias=False), nn.BatchNorm2d(group_width), nn.ReLU(inplace=True),
            nn.Conv2d(group_width, group_width, 3, stride=stride, padding=1, groups=cardinality, bias=False),
            nn.BatchNorm2d(group_width), nn.ReLU(inplace=True),
            nn.Conv2d(group_width, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.branch(x) + self.shortcut(x))


class ResNeXt(nn.Module):
    """CIFAR ResNeXt-depth (cardinality x base_width): 3x3 conv-BN-ReLU to `widths[0]` channels, three stages of
    (depth - 2) / 9 blocks of planes `widths` (outputs 4x, strides 1, 2, 2), global average pooling, linear head.
    The released resnext29 is cardinality 4, base width 32, widths 64/128/256 (the paper's "32x4"); its final
    8x8 pool is adaptive here. The linear weights are He-normal (fan-in), as released."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, depth: int = 29, cardinality: int = 4,
                 base_width: int = 32, widths: tuple[int, int, int] = (64, 128, 256)):
        super().__init__()
        if (depth - 2) % 9:
            raise ValueError(f"ResNeXt depth {depth} is not 2 + 9 * blocks per stage")
        blocks_per_stage = (depth - 2) // 9
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        c_in = widths[0]
        for planes, stride in zip(widths, (1, 2, 2)):
            for i in range(blocks_per_stage):
                layers.append(ResNeXtBlock(c_in, planes, cardinality, base_width, stride if i == 0 else 1))
                c_in = 4 * planes
        layers.append(global_pool())
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in, num_classes)
        he_init(self)
        nn.init.kaiming_normal_(self.classifier.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# ---- ResNet-18, CIFAR variant (kuangliu/pytorch-cifar, used by the released code for Table 2) ----

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
    """The CIFAR variant of ResNet-18 used by the released code (`model/resnet.py`): 3x3 stem with stride 1,
    no max-pool, BasicBlocks [2, 2, 2, 2] of widths 64/128/256/512, global average pooling, linear head.
    (Average pooling is adaptive so that 28 px images work too; at 32 px it equals the released 4x4 pool.)
    `width` scales the four stage widths (width, 2x, 4x, 8x; released: 64).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        layers, c_in = [], width
        for c_out, stride in ((width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2)):
            layers += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.pool = global_pool()
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.layers(self.stem(x))))


# ---- PreActResNet-18 (He et al. 2016b), as in locuslab/fast_adversarial (the released Table 3 model) ----

class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3; where the shape changes the shortcut is a strided 1x1 conv (no BN) of
    the raw input, as in locuslab's code."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


def preact_stage(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(PreActBlock(c_in, c_out, stride), PreActBlock(c_out, c_out, 1))


class PreActResNet18(nn.Module):
    """3x3 stem (stride 1, no BN), PreActBlocks [2, 2, 2, 2] of widths 64/128/256/512, a final BN-ReLU,
    global average pooling (adaptive here; the released 4x4 pool at 32 px), linear head. Module names follow
    locuslab's (conv1, layer1..4, bn, linear), so its state dicts load into this model."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, padding=1, bias=False)
        self.layer1 = preact_stage(64, 64, 1)
        self.layer2 = preact_stage(64, 128, 2)
        self.layer3 = preact_stage(128, 256, 2)
        self.layer4 = preact_stage(256, 512, 2)
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)
        return self.linear(out)


# ---- ResNet-50 (torchvision), the ImageNet model of Table 4 ----

def resnet50(in_channels: int = 3, num_classes: int = 1000) -> nn.Module:
    """torchvision's ResNet-50 (untrained). For other than 3 input channels the 7x7 stem conv is replaced by
    one of `in_channels` inputs, initialised as torchvision initialises it. Its adaptive pool takes small images
    too (a 28 px image reaches layer4 as 1x1)."""
    from torchvision.models import resnet50 as torchvision_resnet50  # imported here: torchvision loads slowly

    net = torchvision_resnet50(weights=None, num_classes=num_classes)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    return net


ARCHS: dict[str, Callable[[int, int], nn.Module]] = {
    # Small models for the default profile (CPU, Fashion-MNIST): one per Table-1 family, 90k-180k parameters.
    "small_cnn": SmallCNN,
    "allconv_small": partial(AllConvNet, widths=(32, 64)),  # a third of the width
    "densenet16_12": partial(DenseNet, depth=16, growth=12, bottleneck=False, reduction=1.0),
    "wrn16_1": partial(WideResNet, depth=16, widen_factor=1),
    "resnext_small": partial(ResNeXt, depth=11, cardinality=4, base_width=32, widths=(16, 32, 64)),  # quarter width
    "resnet18_small": partial(ResNet18, width=8),  # an eighth of the width (Figure 9's ResNet-18)
    # The paper's: Table 1 as released (plus DenseNet-BC, as the paper's text names it), Tables 2 and 3, Table 4.
    "allconv": AllConvNet,
    "densenet40_12": partial(DenseNet, depth=40, growth=12, bottleneck=False, reduction=1.0),
    "densenet_bc100_12": partial(DenseNet, depth=100, growth=12, bottleneck=True, reduction=0.5),
    "wrn40_2": partial(WideResNet, depth=40, widen_factor=2),
    "resnext29_4x32": partial(ResNeXt, depth=29, cardinality=4, base_width=32),
    "resnet18": ResNet18,
    "preact_resnet18": PreActResNet18,
    "resnet50": resnet50,
}


def build_model(arch: str, in_channels: int, num_classes: int,
                mean: tuple[float, ...], std: tuple[float, ...]) -> Normalized:
    """The architecture `arch` for images of `in_channels` channels, wrapped with its normalisation."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; registered: {', '.join(ARCHS)}")
    return Normalized(ARCHS[arch](in_channels, num_classes), mean, std).to(memory_format=torch.channels_last)


# ---- Figure 4's band-recombined input and Figure 9's two heads ----

class BandRecombinedInput(nn.Module):
    """`model` behind Figure 4's input: the image rebuilt from one amplitude band and one phase band,
    iDFT(A-hat_band(x) * exp(i P-hat_band(x))) (apr_lib.spectral.band_recombine; section 3.1).

    A run whose config sets `bands.amplitude` or `bands.phase` sees every image this way, in training and in every
    evaluation suite: the recombination is the model's first layer, so the suites, which see only the model, test on
    band-recombined images without knowing the run's variant. It is a 2-D DFT per channel, with the paper's z-hat
    rule on the bins outside each band (apr_lib.spectral.keep_band) and radial bands of the centred spectrum in DFT
    bins (the profile's `bands.radii`; the paper gives none). The recombined images are NOT clipped to [0, 1]: without the low band the amplitude loses
    the mean (z-hat sets it to 1), so the images centre on 0 and clipping would discard half of each; the model's
    normalisation follows unchanged. Random crop and flip act on the original image, before the recombination.
    """

    def __init__(self, model: nn.Module, amplitude: str, phase: str, radii: tuple[float, float]):
        super().__init__()
        self.model, self.amplitude, self.phase, self.radii = model, amplitude, phase, tuple(radii)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(band_recombine(x, self.amplitude, self.phase, self.radii, mode="per_channel"))

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude!r}, phase={self.phase!r}, radii={self.radii}"


def config_bands(config: dict) -> tuple[str, str]:
    """(amplitude band, phase band) of a run's resolved config; a run without `bands` sees whole spectra."""
    bands = config.get("bands") or {}
    return bands.get("amplitude", "full"), bands.get("phase", "full")


class AmplitudePhaseHeads(nn.Module):
    """Figure 9's model (section 5.3): a classifier of 2K outputs read as two heads, phase (first K) and amplitude
    (last K); forward returns `phase_weight` * f_P + (1 - `phase_weight`) * f_A (the paper's lambda).

    One linear layer of 2K outputs is the two heads side by side; forward returns the combined prediction as
    logits, so every evaluation suite works unchanged. Trained with Eq. 7 (apr_lib.methods.amplitude_phase_loss).
    """

    def __init__(self, model: nn.Module, num_classes: int, phase_weight: float):
        super().__init__()
        self.model, self.num_classes, self.phase_weight = model, num_classes, phase_weight

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        if logits.shape[-1] != 2 * self.num_classes:
            raise ValueError(f"expected {2 * self.num_classes} outputs (two heads of {self.num_classes}), "
                             f"got {logits.shape[-1]}")
        phase_logits, amplitude_logits = logits.split(self.num_classes, dim=-1)
        return phase_logits, amplitude_logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phase_logits, amplitude_logits = self.heads(x)
        return self.phase_weight * phase_logits + (1 - self.phase_weight) * amplitude_logits

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, phase_weight={self.phase_weight}"


def build_run_model(config: dict) -> nn.Module:
    """The untrained model of a run's resolved config: `build_model` of its architecture, with Figure 9's two heads
    if the config has `amp_phase_labels`, behind Figure 4's band-recombined input if it has `bands` other than
    full/full. Training and `load_run` both build through here, so saved weights always fit."""
    info = DATASETS[config["dataset"]]
    labels, bands = config.get("amp_phase_labels"), config.get("bands")
    outputs = 2 * info.num_classes if labels else info.num_classes
    model: nn.Module = build_model(config["arch"], info.channels, outputs, info.mean, info.std)
    if labels:
        model = AmplitudePhaseHeads(model, info.num_classes, labels["lambda"])
    if bands and (amplitude_phase := config_bands(config)) != ("full", "full"):
        model = BandRecombinedInput(model, *amplitude_phase, bands["radii"])
    return model
