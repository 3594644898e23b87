"""Procedural frost textures for the `frost` corruption of `apr_lib.corruptions`.

The reference generators (hendrycks/robustness `make_cifar_c.py`, `make_imagenet_c.py`) blend each image
with a random crop of one of five photographs of frosted window glass (frost1.png ... frost5.jpg; the
sixth file is listed but `randint(5)` never draws it). Those photographs do not ship with this library,
so five stand-ins are *generated* here, deterministically, with NumPy and SciPy only:

- ice crystals: 40 dendrites per texture, drawn in the unit square. Each stem is a slightly bending
  chain of segments; branches spring from every segment at about +-60 degrees (the hexagonal habit of
  ice), and twigs from the branches the same way. The segments are splatted (bilinear, every half pixel)
  and blurred to a line width that scales with the rendering size;
- frosted haze: smooth fractal noise (Gaussian noise on 4..64-cell grids, upsampled and summed);
- colour: blue-white, `grey * TINT`.

Because the random numbers are drawn in unit-square coordinates from a fixed seed, a texture rendered at
any size shows the same pattern. A texture's side is `TEXTURE_TO_IMAGE` times the image's longer side,
so a crop sees the same share of the pattern at every image size (in the references a 32 px crop of a
photo shrunk by 0.2, and a 224 px crop of the full photo, each see roughly a fifth of it), up to
`MAX_TEXTURE_SIDE` pixels (memory and time; images over 307 px see a larger share). Textures are made on
first use (about 0.1 s each at small sizes, 1 s at 1120 px) and kept in memory as uint8, like photographs.

These textures are NOT the original photographs: their pixels, mean brightness (about 0.4 of white here)
and structure differ, so `frost` numbers made with them are comparable with each other, not with the
frost files of the official CIFAR-10-C / ImageNet-C releases.
"""
from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

TEXTURE_COUNT = 5
TEXTURE_TO_IMAGE = 5
MAX_TEXTURE_SIDE = 1536
TEXTURE_SEED = 2021
TINT = np.array([0.80, 0.90, 1.00])  # ice photographs are blue-white

RENDER_SIDE = 640
STEMS = 40
BEND = 0.08  # radians of random heading change per segment: stems curve, do not zigzag
# (segments per branch, length relative to its parent's, brightness) for stems, branches, twigs
LEVELS = ((10, None, 1.00), (4, (0.20, 0.40), 0.75), (1, (0.25, 0.45), 0.55))
STEM_LENGTH = (0.10, 0.35)  # in units of the texture's side
BRANCH_ANGLE = np.pi / 3


def texture_side(image_side: int) -> int:
    """Side of the texture to crop an image of this (longer) side from: always larger than the image."""
    return max(min(TEXTURE_TO_IMAGE * image_side, MAX_TEXTURE_SIDE), image_side + 1)


@functools.lru_cache(maxsize=16)
def frost_texture(index: int, side: int) -> np.ndarray:
    """Texture `index` (0..TEXTURE_COUNT-1) as a read-only (side, side, 3) uint8 RGB array."""
    rng = np.random.default_rng([TEXTURE_SEED, index])
    # draw fine lines at >= RENDER_SIDE pixels, then average blocks: every size sees the same crystals
    supersample = -(-RENDER_SIDE // side)
    crystals = _render(*_dendrites(rng), side * supersample)
    crystals = crystals.reshape(side, supersample, side, supersample).mean(axis=(1, 3))
    haze = _fractal_noise(rng, side)
    grey = np.clip(0.10 + 0.35 * haze + 0.75 * crystals, 0.0, 1.0)
    texture = np.rint(grey[..., None] * TINT * 255.0).astype(np.uint8)
    texture.flags.writeable = False
    return texture


def _dendrites(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments (begins (S, 2), ends (S, 2), brightness (S,)) of all crystals, in unit coordinates."""
    starts = rng.uniform(-0.1, 1.1, (STEMS, 2))
    headings = rng.uniform(0.0, 2 * np.pi, STEMS)
    lengths = rng.uniform(*STEM_LENGTH, STEMS)
    begins, ends, brightness = [], [], []
    for pieces, relative_length, level_brightness in LEVELS:
        if relative_length is not None:  # two children per parent segment, one on each side
            starts, headings, lengths = _children(rng, begins[-1], ends[-1], headings, lengths, relative_length)
        turns = np.cumsum(rng.normal(0.0, BEND, (len(starts), pieces)), axis=1)
        piece_headings = headings[:, None] + turns
        steps = (lengths / pieces)[:, None, None] * np.stack([np.cos(piece_headings), np.sin(piece_headings)], -1)
        piece_ends = starts[:, None, :] + np.cumsum(steps, axis=1)
        begins.append((piece_ends - steps).reshape(-1, 2))
        ends.append(piece_ends.reshape(-1, 2))
        brightness.append(np.full(len(begins[-1]), level_brightness))
        headings = piece_headings.reshape(-1)
        lengths = np.repeat(lengths, pieces)  # a child's length follows its whole parent branch
    return np.concatenate(begins), np.concatenate(ends), np.concatenate(brightness)


def _children(rng, begins, ends, headings, lengths, relative_length):
    """Starts, headings and lengths of two branches per parent segment, at about +-BRANCH_ANGLE."""
    count = 2 * len(begins)
    sides = np.tile([1.0, -1.0], len(begins))
    along = rng.uniform(0.0, 1.0, (count, 1))
    starts = np.repeat(begins, 2, axis=0) + along * np.repeat(ends - begins, 2, axis=0)
    headings = np.repeat(headings, 2) + sides * (BRANCH_ANGLE + rng.normal(0.0, 0.15, count))
    lengths = np.repeat(lengths, 2) * rng.uniform(*relative_length, count)
    return starts, headings, lengths


def _render(begins: np.ndarray, ends: np.ndarray, brightness: np.ndarray, side: int) -> np.ndarray:
    """Anti-aliased lines in [0, 1]: points every half pixel, splatted bilinearly, then blurred."""
    begins, ends = begins * side, ends * side
    lengths = np.hypot(*(ends - begins).T)
    counts = np.maximum(1, np.ceil(2 * lengths)).astype(np.int64)
    segment = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    t = (np.arange(counts.sum()) - first[segment] + 0.5) / counts[segment]
    points = begins[segment] + t[:, None] * (ends - begins)[segment] - 0.5  # pixel centres at .5
    ink = brightness[segment] * lengths[segment] / counts[segment]
    corner = np.floor(points).astype(np.int64)
    frac = points - corner
    density = np.zeros(side * side)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        col, row = corner[:, 0] + dx, corner[:, 1] + dy
        weight = ink * np.abs(1 - dx - frac[:, 0]) * np.abs(1 - dy - frac[:, 1])
        inside = (col >= 0) & (col < side) & (row >= 0) & (row < side)
        density += np.bincount(row[inside] * side + col[inside], weight[inside], side * side)
    # a line of unit ink per pixel, blurred across by sigma, peaks at 1 / (sqrt(2 pi) sigma)
    sigma = side / 600
    lines = ndimage.gaussian_filter(density.reshape(side, side), sigma) * np.sqrt(2 * np.pi) * sigma
    return 1.0 - np.exp(-lines)  # overlapping crystals saturate instead of summing


def _fractal_noise(rng: np.random.Generator, side: int) -> np.ndarray:
    """Smooth clouds in [0, 1]: Gaussian noise on coarse grids, upsampled and summed (1/f amplitudes)."""
    total = np.zeros((side, side))
    for cells in (4, 8, 16, 32, 64):
        grid = rng.standard_normal((cells, cells))
        total += ndimage.zoom(grid, side / cells, order=3, mode="grid-wrap", grid_mode=True) * 4 / cells
    total -= total.min()
    return total / total.max()
