"""Batch tuning: layout, sidecars, manifest, resume, failures, path safety, kills, ranks, shared fit."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

import cli
from enhance.batch import (
    BatchError, Job, Manifest, plan, read_manifest, recipe_sha256, run, save_fit, shard, target, tuner_for,
)
from enhance.io import read
from enhance.recipe import Recipe, load_recipe
from enhance.params import params_from_values
from enhance.render import TuneError, apply_pipeline
from enhance.tune import fit_shared, tune, tune_batch
from enhance.views import Views
from nima import NIMA, Scorer, load_scorer, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = ["a.png", "b.jpg", "sub/c.png", "sub/deeper/d.jpg"]
ARGS = ["--op", "tonemap", "--steps", "2", "--seed", "0", "--quiet", "--no-predict"]  # the manifest's mechanics; predictions: test_fast_path


def _model(seed: int = 0) -> NIMA:
    """A random NIMA whose score depends on the image: PyTorch's default init shrinks the
    activations to ~1e-8 over the backbone (a constant score), a variance-preserving one does not."""
    torch.manual_seed(seed)
    model = NIMA(pretrained=False)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    nn.init.normal_(model.head.weight, std=0.05)
    return model


def _photo(path: Path, seed: int, size: tuple[int, int] = (48, 64)) -> None:
    g = np.random.default_rng(seed)
    base = g.random(3) * 150 + 30
    pixels = (base + g.normal(0, 25, (*size, 3))).clip(0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=95)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _images(folder: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every output image under ``folder`` (not sidecars or manifests)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.suffix in (".png", ".jpg")}


def _invoke(*args: str | Path) -> object:
    return CliRunner().invoke(cli.main, ["batch", *map(str, args)], catch_exceptions=False)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Input photos, a weights file and a reference run of ``batch`` (one torch thread, so that
    subprocess runs with OMP_NUM_THREADS=1 compute bit for bit the same)."""
    root = tmp_path_factory.mktemp("batch")
    weights = root / "w.pt"
    save_checkpoint(weights, _model())
    src = root / "in"
    for i, rel in enumerate(LAYOUT):
        _photo(src / rel, i)
    hashes = {p: _sha(p) for p in src.rglob("*") if p.is_file()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = _invoke(src, "-o", root / "base", *ARGS, "--weights", weights)
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return {"root": root, "weights": weights, "src": src, "base": root / "base", "hashes": hashes,
            "stdout": result.stdout}


def test_layout_sidecars_and_manifest(world):
    base = world["base"]
    assert sorted(_images(base)) == LAYOUT
    assert "4 done, 0 failed, 0 skipped" in world["stdout"]
    records = {r["output"]: r for r in read_manifest(base)}
    assert sorted(records) == LAYOUT and (base / "manifest.jsonl").is_file()
    for rel, rec in records.items():
        out = base / rel
        assert rec["status"] == "done" and rec["error"] is None
        assert rec["path"] == str(world["src"] / rel)
        assert rec["input_sha256"] == world["hashes"][world["src"] / rel]
        assert rec["output_sha256"] == _sha(out)
        assert set(rec["seconds"]) == {"read", "tune", "render", "write"}
        assert isinstance(rec["before"], float) and isinstance(rec["after"], float)
        side = json.loads(Path(f"{out}.json").read_text())
        objective = side["objective"]  # tune keeps the input when its objective cannot improve
        assert objective["after"]["full"]["mean"] > objective["before"]["full"]["mean"] or side["kept_input"]
        assert side["ops"] == rec["params"] and side["ops"][0]["name"] == "tonemap"
        assert side["score"]["before"]["mean"] == pytest.approx(rec["before"], abs=1e-4)
        assert side["score"]["after"]["mean"] == pytest.approx(rec["after"], abs=1e-4)
        assert read(out).image.shape == read(world["src"] / rel).image.shape


def test_report_shows_the_tuned_photos_and_leaves_out_the_failed(world, tmp_path):
    src = tmp_path / "in"
    shutil.copytree(world["src"], src)
    (src / "sub" / "broken.png").write_bytes(b"not a png")
    report = tmp_path / "report.html"
    result = _invoke(src, "-o", tmp_path / "out", *ARGS, "--weights", world["weights"], "--report", report)
    assert result.exit_code == 1 and "4 done, 1 failed, 0 skipped" in result.stdout
    page = report.read_text(encoding="utf-8")
    assert page.count('<article class="item') == 4 and "broken.png" not in page
    assert page.count("data:image/jpeg;base64,") == 8  # before and after of each
    assert "<b>4</b> tuned" in page


def test_inputs_never_modified(world):
    assert {p: _sha(p) for p in world["src"].rglob("*") if p.is_file()} == world["hashes"]


def test_resume_skips_and_changes_redo(world, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(world["base"], out)
    before = _images(out)
    again = _invoke(world["src"], "-o", out, *ARGS, "--weights", world["weights"], "--json")
    assert again.exit_code == 0
    lines = [json.loads(line) for line in again.stdout.splitlines()]  # nothing but JSON lines on stdout
    assert [r["status"] for r in lines] == ["skipped"] * 4
    assert "0 done, 0 failed, 4 skipped" in again.stderr
    assert _images(out) == before

    (out / "b.jpg").write_bytes(b"damaged")  # an output that is no longer what the manifest says
    fix = _invoke(world["src"], "-o", out, *ARGS, "--weights", world["weights"])
    assert "1 done, 0 failed, 3 skipped" in fix.stdout
    assert _images(out) == before

    other = _invoke(world["src"] / "a.png", "-o", out, *ARGS, "--weights", world["weights"], "--seed", "1")
    assert "1 done, 0 failed, 0 skipped" in other.stdout  # another seed, another recipe hash: redone
    shas = {r["recipe_sha256"] for r in read_manifest(out) if r["output"] == "a.png" and r["status"] == "done"}
    assert len(shas) == 2


def test_two_jobs_give_the_same_bytes(world, tmp_path):
    """--jobs 2: two photos tuned at once in threads (one torch thread each here)."""
    result = _invoke(world["src"], "-o", tmp_path / "out", *ARGS, "--weights", world["weights"], "--jobs", "2")
    assert result.exit_code == 0 and "4 done" in result.stdout
    assert _images(tmp_path / "out") == _images(world["base"])


def test_groups_tune_together(world, tmp_path):
    """The GPU path, run on the CPU: photos tuned two at a time with tune_batch; a group that
    fails is retried photo by photo, so only the bad photo fails."""
    scorer = load_scorer(world["weights"])
    recipe = Recipe.from_ops(["tonemap"])
    (tmp_path / "zz.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # a PNG signature and nothing else
    jobs, _ = plan([world["src"], tmp_path / "zz.png"], tmp_path / "out")
    real = tuner_for(recipe, scorer, steps=2, seed=0, strength=recipe.strength)

    def picky(photos):
        if any(p.path.endswith("d.jpg") for p in photos):
            raise TuneError("non-finite values in the score during tuning")
        return real(photos)

    sha = recipe_sha256(recipe, 2, 0, recipe.strength, "tune")
    records = list(run(jobs, tmp_path / "out", picky, Manifest(tmp_path / "m.jsonl"), scorer=scorer,
                       recipe=recipe, recipe_sha=sha, group=2))
    assert [(r["output"], r["status"]) for r in records] == [
        ("a.png", "done"), ("b.jpg", "done"), ("sub/c.png", "done"), ("sub/deeper/d.jpg", "failed"),
        ("zz.png", "failed")]
    assert "d.jpg: TuneError: non-finite" in records[3]["error"]
    base = {r["output"]: r for r in read_manifest(world["base"])}
    for r in records[:3]:
        assert r["params"][0]["params"] == pytest.approx(base[r["output"]]["params"][0]["params"], abs=1e-3)


def test_torn_manifest_line_and_stale_temps(world, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(world["base"], out)
    with open(out / "manifest.jsonl", "a") as f:
        f.write('{"path": "half a li')  # a kill in the middle of a line
    stale = [out / ".a.png.0123abcd.tmp", out / "sub" / ".c.png.json.89abcdef.tmp"]
    keep = out / ".notes.tmp"  # not a name atomic_path makes
    for p in [*stale, keep]:
        p.write_bytes(b"x")
    result = _invoke(world["src"], "-o", out, *ARGS, "--weights", world["weights"])
    assert result.exit_code == 0 and "4 skipped" in result.stdout
    assert not any(p.exists() for p in stale) and keep.exists()
    last = (out / "manifest.jsonl").read_text().splitlines()[-5:]
    assert last[0] == '{"path": "half a li' and all(json.loads(x)["status"] == "skipped" for x in last[1:])


def test_failures_are_isolated(world, tmp_path):
    src = tmp_path / "in"
    _photo(src / "good.png", 7)
    (src / "sub").mkdir()
    (src / "sub" / "cut.png").write_bytes((src / "good.png").read_bytes()[:150])  # truncated
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    result = _invoke(src, text, "-o", tmp_path / "out", *ARGS, "--weights", world["weights"])
    assert result.exit_code == 1
    assert "1 done, 2 failed, 0 skipped" in result.stdout
    records = {r["output"]: r for r in read_manifest(tmp_path / "out")}
    assert records["good.png"]["status"] == "done"
    for rel in ("sub/cut.png", "notes.jpg"):
        assert records[rel]["status"] == "failed"
        assert rel.split("/")[-1] in records[rel]["error"] and "\n" not in records[rel]["error"]
        assert not (tmp_path / "out" / rel).exists()
    assert "enhance: " in result.stderr and "cut.png" in result.stderr


def test_output_never_leaves_outdir(world, tmp_path):
    src, out, outside = tmp_path / "in", tmp_path / "out", tmp_path / "outside"
    src.mkdir()
    shutil.copy(world["src"] / "a.png", src / "a.png")
    shutil.copytree(world["src"] / "sub", src / "sub")
    outside.mkdir()
    out.mkdir()
    (out / "sub").symlink_to(outside, target_is_directory=True)  # a folder that points elsewhere
    result = _invoke(src, "-o", out, *ARGS, "--weights", world["weights"])
    assert result.exit_code == 1
    records = {r["output"]: r for r in read_manifest(out)}
    assert records["a.png"]["status"] == "done"
    assert records["sub/c.png"]["status"] == "failed" and "would leave" in records["sub/c.png"]["error"]
    assert list(outside.rglob("*")) == []
    with pytest.raises(BatchError):
        target(out, "../escape.png")
    assert not (tmp_path / "escape.png").exists()
    inside = _invoke(src, "-o", src / "enhanced", *ARGS, "--weights", world["weights"])
    assert inside.exit_code == 2 and "inside the input folder" in inside.stderr


def test_plan_and_shard(world, tmp_path):
    jobs, missing = plan([world["src"], tmp_path / "nope", world["src"] / "sub"], tmp_path / "o")
    assert missing == [tmp_path / "nope"]
    assert [j.rel for j in jobs] == sorted(LAYOUT + ["c.png", "deeper/d.jpg"])
    assert jobs[0] == Job(world["src"] / "a.png", "a.png")
    with pytest.raises(BatchError, match="both"):
        plan([world["src"], world["src"] / "a.png"], tmp_path / "o")  # two inputs for OUTDIR/a.png
    parts = [shard(jobs, r, 4) for r in range(4)]
    assert [len(p) for p in parts] == [2, 2, 1, 1]
    assert sorted(j.rel for p in parts for j in p) == [j.rel for j in jobs] and parts[1][0] == jobs[1]


def test_killed_runs_resume_to_the_same_bytes(world, tmp_path):
    """SIGKILL ``batch`` at seeded random points, resume each time: the outputs equal an
    uninterrupted run's byte for byte and no temp file is left."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cli", "batch", str(world["src"]), "-o", str(out), *ARGS,
           "--weights", str(world["weights"])]
    rng = np.random.default_rng(5)
    def done() -> int:
        return sum(r["status"] == "done" for r in read_manifest(out)) if out.exists() else 0

    killed = 0
    for _ in range(3):
        # kill after 1 or 2 more photos plus a random delay, always with a photo left to do: a
        # run that reached its last photo could end (and escape the kill) within the delay
        wait_for = min(done() + int(rng.integers(1, 3)), len(LAYOUT) - 1)
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and done() < wait_for:
            time.sleep(0.05)
        time.sleep(float(rng.uniform(0, 0.6)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
    assert killed >= 2
    final = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert _images(out) == _images(world["base"])
    assert list(out.rglob("*.tmp")) == []
    done = {r["output"] for r in read_manifest(out) if r["status"] in ("done", "skipped")}
    assert done == set(LAYOUT)


def _torchrun(*args: str | Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "cli", "batch", *map(str, args), "--distributed"]
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)


def test_two_ranks_give_the_same_files(world, tmp_path):
    out = tmp_path / "out"
    run = _torchrun(world["src"], "-o", out, *ARGS, "--weights", world["weights"], "--report", tmp_path / "r.html")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "4 done, 0 failed, 0 skipped" in run.stdout  # rank 0 reports every rank's photos
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert page.count('<article class="item') == 4 and all(f"<h2>{world['src'] / rel}" in page for rel in LAYOUT)
    assert _images(out) == _images(world["base"])
    parts = sorted(p.name for p in out.glob("manifest*.jsonl"))
    assert parts == ["manifest.rank0.jsonl", "manifest.rank1.jsonl"]
    for part in parts:  # each rank's two photos: a "writing" line, then a "done" line
        assert [json.loads(x)["status"] for x in (out / part).read_text().splitlines()] == ["writing", "done"] * 2
    again = _invoke(world["src"], "-o", out, *ARGS, "--weights", world["weights"])  # world size 1 resumes
    assert "0 done, 0 failed, 4 skipped" in again.stdout


def test_two_ranks_shared_fit(world, tmp_path):
    out = tmp_path / "out"
    run = _torchrun(world["src"], "-o", out, *ARGS, "--weights", world["weights"], "--shared")
    assert run.returncode == 0, run.stderr[-3000:]
    fitted = load_recipe(out / "fitted.toml")
    records = [r for r in read_manifest(out) if r["status"] == "done"]
    assert len(records) == 4
    assert all(r["params"][0]["params"] == pytest.approx(fitted.stages[0].start, abs=1e-6) for r in records)


def _tensor_photos(n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    sizes = [(48, 64), (40, 56), (64, 48)]
    return [(torch.rand(1, 3, *sizes[i % 3], generator=g) * 0.5 + 0.25 * (i % 3)).clamp(0, 1) for i in range(n)]


def test_tune_batch_matches_tune():
    """Every image keeps its own parameters, views and early stop: the same path as tune() on
    each image alone (a few steps: on a rough random scorer, batched and unbatched rounding
    differences grow over many)."""
    scorer = Scorer(_model(1))
    images = _tensor_photos(2)
    recipe = Recipe.from_ops(["tonemap"])
    together = tune_batch(images, recipe, scorer, steps=3, crops=1)
    for image, (output, result) in zip(images, together):
        alone, expected = tune(image, recipe, scorer, steps=3, crops=1)
        assert result.kept_input == expected.kept_input and result.steps == expected.steps
        for got, want in zip(result.values, expected.values):
            assert got == pytest.approx(want, abs=1e-4)
        assert result.history == pytest.approx(expected.history, abs=1e-4)
        assert torch.allclose(output, alone, atol=1e-4)
    assert any(v != 0 for r in together for v in r[1].values[0].values())  # it did tune something


def _set_score(scorer: Scorer, images: list[torch.Tensor], recipe: Recipe, values: list[dict]) -> float:
    """Mean over the set of the views' mean scores with ``values``, computed here independently."""
    size = scorer.input_size
    params = params_from_values(recipe, values)
    with torch.no_grad():
        return float(torch.stack([scorer.mean(Views.of(im, recipe, 2, size, 0).render(
            size, lambda x, ref: apply_pipeline(x, recipe, params, ref))).mean() for im in images]).mean())


def test_fit_shared_raises_the_set_or_keeps_it(tmp_path):
    images = _tensor_photos(2)
    recipe = Recipe.from_ops(["tonemap"])
    identity = [{"exposure": 0.0, "shadows": 0.0, "highlights": 0.0}]
    scorer = Scorer(_model(0))
    fit = fit_shared(images, recipe, scorer, steps=3, batch_size=1, seed=0)
    assert fit.images == 2 and len(fit.history) == 3
    assert not fit.kept_input and fit.after > fit.before  # this seeded set does gain
    assert _set_score(scorer, images, recipe, fit.values) == pytest.approx(fit.after, abs=1e-4)
    assert _set_score(scorer, images, recipe, identity) == pytest.approx(fit.before, abs=1e-4)
    path = save_fit(tmp_path, fit.recipe(recipe), "k", 2)
    back = load_recipe(path)
    assert [dict(s.start) for s in back.stages] == fit.values
    assert back.to_toml() == fit.recipe(recipe).to_toml()

    rough = Scorer(_model(2))  # on this scorer every step lowers the set's score: keep the photos
    kept = fit_shared(images, recipe, rough, steps=3, batch_size=2, seed=0)
    assert kept.kept_input and kept.values == identity and kept.after == kept.before


def test_fit_shared_with_select_best_keeps_one_stage(tmp_path):
    images = _tensor_photos(2)
    recipe = replace(Recipe.from_ops(["tonemap", "contrast"]), select="best")
    scorer = Scorer(_model(0))
    fit = fit_shared(images, recipe, scorer, steps=3, batch_size=1, seed=0)
    alone = [fit_shared(images, recipe.alone(i), scorer, steps=3, batch_size=1, seed=0) for i in range(2)]
    gains = [f.after - f.before for f in alone]
    best = max(range(2), key=lambda i: gains[i])
    assert not alone[best].kept_input and fit.values[best] == alone[best].values[0]
    other = recipe.stages[1 - best]
    assert fit.values[1 - best] == {p.name: p.identity for p in other.specs}
    assert fit.after == alone[best].after and fit.steps == 6
    assert _set_score(scorer, images, recipe, fit.values) == pytest.approx(fit.after, abs=1e-4)


def test_shared_cli_writes_fitted_toml_and_resumes(world, tmp_path):
    out = tmp_path / "out"
    args = [world["src"], "-o", out, *ARGS, "--weights", world["weights"], "--shared"]
    first = _invoke(*args)
    assert first.exit_code == 0, first.output
    assert "fit on 4 images: mean objective" in first.stdout and "worse" in first.stdout
    fitted = load_recipe(out / "fitted.toml")
    records = [r for r in read_manifest(out) if r["status"] == "done"]
    assert len(records) == 4
    assert all(r["params"][0]["params"] == pytest.approx(fitted.stages[0].start, abs=1e-6) for r in records)
    again = _invoke(*args)
    assert "fit on" not in again.stdout and "0 done, 0 failed, 4 skipped" in again.stdout
    reuse = _invoke(world["src"] / "a.png", "-o", tmp_path / "out2", "--recipe", out / "fitted.toml",
                    "--steps", "1", "--quiet", "--weights", world["weights"])
    assert reuse.exit_code == 0 and "1 done" in reuse.stdout
