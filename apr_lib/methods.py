"""Training methods (the rows of Table 1): how a batch of uint8 training images becomes a loss.

Every method runs the same pipeline, each stage in the order of the code it comes from:

    per image, before crop/flip   AutoAugment (its CIFAR code: policy, then pad-crop and flip) | APR-S (facts 1.3)
    random crop and flip          every method (profile keys train.crop_padding, crop_fill, flip)
    on the batch, after           Cutout (DeVries & Taylor: crop, flip, normalise, Cutout) | MixUp | CutMix |
                                  APR-P (facts 1.2) | AugMix's views (its code: flip, crop, augment-and-mix)
    adversarial                   adv, and any method with train.adversarial: fgsm (Table 3): FGSM examples
                                  of all the model's inputs (APR-P: both halves, as the released FGSM code)
    loss                          cross-entropy, with soft targets for MixUp/CutMix, summed over APR-P's clean
                                  and recombined halves (the released CE(clean) + CE(recombined); with
                                  apr.p_loss: mean, averaged over all 2B images as the released FGSM code);
                                  AugMix: CE(clean) + 12 JSD

Hyper-parameters come from the profile: `train` for all, and the sections in `MethodSpec.sections`.
Augmentations run in full precision, outside the training loop's bf16 autocast (grid sampling and FFTs
need the precision; only the model runs in bf16).

`adv` is our choice for Table 1's "Adv Training" row, for which the paper gives no recipe: FGSM with a
random start (Wong et al. 2020), the attack the paper's Table 3 trains with (facts 1.8); it is `standard`
with train.adversarial: fgsm.

An `apr_p` run whose config has `amp_phase_labels` (Figure 9) recombines every batch into pairs labelled by
their phase and their amplitude image instead, with Eq. 7's loss on its two heads (apr_lib.amp_phase_labels).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from apr_lib.augment import APRP, APRS, AugMix, AutoAugment, CutMix, Cutout, MixUp, RandomCropFlip
from apr_lib.amp_phase_labels import AmplitudePhasePairs, amplitude_phase_loss, check_method
from apr_lib.augment.ops import OPS, _draw_device
from apr_lib.data import DATASETS
from apr_lib.errors import ProfileError


@dataclass(frozen=True)
class MethodSpec:
    description: str
    sections: tuple[str, ...] = ()  # profile sections it reads besides `train`: only they re-train its runs


METHODS: dict[str, MethodSpec] = {
    "standard": MethodSpec("random crop and flip only (Table 1 'Standard')"),
    "cutout": MethodSpec("one square per image filled with the dataset mean (DeVries & Taylor 2017)", ("cutout",)),
    "mixup": MethodSpec("convex combinations of image pairs and their labels (Zhang et al. 2018)", ("mixup",)),
    "cutmix": MethodSpec("a box pasted from another image, labels mixed by its area (Yun et al. 2019)", ("cutmix",)),
    "adv": MethodSpec("adversarial training with FGSM from a random start (Wong et al. 2020); our choice for "
                      "Table 1's 'Adv Training', for which the paper gives no recipe", ("adv",)),
    "apr_p": MethodSpec("APR for pairs: amplitude from another image of the batch (Eq. 5)", ("apr",)),
    "autoaugment": MethodSpec("AutoAugment's CIFAR-10 policy (torchvision), one sub-policy per image"),
    "augmix": MethodSpec("AugMix chains mixed per image, with the Jensen-Shannon consistency loss "
                         "(Hendrycks et al. 2020)", ("augmix",)),
    "apr_s": MethodSpec("APR for a single image: amplitude from an augmented view (Eq. 6)", ("apr",)),
    "apr_sp": MethodSpec("APR-S then APR-P (released code's combination)", ("apr",)),
}


def fgsm_random_start(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, epsilon: float, step: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """FGSM adversarial examples from a random start (Wong et al. 2020; locuslab/fast_adversarial, facts 1.8).

    delta ~ U(-epsilon, epsilon) per pixel, clipped so that x + delta stays in [0, 1]; one step of size `step`
    along the sign of the loss gradient; delta clipped back to [-epsilon, epsilon] and x + delta to [0, 1].
    Units are those of x in [0, 1] (normalisation is inside the model). The gradient is taken with respect to
    delta alone, so the model's parameters get none. The model stays in its mode (train, as in the reference,
    so BatchNorm statistics also see the attack's forward pass).
    """
    start = torch.rand(x.shape, generator=generator, device=_draw_device(generator)).to(x)
    delta = ((x + (2 * start - 1) * epsilon).clamp(0, 1) - x).requires_grad_()
    gradient, = torch.autograd.grad(F.cross_entropy(model(x + delta), labels), delta)
    delta = (delta.detach() + step * gradient.sign()).clamp(-epsilon, epsilon)
    return (x + delta).clamp(0, 1)


def apply_with_probability(transform, x: torch.Tensor, prob: float,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """`transform` applied to each image of the batch `x` with probability `prob`, the others left as they are
    (torchvision's RandomApply, drawn per image: the released FGSM code's RandomApply([APR-S], p=prob-s))."""
    chosen = torch.rand(len(x), generator=generator, device=_draw_device(generator)).to(x.device) < prob
    out = x.clone()
    if chosen.any():
        out[chosen] = transform(x[chosen])
    return out


def augmix_loss(logits: torch.Tensor, labels: torch.Tensor, jsd_weight: float) -> torch.Tensor:
    """AugMix's loss (facts section 3) on the logits of (clean, aug1, aug2) concatenated along the batch:
    CE(clean) + jsd_weight * mean_v KL(p_v || M), M = clamp(mean_v p_v, 1e-7, 1)."""
    clean, aug1, aug2 = logits.chunk(3)
    probabilities = [F.softmax(view, dim=1) for view in (clean, aug1, aug2)]
    log_mixture = torch.clamp(sum(probabilities) / 3, 1e-7, 1).log()
    jensen_shannon = sum(F.kl_div(log_mixture, p, reduction="batchmean") for p in probabilities) / 3
    return F.cross_entropy(clean, labels) + jsd_weight * jensen_shannon


class TrainingMethod:
    """The augmentations of `method`, built from a run's resolved config (config.run_config), and its loss.

    Draws all randomness from `generator` (per sample where the method is per sample).
    """

    def __init__(self, method: str, config: dict, generator: torch.Generator | None = None):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; registered: {', '.join(METHODS)}")
        info, train = DATASETS[config["dataset"]], config["train"]
        self.generator = generator
        self.crop_flip = RandomCropFlip(train["crop_padding"], train["flip"], fill=train["crop_fill"] / 255,
                                        generator=generator)
        self.autoaugment = AutoAugment(generator=generator) if method == "autoaugment" else None
        self.aprs = None
        self.batch_augment = None  # (x, labels) -> (inputs, targets), after crop and flip
        self.adv_epsilon = self.adv_step = self.jsd_weight = None
        self.mean_over_inputs = False  # the loss's divisor: all inputs (2B for APR-P), or the B images of the batch
        self.two_labels = "amp_phase_labels" in config
        if self.two_labels:  # Figure 9: APR-P pairs labelled by phase and by amplitude (apr_lib.amp_phase_labels)
            check_method(method)
            self.batch_augment = AmplitudePhasePairs(config["apr"]["fft_mode"], generator)
        elif method in ("apr_p", "apr_s", "apr_sp"):
            apr = config["apr"]
            if method != "apr_p":
                aprs = APRS(severity=apr["s_severity"], mode=apr["fft_mode"], swap_prob=apr["s_swap_prob"],
                            distracter=apr["s_distracter"], overflow=apr["s_overflow"], generator=generator)
                s_prob = apr.get("s_prob", 1.0)
                # At 1 (every image, as the released CIFAR code) no draw is made, so such runs keep their randomness.
                self.aprs = aprs if s_prob == 1 else lambda x: apply_with_probability(aprs, x, s_prob, generator)
            self.mean_over_inputs = apr.get("p_loss", "sum_of_halves") == "mean"
            if method != "apr_s":
                self.batch_augment = APRP(prob=apr["p_prob"], mode=apr["fft_mode"], keep_clean=apr["keep_clean"],
                                          normalization=(info.mean, info.std) if apr["p_after_normalize"] else None,
                                          generator=generator)
        elif method == "cutout":
            cutout = Cutout(config["cutout"]["side_fraction"], fill=info.mean, generator=generator)
            self.batch_augment = lambda x, labels: (cutout(x), labels)
        elif method in ("mixup", "cutmix"):
            mixing = MixUp if method == "mixup" else CutMix
            self.batch_augment = mixing(info.num_classes, config[method]["alpha"], generator=generator)
        elif method == "augmix":
            settings = config["augmix"]
            augmix = AugMix(settings["severity"], settings["width"], tuple(settings["depth_range"]),
                            settings["alpha"], OPS, generator=generator)
            # The model sees (clean, aug1, aug2): the two views are independent draws on two copies of the batch.
            self.batch_augment = lambda x, labels: (torch.cat([x, augmix(torch.cat([x, x]))]), labels)
            self.jsd_weight = settings["jsd_weight"]
        if method == "adv" or train.get("adversarial") == "fgsm":
            if self.jsd_weight is not None or self.two_labels:
                raise ProfileError(f"train.adversarial: fgsm does not combine with method {method!r}"
                                   f"{' and amp_phase_labels' if self.two_labels else ''}: its loss needs its inputs "
                                   "unattacked. Drop train.adversarial for this run.")
            self.adv_epsilon = config["adv"]["epsilon_levels"] / 255
            self.adv_step = config["adv"]["step_levels"] / 255

    def augment(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's inputs (floats in [0, 1]) and targets for a batch of uint8 images (B, C, H, W).

        Inputs have B images, or 2B (APR-P with the clean batch kept), or 3B (AugMix: clean, aug1, aug2);
        targets are class indices, or class probabilities (B, num_classes) for MixUp and CutMix, or (B, 2) class
        indices of the phase and the amplitude image (Figure 9's `amp_phase_labels`).
        """
        with torch.autocast(images.device.type, enabled=False):
            if self.autoaugment is not None:
                images = self.autoaugment(images)
            x = images.float() / 255
            if self.aprs is not None:
                x = self.aprs(x)
            x = self.crop_flip(x)
            if self.batch_augment is not None:
                x, labels = self.batch_augment(x, labels)
        return x, labels

    def loss(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss of `model` on one batch of uint8 images (B, C, H, W) with integer labels."""
        x, targets = self.augment(images, labels)
        if self.adv_epsilon is not None:
            x = fgsm_random_start(model, x, targets, self.adv_epsilon, self.adv_step, self.generator)
        if self.two_labels:
            return amplitude_phase_loss(model, x, targets)
        logits = model(x)
        if self.jsd_weight is not None:
            return augmix_loss(logits, targets, self.jsd_weight)
        return F.cross_entropy(logits, targets, reduction="sum") / (len(x) if self.mean_over_inputs else len(images))
