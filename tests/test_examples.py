"""The scripts in examples/ run as a user would run them (a fresh process, default arguments,
outputs into a temporary folder) and do what they print."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import enhance

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
COFFEE = EXAMPLES / "coffee-flat.jpg"


def run_example(name: str, *args: object, cwd: Path) -> str:
    """Run examples/<name> in ``cwd`` with one torch thread; its stdout (fails on a non-zero exit)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_score_folder_writes_a_csv_that_nima_reads_as_a_dataset(tmp_path: Path) -> None:
    from nima.data import open_dataset

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    photo = enhance.read(COFFEE)
    enhance.write(folder / "coffee.png", photo.image)
    enhance.write(folder / "sub" / "dark.png", photo.image * 0.3)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("not a photo")

    out = run_example("score_folder.py", folder, "scores.csv", cwd=tmp_path)

    with open(tmp_path / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == ["photos/coffee.png", "photos/sub/dark.png"]
    assert all(1 <= float(r["mean"]) <= 10 and 0 < float(r["std"]) < 4.5 for r in rows)
    assert rows[0]["mean"] != rows[1]["mean"]
    assert "scored 2 of 3 files" in out
    ratings = open_dataset(f"csv:{tmp_path / 'scores.csv'}")
    assert [Path(s.path).name for s in ratings.samples] == ["coffee.png", "dark.png"]


def test_custom_operator_registers_tunes_and_runs_in_a_recipe(tmp_path: Path) -> None:
    out = run_example("custom_operator.py", "-o", "vignette.jpg", "--steps", 3, cwd=tmp_path)

    assert "strength 0 returns the input exactly: True" in out
    assert re.search(r"tune\(\['vignette'\]\): score [\d.]+ -> [\d.]+", out)
    assert re.search(r"^  vignette: strength=[+-][\d.]+, radius=\+[\d.]+$", out, re.M)
    assert "name = \"vignette\"" in (tmp_path / "vignette.toml").read_text()
    assert enhance.read(tmp_path / "vignette.jpg").image.shape == enhance.read(COFFEE).image.shape


def test_perceptual_loss_raises_the_score_and_leaves_the_scorer_frozen(tmp_path: Path) -> None:
    out = run_example("perceptual_loss.py", cwd=tmp_path)

    found = re.search(r"held-out crops: score ([\d.]+) -> ([\d.]+)", out)
    assert found, out
    assert float(found[2]) > float(found[1])
    assert out.splitlines()[0].startswith("step   0") and "L1 to input 0.0000" in out.splitlines()[0]
    assert "scorer still frozen: True" in out


def test_the_snippets_of_docs_python_md_run_in_order(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "python.md").read_text(encoding="utf-8")
    snippets = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(snippets) >= 6
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / COFFEE.name).write_bytes(COFFEE.read_bytes())  # as from the repository root
    (tmp_path / "docs.py").write_text("\n".join(snippets), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "docs.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "coffee.tuned.jpg").exists() and (tmp_path / "toy-ratings" / "toy.pt").exists()
