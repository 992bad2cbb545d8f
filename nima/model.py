"""The NIMA model: a backbone, global average pooling, dropout and a linear layer to a
softmax over the score buckets 1..N (Talebi & Milanfar, IEEE TIP 2018)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from nima.backbones import Backbone, get_backbone


class NIMA(nn.Module):
    """Predicts the distribution of human opinion scores.

    Input: (B,3,S,S) sRGB in [0,1] at the model's ``input_size`` S (the model normalises); S is
    the backbone's native size unless given (the network is fully convolutional up to its global
    pool, so a larger S lets it see detail, noise and blur that a 224-pixel view averages away, at
    about (S/224)^2 the cost).
    Output: (B,N) probabilities over the scores 1..N.

    >>> model = NIMA("efficientnet_lite0").eval()
    >>> dist = model(torch.rand(2, 3, 224, 224))
    >>> dist.shape, bool(torch.allclose(dist.sum(1), torch.ones(2)))
    (torch.Size([2, 10]), True)
    """

    # On the CPU the backbone runs channels-last: oneDNN's convolutions are faster that way, above
    # all the backward pass to the input that every climb takes (`python benchmarks/speed.py --only
    # layout`); its input gradients agree with a float64 reference as closely as NCHW's do.
    channels_last = True

    def __init__(
        self, backbone: str = "efficientnet_lite0", pretrained: bool | str = False,
        buckets: int = 10, dropout: float = 0.75, input_size: int | None = None,
    ) -> None:
        super().__init__()
        self.spec = get_backbone(backbone)
        self.input_size = self.spec.input_size if input_size is None else checked_input_size(input_size)
        self.features, _ = self.spec.build(pretrained)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.spec.feature_size, buckets)
        self.norm_mean: torch.Tensor
        self.norm_std: torch.Tensor
        self.register_buffer("norm_mean", torch.tensor(self.spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("norm_std", torch.tensor(self.spec.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict(self.features(self._normalise(x)))

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's input: ``x`` normalised, channels-last on the CPU (see ``channels_last``)."""
        x = (x - self.norm_mean) / self.norm_std
        if self.channels_last and x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def predict(self, features: torch.Tensor, dropout: bool = True) -> torch.Tensor:
        """(B,C,h,w) backbone features -> (B,N) distributions: pooling, dropout (in training mode,
        unless ``dropout`` is False), the head."""
        pooled = features.mean(dim=(2, 3))
        return self.head(self.dropout(pooled) if dropout else pooled).softmax(dim=1)

    def split(self, frozen_blocks: int) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
        """(early, late) with ``self.predict(late(early(x))) == self(x)`` for (B,3,S,S) ``x``:
        early normalises and runs the backbone's stem and first ``frozen_blocks`` blocks, late the
        other blocks, giving the backbone's features. ValueError where the backbone cannot be cut
        (only the EfficientNet-Lite ones can)."""
        cut = getattr(self.features, "split", None)
        if cut is None:
            if frozen_blocks:
                raise ValueError(f"frozen_blocks is not defined for backbone {self.spec.name!r}")
            first, rest = (lambda h: h), self.features
        else:
            first, rest = cut(frozen_blocks)
        return (lambda x: first(self._normalise(x))), rest

    def freeze(self, frozen_blocks: int) -> None:
        """Stop the gradient of the stem and the first ``frozen_blocks`` blocks (see ``split``)."""
        if frozen_blocks:
            for module in self.features.frozen_part(frozen_blocks):  # type: ignore[operator]
                module.requires_grad_(False)


def checked_input_size(size: int) -> int:
    """``size`` when a backbone can take a (size, size) view (at least 32 pixels, its total
    stride), else ValueError."""
    if int(size) != size or size < 32:
        raise ValueError(f"input_size must be a whole number of pixels, at least 32; got {size}")
    return int(size)


class Mixture(nn.Module):
    """The weighted average of several scorers' distributions: (B,3,S,S) -> (B,N).

    ``models`` are frozen NIMA models; ``weights`` (one per model, >= 0) are normalised to sum to 1.
    Its mean score is the same weighted average of the models' mean scores; ``spec`` is the
    first model's (a :class:`nima.Scorer` can hold a mixture of models of one backbone and one
    input size).
    """

    def __init__(self, models: list[NIMA], weights: list[float] | None = None) -> None:
        super().__init__()
        if not models:
            raise ValueError("a mixture needs at least one model")
        w = torch.ones(len(models)) if weights is None else torch.tensor(weights, dtype=torch.float32)
        if w.shape != (len(models),) or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"a mixture of {len(models)} models needs {len(models)} finite shares >= 0, not all 0; got {weights}")
        sizes = sorted({m.input_size for m in models})
        if len(sizes) > 1:
            raise ValueError(f"a mixture's models must share one input size; got {sizes}")
        self.input_size = sizes[0]
        self.models = nn.ModuleList(models).eval().requires_grad_(False)
        self.weights: torch.Tensor
        self.register_buffer("weights", w / w.sum())

    @property
    def spec(self) -> Backbone:
        first: NIMA = self.models[0]  # type: ignore[assignment]
        return first.spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(w * m(x) for w, m in zip(self.weights, self.models))  # type: ignore[return-value]


def buckets_like(dist: torch.Tensor) -> torch.Tensor:
    """The score of each bucket, 1..N, on dist's device and dtype: (N,)."""
    return torch.arange(1, dist.shape[-1] + 1, device=dist.device, dtype=dist.dtype)


def mean_score(dist: torch.Tensor) -> torch.Tensor:
    """Mean score of (B,N) distributions over 1..N: (B,).

    >>> mean_score(torch.tensor([[0.0, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 0]]))
    tensor([2.5000])
    """
    return (dist * buckets_like(dist)).sum(-1)


def std_score(dist: torch.Tensor) -> torch.Tensor:
    """Standard deviation of (B,N) distributions over 1..N: (B,).

    >>> std_score(torch.tensor([[0.0, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 0]]))
    tensor([0.5000])
    """
    mu = mean_score(dist).unsqueeze(-1)
    return ((dist * (buckets_like(dist) - mu) ** 2).sum(-1)).clamp_min(0).sqrt()
