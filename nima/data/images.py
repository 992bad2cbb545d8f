"""Images as float tensors and the torch Dataset of rated images."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from nima.data.readers import Sample


def load_image(path: str) -> torch.Tensor:
    """Read an image with PIL, apply its EXIF orientation, convert to RGB: (3,H,W) float32 in [0,1]."""
    with Image.open(path) as img:
        rgb = ImageOps.exif_transpose(img).convert("RGB")
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div_(255.0)


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """(3,H,W) -> (3,size,size), aspect squashed, bilinear with antialiasing (the scorer's resize)."""
    return F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]


def evaluation_view(path: str, size: int) -> torch.Tensor:
    """The image at ``path`` as the scorer is evaluated on it: whole, resized to (3,size,size),
    in [0,1] (antialiased resizing overshoots 1 by a few float32 ulps)."""
    return resize(load_image(path), size).clamp_(0.0, 1.0)


class ImageRatings(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Rated images for training or evaluating NIMA.

    Item i: (image (3,size,size) float32 in [0,1], not normalised; dist (10,) float32).
    train: resize to round(size*256/224) square, random size x size crop, random horizontal flip (the
    NIMA paper's 256 -> 224); nothing that changes perceived quality. eval: the whole image resized to
    size x size. Randomness comes from torch's generator, which DataLoader seeds per worker.
    """

    def __init__(self, samples: list[Sample], train: bool, size: int = 224) -> None:
        self.samples, self.train, self.size = samples, train, size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.samples[i]
        if not self.train:
            return evaluation_view(sample.path, self.size), torch.from_numpy(sample.dist)
        image = resize(load_image(sample.path), round(self.size * 256 / 224))
        top, left = (int(v) for v in torch.randint(image.shape[-1] - self.size + 1, (2,)))
        image = image[:, top:top + self.size, left:left + self.size]
        if torch.rand(()) < 0.5:
            image = image.flip(-1)
        # Antialiased resizing overshoots 1 by a few float32 ulps; keep the promised range.
        return image.clamp_(0.0, 1.0), torch.from_numpy(sample.dist)
