"""Preference pairs: reading the CSV, the shared view, the hinge, and training with them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nima import load_checkpoint
from nima.data.pairs import PreferencePairs, read_pairs
from nima.training import TrainConfig, pair_loss, train


def _photo_and_noisy(folder: Path, i: int, shape: tuple[int, int] = (60, 90)) -> tuple[Path, Path]:
    """A smooth photo and the same photo with strong noise."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    smooth = np.stack([xx / shape[1], yy / shape[0], 0.5 + 0.3 * np.sin(xx / (6 + 3 * i))], -1)
    noisy = np.clip(smooth + np.random.default_rng(i).normal(0, 0.25, smooth.shape), 0, 1)
    paths = folder / f"p{i}.png", folder / f"p{i}.noisy.png"
    for path, arr in zip(paths, (smooth, noisy)):
        Image.fromarray((arr * 255).round().astype(np.uint8)).save(path)
    return paths


def _pairs_csv(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["better,worse"]
    for i in range(n):
        good, bad = _photo_and_noisy(folder, i)
        rows.append(f"{good.name},{bad.resolve() if i == 0 else bad.name}")  # relative and absolute both work
    csv = folder / "pairs.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


def test_read_pairs_resolves_paths_and_names_the_file_and_line_of_a_fault(tmp_path: Path) -> None:
    csv = _pairs_csv(tmp_path / "pairs")
    pairs = read_pairs(csv)
    assert [(Path(a).name, Path(b).name) for a, b in pairs] == [(f"p{i}.png", f"p{i}.noisy.png") for i in range(3)]
    assert all(Path(p).is_absolute() for pair in pairs for p in pair)
    broken = tmp_path / "pairs" / "broken.csv"
    broken.write_text("better,worse\np0.png,p0.noisy.png\np1.png,gone.png\n")
    with pytest.raises(ValueError, match=r"broken.csv: line 3: no such image .*gone.png"):
        read_pairs(broken)
    Image.new("RGB", (90, 50)).save(tmp_path / "pairs" / "small.png")
    (tmp_path / "pairs" / "text.png").write_text("not an image")
    for name, worse, fault in (("sizes", "small.png", r"a pair must have one size, got \(90, 60\) and \(90, 50\)"),
                               ("text", "text.png", "cannot read an image")):
        bad = tmp_path / "pairs" / f"{name}.csv"
        bad.write_text(f"better,worse\np0.png,{worse}\n")
        with pytest.raises(ValueError, match=rf"{name}.csv: line 2: {fault}"):
            read_pairs(bad)
    wrong = tmp_path / "pairs" / "wrong.csv"
    wrong.write_text("a,b\np0.png,p1.png\n")
    with pytest.raises(ValueError, match="wrong.csv: expected a CSV with columns better,worse"):
        read_pairs(wrong)


def test_a_pair_shares_one_view_and_is_deterministic(tmp_path: Path) -> None:
    """A brightened copy, seen through the same crop and flip, stays correlated with its original."""
    folder = tmp_path / "p"
    folder.mkdir()
    rng = np.random.default_rng(0)
    base = rng.integers(40, 200, size=(70, 100, 3)).astype(np.uint8)
    Image.fromarray(base).save(folder / "a.png")
    Image.fromarray((base + 40).astype(np.uint8)).save(folder / "b.png")
    ds = PreferencePairs([(str(folder / "a.png"), str(folder / "b.png"))], size=32, long_side=64, pairs_per_epoch=6)
    for i in range(6):
        pair = ds[i]
        assert pair.shape == (2, 3, 32, 32) and torch.equal(pair, ds[i])
        a, b = pair[0].mean(0).flatten(), pair[1].mean(0).flatten()
        assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.9
    Image.fromarray(base[:50]).save(folder / "c.png")
    with pytest.raises(ValueError, match="a pair must have one size"):
        PreferencePairs([(str(folder / "a.png"), str(folder / "c.png"))], size=32, long_side=64)[0]


def test_pair_loss_hand_computed() -> None:
    scores = torch.tensor([[6.0, 5.0], [5.0, 5.1], [4.0, 5.0]])
    # gaps 1.0, -0.1, -1.0 against a margin of 0.5: hinges 0, 0.6, 1.5
    assert float(pair_loss(scores, 0.5)) == pytest.approx((0 + 0.6 + 1.5) / 3)


def test_training_with_pairs_ranks_the_preferred_image_higher(tmp_path: Path) -> None:
    """Same seed and data, with and without pairs: the pairs run separates each pair by more.
    ImageNet features: a randomly initialised backbone gives every image the same features."""
    csv = _pairs_csv(tmp_path / "pairs")
    rated = tmp_path / "rated"
    (rated / "img").mkdir(parents=True)
    rows = ["path,mean,std"]
    for i in range(8):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(rated / "img" / f"{i}.png")
        rows.append(f"img/{i}.png,{3 + i / 2},1.2")
    (rated / "ratings.csv").write_text("\n".join(rows) + "\n")

    def run(name: str, **kw) -> TrainConfig:
        config = TrainConfig(datasets=[f"csv:{rated / 'ratings.csv'}"], out=str(tmp_path / f"{name}.pt"),
                             epochs=3, batch_size=4, frozen_blocks=3, rank_margin=2.0,
                             rank_weight=5.0, lr_backbone=1e-3, lr_head=1e-2, **kw)
        train(config)
        return config

    with_pairs = run("with", pairs=str(csv), pairs_per_step=3)
    without = run("without")
    history = torch.load(with_pairs.run_dir / "last.pt", weights_only=False)["history"]
    assert history[0]["loss_pairs"] > 0
    x = torch.stack(list(PreferencePairs(read_pairs(csv), long_side=224)))  # iteration ends at len: 3 pairs
    gaps = []
    for config in (with_pairs, without):
        model = load_checkpoint(config.out)[0].eval()
        with torch.no_grad():
            s = (model(x.flatten(0, 1)) * torch.arange(1, 11)).sum(-1).view(3, 2)
        gaps.append(float((s[:, 0] - s[:, 1]).mean()))
    assert gaps[0] > gaps[1] + 0.1, gaps
