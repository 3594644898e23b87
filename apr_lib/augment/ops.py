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
"""
import math

import torch
import torch.nn.functional as F

OPS = ("autocontrast", "equalize", "posterize", "rotate", "solarize",
       "shear_x", "shear_y", "translate_x", "translate_y")
ALL_OPS = OPS + ("color", "contrast", "brightness", "sharpness")

# How AugMix turns its per-image draw ``sample ~ U(0.1, severity)`` into each op's level, in the units apply_op
# takes, and whether the level then gets a random sign (p = 0.5). ``int(...)`` in the reference is a floor here
# (sample > 0). image_size is the image side along the op's axis: 32 for CIFAR, 224 for ImageNet.
_LEVELS = {
    "autocontrast": (lambda sample, image_size: torch.zeros_like(sample), False),
    "equalize": (lambda sample, image_size: torch.zeros_like(sample), False),
    "posterize": (lambda sample, image_size: 4 - torch.floor(sample * 4 / 10), False),  # bits kept
    "rotate": (lambda sample, image_size: torch.floor(sample * 30 / 10), True),  # degrees, counter-clockwise
    "solarize": (lambda sample, image_size: 256 - torch.floor(sample * 256 / 10), False),  # threshold
    "shear_x": (lambda sample, image_size: sample * 0.3 / 10, True),  # shear factor
    "shear_y": (lambda sample, image_size: sample * 0.3 / 10, True),
    "translate_x": (lambda sample, image_size: torch.floor(sample * (image_size / 3) / 10), True),  # pixels
    "translate_y": (lambda sample, image_size: torch.floor(sample * (image_size / 3) / 10), True),
    "color": (lambda sample, image_size: sample * 1.8 / 10 + 0.1, False),  # enhancement factor
    "contrast": (lambda sample, image_size: sample * 1.8 / 10 + 0.1, False),
    "brightness": (lambda sample, image_size: sample * 1.8 / 10 + 0.1, False),
    "sharpness": (lambda sample, image_size: sample * 1.8 / 10 + 0.1, False),
}
_MAX_SEVERITY = 10  # AugMix's levels are fractions of severity / 10


def _check_name(name, allowed):
    if name not in allowed:
        raise ValueError(f"unknown augmentation op {name!r}; allowed: {', '.join(allowed)}")


def _check_images(x):
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        kind = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"images must be a floating-point torch.Tensor with values in [0, 1], got {kind}")
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be shaped (B, C, H, W) with C = 1 or 3, got {tuple(x.shape)}")


def _check_severity(severity):
    if not 0.1 <= severity <= _MAX_SEVERITY:
        raise ValueError(f"severity must be in [0.1, {_MAX_SEVERITY}] (AugMix draws U(0.1, severity)), "
                         f"got {severity!r}")


def _draw_device(generator):
    return generator.device if generator is not None else torch.device("cpu")


def _per_image(level):
    return level.view(-1, 1, 1, 1)


# --- point ops on integer levels ------------------------------------------------------------------------------

def _to_levels(pixels):
    return pixels.round().clamp(0, 255).long()


def _histograms(levels):
    """Per (sample, channel) 256-bin histograms of uint8 levels, shape (B, C, 256), in one bincount."""
    batch, channels = levels.shape[:2]
    offsets = torch.arange(batch * channels, device=levels.device).view(batch, channels, 1) * 256
    counts = torch.bincount((levels.flatten(2) + offsets).flatten(), minlength=batch * channels * 256)
    return counts.view(batch, channels, 256)


def _autocontrast(pixels, level):
    levels = _to_levels(pixels)
    hist = _histograms(levels)
    values = torch.arange(256, device=pixels.device)
    present = hist > 0
    lowest = torch.where(present, values, 255).amin(-1)[..., None, None]
    highest = torch.where(present, values, 0).amax(-1)[..., None, None]
    # PIL computes int(v * scale + offset) in double precision, which sometimes gives 254 for the top level;
    # reproduce its exact arithmetic (MPS has no float64, so there it may differ by one level).
    exact = torch.float32 if pixels.device.type == "mps" else torch.float64
    span = (highest - lowest).clamp(min=1).to(exact)
    scale = torch.full_like(span, 255.0) / span  # (a python scalar / tensor is not correctly rounded)
    stretched = (levels.to(exact) * scale + (-lowest.to(exact) * scale)).floor().clamp(0, 255)
    return torch.where(highest > lowest, stretched.to(pixels.dtype), levels.to(pixels.dtype))


def _equalize(pixels, level):
    levels = _to_levels(pixels)
    hist = _histograms(levels)
    values = torch.arange(256, device=pixels.device)
    last_present = torch.where(hist > 0, values, 0).amax(-1, keepdim=True)
    # PIL's lut: step = (pixel count without the highest present level) // 255, lut[v] = (step // 2 + #below v)
    # // step; a channel with step 0 (almost flat) is left unchanged.
    step = (levels.shape[-2] * levels.shape[-1] - hist.gather(-1, last_present)) // 255
    below = hist.cumsum(-1) - hist
    lut = ((step // 2 + below) // step.clamp(min=1)).clamp(max=255)
    lut = torch.where(step > 0, lut, values)
    return lut.gather(-1, levels.flatten(2)).view_as(levels).to(pixels.dtype)


def _posterize(pixels, level):
    bucket = 2.0 ** (8 - _per_image(level).round())  # keeping the high `level` bits = flooring to a multiple
    return torch.floor(_to_levels(pixels) / bucket) * bucket


def _solarize(pixels, level):
    levels = _to_levels(pixels).to(pixels.dtype)
    return torch.where(levels < _per_image(level), levels, 255 - levels)


# --- geometric ops: one affine_grid + grid_sample for the batch -----------------------------------------------

_BORDER_TIE = 1e-5  # in grid units (half the image side); float32 round-off in the grid is ~1e-7


def _affine(pixels, matrix, shift):
    """out(p) = in(matrix @ p + shift) for output pixel centres p, in PIL's pixel-edge coordinates."""
    height, width = pixels.shape[-2:]
    # grid_sample (align_corners=False) takes coordinates u = 2p / size - 1. The grid is written out one plane per
    # axis (u_in = a * x_out + b * y_out + c) rather than with affine_grid, whose batched matrix product costs
    # several times more on small images.
    x_out, y_out = (torch.arange(size, dtype=pixels.dtype, device=pixels.device) + 0.5 for size in (width, height))
    scale = torch.tensor([2 / width, 2 / height], dtype=pixels.dtype, device=pixels.device)
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


def _rotate(pixels, level):
    height, width = pixels.shape[-2:]
    radians = level * (math.pi / 180)
    cos, sin = torch.cos(radians), torch.sin(radians)
    matrix = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    centre = torch.tensor([width / 2, height / 2], dtype=pixels.dtype, device=pixels.device)
    return _affine(pixels, matrix, centre - matrix @ centre)  # about the image centre


def _shear(pixels, level, axis):
    matrix = torch.eye(2, dtype=pixels.dtype, device=pixels.device).repeat(len(level), 1, 1)
    matrix[:, axis, 1 - axis] = level  # shear_x: in = (x + level * y, y); shear_y: in = (x, y + level * x)
    return _affine(pixels, matrix, torch.zeros_like(matrix[:, 0]))


def _translate(pixels, level, axis):
    matrix = torch.eye(2, dtype=pixels.dtype, device=pixels.device).repeat(len(level), 1, 1)
    shift = torch.zeros_like(matrix[:, 0])
    shift[:, axis] = level  # translate_x: in = (x + level, y), the content moves left by level pixels
    return _affine(pixels, matrix, shift)


# --- PIL ImageEnhance: blend the image with a degenerate version --------------------------------------------

def _blend(degenerate, pixels, factor):
    return (degenerate + _per_image(factor) * (pixels - degenerate)).clamp(0, 255)


def _grayscale(pixels):
    if pixels.shape[1] == 1:
        return pixels
    red, green, blue = pixels.unbind(1)
    return (0.299 * red + 0.587 * green + 0.114 * blue)[:, None]  # PIL's convert("L") weights


def _color(pixels, level):
    return _blend(_grayscale(pixels), pixels, level)


def _contrast(pixels, level):
    return _blend(_grayscale(pixels).mean((1, 2, 3), keepdim=True), pixels, level)


def _brightness(pixels, level):
    return _blend(torch.zeros_like(pixels), pixels, level)


def _sharpness(pixels, level):
    channels = pixels.shape[1]
    kernel = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=pixels.dtype, device=pixels.device) / 13
    smooth = F.conv2d(pixels, kernel.expand(channels, 1, 3, 3), padding=1, groups=channels)
    degenerate = pixels.clone()
    degenerate[..., 1:-1, 1:-1] = smooth[..., 1:-1, 1:-1]  # PIL's SMOOTH filter leaves border pixels as they are
    return _blend(degenerate, pixels, level)


_APPLY = {
    "autocontrast": _autocontrast,
    "equalize": _equalize,
    "posterize": _posterize,
    "rotate": _rotate,
    "solarize": _solarize,
    "shear_x": lambda pixels, level: _shear(pixels, level, axis=0),
    "shear_y": lambda pixels, level: _shear(pixels, level, axis=1),
    "translate_x": lambda pixels, level: _translate(pixels, level, axis=0),
    "translate_y": lambda pixels, level: _translate(pixels, level, axis=1),
    "color": _color,
    "contrast": _contrast,
    "brightness": _brightness,
    "sharpness": _sharpness,
}


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
    work = torch.promote_types(x.dtype, torch.float32)  # low-precision floats cannot hold 256 levels exactly
    pixels = x.to(work) * 255
    level = level.to(device=x.device, dtype=work)
    return (_APPLY[name](pixels, level) / 255).to(x.dtype)


def sample_level(name, severity, batch_size, generator=None, device="cpu", *, image_size=32):
    """Draw `batch_size` levels for op `name` as AugMix does at `severity`: sample ~ U(0.1, severity), the
    table `_LEVELS`, then a random sign where the op has one. Draws happen on the generator's device (CPU if
    None) and are moved to `device`, so a seed gives the same levels on every device."""
    _check_name(name, ALL_OPS)
    _check_severity(severity)
    draw_device = _draw_device(generator)
    uniform = torch.rand(batch_size, generator=generator, device=draw_device, dtype=torch.float64)
    sample = 0.1 + (severity - 0.1) * uniform
    to_level, signed = _LEVELS[name]
    level = to_level(sample, image_size)
    if signed:
        flip = torch.rand(batch_size, generator=generator, device=draw_device) > 0.5
        level = torch.where(flip, -level, level)
    return level.to(device=device, dtype=torch.float32)


def random_op(x, severity=3, ops=OPS, generator=None):
    """Give each image of x (B, C, H, W) in [0, 1] one op drawn uniformly from `ops` with its own level.

    Images are grouped by their op, so there is one batched call per op, not one per image. Returns a new
    tensor of x's shape, dtype and device.
    """
    _check_images(x)
    ops = tuple(ops)
    if not ops:
        raise ValueError(f"ops must name at least one of: {', '.join(ALL_OPS)}")
    for name in ops:
        _check_name(name, ALL_OPS)
    _check_severity(severity)
    height, width = x.shape[-2:]
    choice = torch.randint(len(ops), (x.shape[0],), generator=generator, device=_draw_device(generator)).cpu()
    out = torch.empty_like(x)
    for op_index, name in enumerate(ops):
        members = (choice == op_index).nonzero().flatten()
        if len(members) == 0:
            continue
        level = sample_level(name, severity, len(members), generator, x.device,
                             image_size=height if name == "translate_y" else width)
        members = members.to(x.device)
        out.index_copy_(0, members, apply_op(x.index_select(0, members), name, level))
    return out
