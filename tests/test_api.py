"""The command line is a thin layer: the Python API reproduces `enhance tune`, `score` and `rank`
bit for bit for the same arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import cli
import enhance
import nima

ROOT = Path(__file__).resolve().parents[1]
COFFEE = ROOT / "examples" / "coffee-flat.jpg"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint independent of the shipped weights: the ImageNet backbone (a package, nothing is
    downloaded) under a random seeded head. A random backbone would not do: its pooled features are
    the same for every image, and so would be every score."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "w.pt"
    nima.save_checkpoint(path, nima.NIMA(pretrained=True))
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three photos that score differently: the coffee photo, darker and a crop of it."""
    folder = tmp_path_factory.mktemp("photos")
    photo = enhance.read(COFFEE)
    enhance.write(folder / "a.png", photo.image)
    enhance.write(folder / "b.png", photo.image * 0.4)
    enhance.write(folder / "c.png", photo.image[..., 100:300, 150:450])
    return folder


def run(*args: object) -> str:
    result = CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_tune_file_reproduces_enhance_tune_bit_for_bit(weights: Path, tmp_path: Path) -> None:
    by_cli, by_api, by_parts = tmp_path / "cli.jpg", tmp_path / "api.jpg", tmp_path / "parts.jpg"
    run("tune", COFFEE, "--op", "tonemap", "--steps", 3, "--seed", 1, "-o", by_cli, "--weights", weights,
        "--device", "cpu", "--no-predict")  # the API climbs from the identity unless given a predictor
    scorer = nima.load_scorer(weights)
    record = enhance.tune_file(COFFEE, by_api, enhance.Recipe.from_ops(["tonemap"]), scorer, seed=1, steps=3)
    photo = enhance.read(COFFEE)
    out, result = enhance.tune(photo.image, ["tonemap"], scorer, steps=3, seed=1)
    enhance.write(by_parts, out, like=photo)

    cli_record = json.loads(Path(f"{by_cli}.json").read_text())
    assert by_cli.read_bytes() == by_api.read_bytes() == by_parts.read_bytes()
    assert cli_record["ops"] == record["ops"] == result.ops
    assert cli_record["history"] == record["history"] == result.history
    assert cli_record["weights_sha256"] == record["weights_sha256"]
    # a real tuning happened: parameters moved off the identity and the tuned photo was kept
    assert any(v != 0 for v in result.ops[0]["params"].values())
    assert not cli_record["kept_input"] and not result.kept_input


def test_score_files_reproduces_enhance_score_json(weights: Path, photos: Path) -> None:
    lines = run("score", photos, "--json", "--weights", weights, "--device", "cpu").splitlines()
    by_cli = [json.loads(line) for line in lines]
    files = sorted(photos.glob("*.png"))
    results = list(enhance.score_files(files, nima.load_scorer(weights)))
    by_api = [r.as_dict() for r in results if isinstance(r, enhance.FileScore)]
    assert len(by_api) == len(results) == 3
    assert by_cli == by_api
    assert [Path(s["path"]).name for s in by_api] == ["a.png", "b.png", "c.png"]
    assert len({s["mean"] for s in by_api}) == 3


def test_rank_files_reproduces_enhance_rank_json(weights: Path, photos: Path) -> None:
    lines = run("rank", photos, "--json", "--weights", weights, "--device", "cpu").splitlines()
    by_cli = [json.loads(line) for line in lines]
    ranked, errors = enhance.rank_files(sorted(photos.glob("*.png")), nima.load_scorer(weights))
    assert errors == []
    assert by_cli == [{"rank": i, **s.as_dict()} for i, s in enumerate(ranked, 1)]
    means = [s["mean"] for s in by_cli]
    assert means == sorted(means, reverse=True)
