"""Shared test fixtures: paths to the read-only data beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
KODAK = SHARED / "kodak"
CLIVE = SHARED / "clive"

needs_kodak = pytest.mark.skipif(not KODAK.is_dir(), reason="../shared/data/kodak not present (a fresh clone)")
needs_clive = pytest.mark.skipif(not CLIVE.is_dir(), reason="../shared/data/clive not present (a fresh clone)")

torch.set_num_threads(min(torch.get_num_threads(), 2))


@pytest.fixture(scope="session")
def tiny_scorer():
    """ImageNet features with a random (seeded) head: fast, differentiable, no weights file needed.
    (A backbone with random weights would give every image the same score.)"""
    from nima import NIMA, Scorer

    torch.manual_seed(0)
    return Scorer(NIMA("efficientnet_lite0", pretrained=True))



@pytest.fixture(scope="session")
def weights_file(tmp_path_factory: pytest.TempPathFactory, tiny_scorer) -> str:
    """``tiny_scorer``'s model as a checkpoint file, for command-line tests."""
    from nima import save_checkpoint

    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_checkpoint(path, tiny_scorer.model)
    return str(path)


@pytest.fixture(scope="session")
def stage_predictors():
    """``make(recipe, seed)``: one untrained predictor per stage of a ``select = "best"`` recipe, the
    last layer of stage ``k``'s drawn with seed ``seed + k``, so that each predicts values away from
    its identity."""
    from enhance.predict import Predictor

    def make(recipe, seed: int) -> list:  # type: ignore[no-untyped-def]
        nets = []
        for k in range(len(recipe.stages)):
            net = Predictor(recipe.alone(k))
            torch.manual_seed(seed + k)
            with torch.no_grad():
                for p in net.head[-1].parameters():
                    p.normal_(0, 0.5)
            nets.append(net)
        return nets

    return make
