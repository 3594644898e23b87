"""The 15 common corruptions of CIFAR-10-C / ImageNet-C (Hendrycks & Dietterich, ICLR 2019) and the 4 extras,
for uint8 images, written on NumPy, SciPy, scikit-image and Pillow (no Wand/ImageMagick, no OpenCV, no
`imagecorruptions`).

    from apr_lib.corruptions import corrupt, corrupt_batch   # names: apr_lib.names.CORRUPTIONS
    foggy = corrupt(image, "fog", severity=3, rng=0)          # (H, W) or (H, W, C) uint8, C in {1, 3}
    foggy = corrupt_batch(images, "fog", severity=3, rng=0)   # (N, H, W[, C]) uint8

The algorithms follow hendrycks/robustness `ImageNet-C/create_c/make_cifar_c.py` and `make_imagenet_c.py`;
their constants are the two tables `CIFAR_C` and `IMAGENET_C` below.

Size rule. An image whose longer side is at most `SMALL_IMAGE_MAX_SIDE` (64) pixels gets the CIFAR-10-C
constants (made for 32 px); a larger one the ImageNet-C constants (made for 224 px). Within each table, the
quantities that are sizes relative to the image follow the actual image: elastic_transform's alpha, sigma and
affine jitter (stored as fractions of the side, times the longer side), fog's plasma map (next power of two
>= the longer side), frost's texture (`apr_lib.frost.texture_side`: 5 times the longer side) and its crop,
zoom_blur's centre crops, pixelate's reduced size and glass_blur's swap range. Everything else (noise levels,
blur radii and sigmas in pixels, ...) is used as given. So a 32 px image gets exactly the CIFAR-10-C settings,
a 224 px image the ImageNet-C ones, and a 28 px Fashion-MNIST image the CIFAR-10-C ones.

Grayscale rule. (H, W) and (H, W, 1) images are corrupted on their one channel by the corruptions that treat
channels independently (noises, blurs, fog, contrast, elastic, pixelate, JPEG in Pillow's "L" mode). The colour
corruptions (`COLOUR_CORRUPTIONS`: snow, frost, spatter, brightness, saturate) replicate the channel to RGB,
corrupt it, and return its luminance 0.299 R + 0.587 G + 0.114 B (ITU-R 601, Pillow's and OpenCV's RGB to grey).
A grey image has no saturation, so `saturate` leaves it unchanged at severities 1-3 and at 4-5 only adds a
faint red tint (hue 0), which the luminance turns into a slight darkening.

Output values are clipped to [0, 255] and truncated, like the references' `np.uint8(...)`.

Randomness: every draw comes from one `numpy.random.Generator` (`rng`: None, an int seed or a Generator);
the global NumPy RNG is never used. The official CIFAR-10-C / ImageNet-C files cannot be regenerated bit for bit
(their generators were unseeded), and these differ from them further where Wand, OpenCV or the frost photos were
needed:
- motion_blur and snow blur with the shift-and-sum kernel of bethgelab/imagecorruptions in place of ImageMagick's
  MagickMotionBlurImage, shifting with replicated edges and never truncating the kernel;
- frost blends generated textures (`apr_lib.frost`), not the five photographs;
- elastic_transform's affine warp and defocus_blur's filtering use SciPy with OpenCV's border (reflect-101);
- spatter's water drops find edges with scikit-image's Canny and use exact Euclidean distances (OpenCV: a 5x5
  mask approximation);
- ImageNet-C's files were also saved as JPEG (quality 85); `corrupt` returns the corrupted pixels as they are.
One faithful oddity: the references' glass_blur "swap" copies a neighbour's value (it acts on NumPy views), and
so does this one: see `_glass_blur`.
"""
from __future__ import annotations

import functools
import io
from typing import Callable

import numpy as np
from PIL import Image
from scipy import ndimage
from apr_lib.extras import require
from apr_lib.frost import TEXTURE_COUNT, frost_texture, texture_side
from apr_lib.names import CORRUPTIONS

COMMON = CORRUPTIONS[:15]
EXTRA = CORRUPTIONS[15:]
SEVERITIES = (1, 2, 3, 4, 5)

SMALL_IMAGE_MAX_SIDE = 64
MIN_SIDE = 3  # elastic_transform's affine needs three distinct points, min(H, W) // 3 apart
COLOUR_CORRUPTIONS = frozenset({"snow", "frost", "spatter", "brightness", "saturate"})
LUMA = np.array([0.299, 0.587, 0.114])
WATER = np.array([175, 238, 238]) / 255  # pale turquoise
MUD = np.array([63, 42, 20]) / 255
EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=float)
FLOAT_SLACK = 1e-6  # in grey levels: keeps round-off (255 * 0.99999999) from truncating to the level below

# Constants for severities 1..5. Source: hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py (32 px).
CIFAR_C = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # std of N(0, c) on [0, 1]
    "shot_noise": (500, 250, 100, 75, 50),  # photons per unit intensity
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # share of values set to 0 or 1
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),  # (disk radius, alias blur)
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),  # (sigma, shift, iterations)
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),  # (radius, sigma)
    "zoom_blur": (np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),  # zoom factors
                  np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)),
    # (mean, std, zoom, threshold, blur radius, blur sigma, image weight)
    "snow": ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),  # (image weight, frost weight)
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),  # (amount, wibble decay)
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to HSV value
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor on the deviation from the channel mean
    # (alpha, sigma, affine jitter) as fractions of the side: the source writes IMSIZE * (0, 0, 0.08), ...
    "elastic_transform": ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),  # reduced size / size
    "jpeg_compression": (80, 65, 58, 50, 40),  # Pillow JPEG quality
    "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),  # std of the multiplicative N(0, c)
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1),  # sigma
    # (mean, std, sigma, threshold, strength or mud blur, mud?)
    "spatter": ((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
                (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)),
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),  # HSV saturation * c0 + c1
}

# Source: hendrycks/robustness ImageNet-C/create_c/make_imagenet_c.py (224 px); the same values as
# bethgelab/imagecorruptions, except elastic_transform, which bethgelab rewrote.
IMAGENET_C = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "shot_noise": (60, 25, 12, 5, 3),
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    "zoom_blur": (np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
                  np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03)),
    "snow": ((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
             (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)),
    "frost": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
    "fog": ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    # the source writes 244 * (2, 0.7, 0.1), ... for 224 px images ("244 should have been 224"): kept, as fractions
    "elastic_transform": tuple(tuple(244 / 224 * v for v in c) for c in (
        (2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02))),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
    "jpeg_compression": (25, 18, 15, 10, 7),
    "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),
    "gaussian_blur": (1, 2, 3, 4, 6),
    "spatter": ((0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0),
                (0.65, 0.3, 1, 0.65, 1.5, 1), (0.67, 0.4, 1, 0.65, 1.5, 1)),
    "saturate": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
}


def corrupt(image: np.ndarray, name: str, severity: int, rng=None) -> np.ndarray:
    """`image` (uint8, (H, W) or (H, W, C) with C in {1, 3}) corrupted by `name` at `severity` (1..5).

    Returns a new uint8 array of the same shape. `rng`: None, an int seed or a `numpy.random.Generator`;
    the same seed gives the same output. Constants by image size and the handling of grey images: see the
    module docstring.
    """
    image = _checked_image(image)
    _check_name_and_severity(name, severity)
    rng = np.random.default_rng(rng)
    height, width = image.shape[:2]
    table = CIFAR_C if max(height, width) <= SMALL_IMAGE_MAX_SIDE else IMAGENET_C
    x = image.reshape(height, width, -1) / 255.0
    grey_as_colour = x.shape[2] == 1 and name in COLOUR_CORRUPTIONS
    if grey_as_colour:
        x = np.repeat(x, 3, axis=2)
    out = FUNCTIONS[name](x, table[name][severity - 1], rng)
    if grey_as_colour:
        out = out @ LUMA
    out = np.floor(np.clip(out * 255.0, 0.0, 255.0) + FLOAT_SLACK)
    return out.astype(np.uint8).reshape(image.shape)


def corrupt_batch(images: np.ndarray, name: str, severity: int, rng=None) -> np.ndarray:
    """`corrupt` on each image of a uint8 batch (N, H, W) or (N, H, W, C); returns the same shape.

    Image i is corrupted with the i-th child of `rng` (`Generator.spawn`): a seed fixes the whole batch, and
    image i gets the same result as `corrupt(x[i], ..., rng=np.random.default_rng(seed).spawn(len(x))[i])`.
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be a batch shaped (N, H, W) or (N, H, W, C), got shape {images.shape}")
    _checked_image(np.empty(images.shape[1:], images.dtype))  # dtype and image shape, even for N = 0
    _check_name_and_severity(name, severity)
    out = np.empty_like(images)
    for i, child in enumerate(np.random.default_rng(rng).spawn(len(images))):
        out[i] = corrupt(images[i], name, severity, child)
    return out


def motion_blur_kernel(radius: float, sigma: float, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row shifts, column shifts and weights (summing to 1) of a one-sided motion blur along `angle` degrees.

    ImageMagick's kernel as ported by bethgelab/imagecorruptions: width 2 * ceil(radius) + 1, Gaussian weights
    exp(-i^2 / (2 sigma^2)) for i = 0..width-1; the blurred out[r, c] = sum_i weight_i x[r - row_shift_i,
    c - col_shift_i], so tap i reads the pixel about i steps away along the angle (0 degrees: to the right).
    """
    steps = np.arange(2 * int(np.ceil(radius)) + 1)
    weights = np.exp(-(steps**2) / (2 * sigma**2))
    theta = np.deg2rad(angle)
    row_shifts = -np.ceil(steps * np.sin(theta) - 0.5).astype(int)
    col_shifts = -np.ceil(steps * np.cos(theta) - 0.5).astype(int)
    return row_shifts, col_shifts, weights / weights.sum()


# ---- the corruptions: x is float (H, W, C) in [0, 1], c the severity's constants; they return floats ----


def _gaussian_noise(x, c, rng):
    return x + rng.normal(0.0, c, x.shape)


def _shot_noise(x, c, rng):
    return rng.poisson(x * c) / c


def _impulse_noise(x, c, rng):  # scikit-image's random_noise(mode="s&p", amount=c), half salt, half pepper
    flipped = rng.random(x.shape) < c
    salt = rng.random(x.shape) < 0.5
    return np.where(flipped, salt.astype(float), x)


def _speckle_noise(x, c, rng):
    return x + x * rng.normal(0.0, c, x.shape)


def _defocus_blur(x, c, rng):
    return ndimage.correlate(x, _disk_kernel(*c)[..., None], mode="mirror")  # cv2.filter2D's border


def _glass_blur(x, c, rng):
    sigma, max_delta, iterations = c
    height, width, channels = x.shape
    x = np.floor(_blur(x, sigma) * 255.0 + FLOAT_SLACK) / 255.0  # the source rounds to uint8 before shuffling
    # Visit the pixels bottom-right to top-left and give each the current value of a random neighbour up to
    # max_delta away. The source writes `x[h, w], x[h', w'] = x[h', w'], x[h, w]`, meant as a swap, but on an
    # (H, W, 3) array both sides are views, so it copies (numpy/numpy#14428): that copy made CIFAR-10-C and
    # ImageNet-C, so it is what happens here. Later copies read earlier ones, so they run in order, on pixel
    # indices held as plain ints (fast), and the pixels move once at the end.
    rows = np.arange(height - max_delta, max_delta, -1)
    cols = np.arange(width - max_delta, max_delta, -1)
    visits = (rows[:, None] * width + cols[None, :]).ravel()
    holds = list(range(height * width))  # holds[p]: the pixel whose value p now has
    for _ in range(iterations):
        shifts = rng.integers(-max_delta, max_delta, size=(len(visits), 2))  # (dx, dy), upper bound excluded
        neighbours = visits + shifts[:, 1] * width + shifts[:, 0]
        for pixel, neighbour in zip(visits.tolist(), neighbours.tolist()):
            holds[pixel] = holds[neighbour]
    return _blur(x.reshape(height * width, channels)[holds].reshape(x.shape), sigma)


def _motion_blur(x, c, rng):
    radius, sigma = c
    return _motion_blurred(x, radius, sigma, rng.uniform(-45, 45))


def _zoom_blur(x, c, rng):
    height, width = x.shape[:2]
    rows = np.stack([_zoom_matrix(height, zoom) for zoom in c])
    cols = np.stack([_zoom_matrix(width, zoom) for zoom in c])
    zoomed_rows = (rows @ x.reshape(height, -1)).reshape(len(c), height, width, -1)
    zoomed_sum = np.tensordot(zoomed_rows, cols, axes=([0, 2], [0, 2])).transpose(0, 2, 1)  # sum over zooms
    return (x + zoomed_sum) / (len(c) + 1)


def _snow(x, c, rng):
    mean, std, zoom, threshold, blur_radius, blur_sigma, image_weight = c
    layer = rng.normal(mean, std, x.shape[:2] + (1,))
    layer = _clipped_zoom(layer, zoom)
    layer[layer < threshold] = 0
    layer = np.floor(np.clip(layer, 0.0, 1.0) * 255.0) / 255.0  # the source blurs an 8-bit image
    layer = np.round(_motion_blurred(layer, blur_radius, blur_sigma, rng.uniform(-135, -45)) * 255.0) / 255.0
    lightened = np.maximum(x, (x @ LUMA)[..., None] * 1.5 + 0.5)
    x = image_weight * x + (1 - image_weight) * lightened
    return x + layer + np.rot90(layer, k=2)


def _frost(x, c, rng):
    image_weight, frost_weight = c
    height, width = x.shape[:2]
    texture = frost_texture(int(rng.integers(TEXTURE_COUNT)), texture_side(max(height, width)))
    top = rng.integers(0, texture.shape[0] - height)
    left = rng.integers(0, texture.shape[1] - width)
    return image_weight * x + frost_weight * texture[top:top + height, left:left + width] / 255.0


def _fog(x, c, rng):
    amount, wibble_decay = c
    height, width = x.shape[:2]
    map_size = 1 << (max(height, width) - 1).bit_length()
    peak = x.max()
    x = x + amount * _plasma_fractal(map_size, wibble_decay, rng)[:height, :width, None]
    return x * peak / (peak + amount)


def _brightness(x, c, rng):
    color = require("skimage.color")
    hsv = color.rgb2hsv(x)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0.0, 1.0)
    return color.hsv2rgb(hsv)


def _contrast(x, c, rng):
    means = x.mean(axis=(0, 1), keepdims=True)
    return (x - means) * c + means


def _elastic_transform(x, c, rng):
    height, width, channels = x.shape
    alpha, sigma, jitter = (v * max(height, width) for v in c)
    # Random affine: move three points around the centre (OpenCV's (x, y) order) by up to `jitter`.
    centre = np.array([width // 2, height // 2], dtype=float)
    half = min(height, width) // 3
    source = np.array([centre + half, [centre[0] + half, centre[1] - half], centre - half])
    target = source + rng.uniform(-jitter, jitter, source.shape)
    forward = np.linalg.solve(np.c_[source, np.ones(3)], target).T  # 2x3, maps source to target
    inverse = np.linalg.inv(forward[:, :2])
    # scipy pulls each output pixel from matrix @ (row, col) + offset: the inverse map in (row, col) order
    matrix = np.eye(3)
    matrix[:2, :2] = inverse[::-1, ::-1]
    offset = np.r_[(-inverse @ forward[:, 2])[::-1], 0.0]
    x = ndimage.affine_transform(x, matrix, offset, order=1, mode="mirror")  # BORDER_REFLECT_101
    # Random smooth displacement field.
    dx, dy = (ndimage.gaussian_filter(rng.uniform(-1, 1, (height, width)), sigma, mode="reflect", truncate=3)
              * alpha for _ in range(2))
    rows, cols, chans = np.meshgrid(np.arange(height), np.arange(width), np.arange(channels), indexing="ij")
    coordinates = np.stack([rows + dy[..., None], cols + dx[..., None], chans])
    return ndimage.map_coordinates(x, coordinates, order=1, mode="reflect")


def _pixelate(x, c, rng):
    image = _to_pil(x)
    width, height = image.size
    small = image.resize((max(1, int(width * c)), max(1, int(height * c))), Image.Resampling.BOX)
    return _from_pil(small.resize((width, height), Image.Resampling.BOX), x.shape)


def _jpeg_compression(x, c, rng):
    buffer = io.BytesIO()
    _to_pil(x).save(buffer, "JPEG", quality=c)
    return _from_pil(Image.open(buffer), x.shape)


def _gaussian_blur(x, c, rng):
    return _blur(x, c)


def _spatter(x, c, rng):
    mean, std, sigma, threshold, strength, is_mud = c
    liquid = ndimage.gaussian_filter(rng.normal(mean, std, x.shape[:2]), sigma, mode="nearest")
    liquid[liquid < threshold] = 0
    if is_mud:
        mud = ndimage.gaussian_filter((liquid > threshold).astype(float), strength, mode="nearest")[..., None]
        mud[mud < 0.8] = 0
        return x * (1 - mud) + MUD * mud
    return x + strength * _water_drops(liquid)[..., None] * WATER


def _saturate(x, c, rng):
    factor, shift = c
    color = require("skimage.color")
    hsv = color.rgb2hsv(x)
    hsv[..., 1] = np.clip(hsv[..., 1] * factor + shift, 0.0, 1.0)
    return color.hsv2rgb(hsv)


FUNCTIONS: dict[str, Callable[[np.ndarray, object, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise, "impulse_noise": _impulse_noise,
    "defocus_blur": _defocus_blur, "glass_blur": _glass_blur, "motion_blur": _motion_blur, "zoom_blur": _zoom_blur,
    "snow": _snow, "frost": _frost, "fog": _fog,
    "brightness": _brightness, "contrast": _contrast, "elastic_transform": _elastic_transform,
    "pixelate": _pixelate, "jpeg_compression": _jpeg_compression,
    "speckle_noise": _speckle_noise, "gaussian_blur": _gaussian_blur, "spatter": _spatter, "saturate": _saturate,
}


# ---- helpers ----


def _blur(x, sigma):
    """scikit-image's gaussian(x, sigma, channel_axis=-1): per channel, nearest-edge border, truncate 4."""
    return ndimage.gaussian_filter(x, (sigma, sigma, 0), mode="nearest", truncate=4.0)


@functools.lru_cache(maxsize=None)
def _disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The source's anti-aliased disk: a normalised binary disk smoothed by a 3x3 (5x5 past radius 8) Gaussian."""
    extent, taps = (8, 3) if radius <= 8 else (int(radius), 5)
    grid = np.arange(-extent, extent + 1)
    disk = (grid[:, None] ** 2 + grid[None, :] ** 2 <= radius**2).astype(float)
    disk /= disk.sum()
    gauss = np.exp(-((np.arange(taps) - taps // 2) ** 2) / (2 * alias_blur**2))
    for axis in (0, 1):  # cv2.GaussianBlur: separable, reflect-101 border
        disk = ndimage.correlate1d(disk, gauss / gauss.sum(), axis=axis, mode="mirror")
    # drop the all-zero margin (exactly zero: nothing was blurred there); the kernel stays centred
    margin = min(np.flatnonzero(disk.any(axis=0))[0], np.flatnonzero(disk.any(axis=1))[0])
    kernel = disk[margin:disk.shape[0] - margin, margin:disk.shape[1] - margin]
    kernel.flags.writeable = False
    return kernel


def _motion_blurred(x, radius, sigma, angle):
    """Weighted sum of shifted copies of x (H, W, C), edges replicated (ImageMagick's default border)."""
    height, width = x.shape[:2]
    out = np.zeros_like(x)
    for row_shift, col_shift, weight in zip(*motion_blur_kernel(radius, sigma, angle)):
        rows = np.clip(np.arange(height) - row_shift, 0, height - 1)
        cols = np.clip(np.arange(width) - col_shift, 0, width - 1)
        out += weight * x[rows[:, None], cols[None, :]]
    return out


def _clipped_zoom(x, zoom):
    """Zoom x (H, W, C) about its centre by `zoom` >= 1 (bilinear), keeping its size."""
    height, width = x.shape[:2]
    zoomed_rows = (_zoom_matrix(height, zoom) @ x.reshape(height, -1)).reshape(x.shape)
    return np.tensordot(zoomed_rows, _zoom_matrix(width, zoom), axes=([1], [1])).transpose(0, 2, 1)


@functools.lru_cache(maxsize=None)
def _zoom_matrix(size: int, zoom: float) -> np.ndarray:
    """(size, size) matrix of the source's clipped_zoom along one axis, which is linear: crop the centre
    ceil(size / zoom) pixels, resize them as scipy.ndimage.zoom(order=1) does (corners aligned) to
    round(crop * zoom) pixels, keep the centre `size`. Matrices let zoom_blur sum its many zooms at once."""
    crop = int(np.ceil(size / zoom))
    top = (size - crop) // 2
    zoomed = round(crop * zoom)
    trim = (zoomed - size) // 2
    step = (crop - 1) / (zoomed - 1) if zoomed > 1 else 1.0
    source = (trim + np.arange(size)) * step
    below = np.minimum(np.floor(source).astype(int), crop - 1)
    frac = source - below
    matrix = np.zeros((size, size))
    matrix[np.arange(size), top + below] = 1 - frac
    above = below + 1 < crop
    matrix[np.arange(size)[above], top + below[above] + 1] = frac[above]
    matrix.flags.writeable = False
    return matrix


def _plasma_fractal(map_size, wibble_decay, rng):
    """Diamond-square height map in [0, 1] (map_size a power of two), as the source's plasma_fractal."""
    heights = np.empty((map_size, map_size))
    heights[0, 0] = 0.0
    step = map_size
    wibble = 100.0

    def wibbled_mean(total):
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = heights[0::step, 0::step]
        square_sums = corners + np.roll(corners, -1, axis=0)
        square_sums += np.roll(square_sums, -1, axis=1)
        heights[half::step, half::step] = wibbled_mean(square_sums)
        centres = heights[half::step, half::step]
        heights[0::step, half::step] = wibbled_mean(
            centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1))
        heights[half::step, 0::step] = wibbled_mean(
            centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0))
        step = half
        wibble /= wibble_decay
    heights -= heights.min()
    return heights / heights.max()


def _water_drops(liquid):
    """Shaded water drops in [0, 1], the source's OpenCV chain: edges, distance to them, emboss, smoothing."""
    level = np.floor(np.clip(liquid, 0.0, 1.0) * 255.0)  # the source's uint8 cast would wrap above 1
    edges = require("skimage.feature").canny(level, sigma=0, low_threshold=50, high_threshold=150)  # cv2.Canny smooths nothing
    distance = ndimage.distance_transform_edt(~edges) if edges.any() else np.full(level.shape, 20.0)
    distance = np.floor(ndimage.uniform_filter(np.minimum(distance, 20.0), 3, mode="mirror"))
    distance = _equalize_histogram(distance.astype(np.uint8)).astype(float)
    distance = np.clip(np.rint(ndimage.correlate(distance, EMBOSS, mode="mirror")), 0, 255)  # to CV_8U
    distance = np.rint(ndimage.uniform_filter(distance, 3, mode="mirror"))
    drops = level * distance
    peak = drops.max()
    return drops / peak if peak > 0 else drops


def _equalize_histogram(image):
    """cv2.equalizeHist on uint8: the lowest level present maps to 0, the rest by their cumulative count."""
    counts = np.bincount(image.ravel(), minlength=256)
    lowest = np.flatnonzero(counts)[0]
    if counts[lowest] == image.size:
        return image
    lookup = np.clip(np.rint((np.cumsum(counts) - counts[lowest]) * (255 / (image.size - counts[lowest]))), 0, 255)
    return lookup.astype(np.uint8)[image]


def _to_pil(x):
    pixels = np.rint(x * 255.0).astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)


def _from_pil(image, shape):
    return np.asarray(image, dtype=float).reshape(shape) / 255.0


def _checked_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must have dtype uint8, got {image.dtype}; "
                         "for floats in [0, 1] pass (x * 255).round().astype(np.uint8)")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)) \
            or min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(f"image must be shaped (H, W) or (H, W, C) with C in (1, 3) and H, W >= {MIN_SIDE}, "
                         f"got shape {image.shape}")
    return image


def _check_name_and_severity(name, severity):
    if not isinstance(name, str) or name not in FUNCTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose one of: {', '.join(CORRUPTIONS)}")
    if isinstance(severity, (bool, np.bool_)) or not isinstance(severity, (int, np.integer)) \
            or severity not in SEVERITIES:
        raise ValueError(f"severity must be an integer in {SEVERITIES}, got {severity!r}")
