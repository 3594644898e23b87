"""AugMix's image operations, batched on torch tensors with per-sample randomness.

The reference (AugMix's ``augmentations.py``, copied by APR) applies one PIL operation to one uint8 image at
a time on CPU workers. Here a whole batch ``(B, C, H, W)`` of floats in [0, 1] is augmented on its own device,
each image with its own operation, magnitude and sign, reproducibly from a ``torch.Generator``.

Conventions that make the results match PIL on uint8 images:
- operations see pixel values ``x * 255``; the ops PIL defines on integer levels (autocontrast, equalize,
  posterize, solarize) first round to uint8 levels; the others stay continuous, so they differ from PIL only
  by PIL's rounding or truncation to uint8;
- geometric ops follow ``Image.transform(..., AFFINE, BILINEAR)``: output pixel centre (x + .5, y + .5) samples
  the input at ``A @ (x + .5, y + .5) + t`` (pixel-edge coordinates), edge pixels are replicated within the
  image and anything sampled outside it is black.

The ops fall into four families that each run as one batched computation with a per-image op and level: the point
ops (autocontrast, posterize, solarize) as a 256-entry lookup table per image and channel, equalize (a table from
each channel's histogram), the geometric ops as one affine resampling, and PIL's enhancements as one blend with a
per-image degenerate image.
`random_op` has two paths with one result distribution: "grouped" (the default on a CPU) runs each family on its
own images only, which takes host synchronisations to find them, and draws exactly as earlier versions did;
"sync_free" (the default elsewhere) runs every family present on the whole batch and selects per image, so a GPU
never waits for the host.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

OPS = ("autocontrast", "equalize", "posterize", "rotate", "solarize",
       "shear_x", "shear_y", "translate_x", "translate_y")
ALL_OPS = OPS + ("color", "contrast", "brightness", "sharpness")

# How AugMix turns its per-image draw ``sample ~ U(0.1, severity)`` into each op's level, in the units apply_op
# takes: level = offset + scale * [floor](sample * multiplier / 10), in that order of operations (so the levels are
# those of the reference's expressions exactly), then a random sign (p = 0.5) where the op has one. ``int(...)`` in
# the reference is the floor here (sample > 0). "side" is a third of the image side along the op's axis (the side is
# 32 for CIFAR, 224 for ImageNet). Columns: multiplier, offset, scale, floored, signed.
_LEVELS = {
    "autocontrast": (0, 0, 0, False, False),
    "equalize": (0, 0, 0, False, False),
    "posterize": (4, 4, -1, True, False),  # bits kept: 4 - int(sample * 4 / 10)
    "rotate": (30, 0, 1, True, True),  # degrees, counter-clockwise
    "solarize": (256, 256, -1, True, False),  # threshold: 256 - int(sample * 256 / 10)
    "shear_x": (0.3, 0, 1, False, True),  # shear factor
    "shear_y": (0.3, 0, 1, False, True),
    "translate_x": ("side", 0, 1, True, True),  # pixels
    "translate_y": ("side", 0, 1, True, True),
    "color": (1.8, 0.1, 1, False, False),  # enhancement factor: sample * 1.8 / 10 + 0.1
    "contrast": (1.8, 0.1, 1, False, False),
    "brightness": (1.8, 0.1, 1, False, False),
    "sharpness": (1.8, 0.1, 1, False, False),
}
_MAX_SEVERITY = 10  # AugMix's levels are fractions of severity / 10
PATHS = ("grouped", "sync_free")


def _check_name(name, allowed):
    if name not in allowed:
        raise ValueError(f"unknown augmentation op {name!r}; allowed: {', '.join(allowed)}")


def _check_images(x):
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        kind = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"images must be a floating-point torch.Tensor with values in [0, 1], got {kind}")
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be shaped (B, C, H, W) with C = 1 or 3, got {tuple(x.shape)}")


def check_severity(severity):
    if not 0.1 <= severity <= _MAX_SEVERITY:
        raise ValueError(f"severity must be in [0.1, {_MAX_SEVERITY}] (AugMix draws U(0.1, severity)), "
                         f"got {severity!r}")


def _draw_device(generator, device="cpu"):
    """Where draws happen: on the generator's device, else (torch's default generator) on `device`."""
    return generator.device if generator is not None else torch.device(device)


def settle_heap(device: torch.device) -> None:
    """On a CPU: free one 16 MiB block, once per process, so that the C heap keeps the memory of freed temporaries.

    glibc's malloc returns heap memory to the system when more free memory than twice its largest freed block lies
    at the top, and serves blocks above that block's size by fresh mappings; both adapt upward as larger blocks are
    freed (mallopt(3), dynamic mmap threshold). A batch of augmentation temporaries (several MiB) would otherwise be
    faulted in again on every batch, which doubles the cost of APR's CPU path on a small machine. A model's own
    activations raise the threshold the same way during training; this does it before the first batch. Elsewhere
    (other allocators) it is one large allocation, freed at once, and nothing more. Allocating does not touch the
    pages, so it costs no faults.
    """
    if device.type == "cpu":
        _free_a_large_block()


@functools.cache
def _free_a_large_block() -> None:
    block = torch.empty(16 << 20, dtype=torch.uint8)
    del block


@functools.lru_cache(maxsize=None)
def _constant(values: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A small constant tensor, made once per device: building it from Python values on every call would copy it
    from the host each time, and such a copy makes a GPU stream wait."""
    return torch.tensor(values, dtype=dtype, device=device)


def _is_op(code, name):
    return code == ALL_OPS.index(name)


def _codes(names, device):
    """The positions in ALL_OPS of `names`, as a tensor on `device`."""
    return _constant(tuple(ALL_OPS.index(name) for name in names), torch.long, device)


# --- point ops: one lookup table per image and channel -------------------------------------------------------
#
# Full-size boolean masks are avoided (a torch.where over a whole image batch with one costs several times its
# arithmetic on a CPU): tables are selected per image, thresholds written as clamped differences of integer levels.

def _to_levels(pixels):
    return pixels.round().clamp(0, 255).long()


def _lookup(tables, levels):
    """tables (B, C, 256) applied to integer levels (B, C, H, W)."""
    return tables.gather(-1, levels.flatten(2)).view(levels.shape)


def _point_ops(pixels, code, level):
    """autocontrast, posterize (level: bits kept) and solarize (level: threshold) on integer levels."""
    levels = _to_levels(pixels)
    lowest, highest = levels.flatten(2).aminmax(dim=-1)
    lowest, highest = lowest[..., None], highest[..., None]  # (B, C, 1)
    code, level = code.view(-1, 1, 1), level.view(-1, 1, 1)
    values = torch.arange(256, dtype=pixels.dtype, device=pixels.device)
    # PIL computes int(v * scale + offset) in double precision, which sometimes gives 254 for the top level;
    # reproduce its exact arithmetic (MPS has no float64, so there it may differ by one level).
    exact = torch.float32 if pixels.device.type == "mps" else torch.float64
    span = (highest - lowest).clamp(min=1).to(exact)
    scale = torch.full_like(span, 255.0) / span  # (a python scalar / tensor is not correctly rounded)
    stretched = (values.to(exact) * scale + (-lowest.to(exact) * scale)).floor().clamp(0, 255).to(pixels.dtype)
    autocontrast = torch.where(highest > lowest, stretched, values)  # a flat channel is left as it is
    bucket = 2.0 ** (8 - level.round())  # keeping the high `level` bits = flooring to a multiple
    posterize = torch.floor(values / bucket) * bucket
    solarize = values + (255 - 2 * values) * (values - level + 1).clamp(0, 1)  # 255 - v from the threshold on
    tables = torch.where(_is_op(code, "autocontrast"), autocontrast,
                         torch.where(_is_op(code, "posterize"), posterize, solarize))
    return _lookup(tables, levels)


def _equalize(pixels, code, level):
    """PIL's equalize: per channel, levels spread by their cumulative histogram."""
    levels = _to_levels(pixels)
    flat = levels.flatten(2)
    # Histograms by scatter_add: unlike bincount, it needs no host synchronisation on a GPU.
    hist = torch.zeros(*flat.shape[:2], 256, dtype=torch.long, device=levels.device)
    hist.scatter_add_(2, flat, torch.ones((), dtype=torch.long, device=levels.device).expand(flat.shape))
    # PIL's lut: step = (pixel count without the highest present level) // 255, lut[v] = (step // 2 + #below v)
    # // step; a channel with step 0 (almost flat) is left unchanged.
    step = (flat.shape[-1] - hist.gather(-1, flat.amax(-1, keepdim=True))) // 255
    below = hist.cumsum(-1) - hist
    tables = ((step // 2 + below) // step.clamp(min=1)).clamp(max=255)
    tables = torch.where(step > 0, tables, torch.arange(256, device=levels.device))
    return _lookup(tables.to(pixels.dtype), levels)


# --- geometric ops: one grid_sample for the batch -------------------------------------------------------------

_BORDER_TIE = 1e-5  # in grid units (half the image side); float32 round-off in the grid is ~1e-7


def _affine(pixels, matrix, shift):
    """out(p) = in(matrix @ p + shift) for output pixel centres p, in PIL's pixel-edge coordinates."""
    height, width = pixels.shape[-2:]
    # grid_sample (align_corners=False) takes coordinates u = 2p / size - 1. The grid is written out one plane per
    # axis (u_in = a * x_out + b * y_out + c) rather than with affine_grid, whose batched matrix product costs
    # several times more on small images.
    x_out, y_out = (torch.arange(size, dtype=pixels.dtype, device=pixels.device) + 0.5 for size in (width, height))
    scale = _constant((2 / width, 2 / height), pixels.dtype, pixels.device)
    coefficients = torch.cat([matrix, shift[..., None]], dim=2) * scale[None, :, None]  # in = coefficients @ (x, y, 1)
    a, b, c = (coefficients[..., k, None, None] for k in range(3))  # (n, 2, 1, 1) each
    grid = a * x_out[None, None, None, :] + b * y_out[None, None, :, None] + (c - 1)  # (n, 2, H, W)
    # PIL replicates edge pixels for points inside the image, [0, size), and fills black outside it (grid_sample's
    # zeros padding would instead fade to black over a pixel). The bounds are moved by far less than a pixel so
    # that points exactly on the border (a shear of 0.2 at a half pixel) fall on PIL's side despite round-off.
    within = (grid >= -1 - _BORDER_TIE) & (grid < 1 - _BORDER_TIE)
    inside = within[:, :1] & within[:, 1:]
    sampled = F.grid_sample(pixels, grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                            align_corners=False)
    return sampled * inside


def _geometric_ops(pixels, code, level):
    """rotate (degrees, counter-clockwise, about the centre), shear_x / shear_y (in = (x + level y, y) /
    (x, y + level x)) and translate_x / translate_y (in = (x + level, y): the content moves left by level pixels)."""
    height, width = pixels.shape[-2:]
    rotate = _is_op(code, "rotate")
    radians = level * (math.pi / 180)
    cos, sin = torch.cos(radians), torch.sin(radians)
    zero, one = torch.zeros_like(level), torch.ones_like(level)
    diagonal = torch.where(rotate, cos, one)
    upper = torch.where(rotate, -sin, torch.where(_is_op(code, "shear_x"), level, zero))
    lower = torch.where(rotate, sin, torch.where(_is_op(code, "shear_y"), level, zero))
    matrix = torch.stack([torch.stack([diagonal, upper], -1), torch.stack([lower, diagonal], -1)], -2)
    centre = _constant((width / 2, height / 2), pixels.dtype, pixels.device)
    translation = torch.stack([torch.where(_is_op(code, "translate_x"), level, zero),
                               torch.where(_is_op(code, "translate_y"), level, zero)], -1)
    shift = torch.where(rotate[:, None], centre - matrix @ centre, translation)  # rotations are about the centre
    return _affine(pixels, matrix, shift)


# --- PIL ImageEnhance: blend the image with a degenerate version --------------------------------------------

def _grayscale(pixels):
    if pixels.shape[1] == 1:
        return pixels
    red, green, blue = pixels.unbind(1)
    return (0.299 * red + 0.587 * green + 0.114 * blue)[:, None]  # PIL's convert("L") weights


def _smoothed(pixels):
    channels = pixels.shape[1]
    kernel = _constant(((1.0, 1, 1), (1, 5, 1), (1, 1, 1)), pixels.dtype, pixels.device) / 13
    smooth = F.conv2d(pixels, kernel.expand(channels, 1, 3, 3), padding=1, groups=channels)
    degenerate = pixels.clone()
    degenerate[..., 1:-1, 1:-1] = smooth[..., 1:-1, 1:-1]  # PIL's SMOOTH filter leaves border pixels as they are
    return degenerate


def _enhance_ops(pixels, code, level):
    """color, contrast, brightness and sharpness: degenerate + level * (image - degenerate), the degenerate image
    being the grayscale image, its mean, black, or the smoothed image."""
    code = code.view(-1, 1, 1, 1)
    gray = _grayscale(pixels)
    degenerate = torch.where(_is_op(code, "brightness"), 0.0, _smoothed(pixels))
    degenerate = torch.where(_is_op(code, "contrast"), gray.mean((1, 2, 3), keepdim=True), degenerate)
    degenerate = torch.where(_is_op(code, "color"), gray, degenerate)
    return (degenerate + level.view(-1, 1, 1, 1) * (pixels - degenerate)).clamp(0, 255)


_FAMILIES = (
    (("autocontrast", "posterize", "solarize"), _point_ops),
    (("equalize",), _equalize),
    (("rotate", "shear_x", "shear_y", "translate_x", "translate_y"), _geometric_ops),
    (("color", "contrast", "brightness", "sharpness"), _enhance_ops),
)
_FAMILY_OF_CODE = tuple(next(k for k, (names, _) in enumerate(_FAMILIES) if name in names) for name in ALL_OPS)


def _family_of(code):
    return _constant(_FAMILY_OF_CODE, torch.long, code.device).gather(0, code)


def apply_ops(pixels, code, level, ops=ALL_OPS, path="grouped"):
    """Image i of `pixels` (B, C, H, W, float levels 0..255) gets op ALL_OPS[code[i]] at level[i] (B,) (levels in
    the units of `_LEVELS`, on pixels' device). `ops` bounds the codes that may occur; `path` as `random_op`'s."""
    if path not in PATHS:
        raise ValueError(f"path={path!r} is not one of {PATHS}")
    families = [family for names, family in _FAMILIES if any(name in ops for name in names)]
    if len(families) == 1 or len(pixels) == 0:  # (no images: no family has a minimum to find)
        return families[0](pixels, code, level) if len(pixels) else pixels.clone()
    if path == "sync_free":
        family_of = _family_of(code)
        out = None
        for index, (names, family) in enumerate(_FAMILIES):
            if family in families:
                result = family(pixels, code, level)
                out = result if out is None else torch.where((family_of == index).view(-1, 1, 1, 1), result, out)
        return out
    family_of = _family_of(code.cpu())
    out = torch.empty_like(pixels)
    for index, (names, family) in enumerate(_FAMILIES):
        members = (family_of == index).nonzero().flatten()
        if len(members) == len(pixels):
            return family(pixels, code, level)
        if len(members):
            members = members.to(pixels.device)
            out.index_copy_(0, members, family(pixels.index_select(0, members), code.index_select(0, members),
                                               level.index_select(0, members)))
    return out


def to_pixels(x):
    """float images in [0, 1] as levels 0..255 in a float type that holds 256 levels exactly."""
    return x.to(torch.promote_types(x.dtype, torch.float32)) * 255


def apply_op(x, name, level):
    """Apply AugMix op `name` to every image of x (B, C, H, W) in [0, 1], image i with level[i].

    `level` (B,) holds signed magnitudes in the reference's units (see `_LEVELS`); autocontrast and equalize
    ignore it. Deterministic; returns a tensor of x's shape, dtype and device.
    """
    _check_images(x)
    _check_name(name, ALL_OPS)
    if not isinstance(level, torch.Tensor) or level.shape != (x.shape[0],) or level.is_complex():
        got = tuple(level.shape) if isinstance(level, torch.Tensor) else type(level).__name__
        raise ValueError(f"level must be a real tensor of shape ({x.shape[0]},) (one per image), got {got}")
    pixels = to_pixels(x)
    code = torch.full((len(x),), ALL_OPS.index(name), device=x.device)
    return (apply_ops(pixels, code, level.to(pixels), (name,)) / 255).to(x.dtype)


def sample_level(name, severity, batch_size, generator=None, device="cpu", *, image_size=32):
    """Draw `batch_size` levels for op `name` as AugMix does at `severity`: sample ~ U(0.1, severity), the
    table `_LEVELS`, then a random sign where the op has one. Draws happen on the generator's device (CPU if
    None) and are moved to `device`, so a seed gives the same levels on every device."""
    _check_name(name, ALL_OPS)
    check_severity(severity)
    choice = torch.zeros(batch_size, dtype=torch.long, device=_draw_device(generator))
    return _draw_levels(choice, (name,), severity, (image_size, image_size), generator, "grouped").to(device)


def draw_ops(batch_size, size, severity=3, ops=OPS, generator=None, path="grouped", device="cpu"):
    """For each of `batch_size` images of `size` (H, W): an op drawn uniformly from `ops` and its level at
    `severity` (see `sample_level`), as (code, level): positions in ALL_OPS (long) and levels (float32), drawn on
    the generator's device (without one, from torch's default generator of `device`).

    "grouped" draws the samples and signs op by op for the images that have each op, the order of earlier
    versions (a seed gives the same images); "sync_free" draws one sample and one sign for every image, so the
    number of draws does not depend on drawn values.
    """
    if path not in PATHS:
        raise ValueError(f"path={path!r} is not one of {PATHS}")
    draw_device = _draw_device(generator, device)
    choice = torch.randint(len(ops), (batch_size,), generator=generator, device=draw_device)
    return _codes(ops, draw_device).gather(0, choice), _draw_levels(choice, ops, severity, size, generator, path)


def _draw_levels(choice, ops, severity, size, generator, path):
    """The level of each image's op ops[choice[i]] (see `draw_ops`), on choice's device."""
    batch_size, draw_device = len(choice), choice.device
    height, width = size
    table = [_LEVELS[name] for name in ops]
    if path == "sync_free":
        uniform = torch.rand(batch_size, generator=generator, device=draw_device, dtype=torch.float64)
        flip = torch.rand(batch_size, generator=generator, device=draw_device)
    else:
        on_host = choice.cpu()
        uniform_parts = [torch.empty(0, dtype=torch.float64, device=draw_device)]  # (for an empty batch)
        flip_parts = [torch.empty(0, device=draw_device)]
        for count, (*_, signed) in zip(torch.bincount(on_host, minlength=len(ops)).tolist(), table):
            if count:
                uniform_parts.append(torch.rand(count, generator=generator, device=draw_device, dtype=torch.float64))
                flip_parts.append(torch.rand(count, generator=generator, device=draw_device) if signed
                                  else torch.zeros(count, device=draw_device))
        by_op = torch.argsort(on_host, stable=True).to(draw_device)  # the image of each value drawn, op by op
        uniform = torch.empty(batch_size, dtype=torch.float64, device=draw_device).index_copy_(
            0, by_op, torch.cat(uniform_parts))
        flip = torch.empty(batch_size, device=draw_device).index_copy_(0, by_op, torch.cat(flip_parts))
    sides = {name: (height if name == "translate_y" else width) / 3 for name in ops}  # the op's axis
    columns = _constant(tuple((sides[name] if multiplier == "side" else multiplier, offset, scale, floored, signed)
                              for name, (multiplier, offset, scale, floored, signed) in zip(ops, table)),
                        torch.float64, draw_device)[choice].unbind(-1)
    multiplier, offset, scale, floored, signed = columns
    raw = (0.1 + (severity - 0.1) * uniform) * multiplier / 10
    level = offset + scale * torch.where(floored > 0, torch.floor(raw), raw)
    return torch.where((flip > 0.5) & (signed > 0), -level, level).float()


def default_path(device):
    """"grouped" on a CPU, where finding each op's images costs nothing; "sync_free" on an accelerator."""
    return "grouped" if torch.device(device).type == "cpu" else "sync_free"


def check_ops(ops):
    ops = tuple(ops)
    if not ops:
        raise ValueError(f"ops must name at least one of: {', '.join(ALL_OPS)}")
    for name in ops:
        _check_name(name, ALL_OPS)
    return ops


def random_op(x, severity=3, ops=OPS, generator=None, path=None):
    """Give each image of x (B, C, H, W) in [0, 1] one op drawn uniformly from `ops` with its own level.

    `path` ("grouped" or "sync_free", see the module docstring) defaults to `default_path(x.device)`. Returns a new
    tensor of x's shape, dtype and device.
    """
    _check_images(x)
    ops = check_ops(ops)
    check_severity(severity)
    path = path or default_path(x.device)
    settle_heap(x.device)
    code, level = draw_ops(len(x), x.shape[-2:], severity, ops, generator, path, x.device)
    pixels = to_pixels(x)
    return (apply_ops(pixels, code.to(x.device), level.to(pixels), ops, path) / 255).to(x.dtype)
