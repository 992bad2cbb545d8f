"""Training losses: the earth mover's distance between score distributions, a hinge ranking loss
on synthetic groups, a hinge on preference pairs and the fidelity loss on pairs of rated images."""

from __future__ import annotations

import math

import torch


def emd(p: torch.Tensor, q: torch.Tensor, r: float = 2.0) -> torch.Tensor:
    """Normalised EMD of the NIMA paper: (mean_k |CDF_p(k) - CDF_q(k)|^r)^(1/r), per sample.

    p, q: (B,N) distributions over ordered buckets. Returns (B,). r = 2 trains (smooth);
    r = 1 is what papers report. Average the result over the batch yourself: one root per sample,
    not one root over the batch.

    >>> emd(torch.tensor([[1.0, 0, 0]]), torch.tensor([[0, 0, 1.0]]), r=1)
    tensor([0.6667])
    """
    diff = (p.cumsum(-1) - q.cumsum(-1)).abs()
    if r == 1:
        return diff.mean(-1)
    # A small floor keeps the gradient of the root finite when p == q.
    return (diff.pow(r).mean(-1) + 1e-12).pow(1.0 / r)


def rank_loss(scores: torch.Tensor, level: torch.Tensor, family: torch.Tensor, margin: float,
              weight: torch.Tensor | None = None) -> torch.Tensor:
    """Hinge ranking loss within one synthetic group.

    scores, level, family: (K,). Level 0 is the anchor (the pristine image). Pairs: the anchor above
    every distortion, and within a family a lower level above a higher one; the required gap is
    ``margin`` per level of difference. ``weight`` (K,), optional: each pair counts as much as
    the weight of its worse member. Returns the (weighted) mean hinge over pairs (a scalar).
    """
    better = (level[:, None] == 0) & (level[None, :] > 0)
    better |= (family[:, None] == family[None, :]) & (level[:, None] > 0) & (level[:, None] < level[None, :])
    if not better.any():
        return scores.sum() * 0
    gap = margin * (level[None, :] - level[:, None]).to(scores.dtype)
    hinge = torch.relu(gap - (scores[:, None] - scores[None, :]))
    if weight is None:
        return hinge[better].mean()
    w = weight.to(scores.dtype)[None, :].expand_as(hinge)[better]
    return (hinge[better] * w).sum() / w.sum()


def pair_loss(better: torch.Tensor, worse: torch.Tensor, margin: float) -> torch.Tensor:
    """Hinge on preference pairs: better, worse (P,) mean scores; the better image of each pair
    should score at least ``margin`` above the worse one. Returns the mean hinge (a scalar)."""
    return torch.relu(margin - (better - worse)).mean()


def _normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def fidelity_loss(pred: torch.Tensor, human: torch.Tensor, human_std: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Fidelity loss on every pair of a batch from one dataset (Tsai et al., 2007; as UNIQUE uses it).

    pred (B,) predicted means; human, human_std (B,) the human means and their standard deviations,
    on any one scale. The probability that image i is better than j is Phi((h_i - h_j) /
    sqrt(s_i^2 + s_j^2)) for the humans (Thurstone's model) and Phi((p_i - p_j) / (sqrt(2) *
    ``scale``)) for the model; the loss is 1 - sqrt(p q) - sqrt((1-p)(1-q)), averaged over pairs.
    It only compares images of one batch, so scores need not be comparable across datasets.
    Returns a scalar (0 for a batch of one).

    >>> float(fidelity_loss(torch.tensor([9.0, 1.0]), torch.tensor([1.0, 0.0]), torch.tensor([1e-3, 1e-3]))) < 1e-4
    True
    """
    i, j = torch.triu_indices(len(pred), len(pred), offset=1, device=pred.device)
    if i.numel() == 0:
        return pred.sum() * 0
    p = _normal_cdf((human[i] - human[j]) / (human_std[i] ** 2 + human_std[j] ** 2).sqrt().clamp_min(1e-6))
    q = _normal_cdf((pred[i] - pred[j]) / (math.sqrt(2) * scale))
    eps = 1e-8
    return (1 - (p * q + eps).sqrt() - ((1 - p) * (1 - q) + eps).sqrt()).mean()
