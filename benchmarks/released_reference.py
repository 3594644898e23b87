"""Augmentation written the way the released code works, as the baseline `augment_throughput.py` measures against.

The released APR and AugMix code augments one PIL image at a time inside a torch Dataset, in DataLoader worker
processes (released code: `datasets/APR.py`, `datasets/augmentations.py`, `datasets/transforms.py`): a PIL operation
per image, NumPy FFTs per image, torchvision's PIL crop and flip, ToTensor, then collation; APR-P then runs on each
collated batch in torch, in the training process (released code: `core/train.py`, `mix_data`). This module rewrites
that pipeline from the paper and the released code's description, not from its files:

- AugMix's PIL operations with their level rules, drawn with NumPy's global RNG as there;
- APR-S: one op at severity 3; with p = 0.5 that image is returned, otherwise a second op applied to it gives the
  distracter, both recombinations are built from `fftshift(fftn(uint8 array))` (a 3-D FFT on RGB) and one is kept
  at random, cast straight to uint8 (imaginary part dropped, out-of-range values wrap);
- AugMix: `width` chains of 1-3 ops, Dirichlet chain weights, a Beta mixing weight, on preprocessed tensors; the
  JSD triple (clean, view 1, view 2) per image;
- APR-P as released, batched in torch (`mix_data`): with p = 0.6 per batch, the partner from one permutation,
  amplitude and angle of a 3-D FFT, the clean batch kept (`released_batches`); and, for the transform-level
  comparison, the same algorithm image by image with NumPy FFTs (`apr_p_per_image`).

Crop and flip come after APR-S and before AugMix, each as in the released transforms. Each worker is
single-threaded (torch's DataLoader sets one thread per worker; NumPy's FFT is single-threaded).
"""
from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

SEVERITY = 3  # APR-S applies its ops at severity 3; AugMix's CIFAR default is 3 too


def _int_parameter(level: float, maxval: float) -> int:
    return int(level * maxval / 10)


def _float_parameter(level: float, maxval: float) -> float:
    return float(level) * maxval / 10


def _sample_level(severity: float) -> float:
    return np.random.uniform(low=0.1, high=severity)


def _signed(value: float) -> float:
    return -value if np.random.uniform() > 0.5 else value


def _autocontrast(image: Image.Image, severity: float) -> Image.Image:
    return ImageOps.autocontrast(image)


def _equalize(image: Image.Image, severity: float) -> Image.Image:
    return ImageOps.equalize(image)


def _posterize(image: Image.Image, severity: float) -> Image.Image:
    return ImageOps.posterize(image, 4 - _int_parameter(_sample_level(severity), 4))


def _rotate(image: Image.Image, severity: float) -> Image.Image:
    return image.rotate(_signed(_int_parameter(_sample_level(severity), 30)), resample=Image.BILINEAR)


def _solarize(image: Image.Image, severity: float) -> Image.Image:
    return ImageOps.solarize(image, 256 - _int_parameter(_sample_level(severity), 256))


def _affine(image: Image.Image, coefficients: tuple) -> Image.Image:
    return image.transform(image.size, Image.AFFINE, coefficients, resample=Image.BILINEAR)


def _shear_x(image: Image.Image, severity: float) -> Image.Image:
    return _affine(image, (1, _signed(_float_parameter(_sample_level(severity), 0.3)), 0, 0, 1, 0))


def _shear_y(image: Image.Image, severity: float) -> Image.Image:
    return _affine(image, (1, 0, 0, _signed(_float_parameter(_sample_level(severity), 0.3)), 1, 0))


def _translate_x(image: Image.Image, severity: float) -> Image.Image:
    shift = _signed(_int_parameter(_sample_level(severity), image.size[0] / 3))
    return _affine(image, (1, 0, shift, 0, 1, 0))


def _translate_y(image: Image.Image, severity: float) -> Image.Image:
    shift = _signed(_int_parameter(_sample_level(severity), image.size[1] / 3))
    return _affine(image, (1, 0, 0, 0, 1, shift))


# AugMix's default list (without color, contrast, brightness, sharpness), as APR-S uses it.
AUGMIX_OPS = (_autocontrast, _equalize, _posterize, _rotate, _solarize, _shear_x, _shear_y, _translate_x,
              _translate_y)


def apr_s(image: Image.Image) -> Image.Image:
    """APR-S on one PIL image, as released (released code: `datasets/APR.py`)."""
    single = np.random.choice(AUGMIX_OPS)(image, SEVERITY)
    if random.uniform(0, 1) > 0.5:
        return single
    distracter = np.random.choice(AUGMIX_OPS)(single, SEVERITY)
    spectrum_1 = np.fft.fftshift(np.fft.fftn(np.asarray(single, dtype=np.uint8)))
    spectrum_2 = np.fft.fftshift(np.fft.fftn(np.asarray(distracter, dtype=np.uint8)))
    amplitude_1, phase_1 = np.abs(spectrum_1), np.angle(spectrum_1)
    amplitude_2, phase_2 = np.abs(spectrum_2), np.angle(spectrum_2)
    recombined_1 = amplitude_1 * np.exp(1j * phase_2)  # both directions are built, as released
    recombined_2 = amplitude_2 * np.exp(1j * phase_1)
    chosen = recombined_1 if random.uniform(0, 1) > 0.5 else recombined_2
    # The released cast goes straight from complex to uint8; .real is the same values without NumPy's warning.
    return Image.fromarray(np.fft.ifftn(np.fft.ifftshift(chosen)).real.astype(np.uint8))


def augment_and_mix(image: Image.Image, preprocess, width: int = 3, alpha: float = 1.0) -> torch.Tensor:
    """AugMix's augment-and-mix of one PIL image: chains of depth 1-3, Dirichlet and Beta weights."""
    weights = np.float32(np.random.dirichlet([alpha] * width))
    mix_weight = np.float32(np.random.beta(alpha, alpha))
    mix = torch.zeros_like(preprocess(image))
    for weight in weights:
        augmented = image.copy()
        for _ in range(np.random.randint(1, 4)):
            augmented = np.random.choice(AUGMIX_OPS)(augmented, SEVERITY)
        mix += weight * preprocess(augmented)
    return (1 - mix_weight) * preprocess(image) + mix_weight * mix


def mix_data(x: torch.Tensor, prob: float = 0.6) -> torch.Tensor:
    """APR-P on a batch (B, C, H, W) as released: with probability `prob` each image takes the amplitude of its partner
    in one random permutation (a 3-D FFT, abs and angle), else the batch is returned unchanged."""
    if random.uniform(0, 1) > prob:
        return x
    partner = torch.randperm(len(x))
    spectrum = torch.fft.fftn(x, dim=(1, 2, 3))
    amplitude, phase = torch.abs(spectrum), torch.angle(spectrum)
    return torch.fft.ifftn(amplitude[partner] * torch.exp(1j * phase), dim=(1, 2, 3)).real.float()


def released_batches(loader, method: str, prob: float = 0.6):
    """The model's inputs and labels per batch of `loader`: APR-P's clean and recombined images (apr_p, apr_sp), as the
    released training loop builds them in the training process, else the loader's batch."""
    for images, labels in loader:
        if method in ("apr_p", "apr_sp"):
            images, labels = torch.cat([images, mix_data(images, prob)]), torch.cat([labels, labels])
        yield images, labels


def apr_p_per_image(images: np.ndarray, prob: float = 0.6) -> np.ndarray:
    """`mix_data`'s algorithm image by image with NumPy's FFT, on float images (B, C, H, W): the recombined batch."""
    recombined = images.copy()
    if random.uniform(0, 1) <= prob:
        spectra = [np.fft.fftn(image) for image in images]
        partner = np.random.permutation(len(images))
        for i, j in enumerate(partner):
            recombined[i] = np.fft.ifftn(np.abs(spectra[j]) * np.exp(1j * np.angle(spectra[i]))).real
    return recombined


class ReleasedStyleDataset(Dataset):
    """uint8 images (N, H, W) or (N, H, W, 3) served through the released per-image transforms of `method`."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, method: str, padding: int, fill: int):
        self.images, self.labels, self.method = images, labels, method
        crop_flip = [transforms.RandomCrop(images.shape[1], padding=padding, fill=fill),
                     transforms.RandomHorizontalFlip()]
        self.preprocess = transforms.ToTensor()  # the model normalises (apr_lib's models do too)
        if method in ("apr_s", "apr_sp"):
            self.transform = transforms.Compose([transforms.Lambda(apr_s), *crop_flip, self.preprocess])
        elif method in ("apr_p", "augmix"):
            self.transform = transforms.Compose(crop_flip if method == "augmix" else [*crop_flip, self.preprocess])
        else:
            raise ValueError(f"method {method!r} has no per-image reference; use apr_p, apr_s, apr_sp or augmix")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.transform(Image.fromarray(self.images[index]))
        if self.method == "augmix":  # the JSD triple: clean, and two independent augment-and-mix views
            image = (self.preprocess(image), augment_and_mix(image, self.preprocess),
                     augment_and_mix(image, self.preprocess))
        return image, int(self.labels[index])


def released_style_loader(images: np.ndarray, labels: np.ndarray, method: str, batch_size: int, workers: int,
                          padding: int, fill: int) -> DataLoader:
    """A shuffling DataLoader over `ReleasedStyleDataset` with `workers` processes kept alive across epochs (so
    the timings leave out worker start-up, in the reference's favour); APR-P comes after it (`released_batches`)."""
    return DataLoader(ReleasedStyleDataset(images, labels, method, padding, fill), batch_size=batch_size,
                      shuffle=True, drop_last=True, num_workers=workers, persistent_workers=workers > 0)
