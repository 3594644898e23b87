"""Training on image folders too big for memory (ImageNet), in one process or in many under torchrun.

    torchrun --standalone --nproc_per_node 8 -m apr_lib.cli -- train --profile imagenet --run imagenet/resnet50/apr_sp/seed0

(the `--` keeps torchrun from reading apr's `--run` as an abbreviation of its own `--run-path`.)

torchrun starts one process per GPU and sets RANK, WORLD_SIZE and LOCAL_RANK; `init_from_env` reads them, joins
the process group (NCCL on CUDA, Gloo on the CPU) and gives each process its device. Without them (a plain
`apr train`) training is one process on `pick_device()`, exactly as before. Under DistributedDataParallel every
process holds a replica of the model; gradients are averaged across processes at each step, so the replicas
stay equal, and `replica_digests` checks at the end of training that they did. BatchNorm's running statistics are
process 0's (DDP copies its buffers to every replica at each forward pass), as are the saved weights: process 0
alone writes the checkpoints, the weights and the metrics; every process loads the checkpoint when a run resumes.

Streaming (`TrainStream`): DataLoader workers decode each process's shard of the training images
(DistributedSampler) and RandomResizedCrop them to `train.image_size` as uint8, the first step of the released
`imagenet.py`; TrainingMethod does the rest on the device, as for in-memory data (APR-S, flip, APR-P,
in the released order). `train.batch_size` is the global batch, split evenly across processes (as
pytorch/examples' ImageNet script, on which the released code builds). Test images: Resize(256/224 of the
size) then CenterCrop (the released validation transform).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

from apr_lib.data import DATASETS, IMAGE_FOLDERS, image_folder_dir, subset_indices
from apr_lib.errors import ProfileError
from apr_lib.runs import pick_device

RANK_SEED_STRIDE = 1 << 40  # process k draws from seed + k * stride: its own augmentations, process 0's unchanged


@dataclass(frozen=True)
class Cluster:
    """This process's place among the training processes (one, unless launched by torchrun)."""
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def seed(self, seed: int) -> int:
        return seed + self.rank * RANK_SEED_STRIDE

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """DistributedDataParallel around `model` when there are several processes; `model` itself otherwise."""
        if self.world_size == 1:
            return model
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def mean(self, value: float) -> float:
        """`value` averaged over the processes."""
        if self.world_size == 1:
            return value
        total = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.item() / self.world_size

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world_size > 1:
            dist.barrier()
            dist.destroy_process_group()


def init_from_env() -> Cluster:
    """Join torchrun's process group if this process was started by torchrun (WORLD_SIZE > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Cluster(0, 1, pick_device())
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        device, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(device)
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world_size)  # MASTER_ADDR/PORT from torchrun
    return Cluster(rank, world_size, device)


def replica_digests(model: torch.nn.Module, cluster: Cluster) -> list[str]:
    """A digest of the parameters of each process's replica, in rank order (equal when in sync). Buffers are left
    out: after the last step each replica's BatchNorm statistics are its own batch's, until DDP copies process 0's."""
    digest = state_digest(dict(model.named_parameters()))
    if cluster.world_size == 1:
        return [digest]
    digests: list[str] = [""] * cluster.world_size
    dist.all_gather_object(digests, digest)
    return digests


def state_digest(state: dict[str, torch.Tensor]) -> str:
    sha = hashlib.sha256()
    for key in sorted(state):
        sha.update(key.encode())
        sha.update(state[key].detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()[:16]


# ---- streaming image folders ----

def image_size(config: dict) -> int:
    return config["train"].get("image_size", DATASETS[config["dataset"]].size)


def image_folder(dataset: str, root: str | os.PathLike, train: bool, size: int) -> torch.utils.data.Dataset:
    """The train or val split of an image-folder dataset as (uint8 image (3, size, size), class index): a random
    resized crop for training, the resized centre crop for testing. Classes follow the sorted folder names; PIL
    decodes (and converts grey-scale and CMYK JPEGs to RGB), as for ImageNet-C (apr_lib.corrupted_sets)."""
    from torchvision.datasets import ImageFolder  # torchvision loads slowly (apr_lib.data): image folders only
    from torchvision.transforms.v2 import CenterCrop, Compose, PILToTensor, RandomResizedCrop, Resize  # the same
    crop = [RandomResizedCrop(size)] if train else [Resize(round(size * 256 / 224)), CenterCrop(size)]
    return ImageFolder(image_folder_dir(dataset, root, train), transform=Compose([*crop, PILToTensor()]))


def clean_test_set(cfg: dict) -> Subset:
    """The test images a clean evaluation of an image-folder profile reads (its eval.test_subset of them), from the
    profile's settings `cfg`."""
    split = image_folder(cfg["dataset"], Path(cfg["data_root"]), False, image_size(cfg))
    return Subset(split, subset_indices(len(split), cfg["eval"].get("test_subset")).tolist())


def streamed(dataset: str) -> bool:
    return dataset in IMAGE_FOLDERS


class TrainStream:
    """Each epoch's batches for this process: uint8 (B, 3, S, S) images and labels on its device, B the global
    batch divided by the number of processes; every process gets the same number of batches."""

    def __init__(self, config: dict, cluster: Cluster):
        train = config["train"]
        if train["batch_size"] % cluster.world_size:
            raise ProfileError(f"train.batch_size {train['batch_size']} is the global batch and must divide evenly "
                               f"among the {cluster.world_size} training processes; change it or the process count")
        self.batch_size, self.workers, self.device = train["batch_size"] // cluster.world_size, train["workers"], cluster.device
        split = image_folder(config["dataset"], Path(config["data_root"]), True, image_size(config))
        self.images = Subset(split, subset_indices(len(split), train.get("train_subset")).tolist())
        self.sampler = DistributedSampler(self.images, cluster.world_size, cluster.rank, shuffle=True,
                                          seed=config["seed"], drop_last=True)
        self.steps_per_epoch = len(self.sampler) // self.batch_size

    def epoch(self, epoch: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch`: its shuffle from (seed of the run, epoch), its crops from `seed`."""
        self.sampler.set_epoch(epoch)
        loader = DataLoader(self.images, self.batch_size, sampler=self.sampler, num_workers=self.workers,
                            pin_memory=self.device.type == "cuda", drop_last=True,
                            generator=torch.Generator().manual_seed(seed))  # seeds the workers' crops
        for images, labels in loader:
            yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
