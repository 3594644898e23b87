"""Training methods (apr_lib.methods): the registry, what each method feeds the model, and a few real SGD steps."""
import copy
import functools

import pytest
import torch
import torch.nn.functional as F

from apr_lib.cli import main
from apr_lib.study.config import RunSpec, load_profile, run_config
from apr_lib.data import DATASETS
from apr_lib.methods import TrainingMethod, augmix_loss, fgsm_random_start
from apr_lib.models import build_model
from apr_lib.names import METHODS, config_digest

TABLE1_ORDER = ["standard", "cutout", "mixup", "cutmix", "adv", "apr_p", "autoaugment", "augmix", "apr_s", "apr_sp"]
# (profile, architecture): Fashion-MNIST 1x28x28 with the small CNN, CIFAR-10 3x32x32 with ResNet-18.
SETTINGS = [("tiny", "small_cnn"), ("cifar", "resnet18")]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@functools.cache
def profile_named(name):
    return load_profile(name)


def config(method, profile="tiny", arch="small_cnn", **sections):
    profile = profile_named(profile)
    cfg = copy.deepcopy(run_config(profile, RunSpec(profile["dataset"], arch, method, 0)))
    for section, values in sections.items():
        cfg[section].update(values)
    return cfg


def uint8_batch(dataset="fmnist", b=16, seed=0):
    info = DATASETS[dataset]
    g = gen(seed)
    images = torch.randint(0, 256, (b, info.channels, info.size, info.size), generator=g, dtype=torch.uint8)
    return images, torch.randint(0, info.num_classes, (b,), generator=g)


def model_for(dataset, arch, seed=0):
    info = DATASETS[dataset]
    torch.manual_seed(seed)
    return build_model(arch, info.channels, info.num_classes, info.mean, info.std)


def test_apr_list_methods_prints_table1s_methods_in_order(capsys):
    assert main(["list", "methods"]) == 0
    assert capsys.readouterr().out.split() == TABLE1_ORDER
    assert list(METHODS) == TABLE1_ORDER


def test_a_run_reads_only_its_methods_sections():
    profile = load_profile("tiny")
    for method, spec in METHODS.items():
        cfg = run_config(profile, RunSpec("fmnist", "small_cnn", method, 0))
        assert set(cfg) - {"dataset", "arch", "method", "seed", "data_root", "train"} == set(spec.sections)
    edited = copy.deepcopy(profile.cfg)
    edited["augmix"]["width"] = 2
    edited = type(profile)(profile.path, edited)
    for method, retrains in (("augmix", True), ("standard", False)):
        run = RunSpec("fmnist", "small_cnn", method, 0)
        assert (config_digest(run_config(edited, run)) != config_digest(run_config(profile, run))) == retrains


@pytest.mark.parametrize("profile, arch", SETTINGS)
@pytest.mark.parametrize("method", TABLE1_ORDER)
def test_every_method_trains(method, profile, arch):
    cfg = config(method, profile, arch)
    model = model_for(cfg["dataset"], arch)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    training = TrainingMethod(method, cfg, gen(1))
    steps = 2 if arch == "small_cnn" else 1
    for step in range(steps):
        images, labels = uint8_batch(cfg["dataset"], b=8 if arch == "small_cnn" else 4, seed=step)
        optimizer.zero_grad(set_to_none=True)
        loss = training.loss(model, images, labels)
        assert loss.ndim == 0 and torch.isfinite(loss)
        assert all(p.grad is None for p in model.parameters())  # the loss leaves no gradients behind (adv)
        loss.backward()
        optimizer.step()
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters())]
    assert all(changed)


@pytest.mark.parametrize("method", TABLE1_ORDER)
def test_same_seed_same_loss_other_seed_other_inputs(method):
    images, labels = uint8_batch("cifar10", b=8)
    cfg = config(method, "cifar", "small_cnn")
    model = model_for("cifar10", "small_cnn")
    losses = [TrainingMethod(method, cfg, gen(2)).loss(copy.deepcopy(model), images, labels) for _ in range(2)]
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=0)
    first, other = (TrainingMethod(method, cfg, gen(seed)).augment(images, labels)[0] for seed in (2, 3))
    assert not torch.equal(first, other)


@pytest.mark.parametrize("method", [m for m in TABLE1_ORDER if m not in ("mixup", "cutmix")])
def test_images_of_one_batch_are_augmented_differently(method):
    # MixUp and CutMix draw once per batch by design (their own recipes); every other method draws per image.
    images = torch.randint(0, 256, (1, 3, 32, 32), generator=gen(0), dtype=torch.uint8).expand(16, -1, -1, -1)
    x, _ = TrainingMethod(method, config(method, "cifar", "small_cnn"), gen(4)).augment(images, torch.zeros(16).long())
    first = x[:16]
    assert len({tuple(image.flatten().tolist()) for image in first}) >= 12


def test_standard_is_crop_and_flip_and_cutout_adds_a_square_of_the_dataset_mean():
    images, labels = uint8_batch("cifar10", b=32)
    standard, _ = TrainingMethod("standard", config("standard", "cifar"), gen(5)).augment(images, labels)
    cutout, targets = TrainingMethod("cutout", config("cutout", "cifar"), gen(5)).augment(images, labels)
    assert torch.equal(targets, labels)
    changed = (cutout != standard).any(1)
    assert changed.any(2).any(1).all()  # every image has a square, after the same crop and flip
    mean = torch.tensor(DATASETS["cifar10"].mean)
    torch.testing.assert_close(cutout.permute(0, 2, 3, 1)[changed], mean.expand(int(changed.sum()), 3))
    assert changed.sum((1, 2)).max() == 16 * 16  # 16 px at 32 px


@pytest.mark.parametrize("method", ["mixup", "cutmix"])
def test_mixing_methods_train_on_convex_combinations_of_labels(method):
    images, labels = uint8_batch("fmnist", b=16)
    x, targets = TrainingMethod(method, config(method), gen(6)).augment(images, labels)
    assert x.shape == images.shape and targets.shape == (16, 10)
    assert (targets >= 0).all() and (targets > 0).sum(1).max() <= 2
    torch.testing.assert_close(targets.sum(1), torch.ones(16))


@pytest.mark.parametrize("method", ["apr_p", "apr_sp"])
def test_apr_p_keeps_the_phase_images_label(method):
    images, labels = uint8_batch("cifar10", b=8)
    cfg = config(method, "cifar", apr={"p_prob": 1.0})
    x, targets = TrainingMethod(method, cfg, gen(7)).augment(images, labels)
    assert x.shape == (16, 3, 32, 32)
    assert torch.equal(targets, torch.cat([labels, labels]))


@pytest.mark.parametrize("overflow", ["wrap", "clip"])
def test_apr_s_keeps_shape_dtype_range_and_labels(overflow):
    images, labels = uint8_batch("cifar10", b=32)
    x, targets = TrainingMethod("apr_s", config("apr_s", "cifar", apr={"s_overflow": overflow}), gen(8)).augment(
        images, labels)
    assert x.shape == images.shape and x.dtype == torch.float32 and torch.equal(targets, labels)
    assert x.min() >= 0 and x.max() <= 1


def test_apr_p_after_normalisation_changes_only_the_recombined_half():
    images, labels = uint8_batch("cifar10", b=8)
    before, after = (TrainingMethod("apr_p", config("apr_p", "cifar", apr={"p_prob": 1.0, "p_after_normalize": flag}),
                                    gen(9)).augment(images, labels)[0] for flag in (False, True))
    torch.testing.assert_close(before[:8], after[:8])
    assert not torch.allclose(before[8:], after[8:], atol=1e-3)


def test_augmix_feeds_clean_and_two_augmented_views():
    images, labels = uint8_batch("fmnist", b=8)
    x, targets = TrainingMethod("augmix", config("augmix"), gen(10)).augment(images, labels)
    standard, _ = TrainingMethod("standard", config("standard"), gen(10)).augment(images, labels)
    assert x.shape == (24, 1, 28, 28) and torch.equal(targets, labels)
    torch.testing.assert_close(x[:8], standard)  # the clean view: the same crop and flip as Standard
    assert not torch.allclose(x[8:16], x[16:])


def test_augmix_loss_is_cross_entropy_plus_weighted_jensen_shannon():
    logits = torch.randn(3 * 6, 10, generator=gen(11))
    labels = torch.randint(0, 10, (6,), generator=gen(11))
    clean = logits[:6]
    torch.testing.assert_close(augmix_loss(clean.repeat(3, 1), labels, 12.0), F.cross_entropy(clean, labels))
    p = logits.softmax(1).view(3, 6, 10)
    mixture = p.mean(0)
    jsd = (p * (p / mixture).log()).sum(2).mean(1).mean(0)  # mean over views of KL(p_v || M), batch mean
    torch.testing.assert_close(augmix_loss(logits, labels, 12.0), F.cross_entropy(clean, labels) + 12 * jsd)


def test_fgsm_stays_within_epsilon_raises_the_loss_and_leaves_no_gradients():
    images, labels = uint8_batch("fmnist", b=64)
    x = images.float() / 255
    model = model_for("fmnist", "small_cnn").eval()
    epsilon = 8 / 255
    adversarial = fgsm_random_start(model, x, labels, epsilon, 10 / 255, gen(12))
    assert (adversarial - x).abs().max() <= epsilon + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1 and not adversarial.requires_grad
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        assert F.cross_entropy(model(adversarial), labels) > F.cross_entropy(model(x), labels)
    torch.testing.assert_close(adversarial, fgsm_random_start(model, x, labels, epsilon, 10 / 255, gen(12)))


def test_unknown_method_names_the_registered_ones():
    with pytest.raises(ValueError, match="unknown method 'apr_x'; registered: standard, cutout"):
        TrainingMethod("apr_x", config("standard"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", TABLE1_ORDER)
def test_on_cuda_same_augmentation_as_on_cpu_and_a_bf16_step_trains(method):
    images, labels = uint8_batch("cifar10", b=16)
    cfg = config(method, "cifar", "resnet18")
    cpu = TrainingMethod(method, cfg, gen(13)).augment(images, labels)
    cuda = TrainingMethod(method, cfg, gen(13)).augment(images.cuda(), labels.cuda())
    # Round-off differs between devices; where APR-S truncates to uint8 levels it can move a pixel by one level
    # (see test_augment_apr), and rarely wrap it around.
    for a, b in zip(cpu, cuda):
        assert ((b.cpu() - a).abs() <= 1 / 255 + 1e-4).float().mean() > 0.99
    model = model_for("cifar10", "resnet18").cuda()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    training = TrainingMethod(method, cfg, torch.Generator("cuda").manual_seed(0))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = training.loss(model, images.cuda(), labels.cuda())
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
