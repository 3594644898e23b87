"""Grad-CAM on toy models whose answer is known, and the measures of Figure 8's claim."""
import pytest
import torch
import torch.nn as nn

from apr_lib.gradcam import (cams_clean_and_corrupted, grad_cam, last_conv_block, map_correlation, mass_inside,
                             object_masks)
from apr_lib.models import build_model


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class RegionChannels(nn.Module):
    """Channel 0 sees only the top half of the image, channel 1 only the bottom half."""

    def forward(self, x):
        top = torch.zeros_like(x)
        top[..., : x.shape[-2] // 2, :] = 1
        return torch.cat([x * top, x * (1 - top)], dim=1)


def region_model(pool: int = 1) -> tuple[nn.Module, nn.Module]:
    """Logit 0 depends only on the top half, logit 1 only on the bottom half; returns (model, Grad-CAM layer)."""
    layer = nn.Sequential(RegionChannels(), nn.AvgPool2d(pool))
    head = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
    return nn.Sequential(layer, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval(), layer


def test_the_map_lies_on_the_region_the_target_logit_reads():
    model, layer = region_model()
    images = torch.rand(3, 1, 8, 8) + 0.1
    for target, (on, off) in {0: (slice(0, 4), slice(4, 8)), 1: (slice(4, 8), slice(0, 4))}.items():
        cams = grad_cam(model, images, torch.full((3,), target), layer)
        assert cams.shape == (3, 8, 8)
        assert (cams[:, off] == 0).all() and (cams[:, on] > 0).all()
        # One channel carries the class: the map is that channel's activation, the image, times its weight.
        ratio = cams[:, on] / images[:, 0, on]
        assert torch.allclose(ratio, ratio.flatten(1)[:, :1, None].expand_as(ratio))


def test_a_coarser_layer_is_upsampled_to_the_image():
    model, layer = region_model(pool=2)
    cams = grad_cam(model, torch.rand(2, 1, 8, 8) + 0.1, torch.zeros(2, dtype=torch.long), layer)
    assert cams.shape == (2, 8, 8)
    top = torch.zeros(2, 8, 8, dtype=torch.bool)
    top[:, :4] = True
    assert (mass_inside(cams, top) > 0.9).all()  # bilinear upsampling smears only across the border


def test_small_cnn_maps_come_from_its_last_conv_block_and_leave_no_gradients():
    model = build_model("small_cnn", 1, 10, (0.5,), (0.5,)).eval()
    layer = last_conv_block(model)
    assert layer is model.net.features[4]  # conv-BN-ReLU at 7 x 7, before the last pooling
    cams = grad_cam(model, torch.rand(4, 1, 28, 28), torch.arange(4), layer)
    assert cams.shape == (4, 28, 28) and (cams >= 0).all()
    assert all(p.grad is None for p in model.parameters())
    assert not layer._forward_hooks  # the hook is removed again


def test_a_layer_outside_the_forward_pass_is_named():
    model, _ = region_model()
    with pytest.raises(ValueError, match="Linear was not called"):
        grad_cam(model, torch.rand(1, 1, 8, 8), torch.zeros(1, dtype=torch.long), nn.Linear(2, 2))


def test_mass_inside_and_map_correlation():
    cams = torch.tensor([[[1.0, 3.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, False], [False, False]]).expand(2, 2, 2)
    shares = mass_inside(cams, mask)
    assert shares[0] == pytest.approx(0.25) and shares[1].isnan()  # a zero map has no share
    a = torch.rand(3, 5, 5)
    correlation = map_correlation(a, torch.stack([a[0], -a[1], torch.ones(5, 5)]))
    assert correlation[0] == pytest.approx(1.0) and correlation[1] == pytest.approx(-1.0) and correlation[2].isnan()


def test_object_masks_fill_the_holes_of_the_object():
    ring = torch.zeros(1, 1, 7, 7)
    ring[..., 1:6, 1:6] = 0.8
    ring[..., 3, 3] = 0.0  # a dark pixel inside the object
    masks = object_masks(ring)
    assert masks.shape == (1, 7, 7) and masks[0, 3, 3] and masks.sum() == 25


def test_clean_and_corrupted_maps_with_their_measures():
    model, _ = region_model()
    block = nn.Sequential(nn.Conv2d(1, 1, 1), RegionChannels())  # the last conv block: last_conv_block finds it
    with torch.no_grad():
        block[0].weight.fill_(1.0), block[0].bias.zero_()
    model[0] = block
    clean = torch.rand(4, 1, 8, 8) + 0.1
    labels = torch.tensor([0, 1, 0, 1])
    result = cams_clean_and_corrupted(model, clean, clean.flip(-2), labels, object_masks(clean), batch_size=3)
    assert result["cam_clean"].shape == result["cam_corrupted"].shape == (4, 8, 8)
    assert torch.allclose(result["cam_clean"][0], grad_cam(model, clean[:1], labels[:1], block)[0])
    top = torch.zeros(4, 8, 8, dtype=torch.bool)
    top[:, :4] = True
    assert torch.allclose(mass_inside(result["cam_clean"], top), (1 - labels).float())  # class 0 reads the top half
    assert torch.allclose(result["correlation"], map_correlation(result["cam_clean"], result["cam_corrupted"]))
    assert result["correct_clean"].shape == (4,) and result["correct_clean"].dtype == torch.bool
