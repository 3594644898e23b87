"""AutoAttack against a trained model (Table 3, section 5.1, "Adversarial Attack").

- `autoattack`: pyautoattack's AutoAttack (l_inf) on a batch of test images, attack after attack;
- `suite_autoattack`: the `autoattack` evaluation suite (apr_lib.evaluate.SUITES): clean and robust accuracy on the
  first N test images for each N of the profile's `autoattack.n_images` (the paper's protocol: the first 1,000, as
  the released `autoattacks/eval.py` was run for the paper's numbers).

The training side lives with the other methods: `train.adversarial: fgsm` (apr_lib.methods) on top of any method's
batch and `train.schedule: cyclic` (apr_lib.train); the table and its claims: apr_lib.paper.table3_adversarial.
pyautoattack comes with the [pipeline] extra (apr_lib.extras).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from apr_lib.data import load_split
from apr_lib.errors import ProfileError
from apr_lib.extras import require
from apr_lib.progress import tqdm

STANDARD_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")  # AutoAttack's standard l_inf ensemble, in its order


def attack_list(attacks: str | list[str]) -> list[str]:
    """The profile's `autoattack.attacks`: "standard" or a list of attacks of the standard ensemble."""
    return list(STANDARD_ATTACKS) if attacks == "standard" else list(attacks)


def autoattack(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float,
               attacks: list[str], batch_size: int, seed: int) -> tuple[torch.Tensor, dict, dict]:
    """Which images (uint8, (N, C, H, W)) `model` classifies correctly, clean and under AutoAttack (l_inf, `epsilon`
    on [0, 1] images), attack after attack.

    Each attack is pyautoattack's, set up as its standard version sets it, and runs batch by batch on the images no
    earlier attack broke, as AutoAttack's own loop does; calling it per attack and batch only adds a progress bar
    and the accuracy after each attack. Returns (clean (N,) bool, {attack: robust (N,) bool after it},
    {attack: seconds}).
    """
    device = next(model.parameters()).device
    x, y = images.float() / 255, labels
    adversary = require("pyautoattack").AutoAttack(model, device=device, eps=epsilon, norm="Linf", seed=seed,
                                                   version="standard")
    with torch.no_grad():
        clean = torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu()
                           for i in range(0, len(x), batch_size)]) == y
    robust, after, seconds = clean.clone(), {}, {}
    for attack in attacks:
        started = time.perf_counter()
        adversary.attacks_to_run = [attack]
        still_correct = robust.nonzero().flatten()
        for batch in tqdm(still_correct.split(batch_size), desc=f"{attack} on {len(still_correct)} images",
                          unit="batch", disable=None):
            _, predicted = adversary.run_standard_evaluation(x[batch], y[batch], batch_size=batch_size)
            robust[batch] = predicted.cpu() == y[batch]
        after[attack], seconds[attack] = robust.clone(), time.perf_counter() - started
    return clean, after, seconds


def percent(flags: torch.Tensor) -> float:
    return 100.0 * flags.double().mean().item()


def suite_autoattack(cfg: dict, model: torch.nn.Module) -> tuple[dict, dict, str]:
    """Clean and AutoAttack accuracy (%) on the first N test images, for each N of `autoattack.n_images` of the
    profile's settings `cfg`; the attack runs once, on the largest N, and each smaller N reads its first images.
    Per image: clean and robust (after each attack) correctness of the largest N (apr_lib.per_image)."""
    settings = cfg["autoattack"]
    test = load_split(cfg["dataset"], Path(cfg["data_root"]), train=False)
    counts = settings["n_images"]
    if max(counts) > len(test.labels):
        raise ProfileError(f"profile {cfg['name']!r}: autoattack.n_images asks for {max(counts)} test images, but "
                           f"the {cfg['dataset']} test set has {len(test.labels)}; lower autoattack.n_images")
    attacks = attack_list(settings["attacks"])
    n, cpu_started = max(counts), time.process_time()
    clean, after, seconds = autoattack(model, test.images[:n], test.labels[:n], settings["epsilon_levels"] / 255,
                                       attacks, settings["batch_size"], settings["seed"])
    robust = after[attacks[-1]]
    result = {"norm": "Linf", "epsilon_levels": settings["epsilon_levels"], "attacks": attacks,
              "attack_set": "standard" if settings["attacks"] == "standard" else "reduced",
              "images": "the first N of the test set", "seed": settings["seed"],
              "seconds": sum(seconds.values()), "seconds_per_attack": seconds,
              "cpu_seconds": time.process_time() - cpu_started,  # beside the wall time, which a busy machine inflates
              "results": [{"n": k, "clean_accuracy": percent(clean[:k]), "robust_accuracy": percent(robust[:k]),
                           "robust_accuracy_after": {a: percent(after[a][:k]) for a in attacks}} for k in counts]}
    per_image = {"clean": clean.numpy(), **{f"robust__{a}": after[a].numpy() for a in attacks},
                 "attacks": np.array(attacks)}
    first = result["results"][0]
    return result, per_image, (f"AutoAttack ({', '.join(attacks)}) on the first {first['n']} test images: clean "
                    f"{first['clean_accuracy']:.1f}%, robust {first['robust_accuracy']:.1f}% "
                    f"({result['seconds']:.0f} s on {n} images)")
