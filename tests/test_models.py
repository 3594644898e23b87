"""Architectures: shapes, parameter counts against their papers, normalisation inside the model."""
import pytest
import torch

from apr_lib.models import ARCHS, Normalized, ResNet18, build_model


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnet18_has_the_cifar_variant_parameter_count():
    # 11,173,962 parameters for 10 classes: the CIFAR ResNet-18 of kuangliu/pytorch-cifar that the released
    # APR code copies (facts 1.5); He et al. (2016) Table 1 gives 11.7M for the ImageNet variant (7x7 stem,
    # 1000 classes).
    assert count(ResNet18(3, 10)) == 11_173_962


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("channels, size, classes", [(1, 28, 10), (3, 32, 100)])
def test_every_arch_takes_any_channels_and_classes(arch, channels, size, classes):
    model = build_model(arch, channels, classes, (0.5,) * channels, (0.25,) * channels).eval()
    with torch.no_grad():
        assert model(torch.rand(2, channels, size, size)).shape == (2, classes)


def test_small_cnn_is_small():
    assert count(build_model("small_cnn", 1, 10, (0.5,), (0.5,))) < 200_000


def test_normalisation_lives_inside_the_model():
    net = torch.nn.Flatten()
    model = Normalized(net, (0.5, 0.25, 0.0), (0.5, 0.25, 2.0))
    x = torch.tensor([1.0, 0.5, 4.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(model(x), torch.tensor([[1.0, 1.0, 2.0]]))
    assert {"mean", "std"} <= set(model.state_dict())  # saved with the weights


def test_unknown_arch_is_named():
    with pytest.raises(ValueError, match="unknown architecture 'vgg'; registered: small_cnn"):
        build_model("vgg", 3, 10, (0.5,) * 3, (0.5,) * 3)
