"""Cutout, MixUp, CutMix, AutoAugment and AugMix (apr_lib.augment.baselines): what each does, per sample,
reproducibly from a generator, without touching torch's global RNG."""
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from apr_lib.augment import AugMix, AutoAugment, CutMix, Cutout, MixUp
from apr_lib.augment.baselines import global_rng_seeded_from
from apr_lib.augment.ops import OPS, random_op

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # MKL's threads crawl on shared cores


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images(b=16, c=3, size=32, seed=0):
    return torch.rand(b, c, size, size, generator=gen(seed))


def identical(b=32, c=3, size=32):
    return images(1, c, size).expand(b, -1, -1, -1).contiguous()


def distinct(batch):
    return len({tuple(image.flatten().tolist()) for image in batch})


def test_global_rng_seeded_from_is_reproducible_and_restores_the_global_state():
    state = torch.get_rng_state()
    with global_rng_seeded_from(gen(1)):
        first = torch.rand(5)
    with global_rng_seeded_from(gen(1)):
        again = torch.rand(5)
    with global_rng_seeded_from(gen(2)):
        other = torch.rand(5)
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, other)
    assert torch.equal(torch.get_rng_state(), state)


# --- Cutout --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size, side", [(32, 16), (28, 14)])
def test_cutout_fills_one_square_per_image_clipped_at_the_border(size, side):
    x = images(b=200, size=size)
    fill = (0.49, 0.48, 0.45)
    out = Cutout(0.5, fill=fill, generator=gen(3))(x)
    changed = (out != x).any(1)  # random images never equal the fill exactly
    clipped = 0
    for i in range(len(x)):
        rows, cols = changed[i].any(1).nonzero().flatten(), changed[i].any(0).nonzero().flatten()
        assert changed[i].sum() == len(rows) * len(cols)  # a rectangle ...
        for index in (rows, cols):
            assert index.tolist() == list(range(index[0], index[-1] + 1))
        for extent, first, last in ((len(rows), rows[0], rows[-1]), (len(cols), cols[0], cols[-1])):
            assert extent == side or (extent < side and (first == 0 or last == size - 1))  # ... a square unless clipped
        clipped += len(rows) < side or len(cols) < side
        square = out[i][:, changed[i]]
        torch.testing.assert_close(square, torch.tensor(fill)[:, None].expand_as(square))
    assert 20 < clipped < 180  # centres anywhere in the image, so some squares are clipped and most are not
    corners = {(int(changed[i].any(1).nonzero()[0]), int(changed[i].any(0).nonzero()[0])) for i in range(len(x))}
    assert len(corners) > 100  # each image has its own position
    torch.testing.assert_close(out, Cutout(0.5, fill=fill, generator=gen(3))(x))


# --- MixUp and CutMix ----------------------------------------------------------------------------------------

def batch_with_distinct_neighbours(b=10):
    return images(b=b, size=8), torch.arange(b) % 10  # v2 mixes each image with the previous one


def test_mixup_mixes_images_and_labels_with_one_convex_weight():
    x, y = batch_with_distinct_neighbours()
    out, targets = MixUp(num_classes=10, alpha=1.0, generator=gen(4))(x, y)
    assert targets.shape == (len(x), 10)
    torch.testing.assert_close(targets.sum(1), torch.ones(len(x)))
    lam = targets[0, y[0]]
    assert 0 < lam < 1
    expected = lam * F.one_hot(y, 10) + (1 - lam) * F.one_hot(y.roll(1), 10)
    torch.testing.assert_close(targets, expected.float())
    torch.testing.assert_close(out, lam * x + (1 - lam) * x.roll(1, 0))


def test_cutmix_pastes_one_box_and_mixes_labels_by_its_area():
    x, y = batch_with_distinct_neighbours()
    found_box = False
    for seed in range(10):
        out, targets = CutMix(num_classes=10, alpha=1.0, generator=gen(seed))(x, y)
        pasted = (out != x).any(1).any(0)  # one box, the same for the whole batch
        torch.testing.assert_close(out[:, :, pasted], x.roll(1, 0)[:, :, pasted])
        torch.testing.assert_close(out[:, :, ~pasted], x[:, :, ~pasted])
        area = pasted.float().mean()
        torch.testing.assert_close(targets, ((1 - area) * F.one_hot(y, 10) + area * F.one_hot(y.roll(1), 10)).float())
        found_box |= bool(pasted.any())
    assert found_box


@pytest.mark.parametrize("mixing", [MixUp, CutMix])
def test_mixing_is_reproducible_and_leaves_the_global_rng_alone(mixing):
    x, y = batch_with_distinct_neighbours()
    state = torch.get_rng_state()
    a, b = mixing(10, generator=gen(5)), mixing(10, generator=gen(5))
    for _ in range(3):
        torch.testing.assert_close(a(x, y), b(x, y))
    assert torch.equal(torch.get_rng_state(), state)


# --- AutoAugment ---------------------------------------------------------------------------------------------

def test_autoaugment_is_torchvisions_cifar10_policy_with_a_sub_policy_per_image():
    x = (identical(b=64) * 255).to(torch.uint8)
    out = AutoAugment(generator=gen(6))(x)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert distinct(out) > 20  # one batched v2 call would give every image the same sub-policy
    # Exactly v2.AutoAugment, image by image, from the seed the generator gives.
    seed = int(torch.randint(2**63 - 1, (), generator=gen(6)))
    torch.manual_seed(seed)
    policy = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    torch.testing.assert_close(out, torch.stack([policy(image) for image in x]))
    state = torch.get_rng_state()
    torch.testing.assert_close(AutoAugment(generator=gen(6))(x), out)
    assert torch.equal(torch.get_rng_state(), state)


def test_autoaugment_works_on_one_channel_images_and_rejects_floats():
    x = (identical(b=8, c=1, size=28) * 255).to(torch.uint8)
    assert AutoAugment(generator=gen(0))(x).shape == x.shape
    with pytest.raises(ValueError, match="uint8"):
        AutoAugment()(x.float())


# --- AugMix --------------------------------------------------------------------------------------------------

def manual_augmix(x, seed, width=3, depth_range=(1, 3), severity=3, alpha=1.0):
    """AugMix written out image by image with the same random stream as AugMix."""
    g = gen(seed)
    chains = x.repeat(width, 1, 1, 1)
    depth = torch.randint(depth_range[0], depth_range[1] + 1, (len(chains),), generator=g)
    for step in range(depth_range[1]):
        active = depth > step
        chains[active] = random_op(chains[active], severity, OPS, g)
    with global_rng_seeded_from(g):
        weights = torch.distributions.Dirichlet(torch.full((width,), alpha)).sample((len(x),))
        mix = torch.distributions.Beta(alpha, alpha).sample((len(x),))
    out = torch.empty_like(x)
    for i in range(len(x)):
        combined = sum(weights[i, k] * chains[k * len(x) + i] for k in range(width))
        out[i] = (1 - mix[i]) * x[i] + mix[i] * combined
    return out, depth


def test_augmix_mixes_chains_of_one_to_three_ops_per_image():
    x = images(b=24, size=16)
    out = AugMix(generator=gen(7))(x)
    expected, depth = manual_augmix(x, 7)
    torch.testing.assert_close(out, expected)
    assert set(depth.tolist()) == {1, 2, 3}
    assert out.min() >= 0 and out.max() <= 1  # a convex combination of images in [0, 1]


def test_augmix_weights_are_convex():
    # autocontrast leaves a uint8-level image whose channels already span 0..255 unchanged: every chain is x, so
    # the mix is x.
    x = (images(b=16, size=16) * 255).round() / 255
    x[:, :, 0, 0], x[:, :, 0, 1] = 0.0, 1.0
    torch.testing.assert_close(AugMix(ops=("autocontrast",), generator=gen(8))(x), x)


def test_augmix_randomness_is_per_sample_and_reproducible():
    x = identical(b=32, size=16)
    state = torch.get_rng_state()
    out = AugMix(generator=gen(9))(x)
    assert distinct(out) == len(x)
    torch.testing.assert_close(out, AugMix(generator=gen(9))(x))
    assert torch.equal(torch.get_rng_state(), state)


def test_augmix_rejects_bad_arguments():
    with pytest.raises(ValueError, match="depth_range"):
        AugMix(depth_range=(3, 1))
    with pytest.raises(ValueError, match="alpha"):
        AugMix(alpha=0)
