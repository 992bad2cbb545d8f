"""The command line: score, eval, tune, apply, recipes and rank on small files."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
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
    save_checkpoint(path, NIMA(pretrained=True), {"val_split": ["img/0.png", "img/2.png"]})
    return str(path)


def _photo(path: Path, seed: int = 0, size: tuple[int, int] = (72, 56)) -> Path:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(20, 140, size[0])[None, :, None] * np.ones((size[1], 1, 3))
    arr = np.clip(ramp + rng.normal(0, 8, ramp.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _run(*args: str) -> "CliRunner.invoke":  # type: ignore[valid-type]
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_score_json_and_a_bad_file_among_good_ones(tmp_path: Path, weights: str) -> None:
    good = [_photo(tmp_path / "a.png"), _photo(tmp_path / "sub" / "b.png", 1)]
    (tmp_path / "bad.jpg").write_bytes(b"this is not a photo")
    result = _run("score", tmp_path, tmp_path / "bad.jpg", "--weights", weights, "--json")
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(Path(d["path"]).name for d in lines) == ["a.png", "b.png"]
    assert all(set(d) == {"path", "mean", "std", "dist"} and len(d["dist"]) == 10 for d in lines)
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and "bad.jpg" in errors[0] and "not an image" in errors[0]
    assert all(_sha(p) for p in good)


def test_eval_prints_json_with_the_keys(tmp_path: Path, weights: str) -> None:
    rows = ["path,mean,std"] + [f"img/{i}.png,{3 + i},1.0" for i in range(4)]
    for i in range(4):
        _photo(tmp_path / "img" / f"{i}.png", i)
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    result = _run("eval", "--dataset", f"csv:{tmp_path / 'r.csv'}", "--weights", weights, "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert {"n", "srcc", "plcc", "emd1", "emd2"} <= set(figures) and figures["n"] == 4
    split = _run("eval", "--dataset", f"csv:{tmp_path / 'r.csv'}", "--weights", weights, "--split", "val", "--json")
    assert split.exit_code == 0 and json.loads(split.stdout)["n"] == 2


def test_tune_writes_output_and_sidecar_beside_the_input_and_never_touches_it(tmp_path: Path, weights: str) -> None:
    src = _photo(tmp_path / "photo.png")
    before = _sha(src)
    result = _run("tune", src, "--op", "tonemap", "--steps", "2", "--weights", weights, "--json")
    assert result.exit_code == 0, result.output
    out, side = tmp_path / "photo.enhanced.png", tmp_path / "photo.enhanced.png.json"
    record = json.loads(side.read_text())
    assert json.loads(result.stdout) == record
    assert record["ops"][0]["name"] == "tonemap" and record["weights_sha256"] and record["version"]
    assert {"read", "tune", "render", "write"} <= set(record["seconds"])
    assert out.is_file() and _sha(src) == before
    # An existing output is kept unless --force; the input is never a target.
    again = _run("tune", src, "--op", "tonemap", "--steps", "1", "--weights", weights)
    assert again.exit_code == 2 and "already exists" in again.stderr
    onto_input = _run("tune", src, "-o", src, "--op", "tonemap", "--weights", weights)
    assert onto_input.exit_code == 2 and "refusing to overwrite the input" in onto_input.stderr
    assert _sha(src) == before


def test_tune_bad_input_fails_cleanly_and_writes_nothing(tmp_path: Path, weights: str) -> None:
    for name, data in (("empty.jpg", b""), ("text.png", b"hello"), ("cut.png", None)):
        path = tmp_path / name
        if data is None:
            full = _photo(tmp_path / "full.png").read_bytes()
            data = full[: len(full) // 2]
        path.write_bytes(data)
        result = _run("tune", path, "--op", "exposure", "--weights", weights)
        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1 and name in result.stderr
        assert not list(tmp_path.glob(f"{Path(name).stem}.enhanced*"))


def test_a_damaged_tiff_gives_one_line_and_no_decoder_chatter(tmp_path: Path) -> None:
    """Pillow warns and tifffile logs about this file; in a real process only enhance's line shows."""
    rgb = np.random.default_rng(1).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    full = tmp_path / "full.tif"
    Image.fromarray(rgb).save(full, compression="tiff_lzw")
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full.read_bytes()[:-1])  # the last byte of the directory
    run = subprocess.run([sys.executable, "-c", "import cli; cli.main()", "score", str(cut)],
                         capture_output=True, text=True, cwd=Path(cli.__file__).parent, timeout=120)
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()
    assert line.startswith(f"enhance: {cut}: ")


def test_apply_reproduces_the_tuned_image(tmp_path: Path, weights: str) -> None:
    src = _photo(tmp_path / "p.png")
    out = tmp_path / "t.png"
    assert _run("tune", src, "-o", out, "--op", "contrast", "--steps", "3", "--strength", "0",
                "--weights", weights).exit_code == 0
    again = tmp_path / "again.png"
    result = _run("apply", src, "-o", again, "--params", f"{out}.json")
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(again)))


def test_a_select_best_recipe_tunes_one_operator_and_apply_reproduces_it(tmp_path: Path, weights: str) -> None:
    src = _photo(tmp_path / "p.png")
    recipe = tmp_path / "r.toml"
    recipe.write_text('select = "best"\nsteps = 3\nstrength = 0\n[[op]]\nname = "exposure"\n'
                      '[[op]]\nname = "contrast"\n')
    out = tmp_path / "t.png"
    result = _run("tune", src, "-o", out, "--recipe", recipe, "--weights", weights)
    assert result.exit_code == 0, result.output
    record = json.loads(Path(f"{out}.json").read_text())
    assert [o["name"] for o in record["ops"]] == ["exposure", "contrast"]
    moved = [o["name"] for o in record["ops"] if o["params"] != {"ev": 0.0} and
             o["params"] != {"amount": 0.0, "midpoint": 0.5, "saturation": 1.0}]
    assert len(moved) == 1 and "kept of the operators tuned alone" in record["note"]
    assert record["note"] in result.stdout
    again = tmp_path / "again.png"
    assert _run("apply", src, "-o", again, "--params", f"{out}.json").exit_code == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(again)))


def test_recipes_lists_recipes_and_operators() -> None:
    result = _run("recipes")
    assert result.exit_code == 0
    for name in ("auto", "lowlight", "portrait", "tonemap", "denoise", "exposure", "white_balance", "sharpen"):
        assert name in result.stdout


def test_tune_refuses_a_bad_recipe_naming_the_line(tmp_path: Path, weights: str) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('[[op]]\nname = "exposure"\nparams.ev = { lo = -99.0 }\n')
    result = _run("tune", _photo(tmp_path / "p.png"), "--recipe", recipe, "--weights", weights)
    assert result.exit_code == 2 and "r.toml (line 3)" in result.stderr


def test_rank_sorts_best_first(tmp_path: Path, weights: str) -> None:
    for i in range(3):
        _photo(tmp_path / f"{i}.png", i)
    result = _run("rank", tmp_path, "--weights", weights, "--json", "--top", "2")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2] and rows[0]["mean"] >= rows[1]["mean"]
