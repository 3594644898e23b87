"""The registries' names, a run's name and its config's digest, without torch.

The heavy registries are keyed by these names: `apr_lib.data.DATASETS`, `apr_lib.models.ARCHS`,
`apr_lib.methods.REGISTRY`, `apr_lib.corruptions` and `apr_lib.evaluate.SUITES` (tests/test_layers.py checks that
they agree). The study layer validates profiles against this module alone, so parsing the Snakefile never
imports torch.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

DATASETS = ("fmnist", "cifar10", "cifar100", "imagenet")

ARCHS = (
    # Small models for the default profile (CPU, Fashion-MNIST): one per Table-1 family.
    "small_cnn", "allconv_small", "densenet16_12", "wrn16_1", "resnext_small", "resnet18_small",
    # The paper's: Table 1 as released (plus DenseNet-BC, as the paper's text names it), Tables 2 and 3, Table 4.
    "allconv", "densenet40_12", "densenet_bc100_12", "wrn40_2", "resnext29_4x32", "resnet18", "preact_resnet18",
    "resnet50",
)


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

# The 15 common corruptions of CIFAR-10-C / ImageNet-C in their papers' order, then the 4 extras (apr_lib.corruptions).
CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
)

SUITES = ("clean", "corruption", "ood", "autoattack")  # evaluation suites of a trained run (apr_lib.evaluate)


def run_name(dataset: str, arch: str, method: str, seed: int, variant: str = "") -> str:
    """<dataset>/<arch>/<method>[@<variant>]/seed<k>: a run's folder under runs/<profile>/ and outputs/.../metrics/."""
    method = f"{method}@{variant}" if variant else method
    return f"{dataset}/{arch}/{method}/seed{seed}"


def config_digest(cfg: dict) -> str:
    """A short digest of a run's resolved config: it decides whether a checkpoint can be resumed."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
