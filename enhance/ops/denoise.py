"""Denoising: self-guided filtering of luma and chroma, separately."""

from __future__ import annotations

import torch
from torch import Tensor

from .filters import box_support, guided_filter, pixels
from .registry import ParamSpec, register_operator

# Full-range BT.601 YCbCr on sRGB-encoded values, and its exact inverse. Not kornia's rgb_to_ycbcr:
# it rounds the chroma scales (0.564, 0.713), and its ycbcr_to_rgb clamps to [0,1], so it cannot map
# the signed change below back to RGB.
_TO_YCC = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)
_FROM_YCC = (
    (1.0, 0.0, 1.402),
    (1.0, -0.344136, -0.714136),
    (1.0, 1.772, 0.0),
)
# Guided-filter regularisers (variances): local detail weaker than ~0.1 in luma or ~0.05 in chroma
# is treated as noise, stronger edges are kept.
_EPS = (0.1**2, 0.05**2, 0.05**2)


def _radius_px(params: dict[str, Tensor], ref_size: int) -> Tensor:
    return pixels(params["radius"], ref_size)


@register_operator(
    params=(
        ParamSpec("luma", -0.5, 1.0, 0.0, "", "blend of luma towards its edge-preserving smooth; negative restores texture"),
        ParamSpec("chroma", -0.5, 1.0, 0.0, "", "blend of chroma towards its edge-preserving smooth; negative boosts it"),
        ParamSpec("radius", 0.002, 0.02, 0.005, "short side", "filter radius"),
    ),
    doc="Denoise: edge-preserving guided filter on luma and chroma separately.",
    halo=lambda params, ref_size: 2 * box_support(_radius_px(params, ref_size)),
)
def denoise(image: Tensor, params: dict[str, Tensor], *, ref_size: int | None = None) -> Tensor:
    """Edge-preserving denoising in YCbCr with a self-guided filter per channel.

    ``luma`` and ``chroma`` (B,) in [-0.5,1] blend Y and CbCr towards their filtered versions
    (0 = identity; negative values push away from them, restoring fine texture). The range is
    two-sided so that the identity lies inside it, where the tuner's sigmoid can move it; ``radius`` (B,) is the box radius as a fraction of ``ref_size`` (the full image's
    short side; None: this image's). image (B,3,H,W) sRGB in [0,1] -> (B,3,H,W) in [0,1].
    """
    strength = torch.stack([params["luma"], params["chroma"], params["chroma"]], 1).reshape(-1, 3, 1, 1)
    r = _radius_px(params, ref_size or min(image.shape[-2:]))
    ycc = torch.einsum("ij,bjhw->bihw", image.new_tensor(_TO_YCC), image)
    change = strength * (guided_filter(ycc, r, image.new_tensor(_EPS).view(1, 3, 1, 1)) - ycc)
    return (image + torch.einsum("ij,bjhw->bihw", image.new_tensor(_FROM_YCC), change)).clamp(0, 1)
