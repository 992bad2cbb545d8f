"""Detail: unsharp masking of luma."""

from __future__ import annotations

from torch import Tensor

from .color import luminance
from .filters import gaussian_blur, gaussian_support, pixels
from .registry import ParamSpec, register_operator

_MIN_SIGMA = 0.1  # pixels; below this the blur is a no-op anyway


def _sigma_px(params: dict[str, Tensor], ref_size: int) -> Tensor:
    return pixels(params["radius"], ref_size).clamp_min(_MIN_SIGMA)


@register_operator(
    params=(
        ParamSpec("amount", -1.0, 2.0, 0.0, "x", "gain on luma detail finer than the radius; negative softens"),
        ParamSpec("radius", 0.0005, 0.01, 0.002, "short side", "Gaussian sigma of the mask"),
    ),
    doc="Sharpen: unsharp mask on luma.",
    halo=lambda params, ref_size: gaussian_support(_sigma_px(params, ref_size)),
)
def sharpen(image: Tensor, params: dict[str, Tensor], *, ref_size: int | None = None) -> Tensor:
    """Unsharp mask on luma: add ``amount`` * (luma - Gaussian-blurred luma) to every channel.

    ``amount`` (B,) in [-1,2] (0 = identity; -1 gives the blurred luma, a two-sided range keeps
    the identity inside it, where the tuner's sigmoid can move it); ``radius`` (B,) is the Gaussian sigma as a fraction of
    ``ref_size`` (the full image's short side; None: this image's), at least 0.1 px.
    image (B,3,H,W) sRGB in [0,1] -> (B,3,H,W) in [0,1].
    """
    amount = params["amount"].reshape(-1, 1, 1, 1)
    luma = luminance(image)
    high = luma - gaussian_blur(luma, _sigma_px(params, ref_size or min(image.shape[-2:])))
    return (image + amount * high).clamp(0, 1)
