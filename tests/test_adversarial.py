"""The joint tone edit and the adversarial ranking term: edits a tuner would climb to, ranked below the pristine."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nima.data.synthetic import LEVELS, tone_edit
from nima.model import mean_score
from nima.training import hardest_tone_edit, train

from test_train import _config  # resuming exactly with the term: test_train.test_resume_continues_exactly


def _photo(b: int = 2, h: int = 24, w: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, 3, h, w, generator=g) * 0.8 + 0.1


def test_tone_edit_is_the_identity_at_zero_and_batched() -> None:
    x = _photo()
    assert torch.allclose(tone_edit(x, torch.zeros(2, 5)), x, atol=1e-5)
    theta = torch.tensor([[0.5, -0.3, 0.4, 0.6, -0.2], [-0.4, 0.2, -0.5, -0.6, 0.3]])
    both = tone_edit(x, theta)
    for i in range(2):
        assert torch.allclose(both[i], tone_edit(x[i : i + 1], theta[i : i + 1])[0], atol=1e-6)
    assert not torch.allclose(both, x, atol=0.02)


def test_tone_edit_gradients_are_finite_at_black_white_and_strong_edits() -> None:
    x = torch.cat([torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8), _photo(1, 8, 8)])
    x[2, :, :2] = 0.0  # black and white pixels inside a photo
    x[2, :, -2:] = 1.0
    for scale in (0.0, 0.5, 3.0):
        theta = (torch.randn(3, 5, generator=torch.Generator().manual_seed(1)) * scale).requires_grad_(True)
        y = tone_edit(x, theta)
        (g,) = torch.autograd.grad(y.mean(), theta)
        assert torch.isfinite(y).all() and torch.isfinite(g).all() and y.min() >= 0 and y.max() <= 1


class _Brightness(nn.Module):
    """A toy scorer: the brighter the image, the higher its mean score."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(20.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.mean((1, 2, 3))[:, None]
        return torch.softmax(self.w * b * torch.arange(10.0) / 10, dim=1)


def test_hardest_tone_edit_climbs_the_score_at_a_fixed_strength() -> None:
    model, x = _Brightness(), _photo(4)
    level = torch.tensor([1, 2, 4, LEVELS])
    start = hardest_tone_edit(model, x, level, 0, torch.Generator().manual_seed(3))
    found = hardest_tone_edit(model, x, level, 4, torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (mean_score(model(found)) > mean_score(model(start)) + 0.05).all()
        assert (mean_score(model(found)) > mean_score(model(x))).all()
    assert model.w.grad is None  # the search leaves the weights alone
    # the strength is fixed: the edit does not shrink back to the identity, and grows with the level
    change = (found - x).abs().mean((1, 2, 3))
    assert (change > 0.01).all() and change[3] > change[0]


def test_training_with_the_adversarial_term_logs_it_and_saves_its_generator(tmp_path: Path) -> None:
    config = _config(tmp_path / "a", epochs=1, adversarial=1)
    train(config)
    history = torch.load(config.run_dir / "last.pt", weights_only=False)["history"]
    assert history[0]["loss_adv"] > 0  # a random backbone scores every image alike: the margin is unmet
    assert "rng_adv" in torch.load(config.run_dir / "last.pt", weights_only=False)
