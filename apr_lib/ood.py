"""Out-of-distribution sets (Table 2, Figures 2/3 and 5): each a uint8 batch (N, C, H, W) with its provenance.

Every set is matched to the in-distribution dataset: resized to its size, converted to its channels
(RGB -> grey by ITU-R 601 luma, grey -> RGB by repetition), quantised to uint8 like every image here.

The paper's sets (CIFAR-10 in-distribution, the `cifar` profile), read from the profile's data_root:
- svhn          <root>/SVHN/test_32x32.mat: SVHN's test split (26,032 images) read by torchvision's SVHN;
- lsun          <root>/LSUN_resize/: ODIN's "LSUN (resize)" archive (Liang et al. 2018), 10,000 32x32 images;
- imagenet      <root>/Imagenet_resize/: ODIN's "Tiny-ImageNet (resize)" archive, 10,000 32x32 images;
- lsun_fix      <root>/LSUN_fix/: CSI's LSUN(FIX) (Tack et al. 2020), 10,000 PNGs;
- imagenet_fix  <root>/Imagenet_fix/: CSI's ImageNet(FIX), 10,000 PNGs;
- cifar100      CIFAR-100's test split (apr_lib.data, <root>/cifar-100-python/).
Image folders may hold their images at any depth (the archives nest a folder of the same name).

Sets made here for any dataset, with fixed seeds (the default profile's, beside Fashion-MNIST):
- photos        patches of the dataset's size cut at random from scikit-image's bundled photographs (astronaut,
                camera, chelsea, coffee, rocket) at their own resolution, so they keep a photograph's natural high
                frequencies (no resizing), converted to the dataset's channels: the natural OOD images of Figures 2/3
                and 5 on datasets without real OOD sets (Fashion-MNIST);
- digits        scikit-learn's bundled handwritten digits (1,797 images, 8x8, 17 grey levels, bright strokes on
                black like Fashion-MNIST's objects), upsampled bilinearly to the dataset's size: they have no high
                frequencies of their own;
- gaussian, rademacher, blobs: the synthetic sets of the Outlier Exposure benchmark (Hendrycks et al. 2019,
                CIFAR/test.py), defined there on images in [-1, 1] and mapped here to [0, 1] by v -> (v + 1) / 2:
                gaussian    clip(N(0.5, 0.25^2), 0, 1) per pixel and channel   (theirs: clip(N(0, 0.5^2), -1, 1));
                rademacher  0 or 1 with probability 1/2 per pixel and channel   (theirs: -1 or 1);
                blobs       Bernoulli(0.7) per pixel and channel, Gaussian blur with sigma 1.5 over the whole
                            (H, W, C) array (theirs: skimage's gaussian with multichannel=False), values below
                            0.75 set to 0;
- corollary2    the paper's Corollary 2 images iDFT(A_x1 * exp(i P_x2)) (Eq. 5 with swapped roles): the amplitude
                of an in-distribution test image x1 with the phase of an image x2 of the profile's
                `ood.natural_set`, clipped to [0, 1].

`ood_sets(cfg)` returns the `ood.sets` of a profile's settings; a missing real set raises DataMissingError naming the
folder or file and where it comes from.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from apr_lib.data import DATASETS, DatasetInfo, load_split, subset_indices
from apr_lib.errors import DataMissingError, ProfileError
from apr_lib.extras import require
from apr_lib.progress import tqdm
from apr_lib.spectral import swap_amplitude

# Folder of each image-folder set under the data root, and where its files come from.
ODIN_README = "linked from the README of https://github.com/facebookresearch/odin"
CSI_README = "linked from the README of https://github.com/alinlab/CSI"
IMAGE_FOLDERS = {
    "lsun": ("LSUN_resize", f"ODIN's LSUN (resize) archive LSUN_resize.tar.gz, {ODIN_README}"),
    "imagenet": ("Imagenet_resize", f"ODIN's Tiny-ImageNet (resize) archive Imagenet_resize.tar.gz, {ODIN_README}"),
    "lsun_fix": ("LSUN_fix", f"CSI's LSUN_fix.tar.gz, {CSI_README}"),
    "imagenet_fix": ("Imagenet_fix", f"CSI's Imagenet_fix.tar.gz, {CSI_README}"),
}
SVHN_FOLDER = "SVHN"
REAL_SETS = ("svhn", *IMAGE_FOLDERS, "cifar100", "photos", "digits")
PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket")  # scikit-image's bundled photographs (skimage.data)
GENERATED_SETS = ("gaussian", "rademacher", "blobs", "corollary2")
SET_NAMES = REAL_SETS + GENERATED_SETS  # the schema's enum of ood.sets lists the same names


@dataclass
class OODSet:
    name: str
    images: torch.Tensor  # uint8 (N, C, H, W), the in-distribution dataset's size and channels
    source: str           # where the images come from, in one sentence


def ood_sets(cfg: dict, in_test_images: torch.Tensor | None = None, n: int | None = None) -> dict[str, OODSet]:
    """The OOD sets (`ood.sets`) of a profile's settings `cfg`, in its order, of `n` images each (default:
    `ood.per_set`).

    `in_test_images`: the in-distribution test images the corollary2 set takes amplitudes from (default: the
    profile's test split). Without a size, real sets are whole and generated ones as large as the evaluated test set.
    """
    ood, info, root = cfg["ood"], DATASETS[cfg["dataset"]], Path(cfg["data_root"])
    if in_test_images is None:
        in_test_images = load_split(cfg["dataset"], root, train=False).images
    n_real = n or ood["per_set"]
    n_generated = n_real or _evaluated_test_images(cfg, len(in_test_images))
    sets = {}
    for name in tqdm(ood["sets"], desc="OOD sets", unit="set", disable=None):
        if name == "corollary2":
            natural = load_ood_set(ood["natural_set"], info, root, n_generated, ood["seed"])
            sets[name] = corollary2_set(in_test_images, natural, n_generated, ood["seed"], cfg["apr"]["fft_mode"])
        else:
            sets[name] = load_ood_set(name, info, root, n_real if name in REAL_SETS else n_generated, ood["seed"])
    return sets


def _evaluated_test_images(cfg: dict, n_test: int) -> int:
    subset = cfg["eval"].get("test_subset")
    return n_test if subset is None else min(subset, n_test)


def load_ood_set(name: str, info: DatasetInfo, root: Path, n: int | None, seed: int) -> OODSet:
    """One OOD set other than corollary2: a real set cut to a fixed random subset of `n` images (None: all),
    or a noise set of exactly `n` images."""
    if name in NOISE:
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        return OODSet(name, _to_uint8(NOISE[name](rng, n, info)), f"{NOISE_SOURCES[name]}; {n:,} images, seed {seed}")
    if name not in REAL_SETS:
        raise ProfileError(f"OOD set {name!r} cannot be loaded alone; real sets: {', '.join(REAL_SETS)}; "
                           f"noise sets: {', '.join(NOISE)}")
    if name == "photos":
        return photo_patches(info, n or 1000, seed)
    images, source = _read_real_set(name, root)
    keep = subset_indices(len(images), n, seed)
    return OODSet(name, match_dataset(images[keep], info), f"{source}; {len(keep):,} of {len(images):,} images")


def corollary2_set(in_images: torch.Tensor, natural: OODSet, n: int, seed: int, mode: str) -> OODSet:
    """Corollary 2's images: the amplitude of in-distribution image x1 with the phase of OOD image x2."""
    generator = torch.Generator().manual_seed(seed)
    amplitude_idx = torch.randint(len(in_images), (n,), generator=generator)
    phase_idx = torch.randint(len(natural.images), (n,), generator=generator)
    source = (f"Corollary 2: amplitude of in-distribution test images, phase of {natural.name} images "
              f"({mode} DFT), clipped to [0, 1]; {n:,} images, seed {seed}")
    return OODSet("corollary2", swapped(natural.images[phase_idx], in_images[amplitude_idx], mode), source)


def swapped(phase_images: torch.Tensor, amplitude_images: torch.Tensor, mode: str) -> torch.Tensor:
    """uint8 images with the phase of `phase_images` and the amplitude of `amplitude_images` (both uint8, Eq. 5),
    clipped to [0, 1] before the rounding, like any image."""
    return _to_uint8(swap_amplitude(phase_images.float() / 255, amplitude_images.float() / 255, mode).clamp(0, 1))


# ---- images made here ----

def _gaussian(rng: np.random.Generator, n: int, info: DatasetInfo) -> torch.Tensor:
    return torch.from_numpy(np.clip(rng.normal(0.5, 0.25, _shape(n, info)), 0, 1))


def _rademacher(rng: np.random.Generator, n: int, info: DatasetInfo) -> torch.Tensor:
    return torch.from_numpy(rng.binomial(1, 0.5, _shape(n, info)).astype(np.float64))


def _blobs(rng: np.random.Generator, n: int, info: DatasetInfo) -> torch.Tensor:
    dots = rng.binomial(1, 0.7, (n, info.size, info.size, info.channels)).astype(np.float64)
    gaussian_blur = require("skimage.filters").gaussian
    blurred = np.stack([gaussian_blur(d, sigma=1.5, channel_axis=None) for d in dots])  # blurs across channels too
    blurred[blurred < 0.75] = 0.0
    return torch.from_numpy(blurred).permute(0, 3, 1, 2)


def _shape(n: int, info: DatasetInfo) -> tuple[int, int, int, int]:
    return n, info.channels, info.size, info.size


NOISE = {"gaussian": _gaussian, "rademacher": _rademacher, "blobs": _blobs}
NOISE_SOURCES = {
    "gaussian": "Gaussian noise clip(N(0.5, 0.25^2), 0, 1) per pixel (Outlier Exposure's, mapped to [0, 1])",
    "rademacher": "Rademacher noise, 0 or 1 with probability 1/2 per pixel (Outlier Exposure's, mapped to [0, 1])",
    "blobs": "Blobs: Bernoulli(0.7) pixels blurred with sigma 1.5, below 0.75 set to 0 (Outlier Exposure's)",
}


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images * 255).round().clamp(0, 255).to(torch.uint8).contiguous()


# ---- real sets ----

def photo_patches(info: DatasetInfo, n: int, seed: int) -> OODSet:
    """`n` patches of the dataset's size, each from a photograph of PHOTOS drawn uniformly and a uniform position in
    it, at the photograph's resolution, converted to the dataset's channels."""
    data = require("skimage.data")
    photos = [torch.from_numpy(np.atleast_3d(getattr(data, name)())).permute(2, 0, 1) for name in PHOTOS]
    rng = np.random.default_rng([seed, zlib.crc32(b"photos")])
    size, patches = info.size, []
    for k in rng.integers(len(photos), size=n):
        photo = photos[k]
        top, left = (int(rng.integers(side - size + 1)) for side in photo.shape[1:])
        patches.append(match_dataset(photo[None, :, top:top + size, left:left + size], info)[0])
    return OODSet("photos", torch.stack(patches),
                  f"{size}x{size} patches of scikit-image's photographs ({', '.join(PHOTOS)}) at their own resolution, "
                  f"random positions; {n:,} patches, seed {seed}")


def _read_real_set(name: str, root: Path) -> tuple[torch.Tensor, str]:
    """All images of a real set as uint8 (N, C, H, W) in their own size and channels, and their source."""
    if name == "digits":
        digits = require("sklearn.datasets").load_digits()
        return _to_uint8(torch.from_numpy(digits.images / 16.0).unsqueeze(1)), \
            "scikit-learn's bundled handwritten digits (8x8, upsampled bilinearly)"
    if name == "cifar100":
        return load_split("cifar100", root, train=False).images, f"CIFAR-100 test split ({root / 'cifar-100-python'})"
    if name == "svhn":
        return _read_svhn(root / SVHN_FOLDER)
    folder_name, origin = IMAGE_FOLDERS[name]
    return _read_image_folder(root / folder_name, name, origin)


def _read_svhn(folder: Path) -> tuple[torch.Tensor, str]:
    from torchvision.datasets import SVHN  # torchvision loads slowly (apr_lib.data): imported where it is used
    url, filename, _ = SVHN.split_list["test"]
    if not (folder / filename).is_file():
        raise DataMissingError(
            f"OOD set 'svhn': {folder / filename} not found. It is SVHN's test split, {url} (the 'Format 2' "
            f"cropped digits). Put {filename} in {folder}/, or remove 'svhn' from the profile's ood.sets.")
    try:
        svhn = SVHN(str(folder), split="test", download=False)
    except RuntimeError as failure:  # torchvision's md5 check
        raise DataMissingError(f"OOD set 'svhn': {folder / filename} is not SVHN's test split ({failure}); "
                               f"download it again from {url}.") from None
    return torch.from_numpy(svhn.data).contiguous(), f"SVHN test split ({folder / filename}, read by torchvision)"


def _read_image_folder(folder: Path, name: str, origin: str) -> tuple[torch.Tensor, str]:
    from torchvision.datasets.folder import IMG_EXTENSIONS  # torchvision loads slowly (apr_lib.data)
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS) if folder.is_dir() else []
    if not paths:
        state = "holds no images" if folder.is_dir() else "not found"
        raise DataMissingError(
            f"OOD set {name!r}: {folder}/ {state}. It comes from {origin}. Extract the archive into "
            f"{folder.parent}/ so that {folder}/ holds its images, or remove {name!r} from the profile's ood.sets.")
    images = [torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)
              for p in tqdm(paths, desc=f"reading {folder.name}", unit="image", disable=None, leave=False)]
    sizes = {tuple(i.shape) for i in images}
    if len(sizes) > 1:
        raise DataMissingError(f"OOD set {name!r}: the images in {folder}/ differ in size ({sorted(sizes)[:3]}, ...); "
                               "expected one size, as in the published archives")
    return torch.stack(images), f"{origin.split(',')[0]} ({folder})"


def match_dataset(images: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """uint8 images (N, C, H, W) resized (bilinear, antialiased) and converted to the dataset's size and channels."""
    import torchvision.transforms.v2.functional as TF  # torchvision loads slowly (apr_lib.data)
    if images.shape[-2:] != (info.size, info.size):
        images = TF.resize(images, [info.size, info.size], antialias=True)
    if images.shape[1] == 3 and info.channels == 1:
        images = TF.rgb_to_grayscale(images)
    elif images.shape[1] == 1 and info.channels == 3:
        images = images.expand(-1, 3, -1, -1)
    return images.contiguous()
