"""Train a ResNet-18 with APR-SP (APR-S, then crop and flip, then APR-P: paper section 4) in one short file.

    python examples/train_resnet18_apr.py                        # Fashion-MNIST, on the GPU when there is one
    python examples/train_resnet18_apr.py --dataset cifar10      # CIFAR-10 (torchvision downloads it)
    python examples/train_resnet18_apr.py --epochs 1 --limit 512 # a quick look

Needs only torch, torchvision and apr_lib's core (`apr_lib.augment`). The whole dataset sits on the training device
as uint8 and every augmentation runs batched there: APR-S per image (`APRS`, one AugMix op, then with p = 0.5 an
amplitude-phase recombination with a second view), a random crop and flip per image, then APR-P on the batch
(`APRP`, clean and recombined images, 2B per step), all before normalising, as the released CIFAR code. The loss is
the released one, CE(clean) + CE(recombined). Fashion-MNIST comes from `--data-root`/FashionMNIST/raw/, filled from
Debian's dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist) when it is installed, else downloaded.
"""
from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torchvision.transforms import v2
from torch import nn

from apr_lib.augment import APRP, APRS, RandomCropFlip

# Hyperparameters: the released code's CIFAR settings (SGD with Nesterov momentum, batch 128), a cosine schedule.
EPOCHS = 10
BATCH_SIZE = 128
LR = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
APR_P_PROB = 0.6  # per batch, as released
CROP_PADDING = 4
CROP_FILL = 128  # the released CIFAR crop pads with gray
SEED = 0
STATS = {"fmnist": ((0.2860,), (0.3530,)), "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}
DATASETS = {"fmnist": torchvision.datasets.FashionMNIST, "cifar10": torchvision.datasets.CIFAR10}
DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")


def load_dataset(name: str, root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, C, H, W) and labels of a torchvision dataset."""
    download = True
    if name == "fmnist":
        raw = root / "FashionMNIST" / "raw"
        if not raw.is_dir() and DEBIAN_FMNIST.is_dir():  # Debian's package holds the gzipped IDX files
            raw.mkdir(parents=True)
            for packed in DEBIAN_FMNIST.glob("*-ubyte.gz"):
                (raw / packed.stem).write_bytes(gzip.decompress(packed.read_bytes()))
        download = not raw.is_dir()
    data = DATASETS[name](root, train=train, download=download)
    images = torch.as_tensor(data.data)
    images = images[:, None] if images.ndim == 3 else images.permute(0, 3, 1, 2)
    return images.contiguous(), torch.as_tensor(data.targets)


def small_resnet18(channels: int, classes: int, mean: tuple, std: tuple) -> nn.Module:
    """torchvision's ResNet-18 with the usual stem for small images (a 3x3 stride-1 convolution, no max-pool) and
    the normalisation inside, so that it takes images in [0, 1]."""
    model = torchvision.models.resnet18(num_classes=classes)
    model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    normalize = v2.Normalize(mean, std)
    return nn.Sequential(normalize, model)


def apr_sp_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, aprp: APRP) -> torch.Tensor:
    """CE(clean) + CE(recombined) (the released loss, a sum of two means) of a float batch in [0, 1]."""
    inputs, targets = aprp(x, y)  # 2B images: the clean batch, then the recombined one; labels of the phase images
    return F.cross_entropy(model(inputs), targets, reduction="sum") / len(x)


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    correct = sum((model(images[i:i + batch_size].float() / 255).argmax(1) == labels[i:i + batch_size]).sum().item()
                  for i in range(0, len(images), batch_size))
    model.train()
    return correct / len(images)


def train(model: nn.Module, batches, steps_per_epoch: int, epochs: int, aprp: APRP, test_x: torch.Tensor,
          test_y: torch.Tensor) -> None:
    """SGD with the hyperparameters above on the float batches (x in [0, 1], labels) that `batches()` yields in
    each epoch, reporting the test accuracy after each."""
    device = test_x.device
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    for epoch in range(epochs):
        started = time.perf_counter()
        for x, y in batches():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = apr_sp_loss(model, x, y, aprp)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, test accuracy "
              f"{accuracy(model, test_x, test_y):.4f}, {time.perf_counter() - started:.1f} s", flush=True)


def argument_parser(description: str) -> argparse.ArgumentParser:
    """The options both examples take."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", choices=list(STATS), default="fmnist")
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training and test images")
    return parser


def main() -> None:
    args = argument_parser(__doc__.split("\n")[0]).parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(SEED)
    generator = torch.Generator(device).manual_seed(SEED)
    train_x, train_y = (t[:args.limit].to(device) for t in load_dataset(args.dataset, args.data_root, True))
    test_x, test_y = (t[:args.limit].to(device) for t in load_dataset(args.dataset, args.data_root, False))
    model = small_resnet18(train_x.shape[1], 10, *STATS[args.dataset]).to(device, memory_format=torch.channels_last)

    aprs = APRS(generator=generator)  # the paper's APR-S (values clipped); APRS.released() wraps around as released
    crop_flip = RandomCropFlip(CROP_PADDING, fill=CROP_FILL / 255, generator=generator)
    aprp = APRP(prob=APR_P_PROB, generator=generator)  # keep_clean: the model sees clean and recombined images

    steps_per_epoch = max(1, len(train_x) // args.batch_size)

    def batches():
        order = torch.randperm(len(train_x), device=device, generator=generator)
        for step in range(steps_per_epoch):
            batch = order[step * args.batch_size:(step + 1) * args.batch_size]
            yield crop_flip(aprs(train_x[batch]).float() / 255), train_y[batch]  # APR-S on uint8, as PIL ops

    train(model, batches, steps_per_epoch, args.epochs, aprp, test_x, test_y)


if __name__ == "__main__":
    main()
