"""Training methods (the rows of Table 1): how a batch of uint8 training images becomes a loss.

Every method runs the same pipeline, each stage in the order of the code it comes from:

    per image, before crop/flip   AutoAugment (its CIFAR code: policy, then pad-crop and flip) | APR-S (released
                                  `datasets/APR.py`, before crop and flip as `datasets/transforms.py`)
    random crop and flip          every method (profile keys train.crop_padding, crop_fill, flip)
    on the batch, after           Cutout (DeVries & Taylor: crop, flip, normalise, Cutout) | MixUp | CutMix |
                                  APR-P (released `core/train.py`) | AugMix's views (its code: flip, crop,
                                  augment-and-mix)
    duplicated batch              train.duplicate_batch (Table 3): the inputs twice, [x, x], the loss their mean,
                                  as the released FGSM script's cat([X, APR-P(X)]) where it makes no APR-P (its
                                  APR-S row, prob-p 0); FGSM then starts each copy from its own random point
    adversarial                   adv, and any method with train.adversarial: fgsm (Table 3): FGSM examples
                                  of all the model's inputs (APR-P: both halves, as the released FGSM code)
    loss                          cross-entropy, with soft targets for MixUp/CutMix, summed over APR-P's clean
                                  and recombined halves (the released CE(clean) + CE(recombined); with
                                  apr.p_loss: mean, averaged over all 2B images as the released FGSM code);
                                  AugMix: CE(clean) + 12 JSD

Hyper-parameters come from the run's config: `train` for all, and the sections in `MethodSpec.sections`
(apr_lib.names). `REGISTRY` maps each method's name to the function that builds its parts.
Augmentations run in full precision, outside the training loop's bf16 autocast (grid sampling and FFTs
need the precision; only the model runs in bf16).

`adv` is our choice for Table 1's "Adv Training" row, for which the paper gives no recipe: FGSM with a
random start (Wong et al. 2020), the attack the paper's Table 3 trains with (released
`autoattacks/train_fgsm.py`); it is `standard` with train.adversarial: fgsm.

An `apr_p` run whose config has `amp_phase_labels` (Figure 9, section 5.3) recombines every batch into pairs
labelled by their phase and their amplitude image instead: each image keeps its phase and takes the amplitude of a
partner from one random permutation of the batch (Eq. 5, the run's `apr.fft_mode`), and Eq. 7's loss

    loss = lambda * CE(f_P(x), y_i) + (1 - lambda) * CE(f_A(x), y_j)

trains the two heads of apr_lib.models.AmplitudePhaseHeads. Unlike the released APR-P, every batch is recombined and
no clean copy is added (Eq. 7 is written for the pairs only), so `apr.p_prob`, `apr.keep_clean` and
`apr.p_after_normalize` do not apply to these runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from apr_lib.augment import APRP, APRS, AugMix, AutoAugment, CutMix, Cutout, MixUp, RandomCropFlip
from apr_lib.augment.ops import OPS, _draw_device
from apr_lib.data import DATASETS, DatasetInfo
from apr_lib.errors import ProfileError
from apr_lib.models import AmplitudePhaseHeads
from apr_lib.names import METHODS
from apr_lib.spectral import swap_amplitude

AMP_PHASE_METHOD = "apr_p"  # the training method whose pairs Figure 9 labels twice


def fgsm_random_start(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, epsilon: float, step: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """FGSM adversarial examples from a random start (Wong et al. 2020; locuslab/fast_adversarial, as the
    released `autoattacks/train_fgsm.py`).

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
    """AugMix's loss (its `cifar.py`) on the logits of (clean, aug1, aug2) concatenated along the batch:
    CE(clean) + jsd_weight * mean_v KL(p_v || M), M = clamp(mean_v p_v, 1e-7, 1)."""
    clean, aug1, aug2 = logits.chunk(3)
    probabilities = [F.softmax(view, dim=1) for view in (clean, aug1, aug2)]
    log_mixture = torch.clamp(sum(probabilities) / 3, 1e-7, 1).log()
    jensen_shannon = sum(F.kl_div(log_mixture, p, reduction="batchmean") for p in probabilities) / 3
    return F.cross_entropy(clean, labels) + jsd_weight * jensen_shannon


class AmplitudePhasePairs:
    """Figure 9's batch augmentation: each image keeps its phase and takes the amplitude of a partner from the batch.

    Returns the recombined batch and targets (B, 2): the label of the phase image, then of the amplitude image.
    """

    def __init__(self, mode: str, generator: torch.Generator | None = None):
        self.mode, self.generator = mode, generator

    def __call__(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gen_device = self.generator.device if self.generator is not None else "cpu"
        partner = torch.randperm(len(x), generator=self.generator, device=gen_device).to(x.device)
        return swap_amplitude(x, x[partner], self.mode), torch.stack([labels, labels[partner]], dim=1)


def amplitude_phase_loss(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 7 for a model wrapped by AmplitudePhaseHeads; targets (B, 2) = (phase label, amplitude label)."""
    if not isinstance(model, AmplitudePhaseHeads):
        raise TypeError(f"Eq. 7 needs the two heads of AmplitudePhaseHeads, got {type(model).__name__}")
    phase_logits, amplitude_logits = model.heads(x)
    weight = model.phase_weight
    return (weight * F.cross_entropy(phase_logits, targets[:, 0])
            + (1 - weight) * F.cross_entropy(amplitude_logits, targets[:, 1]))


def check_amp_phase_method(method: str) -> None:
    if method != AMP_PHASE_METHOD:
        raise ProfileError(f"`amp_phase_labels` (Figure 9) labels APR-P pairs, so its runs use method "
                           f"{AMP_PHASE_METHOD!r}, not {method!r}; fix the profile's tables.fig9_amp_phase_labels.methods")


# ---- the registry: what each method adds to crop and flip ----

@dataclass
class Parts:
    """A method's stages besides crop and flip (module docstring), each None where it has none."""
    autoaugment: Callable | None = None     # uint8 images -> uint8 images, before everything else
    per_image: Callable | None = None       # float images in [0, 1] -> the same, before crop and flip (APR-S)
    batch_augment: Callable | None = None   # (x, labels) -> (inputs, targets), after crop and flip
    jsd_weight: float | None = None         # AugMix's consistency loss on (clean, aug1, aug2)
    mean_over_inputs: bool = False          # the loss's divisor: all inputs (2B for APR-P), or the B images
    adversarial: bool = False               # FGSM examples of the inputs (method `adv`; else train.adversarial)


Builder = Callable[[dict, DatasetInfo, "torch.Generator | None"], Parts]


def _plain(config: dict, info: DatasetInfo, generator: torch.Generator | None) -> Parts:
    return Parts()


def _adversarial(config: dict, info: DatasetInfo, generator: torch.Generator | None) -> Parts:
    return Parts(adversarial=True)


def _cutout(config: dict, info: DatasetInfo, generator: torch.Generator | None) -> Parts:
    cutout = Cutout(config["cutout"]["side_fraction"], fill=info.mean, generator=generator)
    return Parts(batch_augment=lambda x, labels: (cutout(x), labels))


def _mixing(mixing: type, section: str, config: dict, info: DatasetInfo,
            generator: torch.Generator | None) -> Parts:
    return Parts(batch_augment=mixing(info.num_classes, config[section]["alpha"], generator=generator))


def _autoaugment(config: dict, info: DatasetInfo, generator: torch.Generator | None) -> Parts:
    return Parts(autoaugment=AutoAugment(generator=generator))


def _augmix(config: dict, info: DatasetInfo, generator: torch.Generator | None) -> Parts:
    settings = config["augmix"]
    augmix = AugMix(settings["severity"], settings["width"], tuple(settings["depth_range"]), settings["alpha"], OPS,
                    generator=generator)
    # The model sees (clean, aug1, aug2): the two views are independent draws on two copies of the batch.
    return Parts(batch_augment=lambda x, labels: (torch.cat([x, augmix(torch.cat([x, x]))]), labels),
                 jsd_weight=settings["jsd_weight"])


def _apr(single: bool, pairs: bool, config: dict, info: DatasetInfo, generator: torch.Generator | None) -> Parts:
    """APR-S (`single`) before crop and flip, APR-P (`pairs`) after: apr_s, apr_p, or both (apr_sp)."""
    apr = config["apr"]
    parts = Parts(mean_over_inputs=apr.get("p_loss", "sum_of_halves") == "mean")
    if single:
        aprs = APRS(severity=apr["s_severity"], mode=apr["fft_mode"], swap_prob=apr["s_swap_prob"],
                    distracter=apr["s_distracter"], overflow=apr["s_overflow"], generator=generator)
        s_prob = apr.get("s_prob", 1.0)
        # At 1 (every image, as the released CIFAR code) no draw is made, so such runs keep their randomness.
        parts.per_image = aprs if s_prob == 1 else lambda x: apply_with_probability(aprs, x, s_prob, generator)
    if pairs:
        parts.batch_augment = APRP(prob=apr["p_prob"], mode=apr["fft_mode"], keep_clean=apr["keep_clean"],
                                   normalization=(info.mean, info.std) if apr["p_after_normalize"] else None,
                                   generator=generator)
    return parts


REGISTRY: dict[str, Builder] = {  # the names and their order: apr_lib.names.METHODS
    "standard": _plain,
    "cutout": _cutout,
    "mixup": partial(_mixing, MixUp, "mixup"),
    "cutmix": partial(_mixing, CutMix, "cutmix"),
    "adv": _adversarial,
    "apr_p": partial(_apr, False, True),
    "autoaugment": _autoaugment,
    "augmix": _augmix,
    "apr_s": partial(_apr, True, False),
    "apr_sp": partial(_apr, True, True),
}


def duplicated(parts: Parts, method: str) -> Parts:
    """`parts` whose batch is the method's inputs twice, [x, x], with the loss averaged over both copies: the released
    FGSM script trains on cat([X, APR-P(X)]) with a mean loss, so where it makes no APR-P (prob-p 0) on [X, X]."""
    if isinstance(parts.batch_augment, APRP) or parts.jsd_weight is not None:
        raise ProfileError(f"train.duplicate_batch does not apply to method {method!r}: its batch already pairs "
                           "clean and augmented images. Drop train.duplicate_batch for this run.")
    augment = parts.batch_augment

    def twice(x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if augment is not None:
            x, labels = augment(x, labels)
        return torch.cat([x, x]), torch.cat([labels, labels])

    return Parts(parts.autoaugment, parts.per_image, twice, None, True, parts.adversarial)


class TrainingMethod:
    """The augmentations of `method`, built from a run's resolved config (apr_lib.study.config.run_config), and its
    loss.

    Draws all randomness from `generator` (per sample where the method is per sample).
    """

    def __init__(self, method: str, config: dict, generator: torch.Generator | None = None):
        if method not in REGISTRY:
            raise ValueError(f"unknown method {method!r}; registered: {', '.join(METHODS)}")
        info, train = DATASETS[config["dataset"]], config["train"]
        self.generator = generator
        self.crop_flip = RandomCropFlip(train["crop_padding"], train["flip"], fill=train["crop_fill"] / 255,
                                        generator=generator)
        self.two_labels = "amp_phase_labels" in config
        if self.two_labels:  # Figure 9: APR-P pairs labelled by phase and by amplitude
            check_amp_phase_method(method)
            self.parts = Parts(batch_augment=AmplitudePhasePairs(config["apr"]["fft_mode"], generator))
        else:
            self.parts = REGISTRY[method](config, info, generator)
        if train.get("duplicate_batch"):
            self.parts = duplicated(self.parts, method)
        self.adv_epsilon = self.adv_step = None
        if self.parts.adversarial or train.get("adversarial") == "fgsm":
            if self.parts.jsd_weight is not None or self.two_labels:
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
        parts = self.parts
        with torch.autocast(images.device.type, enabled=False):
            if parts.autoaugment is not None:
                images = parts.autoaugment(images)
            x = images.float() / 255
            if parts.per_image is not None:
                x = parts.per_image(x)
            x = self.crop_flip(x)
            if parts.batch_augment is not None:
                x, labels = parts.batch_augment(x, labels)
        return x, labels

    def loss(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss of `model` on one batch of uint8 images (B, C, H, W) with integer labels."""
        x, targets = self.augment(images, labels)
        if self.adv_epsilon is not None:
            x = fgsm_random_start(model, x, targets, self.adv_epsilon, self.adv_step, self.generator)
        if self.two_labels:
            return amplitude_phase_loss(model, x, targets)
        logits = model(x)
        if self.parts.jsd_weight is not None:
            return augmix_loss(logits, targets, self.parts.jsd_weight)
        divisor = len(x) if self.parts.mean_over_inputs else len(images)
        return F.cross_entropy(logits, targets, reduction="sum") / divisor
