"""One photo, one score: the headline ``tune`` records and prints, ``batch``'s manifest and
``rank`` are the whole-photo score ``enhance score`` gives the same file; the tuner's own
objective is labelled as such."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import cli
from nima import NIMA, save_checkpoint


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "w.pt"
    save_checkpoint(path, NIMA(pretrained=True), {})
    return str(path)


def _photo(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(20, 140, 80)[None, :, None] * np.ones((60, 1, 3))
    Image.fromarray(np.clip(ramp + rng.normal(0, 8, ramp.shape), 0, 255).astype(np.uint8)).save(path)
    return path


def _run(*args: object) -> str:
    got = CliRunner().invoke(cli.main, [str(a) for a in args])
    assert got.exit_code == 0, got.output
    return got.output


def _score(path: Path, weights: str) -> float:
    return float(json.loads(_run("score", path, "--weights", weights, "--device", "cpu", "--json"))["mean"])


def test_tune_records_and_prints_the_score_that_enhance_score_gives(tmp_path: Path, weights: str) -> None:
    src, out = _photo(tmp_path / "a.png", 0), tmp_path / "a.tuned.png"
    text = _run("tune", src, "-o", out, "--op", "exposure", "--steps", "3", "--weights", weights, "--device", "cpu")
    record = json.loads(Path(f"{out}.json").read_text())
    before, after = record["score"]["before"]["mean"], record["score"]["after"]["mean"]
    assert before == pytest.approx(_score(src, weights), abs=1e-4)
    assert after == pytest.approx(_score(out, weights), abs=0.01)  # the output as written: 8-bit rounding
    objective = record["objective"]
    assert f"score {before:.3f}" in text
    assert f"objective {objective['before']['full']['mean']:.3f}" in text


def test_batch_manifest_and_rank_name_the_same_score(tmp_path: Path, weights: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        _photo(folder / f"{i}.png", i)
    _run("batch", folder, "-o", tmp_path / "out", "--op", "exposure", "--steps", "2", "--weights", weights,
         "--device", "cpu", "--quiet")
    ranked = {r["path"]: r["mean"] for r in map(json.loads, _run(
        "rank", folder, "--weights", weights, "--device", "cpu", "--json").splitlines())}
    done = [rec for rec in map(json.loads, (tmp_path / "out" / "manifest.jsonl").read_text().splitlines())
            if rec["status"] == "done"]  # each photo also has its "writing" line, written before its output
    assert len(done) == 2
    for rec in done:
        assert rec["before"] == pytest.approx(ranked[rec["path"]], abs=1e-4)
        assert rec["after"] == pytest.approx(_score(tmp_path / "out" / rec["output"], weights), abs=0.01)
