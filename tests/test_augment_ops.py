"""Batched AugMix ops (apr_lib.augment.ops) against PIL, the reference's library, and their randomness.

Tolerances against PIL, in uint8 levels (ours - PIL):
- exact for the ops on integer levels: autocontrast, equalize, posterize, solarize;
- float32 round-off (1e-3) for translate (whole-pixel moves);
- [0, 1] for rotate, shear and brightness: PIL truncates the interpolated / scaled value to uint8, we keep it;
- [-0.5, 1.5] for color, contrast and sharpness: PIL also rounds the image it blends with (grayscale, its
  mean, the smoothed image) to uint8, an error of at most 0.5 level scaled by |1 - factor| <= 0.9.
"""
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image, ImageEnhance, ImageOps

from apr_lib.augment import ops
from apr_lib.augment.ops import ALL_OPS, OPS, apply_op, random_op, sample_level

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # MKL's threads crawl on shared cores

EPS = 1e-3  # float32 round-off, in levels
TOLERANCE = {name: (0.0, 0.0) for name in ("autocontrast", "equalize", "posterize", "solarize")}
TOLERANCE.update({name: (-EPS, EPS) for name in ("translate_x", "translate_y")})
TOLERANCE.update({name: (-EPS, 1 + EPS) for name in ("rotate", "shear_x", "shear_y", "brightness")})
TOLERANCE.update({name: (-0.5 - EPS, 1.5 + EPS) for name in ("color", "contrast", "sharpness")})

# One level per image (the batches have up to 4 images), covering both signs and the extremes of severity 10.
LEVELS = {
    "autocontrast": [0, 0, 0, 0],
    "equalize": [0, 0, 0, 0],
    "posterize": [1, 3, 4, 8],
    "rotate": [-9, 5, 30, -17.5],
    "solarize": [0, 128, 180, 254],
    "shear_x": [-0.3, 0.09, 0.2, -0.05],
    "shear_y": [-0.3, 0.09, 0.2, -0.05],
    "translate_x": [-3, 2, 10, -11],
    "translate_y": [-3, 2, 10, -11],
    "color": [0.1, 0.6, 1.3, 1.9],
    "contrast": [0.1, 0.6, 1.3, 1.9],
    "brightness": [0.1, 0.6, 1.3, 1.9],
    "sharpness": [0.1, 0.6, 1.3, 1.9],
}


def pil_op(image, name, level):
    """The reference's call for each op (AugMix augmentations.py), with the level already drawn."""
    affine = {"shear_x": (1, level, 0, 0, 1, 0), "shear_y": (1, 0, 0, level, 1, 0),
              "translate_x": (1, 0, level, 0, 1, 0), "translate_y": (1, 0, 0, 0, 1, level)}
    enhance = {"color": ImageEnhance.Color, "contrast": ImageEnhance.Contrast,
               "brightness": ImageEnhance.Brightness, "sharpness": ImageEnhance.Sharpness}
    if name == "autocontrast":
        return ImageOps.autocontrast(image)
    if name == "equalize":
        return ImageOps.equalize(image)
    if name == "posterize":
        return ImageOps.posterize(image, int(level))
    if name == "solarize":
        return ImageOps.solarize(image, int(level))
    if name == "rotate":
        return image.rotate(level, resample=Image.BILINEAR)
    if name in affine:
        return image.transform(image.size, Image.AFFINE, affine[name], resample=Image.BILINEAR)
    return enhance[name](image).enhance(level)


def resized(array, size, mode):
    return np.asarray(Image.fromarray(array).convert(mode).resize((size, size), Image.BILINEAR))


def rgb_images():
    """4 x 32x32x3 uint8: astronaut, chelsea, camera (equal channels), and a dim astronaut whose blue channel
    is constant (autocontrast/equalize must leave it alone) and whose other channels span only 60..187."""
    astronaut = resized(skimage.data.astronaut(), 32, "RGB")
    dim = (astronaut * 0.5 + 60).astype(np.uint8)
    dim[..., 2] = 77
    return np.stack([astronaut, resized(skimage.data.chelsea(), 32, "RGB"),
                     resized(skimage.data.camera(), 32, "RGB"), dim])


def gray_images():
    """3 x 28x28 uint8: camera, a dim chelsea, and a flat image with a few dots (equalize's step is 0)."""
    dots = np.full((28, 28), 200, np.uint8)
    dots[3:5, 3:6] = 30
    dim_chelsea = (resized(skimage.data.chelsea(), 28, "L") * 0.4 + 50).astype(np.uint8)
    return np.stack([resized(skimage.data.camera(), 28, "L"), dim_chelsea, dots])


def to_tensor(images):
    """uint8 (B, H, W[, C]) -> float (B, C, H, W) in [0, 1]."""
    tensor = torch.from_numpy(images).float() / 255
    return tensor[:, None] if tensor.ndim == 3 else tensor.permute(0, 3, 1, 2)


@pytest.mark.parametrize("batch", ["rgb32", "gray28"])
@pytest.mark.parametrize("name", ALL_OPS)
def test_apply_op_matches_pil(name, batch):
    images = rgb_images() if batch == "rgb32" else gray_images()
    x = to_tensor(images)
    low, high = TOLERANCE[name]
    for levels in (LEVELS[name][:len(images)], LEVELS[name][::-1][:len(images)]):  # each image, two levels
        ours = apply_op(x, name, torch.tensor(levels, dtype=torch.float32)) * 255
        reference = to_tensor(np.stack([np.asarray(pil_op(Image.fromarray(image), name, level))
                                        for image, level in zip(images, levels)])) * 255
        difference = ours - reference
        assert difference.min() >= low and difference.max() <= high, (
            f"{name} levels {levels}: ours - PIL in [{difference.min():.3f}, {difference.max():.3f}] levels, "
            f"allowed [{low}, {high}]")
        if not (name == "color" and batch == "gray28"):  # color is the identity on grayscale images
            assert (ours - x * 255).abs().max() > 10, f"{name} left the images unchanged"


def test_color_is_identity_on_gray_pixels_and_contrast_uses_the_mean():
    gray = torch.full((1, 3, 4, 4), 0.4)
    assert torch.allclose(apply_op(gray, "color", torch.tensor([1.9])), gray)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    flat = apply_op(x, "contrast", torch.tensor([0.0, 0.0]))
    luminance = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    assert torch.allclose(flat, luminance.mean((1, 2)).view(2, 1, 1, 1).expand_as(x), atol=1e-6)


def test_posterize_to_zero_bits_is_black():
    # AugMix's severity-10 extreme; current Pillow rejects bits=0, older Pillow returned a black image.
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(apply_op(x, "posterize", torch.tensor([0.0, 0.0])), torch.zeros_like(x))


def astronaut_batch(batch_size):
    return to_tensor(rgb_images()[:1]).expand(batch_size, -1, -1, -1).contiguous()


def test_random_op_gives_each_image_its_own_op_and_level():
    x = astronaut_batch(64)
    out = random_op(x, severity=3, ops=ALL_OPS, generator=torch.Generator().manual_seed(0))
    distinct = torch.unique(out.flatten(1), dim=0)
    # One op and level for the whole batch would give 1 distinct image. Per-sample draws give ~45 here: the
    # repeats come from autocontrast/equalize (no level) and the few levels of posterize and translate.
    assert len(distinct) >= 35


def test_random_op_is_reproducible_from_the_generator_seed():
    x = astronaut_batch(32)
    first = random_op(x, 3, OPS, torch.Generator().manual_seed(7))
    again = random_op(x, 3, OPS, torch.Generator().manual_seed(7))
    other = random_op(x, 3, OPS, torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    torch.manual_seed(7)  # without a generator: torch's default CPU generator
    default = random_op(x, 3, OPS)
    torch.manual_seed(7)
    assert torch.equal(default, random_op(x, 3, OPS))


@pytest.mark.parametrize("path", ops.PATHS)
def test_random_op_picks_ops_uniformly_and_runs_each_family_once(monkeypatch, path):
    calls = []

    def recording(names, family):
        def run(pixels, code, level):
            calls.append((names, len(pixels), code.tolist()))
            return family(pixels, code, level)
        return names, run

    monkeypatch.setattr(ops, "_FAMILIES", tuple(recording(names, family) for names, family in ops._FAMILIES))
    x = torch.rand(2600, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    random_op(x, 3, ALL_OPS, torch.Generator().manual_seed(0), path=path)
    assert sorted(names for names, _, _ in calls) == sorted(names for names, _ in ops._FAMILIES)
    if path == "grouped":  # each family on its own images: every image once, with one of the family's ops
        assert sum(size for _, size, _ in calls) == len(x)
        assert all(ALL_OPS[code] in names for names, _, codes in calls for code in codes)
    else:  # every family on the whole batch, then a selection per image
        assert all(size == len(x) for _, size, _ in calls)
    codes = torch.tensor(calls[0][2] if path == "sync_free" else sum((codes for _, _, codes in calls), []))
    counts = torch.bincount(codes, minlength=len(ALL_OPS))
    expected = len(x) / len(ALL_OPS)  # 200; binomial sd ~13.6, so +-60 is > 4 sd
    assert all(abs(count - expected) < 60 for count in counts.tolist()), counts


@pytest.mark.parametrize("name, height, width, side", [
    ("rotate", 10, 10, 10), ("translate_x", 12, 96, 96), ("translate_y", 96, 12, 96)])
def test_random_op_applies_the_chosen_op_to_each_image(name, height, width, side):
    # With one op, random_op must equal apply_op with the levels drawn from the same generator stream, the
    # translations scaled by the image side along their axis.
    x = torch.rand(16, 3, height, width, generator=torch.Generator().manual_seed(1))
    out = random_op(x, 6, (name,), torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)
    torch.randint(1, (16,), generator=generator)  # the op choice, drawn first
    levels = sample_level(name, 6, 16, generator, image_size=side)
    assert levels.abs().max() > 6  # a 12-pixel side would allow at most int(6 * 4 / 10) = 2
    assert torch.equal(out, apply_op(x, name, levels))


def draws(name, severity=3, image_size=32, n=20000):
    return sample_level(name, severity, n, torch.Generator().manual_seed(0), image_size=image_size)


def test_sample_level_rotate_is_whole_degrees_of_both_signs():
    degrees = draws("rotate")
    assert torch.equal(degrees, degrees.round())
    assert degrees.abs().max() <= 9 and set(degrees.abs().unique().tolist()) == set(range(9))  # int(3*U(.1,3))
    assert abs((degrees < 0).float().mean() - (degrees > 0).float().mean()) < 0.03
    assert draws("rotate", severity=10).abs().max() == 29  # int(30 * U(0.1, 10) / 10) < 30


def test_sample_level_posterize_and_solarize():
    bits = draws("posterize")
    assert set(bits.unique().tolist()) == {3.0, 4.0}
    assert abs((bits == 3).float().mean() - 0.5 / 2.9) < 0.01  # bits 3 iff sample >= 2.5
    threshold = draws("solarize")
    assert torch.equal(threshold, threshold.round())
    assert threshold.min() >= 256 - 76 and threshold.max() <= 256 - 2  # 256 - int(25.6 * U(0.1, 3))


def test_sample_level_translate_scales_with_image_size():
    cifar = draws("translate_x", image_size=32)
    assert set(cifar.unique().tolist()) == {-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0}
    for name in ("translate_x", "translate_y"):
        imagenet = draws(name, image_size=224)
        assert torch.equal(imagenet, imagenet.round()) and imagenet.abs().max() == 22  # int(74.67 * 3 / 10)
        assert (imagenet < 0).any() and (imagenet > 0).any()


def test_sample_level_continuous_magnitudes():
    shear = draws("shear_x")
    assert shear.abs().min() >= 0.003 - 1e-6 and shear.abs().max() <= 0.09 + 1e-6
    assert abs(shear.abs().mean() - 0.03 * 1.55) < 0.001  # U(0.1, 3) has mean 1.55
    assert abs((shear < 0).float().mean() - 0.5) < 0.02
    for name in ("color", "contrast", "brightness", "sharpness"):
        factor = draws(name)
        assert factor.min() >= 0.118 - 1e-6 and factor.max() <= 0.64 + 1e-6  # 0.18 * U(0.1, 3) + 0.1
        assert abs(factor.mean() - (0.18 * 1.55 + 0.1)) < 0.005
    assert torch.equal(draws("autocontrast"), torch.zeros(20000))


def test_sample_level_is_reproducible_and_lands_on_the_requested_device():
    first = sample_level("shear_y", 3, 100, torch.Generator().manual_seed(5), device="cpu")
    assert torch.equal(first, sample_level("shear_y", 3, 100, torch.Generator().manual_seed(5)))
    assert not torch.equal(first, sample_level("shear_y", 3, 100, torch.Generator().manual_seed(6)))
    assert first.dtype == torch.float32 and first.shape == (100,)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_shape_dtype_and_range_are_preserved(channels, dtype):
    x = torch.rand(40, channels, 12, 12, generator=torch.Generator().manual_seed(0)).to(dtype)
    out = random_op(x, 10, ALL_OPS, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)


@pytest.mark.parametrize("path", ops.PATHS)
def test_an_empty_batch_gives_an_empty_batch(path):  # AugMix's chains can all end before its last step
    empty = torch.rand(0, 3, 8, 8)
    assert random_op(empty, 3, ALL_OPS, torch.Generator().manual_seed(0), path=path).shape == empty.shape


@pytest.mark.parametrize("call, message", [
    (lambda x: apply_op(x, "invert", torch.zeros(2)), "'invert'"),
    (lambda x: apply_op(x, "rotate", torch.zeros(3)), "shape (2,)"),
    (lambda x: apply_op(x, "rotate", 5.0), "shape (2,)"),
    (lambda x: apply_op((x * 255).to(torch.uint8), "rotate", torch.zeros(2)), "torch.uint8"),
    (lambda x: apply_op(x[0], "rotate", torch.zeros(2)), "(3, 8, 8)"),
    (lambda x: apply_op(x[:, :2], "rotate", torch.zeros(2)), "C = 1 or 3"),
    (lambda x: random_op(x.numpy()), "ndarray"),
    (lambda x: random_op(x, ops=("rotate", "blur")), "'blur'"),
    (lambda x: random_op(x, ops=()), "at least one"),
    (lambda x: random_op(x, severity=0), "got 0"),
    (lambda x: sample_level("rotate", 11, 4), "got 11"),
    (lambda x: sample_level("zoom", 3, 4), "'zoom'"),
])
def test_bad_input_raises_a_value_error_naming_it(call, message):
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError) as error:
        call(x)
    assert message in str(error.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; CPU/CUDA agreement not checked")
def test_cuda_matches_cpu_for_the_same_generator_seed():
    x = to_tensor(rgb_images()).repeat(16, 1, 1, 1)
    on_cpu = random_op(x, 3, ALL_OPS, torch.Generator().manual_seed(0))
    on_cuda = random_op(x.cuda(), 3, ALL_OPS, torch.Generator().manual_seed(0))
    assert on_cuda.device.type == "cuda"
    # point ops agree exactly; grid_sample and the blends may differ by float round-off
    assert torch.allclose(on_cuda.cpu(), on_cpu, atol=1e-4, rtol=0)
