"""What the scorer sees of a photo.

The headline score, the one ``enhance score``, ``rank``, ``tune``, ``batch`` and the report name, is
the scorer's opinion of the whole photo brought to its input size (:func:`whole`). The tuner's
objective is scored on :class:`Views`: the whole photo at proxy size (long side ``recipe.proxy``)
and crops at detail scale (long side up to ``DETAIL``), so that noise, blur and halos are visible to
the scorer; every view is rendered with ``ref_size`` set to its own image's short side, so the
spatial parameters (fractions of the short side) mean the same as in the full render.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from enhance.recipe import Recipe
from enhance.render import pipeline_halo, resize_long
from nima import resize

DETAIL = 1024   # long side of the detail-scale image the crops come from, pixels


def whole(image: torch.Tensor, size: int) -> torch.Tensor:
    """(B,3,H,W) sRGB ``image`` clamped to [0,1] and resized (bilinear, antialiased) to
    (B,3,size,size): the view the headline score is taken on."""
    return F.interpolate(image.clamp(0, 1), size=(size, size), mode="bilinear", antialias=True)


@dataclass(frozen=True)
class Views:
    """What the tuner's objective sees of one photo: the whole proxy and crops at detail scale.

    ``crops`` holds (B,3,c+2m,c+2m) padded crops; after rendering, ``margin`` pixels are trimmed.
    """

    proxy: torch.Tensor
    crops: list[torch.Tensor]
    margin: int
    detail_short: int

    @classmethod
    def of(cls, image: torch.Tensor, recipe: Recipe, crops: int, size: int, seed: int) -> "Views":
        proxy = resize_long(image, recipe.proxy)
        detail = resize_long(image, DETAIL)
        dh, dw = detail.shape[-2:]
        widest = [{s.name: torch.tensor([s.hi]) for s in stage.specs} for stage in recipe.stages]
        margin = pipeline_halo(recipe, widest, min(dh, dw))
        c = min(size, dh, dw)
        margin = min(margin, dh - 1, dw - 1)  # reflection padding needs margin < side
        padded = F.pad(detail, (margin,) * 4, mode="reflect") if margin else detail
        gen = np.random.default_rng(seed)
        boxes = []
        for _ in range(crops):
            y, x = int(gen.integers(0, dh - c + 1)), int(gen.integers(0, dw - c + 1))
            boxes.append(padded[..., y: y + c + 2 * margin, x: x + c + 2 * margin])
        return cls(proxy, boxes, margin, min(dh, dw))

    def render(self, size: int, pipeline: Callable[[torch.Tensor, int | None], torch.Tensor] | None = None) -> torch.Tensor:
        """(V*B,3,size,size): every view passed through ``pipeline(image, ref_size)`` (none: as
        they are) and brought to the scorer's input size."""
        run = pipeline or (lambda im, ref: im)
        out = [run(self.proxy, None)]
        for crop in self.crops:
            r = run(crop, self.detail_short)
            m = self.margin
            out.append(r[..., m: r.shape[-2] - m, m: r.shape[-1] - m])
        return torch.cat([v if v.shape[-2:] == (size, size) else resize(v, (size, size)) for v in out])
