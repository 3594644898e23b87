"""APRP, APRS and the standard crop/flip: what each does, per sample, reproducibly."""
import pytest
import torch

from apr_lib.augment import APRP, APRS, RandomCropFlip
from apr_lib.augment.apr import to_uint8_levels
from apr_lib.augment.ops import OPS, random_op
from apr_lib.spectral import amplitude_phase, swap_amplitude


def batch(b=16, c=3, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, size, size, generator=g, dtype=torch.float64), torch.randint(0, 10, (b,), generator=g)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


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


def test_aprp_probability_is_per_batch():
    x, y = batch(b=8)
    aprp = APRP(prob=0.6, keep_clean=False, generator=gen(1))
    recombined = [not torch.equal(aprp(x, y)[0], x) for _ in range(400)]
    assert 0.52 < sum(recombined) / len(recombined) < 0.68
    # prob 0: the batch passes unchanged (and with keep_clean, as an exact duplicate, as released).
    out, _ = APRP(prob=0.0, keep_clean=True)(x, y)
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


def test_aprp_rejects_bad_arguments():
    with pytest.raises(ValueError, match="prob=1.5"):
        APRP(prob=1.5)
    with pytest.raises(ValueError, match="mode='fft'"):
        APRP(mode="fft")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        APRP()(torch.rand(3, 8, 8), torch.zeros(3))


# --- APR-S --------------------------------------------------------------------------------------------------

def test_to_uint8_levels_wraps_like_numpy_astype_and_clips_on_request():
    values = torch.tensor([-1.7, 0.0, 127.9, 255.0, 256.2, 300.0], dtype=torch.float64) / 255
    torch.testing.assert_close(to_uint8_levels(values, "wrap") * 255,
                               torch.tensor([255, 0, 127, 255, 0, 44], dtype=torch.float64))
    torch.testing.assert_close(to_uint8_levels(values, "clip") * 255,
                               torch.tensor([0, 0, 127, 255, 255, 255], dtype=torch.float64))


def manual_aprs(x, seed, swap_prob, nested):
    """APR-S written out step by step with the same random stream as APRS."""
    g = gen(seed)
    single = random_op(x, 3, OPS, g)
    swap = torch.rand(len(x), generator=g) < swap_prob
    view = single[swap]
    distracter = random_op(view if nested else x[swap], 3, OPS, g)
    phase_from_view = (torch.rand(len(view), generator=g) < 0.5)[:, None, None, None]
    out = single.clone()
    phase_image = torch.where(phase_from_view, view, distracter)
    amplitude_image = torch.where(phase_from_view, distracter, view)
    out[swap] = to_uint8_levels(swap_amplitude(phase_image, amplitude_image, "channel3d"), "wrap")
    return out, swap


@pytest.mark.parametrize("distracter", ["nested", "independent"])
def test_aprs_matches_the_released_algorithm_step_by_step(distracter):
    x, _ = batch(b=32, size=16)
    out = APRS(distracter=distracter, generator=gen(5))(x)
    expected, swap = manual_aprs(x, 5, 0.5, nested=distracter == "nested")
    torch.testing.assert_close(out, expected)
    assert 0 < swap.sum() < len(x)  # both branches exercised


def test_aprs_options_change_only_what_they_say():
    x, _ = batch(b=32, size=16)
    nested = APRS(distracter="nested", generator=gen(2))(x)
    independent = APRS(distracter="independent", generator=gen(2))(x)
    _, swap = manual_aprs(x, 2, 0.5, nested=True)
    torch.testing.assert_close(nested[~swap], independent[~swap])  # single-op images untouched
    assert not torch.allclose(nested[swap], independent[swap])
    # wrap vs clip: identical wherever the recombination stays inside 0..255.
    wrap = APRS(overflow="wrap", generator=gen(2))(x)
    clip = APRS(overflow="clip", generator=gen(2))(x)
    in_range = (clip > 0) & (clip < 1)
    torch.testing.assert_close(wrap[in_range], clip[in_range])
    assert not torch.equal(wrap, clip)  # the recombination does leave 0..255 somewhere
    # mode: the same single-op images and swaps, another transform; identical on one-channel images.
    per_channel = APRS(mode="per_channel", generator=gen(2))(x)
    torch.testing.assert_close(per_channel[~swap], nested[~swap])
    assert not torch.allclose(per_channel[swap], nested[swap])
    gray = x[:, :1]
    torch.testing.assert_close(APRS(mode="per_channel", generator=gen(2))(gray), APRS(generator=gen(2))(gray))


def test_aprs_without_swaps_is_one_random_op_per_sample():
    x, _ = batch(b=16)
    torch.testing.assert_close(APRS(swap_prob=0.0, generator=gen(4))(x), random_op(x, 3, OPS, gen(4)))


def test_aprs_randomness_is_per_sample_and_reproducible():
    x = torch.rand(1, 3, 16, 16, generator=gen(0)).expand(32, -1, -1, -1).contiguous()
    out = APRS(generator=gen(9))(x)
    distinct = {tuple(o.flatten()[:20].tolist()) for o in out}
    assert len(distinct) > 16
    torch.testing.assert_close(out, APRS(generator=gen(9))(x))
    assert out.shape == x.shape and out.dtype == x.dtype


def test_aprs_recombines_about_swap_prob_of_the_images():
    x, _ = batch(b=400, size=8)
    _, swap = manual_aprs(x, 11, 0.5, nested=True)
    assert 0.42 < swap.float().mean() < 0.58


def test_aprs_rejects_bad_arguments():
    for kwargs, message in (({"overflow": "saturate"}, "overflow='saturate'"),
                            ({"distracter": "other"}, "distracter='other'"),
                            ({"swap_prob": -0.1}, "swap_prob=-0.1")):
        with pytest.raises(ValueError, match=message):
            APRS(**kwargs)


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
    # the image unchanged): there, round-off that differs between devices moves a pixel by one level (float32 and
    # float64 on one CPU differ so on ~5% of pixels), and rarely wraps it around at 0 or 255.
    level_apart = (APRS(generator=gen(1))(x.cuda()).cpu() - APRS(generator=gen(1))(x)).abs()
    assert (level_apart <= 1 / 255 + 1e-4).float().mean() > 0.99
