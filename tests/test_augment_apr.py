"""APRP, APRS and the standard crop/flip: what each does, per sample, reproducibly, on both execution paths.

tests/data/apr_reference.npz holds small batches and the outputs the implementation before the batched rewrite
(the grouped per-op version, commit 1935ea9) gave for fixed seeds; the grouped path must still give them, up to
float round-off (where a recombination lands on a whole level, round-off moves its truncation by one level).
"""
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torchvision import tv_tensors
from torchvision.transforms import v2

from apr_lib.augment import APRP, APRS, RandomCropFlip
from apr_lib.augment.apr import to_uint8_levels
from apr_lib.augment.ops import OPS, draw_ops, random_op
from apr_lib.spectral import amplitude_phase, swap_amplitude

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # MKL's threads crawl on shared cores

REFERENCE = {name: torch.from_numpy(array)
             for name, array in np.load(Path(__file__).parent / "data" / "apr_reference.npz").items()}


def batch(b=16, c=3, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, size, size, generator=g, dtype=torch.float64), torch.randint(0, 10, (b,), generator=g)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def level_apart(a, b):
    """Share of values more than float round-off apart, and the largest distance in uint8 levels."""
    distance = (a - b).abs() * 255
    return (distance > 1e-3).float().mean().item(), distance.max().item()


# --- APR-P --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["per_channel", "channel3d"])
def test_aprp_takes_amplitude_from_a_batch_partner_and_keeps_phase_and_label(mode):
    x, y = batch()
    out, labels = APRP(prob=1.0, mode=mode, keep_clean=False, generator=gen())(x, y)
    torch.testing.assert_close(labels, y)  # the label of the phase image
    amp_out, phase_out = amplitude_phase(out, mode)
    amp_x, phase_x = amplitude_phase(x, mode)
    # Amplitude and phase of real images are Hermitian-symmetric, so the recombined image is real and its
    # amplitude is exactly the partner's: find each sample's partner and check the pairing is a permutation.
    distance = (amp_out[:, None] - amp_x[None]).abs().flatten(2).amax(-1)
    partner = distance.argmin(1)
    assert distance.min(1).values.max() < 1e-9
    assert sorted(partner.tolist()) == list(range(len(x)))
    assert (partner != torch.arange(len(x))).any()
    torch.testing.assert_close(out, swap_amplitude(x, x[partner], mode))
    defined = amp_out > 1e-9
    wrapped = torch.remainder(phase_out - phase_x + torch.pi, 2 * torch.pi) - torch.pi
    assert wrapped[defined].abs().max() < 1e-6


def test_aprp_keep_clean_returns_clean_batch_first_and_duplicated_labels():
    x, y = batch()
    out, labels = APRP(prob=1.0, keep_clean=True, generator=gen())(x, y)
    assert out.shape == (2 * len(x), *x.shape[1:])
    torch.testing.assert_close(out[:len(x)], x)
    torch.testing.assert_close(labels, torch.cat([y, y]))
    assert not torch.allclose(out[len(x):], x)


@pytest.mark.parametrize("path", ["grouped", "sync_free"])
def test_aprp_probability_is_per_batch(path):
    x, y = batch(b=8)
    aprp = APRP(prob=0.6, keep_clean=False, generator=gen(1), path=path)
    recombined = [not torch.equal(aprp(x, y)[0], x) for _ in range(400)]
    assert 0.52 < sum(recombined) / len(recombined) < 0.68  # binomial sd 0.024: over 3 sd either side
    # prob 0: the batch passes unchanged (and with keep_clean, as an exact duplicate, as released).
    out, _ = APRP(prob=0.0, keep_clean=True, path=path)(x, y)
    torch.testing.assert_close(out, torch.cat([x, x]))


def aprp_partner(seed, b):
    """The partner permutation APRP draws from gen(seed) (after its one draw for the batch probability)."""
    g = gen(seed)
    torch.rand((), generator=g)
    return torch.randperm(b, generator=g)


def test_aprp_options_change_only_what_they_say():
    x, y = batch(b=8)
    # prob decides whether a batch is recombined, never how.
    outcomes = set()
    for seed in range(20):
        out = APRP(prob=0.6, keep_clean=False, generator=gen(seed))(x, y)[0]
        recombined = not torch.equal(out, x)
        outcomes.add(recombined)
        if recombined:
            torch.testing.assert_close(out, APRP(prob=1.0, keep_clean=False, generator=gen(seed))(x, y)[0])
    assert outcomes == {True, False}
    # keep_clean only prepends the clean batch.
    kept, kept_labels = APRP(prob=1.0, keep_clean=True, generator=gen(1))(x, y)
    alone, alone_labels = APRP(prob=1.0, keep_clean=False, generator=gen(1))(x, y)
    torch.testing.assert_close(kept[len(x):], alone)
    torch.testing.assert_close(kept_labels[len(x):], alone_labels)
    # mode changes the transform only: same pairs, and the two coincide on one-channel images.
    partner = aprp_partner(2, len(x))
    for mode in ("per_channel", "channel3d"):
        out = APRP(prob=1.0, mode=mode, keep_clean=False, generator=gen(2))(x, y)[0]
        torch.testing.assert_close(out, swap_amplitude(x, x[partner], mode))
    gray = x[:, :1]
    torch.testing.assert_close(APRP(prob=1.0, mode="per_channel", keep_clean=False, generator=gen(2))(gray, y)[0],
                               APRP(prob=1.0, mode="channel3d", keep_clean=False, generator=gen(2))(gray, y)[0])
    # path: the same draws (one for the batch, then the permutation), so the same pairs.
    torch.testing.assert_close(APRP(prob=1.0, generator=gen(3), path="sync_free")(x, y)[0],
                               APRP(prob=1.0, generator=gen(3), path="grouped")(x, y)[0])


@pytest.mark.parametrize("mode", ["per_channel", "channel3d"])
def test_aprp_after_normalisation_changes_only_each_channels_mean(mode):
    # Normalising shifts and scales each channel. With per-channel transforms (or equal stds), the recombined
    # image then differs only in the zero frequency of each channel: by a constant over the image.
    x, y = batch(b=8)
    mean = (0.49, 0.48, 0.45)
    before, labels_before = APRP(prob=1.0, mode=mode, generator=gen(3))(x, y)
    for std, constant_shift in (((0.25, 0.25, 0.25), True), ((0.2, 0.3, 0.4), mode == "per_channel")):
        after, labels_after = APRP(prob=1.0, mode=mode, normalization=(mean, std), generator=gen(3))(x, y)
        torch.testing.assert_close(after[:len(x)], before[:len(x)])  # the clean half
        torch.testing.assert_close(labels_after, labels_before)
        shift = after[len(x):] - before[len(x):]
        spread = (shift - shift.mean((-2, -1), keepdim=True)).abs().max()
        assert (spread < 1e-9) == constant_shift
        assert shift.abs().max() > 1e-3
    identity = APRP(prob=1.0, mode=mode, normalization=((0.0,) * 3, (1.0,) * 3), generator=gen(3))(x, y)[0]
    torch.testing.assert_close(identity, before)


def test_aprp_is_reproducible_from_its_generator():
    x, y = batch()
    a = APRP(prob=0.6, generator=gen(3))
    b = APRP(prob=0.6, generator=gen(3))
    for _ in range(5):
        torch.testing.assert_close(a(x, y)[0], b(x, y)[0])


@pytest.mark.parametrize("name, images, kwargs, seed", [
    ("aprp_channel3d_rgb", "rgb", {}, 8),
    ("aprp_normalized_gray", "gray", {"normalization": ((0.3,), (0.2,))}, 9)])
def test_aprp_gives_what_the_earlier_implementation_gave(name, images, kwargs, seed):
    x = REFERENCE[images].float() / 255
    out = APRP(prob=1.0, keep_clean=False, generator=gen(seed), **kwargs)(x, torch.arange(len(x)))[0]
    torch.testing.assert_close(out, REFERENCE[name], atol=1e-5, rtol=0)


def test_aprp_on_uint8_returns_the_float_result_rounded_and_clipped():
    x, y = batch(b=8)
    u8 = (x * 255).round().to(torch.uint8)
    out, labels = APRP(prob=1.0, generator=gen(4))(u8, y)
    expected = APRP(prob=1.0, generator=gen(4))(u8.float() / 255, y)[0]
    assert out.dtype == torch.uint8 and labels.tolist() == torch.cat([y, y]).tolist()
    assert torch.equal(out[:8], u8)
    assert ((out.float() - (expected * 255).clamp(0, 255)).abs() <= 0.5 + 1e-3).all()


def test_aprp_composes_in_v2_on_a_batch_and_names_why_a_single_image_cannot_be_paired():
    x, y = batch(b=8)
    images = tv_tensors.Image(x.float())
    out, labels = v2.Compose([APRP(prob=1.0, generator=gen(5))])(images, y)
    assert isinstance(out, tv_tensors.Image) and out.shape == (16, 3, 12, 12) and len(labels) == 16
    with pytest.raises(ValueError, match=r"pairs each image with another image of its batch.*one image \(3, 12, 12\)"):
        APRP()(x[0], y[0])


def test_aprp_rejects_bad_arguments():
    with pytest.raises(ValueError, match="prob=1.5"):
        APRP(prob=1.5)
    with pytest.raises(ValueError, match="mode='fft'"):
        APRP(mode="fft")
    with pytest.raises(ValueError, match="path='gpu'"):
        APRP(path="gpu")
    with pytest.raises(ValueError, match=r"or uint8 images shaped \(B, C, H, W\), got torch.int64"):
        APRP()(torch.zeros(3, 3, 8, 8, dtype=torch.long), torch.zeros(3))


# --- APR-S --------------------------------------------------------------------------------------------------

def test_to_uint8_levels_wraps_like_numpy_astype_and_clips_on_request():
    values = torch.tensor([-1.7, 0.0, 127.9, 255.0, 256.2, 300.0], dtype=torch.float64) / 255
    torch.testing.assert_close(to_uint8_levels(values, "wrap") * 255,
                               torch.tensor([255, 0, 127, 255, 0, 44], dtype=torch.float64))
    torch.testing.assert_close(to_uint8_levels(values, "clip") * 255,
                               torch.tensor([0, 0, 127, 255, 255, 255], dtype=torch.float64))


def manual_aprs(x, seed, swap_prob, nested, overflow="clip"):
    """APR-S written out step by step with the same random stream as APRS's grouped path."""
    g = gen(seed)
    single = random_op(x, 3, OPS, g)
    swap = torch.rand(len(x), generator=g) < swap_prob
    view = single[swap]
    distracter = random_op(view if nested else x[swap], 3, OPS, g)
    phase_from_view = (torch.rand(len(view), generator=g) < 0.5)[:, None, None, None]
    out = single.clone()
    phase_image = torch.where(phase_from_view, view, distracter)
    amplitude_image = torch.where(phase_from_view, distracter, view)
    out[swap] = to_uint8_levels(swap_amplitude(phase_image, amplitude_image, "channel3d"), overflow)
    return out, swap


@pytest.mark.parametrize("distracter", ["nested", "independent"])
@pytest.mark.parametrize("overflow", ["clip", "wrap"])
def test_aprs_matches_the_released_algorithm_step_by_step(distracter, overflow):
    x, _ = batch(b=32, size=16)
    out = APRS(distracter=distracter, overflow=overflow, generator=gen(5))(x)
    expected, swap = manual_aprs(x, 5, 0.5, nested=distracter == "nested", overflow=overflow)
    torch.testing.assert_close(out[~swap], expected[~swap])  # one op: the same computation
    apart, largest = level_apart(out[swap], expected[swap])
    assert apart < 0.08 and largest <= 1 + 1e-3  # round-off moves a truncation that lands on a whole level
    assert 0 < swap.sum() < len(x)  # both branches exercised


@pytest.mark.parametrize("name, images, kwargs, seed", [
    ("aprs_wrap_nested_channel3d_rgb", "rgb", {"overflow": "wrap"}, 5),
    ("aprs_clip_independent_per_channel_rgb", "rgb",
     {"overflow": "clip", "distracter": "independent", "mode": "per_channel"}, 6),
    ("aprs_wrap_nested_channel3d_gray", "gray", {"overflow": "wrap"}, 7)])
def test_aprs_gives_what_the_earlier_implementation_gave(name, images, kwargs, seed):
    x = REFERENCE[images].float() / 255
    apart, largest = level_apart(APRS(generator=gen(seed), **kwargs)(x), REFERENCE[name])
    # float32 round-off where a recombination lands on a whole level: one level, on a few percent of the pixels
    assert apart < 0.08 and largest <= 1 + 1e-3


def test_aprs_default_clips_and_released_wraps_as_the_released_code():
    assert APRS().overflow == "clip" and APRS.released().overflow == "wrap"
    assert APRS.released(mode="per_channel").mode == "per_channel"
    x, _ = batch(b=32, size=16)
    clip, wrap = APRS(generator=gen(2))(x), APRS.released(generator=gen(2))(x)
    in_range = (clip > 0) & (clip < 1)
    torch.testing.assert_close(wrap[in_range], clip[in_range])  # identical inside 0..255
    assert not torch.equal(wrap, clip)  # the recombination does leave 0..255 somewhere


def test_aprs_options_change_only_what_they_say():
    x, _ = batch(b=32, size=16)
    nested = APRS(distracter="nested", generator=gen(2))(x)
    independent = APRS(distracter="independent", generator=gen(2))(x)
    _, swap = manual_aprs(x, 2, 0.5, nested=True)
    torch.testing.assert_close(nested[~swap], independent[~swap])  # single-op images untouched
    assert not torch.allclose(nested[swap], independent[swap])
    # mode: the same single-op images and swaps, another transform; identical on one-channel images.
    per_channel = APRS(mode="per_channel", generator=gen(2))(x)
    torch.testing.assert_close(per_channel[~swap], nested[~swap])
    assert not torch.allclose(per_channel[swap], nested[swap])
    gray = x[:, :1]
    torch.testing.assert_close(APRS(mode="per_channel", generator=gen(2))(gray), APRS(generator=gen(2))(gray))


def test_aprs_without_swaps_is_one_random_op_per_sample():
    x, _ = batch(b=16)
    torch.testing.assert_close(APRS(swap_prob=0.0, generator=gen(4))(x), random_op(x, 3, OPS, gen(4)))


@pytest.mark.parametrize("path", ["grouped", "sync_free"])
def test_aprs_randomness_is_per_sample_and_reproducible(path):
    x = torch.rand(1, 3, 16, 16, generator=gen(0)).expand(32, -1, -1, -1).contiguous()
    out = APRS(generator=gen(9), path=path)(x)
    distinct = {tuple(o.flatten()[:20].tolist()) for o in out}
    assert len(distinct) > 16
    torch.testing.assert_close(out, APRS(generator=gen(9), path=path)(x))
    assert out.shape == x.shape and out.dtype == x.dtype


def test_aprs_recombines_about_swap_prob_of_the_images():
    x, _ = batch(b=400, size=8)
    _, swap = manual_aprs(x, 11, 0.5, nested=True)
    assert 0.42 < swap.float().mean() < 0.58


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("shape", [(3, 32, 32), (8, 3, 32, 32), (1, 28, 28), (8, 1, 28, 28)])
def test_aprs_composes_with_v2_on_one_image_or_a_batch_in_either_dtype(dtype, shape):
    torch.manual_seed(0)  # v2's crop and flip draw from torch's global generator
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen(1))
    images = images if dtype == torch.uint8 else images.float() / 255
    size = shape[-1]
    pipeline = v2.Compose([v2.RandomCrop(size, padding=4), APRS(generator=gen(2)), v2.RandomHorizontalFlip()])
    out = pipeline(images)
    assert out.shape == images.shape and out.dtype == dtype and not torch.equal(out, images)
    if dtype == torch.float32:
        assert 0 <= out.min() and out.max() <= 1  # clip: APR-S's uint8 levels stay in [0, 1]
    image = tv_tensors.Image(images)  # a v2 image stays one, so later v2 transforms treat it as an image
    released_order = v2.Compose([APRS(generator=gen(2)), v2.RandomCrop(size, padding=4, fill=128)])  # APR-S first
    assert isinstance(released_order(image), tv_tensors.Image)


def test_aprs_on_uint8_matches_the_float_path_where_no_recombination_happens():
    x, _ = batch(b=64, size=16)
    u8 = (x * 255).round().to(torch.uint8)
    out = APRS(generator=gen(3))(u8)
    reference = APRS(generator=gen(3))(u8.float() / 255)  # the same draws
    _, swap = manual_aprs(u8.float() / 255, 3, 0.5, nested=True)
    assert out.dtype == torch.uint8
    # single op: uint8 rounds what float keeps (PIL returns uint8 images)
    assert ((out[~swap].float() - reference[~swap] * 255).abs() <= 0.5 + 1e-3).all()
    # recombined: the second op sees the rounded first one, so values move by a few levels at most
    assert (out[swap].float() - reference[swap] * 255).abs().float().mean() < 3


def test_aprs_rejects_bad_arguments():
    for kwargs, message in (({"overflow": "saturate"}, "overflow='saturate'"),
                            ({"distracter": "other"}, "distracter='other'"),
                            ({"swap_prob": -0.1}, "swap_prob=-0.1"),
                            ({"path": "cuda"}, "path='cuda'"),
                            ({"ops": ("blur",)}, "'blur'"),
                            ({"severity": 0}, "got 0")):
        with pytest.raises(ValueError, match=message):
            APRS(**kwargs)
    with pytest.raises(ValueError, match="C = 1 or 3, got \\(2, 8, 8\\)"):
        APRS()(torch.rand(2, 8, 8))
    with pytest.raises(ValueError, match="got torch.int32"):
        APRS()(torch.zeros(3, 8, 8, dtype=torch.int32))


# --- the two paths: one distribution, and the GPU path without host synchronisations -------------------------

def mean_and_error(values):
    return values.mean(), values.std() / len(values) ** 0.5


@pytest.mark.parametrize("distracter", ["nested", "independent"])
def test_both_aprs_paths_give_the_same_distribution(distracter):
    # 1024 images, each augmented independently: per-image statistics are independent draws, so their means over
    # the batch differ between the paths by sampling error only; 5 standard errors is a ~1 in 10^6 false alarm.
    x = torch.rand(1024, 3, 16, 16, generator=gen(0))
    outputs = {path: APRS(distracter=distracter, generator=gen(1), path=path)(x) for path in ("grouped", "sync_free")}
    for statistic in (lambda out: out.mean((1, 2, 3)),  # brightness
                      lambda out: (out - x).abs().mean((1, 2, 3)),  # how far from the input
                      lambda out: out.std((1, 2, 3)),  # contrast
                      lambda out: ((out == 0) | (out == 1)).float().mean((1, 2, 3))):  # clipped pixels
        (mean_a, error_a), (mean_b, error_b) = (mean_and_error(statistic(out)) for out in outputs.values())
        assert (mean_a - mean_b).abs() < 5 * (error_a ** 2 + error_b ** 2) ** 0.5


def test_both_op_draws_pick_ops_and_levels_alike():
    n = 18000
    draws = {path: draw_ops(n, (32, 32), 3, OPS, gen(4), path) for path in ("grouped", "sync_free")}
    for code in torch.unique(draws["grouped"][0]):
        picked = {path: (codes == code) for path, (codes, _) in draws.items()}
        counts = [p.sum().item() for p in picked.values()]
        assert all(abs(c - n / len(OPS)) < 5 * (n / len(OPS)) ** 0.5 for c in counts)  # ~Poisson sd
        levels = [level[p] for (_, level), p in zip(draws.values(), picked.values())]
        assert set(levels[0].unique().tolist()) == set(levels[1].unique().tolist()) or levels[0].unique().numel() > 50
        (mean_a, error_a), (mean_b, error_b) = (mean_and_error(level.double()) for level in levels)
        assert (mean_a - mean_b).abs() <= 5 * (error_a ** 2 + error_b ** 2) ** 0.5 + 1e-9


SYNCHRONISING = {"aten::_local_scalar_dense", "aten::nonzero", "aten::nonzero_static", "aten::masked_select",
                 "aten::bincount", "aten::unique_dim", "aten::_unique2", "aten::repeat_interleave"}


class NoHostSync(TorchDispatchMode):
    """Fails on any op that needs values on the host: .item() and bool() of a tensor (data-dependent Python
    control flow), nonzero, boolean-mask indexing, ops whose output size depends on values."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        boolean_index = name.startswith("aten::index") and any(
            torch.is_tensor(i) and i.dtype == torch.bool for i in (args[1] if len(args) > 1 else ()) or ())
        if name in SYNCHRONISING or boolean_index:
            raise AssertionError(f"{name} synchronises with the host")
        return func(*args, **(kwargs or {}))


def test_the_sync_free_path_needs_no_host_synchronisation():
    x, y = torch.rand(16, 3, 16, 16, generator=gen(0)), torch.arange(16)
    u8 = (x * 255).to(torch.uint8)
    with NoHostSync():  # the real modules, generators included
        APRS(generator=gen(1), path="sync_free")(x)
        APRS(generator=gen(1), distracter="independent", path="sync_free")(u8)
        APRP(generator=gen(1), path="sync_free")(x, y)
        RandomCropFlip(4, generator=gen(1))(x)
    with pytest.raises(AssertionError, match="synchronises with the host"), NoHostSync():
        APRS(generator=gen(1), path="grouped")(x)  # the check does catch the CPU path's host work
    # torch.compile over the whole forward with fullgraph=True: any .item(), nonzero, boolean-mask index or
    # data-dependent branch would be a graph break, which fullgraph turns into an error. Dynamo cannot trace an
    # explicit torch.Generator, so these draw from torch's default generator: the code is otherwise the same.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*lru_cache.*")
        for module, inputs in ((APRS(path="sync_free"), (x,)), (APRP(path="sync_free"), (x, y))):
            torch._dynamo.reset()
            torch.compile(module.forward, fullgraph=True, backend="eager")(*inputs)
        torch._dynamo.reset()
        with pytest.raises(Exception, match="data-dependent|Data-dependent|graph break|Unsupported"):
            torch.compile(APRS(path="grouped").forward, fullgraph=True, backend="eager")(x)


# --- standard crop and flip ---------------------------------------------------------------------------------

def test_crop_flip_takes_a_padded_crop_per_sample():
    x, _ = batch(b=64, c=1, size=8)
    out = RandomCropFlip(padding=2, flip=False, generator=gen(0))(x)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(len(x)):
        matches = [(t, l) for t in range(5) for l in range(5) if torch.equal(padded[i, :, t:t + 8, l:l + 8], out[i])]
        assert matches, f"sample {i} is not a crop of its padded image"
        offsets.add(matches[0])
    assert len(offsets) > 10  # offsets differ between samples


def test_crop_flip_flips_about_half_and_identity_without_padding():
    x, _ = batch(b=400, size=6)
    out = RandomCropFlip(padding=0, flip=True, generator=gen(1))(x)
    flipped = torch.tensor([torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)])
    kept = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x)])
    assert (flipped | kept).all() and 0.42 < flipped.float().mean() < 0.58
    torch.testing.assert_close(RandomCropFlip(padding=0, flip=False)(x), x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; CPU/CUDA agreement not checked")
def test_same_seed_same_augmentation_on_cpu_and_cuda():
    x, y = batch(b=8)
    x = x.float()
    torch.testing.assert_close(APRP(prob=1.0, generator=gen(1))(x, y)[0],
                               APRP(prob=1.0, generator=gen(1))(x.cuda(), y.cuda())[0].cpu(), atol=1e-4, rtol=1e-4)
    # APR-S truncates to uint8 levels, and its recombinations often land on a level (e.g. when the second op leaves
    # the image unchanged): there, round-off that differs between devices moves a pixel by one level. The grouped
    # path draws the same on both devices; the sync-free path (the default on CUDA) draws differently.
    on_cuda = APRS(generator=gen(1), path="grouped")(x.cuda()).cpu()
    assert ((on_cuda - APRS(generator=gen(1))(x)).abs() <= 1 / 255 + 1e-4).float().mean() > 0.99
