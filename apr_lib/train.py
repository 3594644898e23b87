"""Train one run: GPU-resident uint8 data, batched augmentation, SGD, a checkpoint after every epoch.

Resuming: each epoch's randomness (data order, augmentations, dropout) is seeded from (seed, epoch)
alone, so a run resumed from the checkpoint of epoch e continues exactly as an uninterrupted run.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from apr_lib.data import load_split, subset_indices
from apr_lib.distributed import TrainStream, init_from_env, replica_digests, streamed
from apr_lib.errors import CheckpointError, ProfileError, TrainingDiverged
from apr_lib.files import write_json
from apr_lib.layout import CHECKPOINT, CONFIG, WEIGHTS
from apr_lib.methods import TrainingMethod
from apr_lib.models import build_run_model
from apr_lib.names import config_digest, run_name
from apr_lib.progress import tqdm
from apr_lib.runs import load_state, save_state, seed_everything


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def lr_factor(step: int, total_steps: int, milestones: list[float], gamma: float) -> float:
    """Step decay: multiply by `gamma` at each milestone (a fraction of training), per iteration."""
    return gamma ** sum(step >= m * total_steps for m in milestones)


def lr_schedule(optimizer: torch.optim.Optimizer, train_cfg: dict,
                total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The profile's `train.schedule`, stepped once per iteration.

    step (default): `lr` multiplied by `lr_gamma` at each of `lr_milestones` (the released CIFAR code).
    cyclic: one triangle from 0 up to `lr` at mid-training and back down to 0 (locuslab's FGSM training, as the
    released `autoattacks/train_fgsm.py`): torch's CyclicLR with locuslab's arguments, so momentum cycles too, from
    `momentum` down to 0.8 at the peak.
    """
    if train_cfg.get("schedule", "step") == "cyclic":
        return torch.optim.lr_scheduler.CyclicLR(optimizer, base_lr=0.0, max_lr=train_cfg["lr"],
                                                 step_size_up=total_steps / 2, step_size_down=total_steps / 2,
                                                 max_momentum=train_cfg["momentum"])
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, train_cfg["lr_milestones"], train_cfg["lr_gamma"]))


def train_run(config: dict, run_dir: Path, metrics_path: Path, restart: bool = False, progress: bool = True) -> dict:
    """Train the run described by `config` (a run's resolved config: apr_lib.study.config.run_config) in `run_dir`.

    Writes the final weights and config to `run_dir`, the training metrics to `metrics_path`, then
    removes the checkpoint; returns the metrics.
    """
    run_dir = Path(run_dir)
    name = run_name(config["dataset"], config["arch"], config["method"], config["seed"], config.get("variant", ""))
    train_cfg = config["train"]
    cluster = init_from_env()  # the processes torchrun started, or this one alone (apr_lib.distributed)
    device = cluster.device
    batch_size, epochs = train_cfg["batch_size"], train_cfg["epochs"]
    stream = TrainStream(config, cluster) if streamed(config["dataset"]) else None  # ImageNet: read from disk
    if stream:
        train_images, steps_per_epoch = len(stream.images), stream.steps_per_epoch
    else:
        data = load_split(config["dataset"], Path(config["data_root"]), train=True)
        keep = subset_indices(len(data.labels), train_cfg.get("train_subset"))
        images, labels = data.images[keep].to(device), data.labels[keep].to(device)
        train_images, steps_per_epoch = len(labels), len(labels) // batch_size  # drop the last partial batch (BatchNorm)

    seed_everything(config["seed"])
    model = build_run_model(config).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=train_cfg["lr"], momentum=train_cfg["momentum"],
                                nesterov=train_cfg["nesterov"], weight_decay=train_cfg["weight_decay"])
    if steps_per_epoch == 0:
        raise ProfileError(f"run {name}: train.batch_size {batch_size} exceeds the {train_images} training images; "
                           "lower train.batch_size or raise train.train_subset")
    total_steps = steps_per_epoch * epochs
    schedule = lr_schedule(optimizer, train_cfg, total_steps)

    digest = config_digest(config)
    checkpoint_path = run_dir / CHECKPOINT
    restart_hint = f"Re-run with `apr train ... --restart` (or delete {checkpoint_path}) to train this run from epoch 0."
    start_epoch, history = 0, []
    if checkpoint_path.exists() and not restart:
        state = load_state(checkpoint_path, restart_hint)
        if state.get("config_digest") != digest:
            raise CheckpointError(f"{checkpoint_path} was written by a different configuration of this run "
                                  f"(the profile changed since). {restart_hint}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_epoch, history = state["epoch"] + 1, state["history"]
        if cluster.is_main:
            print(f"{name}: resuming after epoch {start_epoch} of {epochs} from {checkpoint_path}")
    replica = cluster.wrap(model)  # DistributedDataParallel under torchrun; `model` itself in one process

    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for epoch in range(start_epoch, epochs):
        seed = cluster.seed(epoch_seed(config["seed"], epoch))  # each process its own draws; process 0 the run's
        torch.manual_seed(seed)  # dropout and any unseeded draw
        generator = torch.Generator(device).manual_seed(seed)
        method = TrainingMethod(config["method"], config, generator)
        if stream:
            batches = stream.epoch(epoch, seed)
        else:
            order = torch.randperm(len(labels), generator=generator, device=device)
            batches = ((images[b], labels[b]) for b in order[:steps_per_epoch * batch_size].split(batch_size))
        model.train()
        started, loss_sum = time.perf_counter(), 0.0
        bar = tqdm(batches, total=steps_per_epoch, desc=f"{name} epoch {epoch + 1}/{epochs}",
                   disable=None if progress and cluster.is_main else True, leave=False)
        for step, (batch_images, batch_labels) in enumerate(bar):
            with autocast:
                loss = method.loss(replica, batch_images, batch_labels)
            if not math.isfinite(loss.item()):
                raise TrainingDiverged(f"run {name}: the loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}. "
                                       f"Lower train.lr (now {train_cfg['lr']}) in the profile.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        seconds = time.perf_counter() - started
        history.append({"epoch": epoch + 1, "loss": cluster.mean(loss_sum) / steps_per_epoch, "seconds": seconds,
                        "lr_end": schedule.get_last_lr()[0]})
        if cluster.is_main:  # one writer; every process resumes from this file
            print(f"{name}: epoch {epoch + 1}/{epochs} loss {history[-1]['loss']:.4f} ({seconds:.1f} s)")
            save_state({"epoch": epoch, "config_digest": digest, "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "history": history},
                       checkpoint_path)

    replicas = replica_digests(model, cluster)
    if len(set(replicas)) > 1:
        raise RuntimeError(f"run {name}: the {cluster.world_size} processes' replicas differ after training "
                           f"(state digests by rank: {replicas})")
    metrics = {"run": name, "config_digest": digest, "device": device.type, "threads": torch.get_num_threads(),
               "processes": cluster.world_size, "replica_digests": replicas,
               "train_images": train_images, "epochs": epochs, "history": history,
               "final_loss": history[-1]["loss"], "train_seconds": sum(h["seconds"] for h in history)}
    if cluster.is_main:
        save_state(model.state_dict(), run_dir / WEIGHTS)
        write_json(run_dir / CONFIG, config)
        write_json(metrics_path, metrics)
        checkpoint_path.unlink()
    cluster.close()
    return metrics
