"""The frozen, differentiable scorer the enhancement side climbs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nima.backbones import EfficientNetLite
from nima.checkpoint import file_sha256, load_checkpoint
from nima.model import NIMA, Mixture, mean_score, std_score
from nima.resize import resize

DEFAULT_WEIGHTS = Path(__file__).with_name("weights") / "nima_default.pt"


class Scorer(nn.Module):
    """A frozen NIMA model (or a :class:`nima.model.Mixture` of them) in eval mode that takes
    images of any size.

    ``scorer(x)`` maps a (B,3,H,W) sRGB batch in [0,1] on any device to (B,N) score
    distributions over 1..N; the image is resized to the model's input by :func:`nima.resize`
    (bilinear, antialiased, differentiable, repeatable on CUDA), so gradients flow back to ``x``. ``mean(x)`` and ``std(x)`` give (B,) scores.

    >>> scorer = Scorer(NIMA("efficientnet_lite0"))
    >>> x = torch.rand(1, 3, 300, 400, requires_grad=True)
    >>> scorer.mean(x).sum().backward()
    >>> x.grad.shape
    torch.Size([1, 3, 300, 400])
    """

    def __init__(self, model: NIMA | Mixture, meta: dict[str, Any] | None = None, weights: str | None = None) -> None:
        super().__init__()
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.meta = meta or {}
        self.weights = weights
        self.weights_sha256 = file_sha256(weights) if weights else None
        self.input_size = model.input_size

    @property
    def device(self) -> torch.device:
        """The device the scorer's weights are on."""
        return next(self.parameters()).device

    def train(self, mode: bool = True) -> "Scorer":
        """Always stays in eval mode: the scorer is frozen."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.input_size
        if x.shape[-2:] != (s, s):
            x = resize(x, (s, s))
        return self.model(x)

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted mean opinion score on 1..10: (B,)."""
        return mean_score(self(x))

    def std(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted spread of opinion: (B,)."""
        return std_score(self(x))


def pick_device(name: str | torch.device) -> torch.device:
    """'auto' is CUDA when available, else the CPU; anything else as torch reads it."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_scorer(weights: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> Scorer:
    """Load a frozen scorer from a weights file (the package's shipped weights by default) onto
    ``device`` ('auto' picks CUDA when available). The EfficientNet-Lite backbone's batch norms
    are folded into its convolutions (:meth:`nima.backbones.EfficientNetLite.fold_batchnorm`): the
    same scores to float rounding, a quarter less time per scorer call on a CPU.

    ValueError names the file when it is missing, corrupt or not a NIMA checkpoint.

    >>> scorer = load_scorer()
    >>> float(scorer.mean(torch.rand(1, 3, 64, 64))) > 1
    True
    """
    path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    model, meta = load_checkpoint(path)
    model.eval()
    for module in model.modules():
        if isinstance(module, EfficientNetLite):
            module.fold_batchnorm()
    return Scorer(model, meta, str(path)).to(pick_device(device))
