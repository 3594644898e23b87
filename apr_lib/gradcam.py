"""Grad-CAM (Selvaraju et al., ICCV 2017; the paper's Figure 8) and the measures its claim is checked with.

Grad-CAM of class c at a convolutional layer with feature maps A_k (k = channels):

    alpha_k = mean over positions of d y_c / d A_k        CAM = ReLU(sum_k alpha_k A_k)

upsampled bilinearly to the image size. Written here in a few lines (a forward hook and torch.autograd.grad)
rather than taken from the `grad-cam` package, which needs OpenCV and rescales every map to [0, 1]: the
measures below need the maps as they are.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import ndimage


def last_conv_block(model: nn.Module) -> nn.Module:
    """The module that directly holds the model's last Conv2d: its last convolutional block (small_cnn: the last
    conv-BN-ReLU stage; residual networks: the last residual block), whose output Grad-CAM reads."""
    parent = None
    for module in model.modules():
        if any(isinstance(child, nn.Conv2d) for child in module.children()):
            parent = module
    if parent is None:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer inside a block: name the Grad-CAM layer")
    return parent


def grad_cam(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """Grad-CAM maps (B, H, W) >= 0 of class targets[i] for images[i] (B, C, H, W), read at `layer`.

    The model's parameters get no gradients: only the layer's output is differentiated.
    """
    if len(images) != len(targets):
        raise ValueError(f"{len(images)} images but {len(targets)} targets")
    device = next(model.parameters()).device
    images, targets = images.to(device), targets.to(device)
    kept = {}

    def keep_maps(module, inputs, output):
        # The rest of the forward pass continues from a leaf copy: the gradient stops there (nothing above the
        # layer is differentiated), and a layer whose input needs no gradient works too.
        kept["maps"] = output.detach().requires_grad_(True)
        return kept["maps"]

    handle = layer.register_forward_hook(keep_maps)
    try:
        with torch.enable_grad():
            logits = model(images)
            if "maps" not in kept:
                raise ValueError(f"layer {type(layer).__name__} was not called by the model's forward pass")
            scores = logits.gather(1, targets.view(-1, 1)).sum()  # in eval mode the samples are independent
            (gradients,) = torch.autograd.grad(scores, kept["maps"])
    finally:
        handle.remove()
    maps = kept["maps"].detach()
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    cams = F.relu((weights * maps).sum(dim=1, keepdim=True))
    return F.interpolate(cams, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0].cpu()


# Datasets whose objects lie on a black background, so that `object_masks` finds them.
OBJECT_ON_BLACK = ("fmnist",)


def object_masks(images: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """(B, H, W) True on the object of each clean image (B, C, H, W) in [0, 1] on a black background: the pixels
    brighter than `threshold` in any channel, and the dark holes they enclose (scipy's binary_fill_holes)."""
    bright = (images > threshold).any(dim=1).numpy()
    return torch.from_numpy(np.stack([ndimage.binary_fill_holes(mask) for mask in bright]))


def mass_inside(cams: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share of each map's total (B,) that lies inside its mask; NaN for a map that is zero everywhere."""
    total = cams.sum(dim=(1, 2))
    inside = (cams * masks).sum(dim=(1, 2))
    return torch.where(total > 0, inside / total.clamp(min=torch.finfo(cams.dtype).tiny), torch.nan)


def map_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation (B,) between maps a[i] and b[i] (B, H, W); NaN where either map is constant."""
    a = a.flatten(1) - a.flatten(1).mean(dim=1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(dim=1, keepdim=True)
    norms = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(norms > 0, (a * b).sum(dim=1) / norms.clamp(min=torch.finfo(a.dtype).tiny), torch.nan)


def cams_clean_and_corrupted(model: nn.Module, clean: torch.Tensor, corrupted: torch.Tensor, labels: torch.Tensor,
                             masks: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
    """Grad-CAM of the true class on clean images and their corrupted versions (N, C, H, W in [0, 1]), with the
    per-image measures: share of each map inside the object mask, correlation between the clean and the
    corrupted map, and whether the model classifies each image correctly."""
    layer = last_conv_block(model)
    parts = {"clean": [], "corrupted": []}
    for start in range(0, len(labels), batch_size):
        batch = slice(start, start + batch_size)
        parts["clean"].append(grad_cam(model, clean[batch], labels[batch], layer))
        parts["corrupted"].append(grad_cam(model, corrupted[batch], labels[batch], layer))
    cam_clean, cam_corrupted = torch.cat(parts["clean"]), torch.cat(parts["corrupted"])
    device = next(model.parameters()).device
    with torch.inference_mode():
        correct = {name: torch.cat([model(x[start:start + batch_size].to(device)).argmax(1).cpu()
                                    for start in range(0, len(labels), batch_size)]) == labels
                   for name, x in (("clean", clean), ("corrupted", corrupted))}
    return {"cam_clean": cam_clean, "cam_corrupted": cam_corrupted,
            "inside_clean": mass_inside(cam_clean, masks), "inside_corrupted": mass_inside(cam_corrupted, masks),
            "correlation": map_correlation(cam_clean, cam_corrupted),
            "correct_clean": correct["clean"], "correct_corrupted": correct["corrupted"]}
