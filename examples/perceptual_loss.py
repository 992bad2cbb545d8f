"""The scorer as a perceptual loss: train a tiny enhancement network to raise its score.

    python examples/perceptual_loss.py [photo] [--steps N] [--lam L]

A 3-layer conv net predicts a per-pixel gain (in EV) for 64x64 crops; the loss is
``-scorer.mean(out).mean() + lam * L1(out, crop)``: climb the predicted mean opinion score
(1..10) while staying near the input. The scorer is frozen (no parameter of its own trains) but
differentiable, so gradients flow through it into the network.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import Tensor, nn

import enhance
import nima

HERE = Path(__file__).resolve().parent


class GainNet(nn.Module):
    """(B,3,H,W) sRGB in [0,1] -> the same, each pixel times 2**g with g in (-1, 1) EV predicted
    per pixel. The last layer starts at zero, so the untrained net is the identity."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        )
        self.gain = nn.Conv2d(width, 1, 3, padding=1)
        for p in self.gain.parameters():
            nn.init.zeros_(p)

    def forward(self, x: Tensor) -> Tensor:
        return (x * torch.exp2(torch.tanh(self.gain(self.body(x))))).clamp(0, 1)


def random_crops(image: Tensor, n: int, size: int, generator: torch.Generator) -> Tensor:
    """``n`` random (size x size) crops of a (1,3,H,W) image: (n,3,size,size)."""
    h, w = image.shape[-2:]
    ys = torch.randint(0, h - size + 1, (n,), generator=generator).tolist()
    xs = torch.randint(0, w - size + 1, (n,), generator=generator).tolist()
    return torch.cat([image[..., y: y + size, x: x + size] for y, x in zip(ys, xs)])


def main() -> None:
    parser = argparse.ArgumentParser(description="Train a tiny enhancement net with the scorer as a loss.")
    parser.add_argument("photo", nargs="?", default=str(HERE / "coffee-flat.jpg"))
    parser.add_argument("--steps", type=int, default=20, help="Adam steps (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=8, help="64x64 crops per step (default: %(default)s)")
    parser.add_argument("--lam", type=float, default=1.0, help="weight of the L1 term (default: %(default)s)")
    parser.add_argument("--weights", help="scorer weights file (default: the shipped ones)")
    args = parser.parse_args()

    torch.manual_seed(0)
    scorer = nima.load_scorer(args.weights)          # frozen; any input size, resized inside
    image = enhance.read(args.photo).image           # (1,3,H,W) sRGB in [0,1]
    gen = torch.Generator().manual_seed(0)
    held_out = random_crops(image, 16, 64, gen)      # fixed crops to report progress on
    net = GainNet()
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)

    def report(step: int) -> float:
        with torch.no_grad():
            out = net(held_out)
            score = float(scorer.mean(out).mean())
            l1 = float((out - held_out).abs().mean())
        print(f"step {step:3d}  held-out score {score:.3f}  L1 to input {l1:.4f}")
        return score

    def full_photo() -> float:  # the net is fully convolutional: it runs on the whole photo too
        with torch.no_grad():
            return float(scorer.mean(net(image)))

    t0 = time.perf_counter()
    full_before = full_photo()
    first = last = report(0)
    for step in range(1, args.steps + 1):
        crops = random_crops(image, args.batch, 64, gen)
        out = net(crops)
        loss = -scorer.mean(out).mean() + args.lam * (out - crops).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 5 == 0 or step == args.steps:
            last = report(step)
    print(f"held-out crops: score {first:.3f} -> {last:.3f} in {args.steps} steps ({time.perf_counter() - t0:.1f} s)")
    print(f"whole photo through the net: score {full_before:.3f} -> {full_photo():.3f}; "
          f"scorer still frozen: {not any(p.requires_grad for p in scorer.parameters())}")


if __name__ == "__main__":
    main()
