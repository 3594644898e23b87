"""APR-SP in a per-image pipeline: a torchvision Dataset with v2 transforms in DataLoader workers, APR-P on the batch.

    python examples/dataloader_v2.py                         # Fashion-MNIST
    python examples/dataloader_v2.py --dataset cifar10       # CIFAR-10
    python examples/dataloader_v2.py --epochs 1 --limit 512  # a quick look

The same training as `train_resnet18_apr.py` (its model, loss, evaluation and hyperparameters), laid out as the
released code does it: APR-S, crop and flip run per image in the Dataset's transforms (in the workers, on the CPU),
APR-P on each collated batch on the training device, before the model normalises.

Leave APRS's generator unset here: each worker then draws from its own torch generator, which the DataLoader seeds
differently per worker; a generator passed in would be copied into every worker and give them the same draws.
"""
from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import v2

from apr_lib.augment import APRP, APRS
from train_resnet18_apr import (APR_P_PROB, CROP_FILL, CROP_PADDING, DATASETS, SEED, STATS, argument_parser,
                                load_dataset, small_resnet18, train)


def per_image_transforms(size: int) -> v2.Compose:
    """PIL image -> APR-S, crop, flip (as uint8, as released) -> float tensor in [0, 1]."""
    return v2.Compose([v2.ToImage(), APRS(), v2.RandomCrop(size, padding=CROP_PADDING, fill=CROP_FILL),
                       v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True)])


def main() -> None:
    parser = argument_parser(__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="DataLoader worker processes")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(SEED)
    test_x, test_y = (t[:args.limit].to(device) for t in load_dataset(args.dataset, args.data_root, False))
    train_set = DATASETS[args.dataset](args.data_root, train=True, transform=per_image_transforms(test_x.shape[-1]))
    if args.limit:
        train_set = Subset(train_set, range(args.limit))
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=args.workers,
                        persistent_workers=args.workers > 0, pin_memory=device.type == "cuda")
    model = small_resnet18(test_x.shape[1], 10, *STATS[args.dataset]).to(device, memory_format=torch.channels_last)
    aprp = APRP(prob=APR_P_PROB, generator=torch.Generator(device).manual_seed(SEED))

    batches = lambda: ((x.to(device, non_blocking=True), y.to(device, non_blocking=True)) for x, y in loader)
    train(model, batches, len(loader), args.epochs, aprp, test_x, test_y)


if __name__ == "__main__":
    main()
