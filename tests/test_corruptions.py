"""apr_lib.corruptions: shapes, seeding, strength by severity, exact formulas, the size and grayscale rules."""
import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage import color, data, transform

from apr_lib import corruptions, frost
from apr_lib.corruptions import COMMON, EXTRA, corrupt, corrupt_batch
from apr_lib.names import CORRUPTIONS as NAMES

# Corruptions whose output does not depend on the random generator.
DETERMINISTIC = {"defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression",
                 "gaussian_blur", "saturate"}
# Corruptions whose mean change from the clean image grows with every severity on real images.
MONOTONE = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "defocus_blur", "gaussian_blur",
            "zoom_blur", "fog", "brightness", "contrast", "pixelate", "jpeg_compression", "snow")
# The others do not, because of the reference's own constants (CIFAR_C, severities 1..5); what each does instead
# is checked in test_strength_of_the_others_follows_their_constants.
NOT_MONOTONE = {
    "glass_blur": "(sigma, shift, passes) (.05,1,1) (.25,1,1) (.4,1,1) (.25,1,2) (.4,1,2): the pixel swaps dominate; "
                  "severities 4-5 swap twice, 1-3 once, and sigma falls from 3 to 4",
    "motion_blur": "(radius, sigma) (6,2) at 3 and (8,2) at 4: the kernel's extra weights exp(-i^2/8), i = 13..16, "
                   "are below 1e-9 (ImageMagick's kernel too), so severities 3 and 4 give the same image",
    "frost": "(image weight, frost weight) (.9,.4) at 3, (.85,.4) at 4: only the image darkens, which offsets part "
             "of the bright frost",
    "elastic_transform": "affine jitter .08, .07, .06, .05, .03 of the side: it shrinks with severity and "
                         "dominates the displacement",
    "spatter": "water drops at 1-3, mud at 4-5: two kinds, each growing",
    "saturate": "HSV saturation x (.3, .1, 1.5, 2, 2.5): desaturates at 1-2, saturates at 3-5",
}


def _small(image, side):
    return (transform.resize(image, (side, side), anti_aliasing=True) * 255).round().astype(np.uint8)


RGB32 = [_small(getattr(data, name)(), 32) for name in ("astronaut", "chelsea", "coffee", "rocket")]
GREY28 = [_small(image, 28) for image in (data.camera(), data.coins(), color.rgb2gray(data.astronaut()))]
IMAGE_KINDS = {"rgb32": RGB32[0], "grey28": GREY28[0], "grey28x1": GREY28[0][..., None]}


def _mean_abs_change(a, b):
    return np.abs(a.astype(float) - b.astype(float)).mean()


def test_names_follow_the_paper_order_and_every_name_has_five_constants():
    assert COMMON == ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
                      "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
                      "elastic_transform", "pixelate", "jpeg_compression")
    assert EXTRA == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    assert NAMES == COMMON + EXTRA
    for table in (corruptions.CIFAR_C, corruptions.IMAGENET_C):
        assert tuple(table) == NAMES
        assert all(len(constants) == 5 for constants in table.values())


@pytest.mark.parametrize("kind", IMAGE_KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_seeding_and_change(name, kind):
    image = IMAGE_KINDS[kind]
    before = image.copy()
    for severity in range(1, 6):
        out = corrupt(image, name, severity, rng=0)
        assert out.shape == image.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out, corrupt(image, name, severity, rng=0))
        np.testing.assert_array_equal(out, corrupt(image, name, severity, rng=np.random.default_rng(0)))
    np.testing.assert_array_equal(image, before)  # the input is not modified
    strongest = corrupt(image, name, 5, rng=0)
    assert not np.array_equal(strongest, image)
    other_seed = corrupt(image, name, 5, rng=1)
    if name in DETERMINISTIC:
        np.testing.assert_array_equal(strongest, other_seed)
    else:
        assert not np.array_equal(strongest, other_seed)


def test_the_global_numpy_rng_is_never_used():
    np.random.seed(123)
    expected = np.random.random(3)
    np.random.seed(123)
    for name in NAMES:
        corrupt(RGB32[0], name, 3, rng=5)
    np.testing.assert_array_equal(np.random.random(3), expected)


@pytest.mark.parametrize("name", MONOTONE)
def test_strength_grows_with_severity_on_real_images(name):
    for images in (RGB32, GREY28):
        change = [np.mean([_mean_abs_change(corrupt(image, name, severity, rng=seed), image)
                           for image in images for seed in (0, 1)]) for severity in range(1, 6)]
        assert np.all(np.diff(change) > 0), (name, change)


def test_every_corruption_grows_with_severity_or_its_constants_say_why_not():
    assert set(MONOTONE) | set(NOT_MONOTONE) == set(NAMES) and not set(MONOTONE) & set(NOT_MONOTONE)


def test_strength_of_the_others_follows_their_constants():
    for images in (RGB32, GREY28):
        def change(name):
            return [np.mean([_mean_abs_change(corrupt(image, name, severity, rng=seed), image)
                             for image in images for seed in (0, 1)]) for severity in range(1, 6)]
        glass = change("glass_blur")
        assert max(glass[:3]) < min(glass[3:]), glass  # two passes of swaps beat one
        motion = change("motion_blur")
        assert motion[2] == motion[3] and motion[0] < motion[1] < motion[2] < motion[4], motion
        frost = change("frost")
        assert frost[3] < frost[2] and frost[0] == min(frost), frost
        elastic = change("elastic_transform")
        assert np.all(np.diff(elastic) < 0), elastic
        spatter = change("spatter")
        assert spatter[0] < spatter[1] < spatter[2] and spatter[3] < spatter[4], spatter
    saturate = [np.mean([_mean_abs_change(corrupt(image, "saturate", severity), image) for image in RGB32])
                for severity in range(1, 6)]
    # the farther the factor from 1 on the desaturating side (.3, .1) and on the saturating side (1.5, 2, 2.5)
    assert saturate[2] < saturate[0] < saturate[1] and saturate[2] < saturate[3] < saturate[4], saturate


@pytest.mark.parametrize("name", NAMES)
def test_corrupted_grey_images_stay_recognisable(name):
    # Fashion-MNIST's case: corrupted, yet closer to its own clean image than to the others at every severity.
    for severity in range(1, 6):
        for i, image in enumerate(GREY28):
            out = corrupt(image, name, severity, rng=i).ravel().astype(float)
            correlations = [np.corrcoef(out, clean.ravel().astype(float))[0, 1] for clean in GREY28]
            assert np.argmax(correlations) == i, (name, severity, correlations)


def test_saturate_leaves_grey_unchanged_until_it_adds_saturation():
    image = GREY28[0]
    for severity in (1, 2, 3):  # saturation 0 times a factor is still 0
        np.testing.assert_array_equal(corrupt(image, "saturate", severity), image)
    assert _mean_abs_change(corrupt(image, "saturate", 5), image) > 5


def test_flat_images_stay_flat_under_blurs_and_warps():
    flat = np.full((32, 32, 3), 100, dtype=np.uint8)
    for name in ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "elastic_transform", "gaussian_blur",
                 "pixelate"):
        for severity in range(1, 6):
            np.testing.assert_array_equal(corrupt(flat, name, severity, rng=0), flat, err_msg=name)


def test_contrast_scales_the_deviation_from_each_channel_mean():
    image = RGB32[1]
    for severity, factor in enumerate(corruptions.CIFAR_C["contrast"], start=1):
        x = image.astype(float)
        mean = x.mean(axis=(0, 1), keepdims=True)
        expected = np.floor(np.clip((x - mean) * factor + mean, 0, 255) + 1e-6)
        np.testing.assert_array_equal(corrupt(image, "contrast", severity), expected)


def test_brightness_adds_to_every_grey_level():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for severity, shift in enumerate(corruptions.CIFAR_C["brightness"], start=1):
        expected = np.minimum(np.floor(levels + shift * 255 + 1e-6), 255)
        np.testing.assert_array_equal(corrupt(levels, "brightness", severity), expected)
        rgb = corrupt(np.repeat(levels[..., None], 3, axis=2), "brightness", severity)
        np.testing.assert_array_equal(rgb, np.repeat(expected[..., None], 3, axis=2))


@pytest.mark.parametrize("image", [RGB32[2], GREY28[1]], ids=["rgb32", "grey28"])
def test_pixelate_is_pil_box_down_then_up(image):
    side = image.shape[0]
    for severity, factor in enumerate(corruptions.CIFAR_C["pixelate"], start=1):
        small = Image.fromarray(image).resize((int(side * factor),) * 2, Image.Resampling.BOX)
        expected = np.asarray(small.resize((side, side), Image.Resampling.BOX))
        np.testing.assert_array_equal(corrupt(image, "pixelate", severity), expected)


@pytest.mark.parametrize("image", [RGB32[2], GREY28[1]], ids=["rgb32", "grey28"])
def test_jpeg_is_pil_encode_decode_at_the_quality(image):
    for severity, quality in enumerate(corruptions.CIFAR_C["jpeg_compression"], start=1):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        np.testing.assert_array_equal(corrupt(image, "jpeg_compression", severity), np.asarray(Image.open(buffer)))


@pytest.mark.parametrize(("side", "table"), [(32, corruptions.CIFAR_C), (28, corruptions.CIFAR_C),
                                             (96, corruptions.IMAGENET_C)])
def test_gaussian_noise_statistics_follow_the_size_rule(side, table):
    grey = np.full((side, side, 3), 128, dtype=np.uint8)
    noise = corrupt(grey, "gaussian_noise", 1, rng=0).astype(float) - 128
    std = table["gaussian_noise"][0] * 255
    assert abs(noise.mean() + 0.5) < 4 * std / np.sqrt(noise.size) + 0.1  # truncation lowers the mean by 1/2
    assert noise.std() == pytest.approx(std, rel=0.06)


def test_impulse_noise_sets_a_share_of_values_to_black_or_white():
    grey = np.full((8, 32, 32, 3), 128, dtype=np.uint8)
    out = corrupt_batch(grey, "impulse_noise", 5, rng=0)
    changed = out != 128
    assert set(np.unique(out[changed])) == {0, 255}
    assert changed.mean() == pytest.approx(corruptions.CIFAR_C["impulse_noise"][4], rel=0.1)
    assert (out[changed] == 255).mean() == pytest.approx(0.5, abs=0.05)


def test_zoom_blur_averages_the_image_with_centre_zooms():
    image = RGB32[0]
    x = image / 255.0
    for severity, zooms in enumerate(corruptions.CIFAR_C["zoom_blur"], start=1):
        total = x.copy()
        for zoom in zooms:  # the reference's clipped_zoom, with scipy.ndimage.zoom
            crop = int(np.ceil(32 / zoom))
            top = (32 - crop) // 2
            zoomed = ndimage.zoom(x[top:top + crop, top:top + crop], (zoom, zoom, 1), order=1)
            trim = (zoomed.shape[0] - 32) // 2
            total += zoomed[trim:trim + 32, trim:trim + 32]
        expected = np.floor(np.clip(total / (len(zooms) + 1) * 255, 0, 255) + 1e-6)
        np.testing.assert_array_equal(corrupt(image, "zoom_blur", severity), expected)


def test_glass_blur_copies_neighbours_like_the_reference_loop():
    # The reference's `x[h, w], x[h', w'] = x[h', w'], x[h, w]` on an (H, W, 3) array copies instead of swapping.
    image = RGB32[3]
    for severity, (sigma, delta, iterations) in enumerate(corruptions.CIFAR_C["glass_blur"], start=1):
        rng = np.random.default_rng(7)
        x = np.floor(ndimage.gaussian_filter(image / 255.0, (sigma, sigma, 0), mode="nearest") * 255 + 1e-6)
        x = x.astype(np.uint8)
        for _ in range(iterations):
            spots = [(h, w) for h in range(32 - delta, delta, -1) for w in range(32 - delta, delta, -1)]
            shifts = rng.integers(-delta, delta, size=(len(spots), 2))
            for (h, w), (dx, dy) in zip(spots, shifts):
                x[h, w], x[h + dy, w + dx] = x[h + dy, w + dx], x[h, w]
        blurred = ndimage.gaussian_filter(x / 255.0, (sigma, sigma, 0), mode="nearest")
        expected = np.floor(np.clip(blurred * 255, 0, 255) + 1e-6)
        np.testing.assert_array_equal(corrupt(image, "glass_blur", severity, rng=7), expected)


@pytest.mark.parametrize(("radius", "sigma", "angle"), [(6, 1, 0), (9, 2.5, 37.0), (20, 15, -44.0), (14, 12, -100)])
def test_motion_blur_kernel_sums_to_one_and_follows_the_angle(radius, sigma, angle):
    rows, cols, weights = corruptions.motion_blur_kernel(radius, sigma, angle)
    assert len(weights) == 2 * radius + 1
    assert weights.sum() == pytest.approx(1.0)
    assert np.all(np.diff(weights) < 0)  # the nearest tap weighs most
    reach = np.hypot(rows, cols)
    assert np.all(np.abs(reach - np.arange(len(weights))) <= 1)  # tap i lies about i pixels away


def test_horizontal_motion_spreads_a_bright_pixel_along_its_row():
    x = np.zeros((32, 32, 1))
    x[10, 20] = 1.0
    _, _, weights = corruptions.motion_blur_kernel(6, 2, 0)
    out = corruptions._motion_blurred(x, 6, 2, 0)[..., 0]
    expected = np.zeros((32, 32))
    expected[10, 20 - np.arange(13)] = weights  # out[r, c] reads x[r, c + i]
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_motion_blur_streaks_stay_near_the_horizontal():
    dot = np.zeros((32, 32, 3), dtype=np.uint8)
    dot[16, 16] = 255
    for seed in range(5):
        rows, cols = np.nonzero(corrupt(dot, "motion_blur", 5, rng=seed)[..., 0])
        assert len(rows) > 3
        assert np.all(np.abs(rows - 16) <= np.abs(cols - 16) + 1)  # angle within +-45 degrees


@pytest.mark.parametrize("name", sorted(corruptions.COLOUR_CORRUPTIONS))
def test_grey_colour_corruptions_return_the_luminance_of_the_rgb_result(name):
    grey = GREY28[2]
    rgb = corrupt(np.repeat(grey[..., None], 3, axis=2), name, 4, rng=3)
    luminance = rgb.astype(float) @ corruptions.LUMA
    assert np.abs(corrupt(grey, name, 4, rng=3) - luminance).max() <= 1.0  # rounding happens at different points


@pytest.mark.parametrize("name", ["gaussian_noise", "defocus_blur", "fog", "contrast", "elastic_transform", "pixelate"])
def test_channelwise_corruptions_treat_one_grey_channel_like_an_rgb_channel(name):
    grey = GREY28[1]
    np.testing.assert_array_equal(corrupt(grey, name, 3, rng=2), corrupt(grey[..., None], name, 3, rng=2)[..., 0])
    if name in DETERMINISTIC:
        rgb = corrupt(np.repeat(grey[..., None], 3, axis=2), name, 3)
        for channel in range(3):
            np.testing.assert_array_equal(rgb[..., channel], corrupt(grey, name, 3))


@pytest.mark.parametrize("shape", [(17, 23, 3), (3, 9), (70, 90), (65, 65, 1)])
def test_odd_and_large_sizes_work(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    for name in NAMES:
        out = corrupt(image, name, 5, rng=0)
        assert out.shape == shape and out.dtype == np.uint8
        assert not np.array_equal(out, image), name


def test_frost_textures_are_fixed_blue_white_and_the_same_pattern_at_every_size():
    small, large = frost.frost_texture(0, 160), frost.frost_texture(0, 320)
    assert small.dtype == np.uint8 and small.shape == (160, 160, 3) and not small.flags.writeable
    frost.frost_texture.cache_clear()
    np.testing.assert_array_equal(frost.frost_texture(0, 160), small)  # generated from a fixed seed
    shrunk = large.reshape(160, 2, 160, 2, 3).mean(axis=(1, 3))
    assert np.corrcoef(shrunk.ravel(), small.ravel())[0, 1] > 0.9
    other = frost.frost_texture(1, 160)
    assert np.corrcoef(other.ravel(), small.ravel())[0, 1] < 0.5
    red, green, blue = small.reshape(-1, 3).mean(axis=0)
    assert red < green < blue and 0.3 * 255 < small.mean() < 0.6 * 255
    assert all(frost.texture_side(side) > side for side in (3, 28, 32, 224, 400, 2000))
    assert frost.texture_side(32) == 160


def test_frost_blends_the_image_with_a_random_texture_crop():
    image = RGB32[1]
    for severity, (image_weight, frost_weight) in enumerate(corruptions.CIFAR_C["frost"], start=1):
        rng = np.random.default_rng(4)  # draws: texture, top, left
        texture = frost.frost_texture(int(rng.integers(frost.TEXTURE_COUNT)), frost.texture_side(32))
        top, left = rng.integers(0, texture.shape[0] - 32), rng.integers(0, texture.shape[1] - 32)
        crop = texture[top:top + 32, left:left + 32].astype(float)
        expected = np.floor(np.clip(image_weight * image + frost_weight * crop, 0, 255) + 1e-6)
        np.testing.assert_array_equal(corrupt(image, "frost", severity, rng=4), expected)


def test_corrupt_batch_is_seeded_per_image():
    images = np.stack([GREY28[0]] * 4)
    out = corrupt_batch(images, "shot_noise", 3, rng=11)
    assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, corrupt_batch(images, "shot_noise", 3, rng=11))
    assert not np.array_equal(out[0], out[1])  # each image draws its own noise
    children = np.random.default_rng(11).spawn(4)
    for image, child, result in zip(images, children, out):
        np.testing.assert_array_equal(result, corrupt(image, "shot_noise", 3, rng=child))
    rgb = np.stack(RGB32)
    assert corrupt_batch(rgb, "frost", 2, rng=0).shape == rgb.shape
    assert corrupt_batch(rgb[:0], "frost", 2, rng=0).shape == (0, 32, 32, 3)


@pytest.mark.parametrize("name", ["fogg", "Gaussian Noise", "", None])
def test_unknown_names_are_refused_with_the_allowed_list(name):
    with pytest.raises(ValueError, match="gaussian_noise, shot_noise") as error:
        corrupt(RGB32[0], name, 1)
    assert repr(name) in str(error.value)


@pytest.mark.parametrize("severity", [0, 6, -1, 2.0, "3", True, None])
def test_bad_severities_are_refused(severity):
    with pytest.raises(ValueError, match=r"severity must be an integer in \(1, 2, 3, 4, 5\), got " + repr(severity)):
        corrupt(RGB32[0], "fog", severity)


def test_numpy_integer_severities_are_accepted():
    np.testing.assert_array_equal(corrupt(RGB32[0], "contrast", np.int64(2)), corrupt(RGB32[0], "contrast", 2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int64, bool])
def test_bad_dtypes_are_refused(dtype):
    with pytest.raises(ValueError, match=f"dtype uint8, got {np.dtype(dtype)}"):
        corrupt(RGB32[0].astype(dtype), "fog", 1)
    with pytest.raises(ValueError, match=f"dtype uint8, got {np.dtype(dtype)}"):
        corrupt_batch(np.stack(RGB32).astype(dtype), "fog", 1)


@pytest.mark.parametrize("shape", [(32,), (32, 32, 4), (32, 32, 2), (2, 32, 32, 3), (2, 32), (32, 32, 0)])
def test_bad_shapes_are_refused(shape):
    with pytest.raises(ValueError, match=r"got shape \(" + ", ".join(map(str, shape))):
        corrupt(np.zeros(shape, dtype=np.uint8), "fog", 1)


def test_bad_batch_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\(N, H, W\) or \(N, H, W, C\), got shape \(32, 32\)"):
        corrupt_batch(np.zeros((32, 32), dtype=np.uint8), "fog", 1)
    with pytest.raises(ValueError, match=r"got shape \(32, 32, 4\)"):
        corrupt_batch(np.zeros((2, 32, 32, 4), dtype=np.uint8), "fog", 1)
