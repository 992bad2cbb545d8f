"""`tune` from a prediction, the fast full-resolution path (draft proxy, LUT render, threads) and
the batched climb of a select = "best" recipe's candidates. No shared data needed."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from cli import main
from enhance import lut
from enhance.climb import climb
from enhance.io import read
from enhance.params import params_from_values
from enhance.predict import Predictor, load_predictor, save_predictor
from enhance.recipe import Recipe
from enhance.render import Source, render
from enhance.tune import full_render, predicted_records


def _photo(path: Path, size: tuple[int, int], seed: int = 0, gain: float = 0.6) -> Path:
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(1, 3, 5, 6, generator=g), size=(size[1], size[0]), mode="bilinear",
                      align_corners=False) * gain
    Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path, quality=95)
    return path


def _predictor(path: Path, names: list[str], seed: int = 0) -> Path:
    """A predictor for the operators ``names`` with random weights in its last layer (an untrained
    one returns the start; this one predicts something else)."""
    predictor = Predictor(Recipe.from_ops(names))
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in predictor.head[-1].parameters():
            p.normal_(0, 0.5)
    save_predictor(path, predictor, {"note": "test"})
    return path


def _run(*args: object) -> "CliRunner.invoke":  # type: ignore[valid-type]
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("name,size", [("small.png", (96, 72)), ("large.jpg", (2300, 1400))])
def test_steps_0_and_the_refinement_write_valid_outputs_and_sidecars(tmp_path: Path, weights_file: str, name: str,
                                                                     size: tuple[int, int]) -> None:
    """The large JPEG takes the draft proxy, the full decode in a thread and the LUT render."""
    src = _photo(tmp_path / name, size)
    predictor = _predictor(tmp_path / "p.pt", ["exposure", "tonemap"])
    for steps in ("0", "3"):
        out = tmp_path / f"out{steps}{Path(name).suffix}"
        r = _run("tune", src, "-o", out, "--op", "exposure", "--op", "tonemap", "--predictor", predictor,
                 "--steps", steps, "--weights", weights_file, "--json")
        assert r.exit_code == 0, r.output + r.stderr
        record = json.loads(Path(f"{out}.json").read_text())
        assert json.loads(r.stdout) == record
        assert read(out).image.shape == read(src).image.shape
        assert [o["name"] for o in record["predicted"]] == ["exposure", "tonemap"]
        assert record["steps"] == int(steps)
        assert ("prediction kept" in record["note"] or "refinement kept" in record["note"]
                or record["kept_input"]), record["note"]
        if steps == "0":
            assert record["ops"] == record["predicted"]
            assert "refinement" not in record["note"]
        if not record["kept_input"]:  # the file holds the render of the recorded parameters
            recipe = Recipe.from_ops(["exposure", "tonemap"])
            want = render(read(src).image, recipe, params_from_values(recipe, [o["params"] for o in record["ops"]]))
            tolerance = 1.5 / 255 if name.endswith(".png") else 6 / 255  # JPEG: its own coding error
            assert float((read(out).image - want.clamp(0, 1)).abs().mean()) < tolerance


def test_a_predicted_jpeg_is_rendered_in_8bit_codes_as_the_float_path_renders_it(tmp_path: Path, weights_file: str,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A JPEG started from a prediction, pointwise operators, 8-bit output: the decoded codes go
    through the colour table, and the engine renders nothing at full resolution; the file (a PNG
    here, lossless) holds the float render of the recorded parameters rounded to 8 bits, within one
    level, or the input's codes where kept."""

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the 8-bit path rendered in float")

    monkeypatch.setattr(importlib.import_module("enhance.tune"), "full_render", never)
    src = _photo(tmp_path / "large.jpg", (2300, 1400))
    names = ["exposure", "tonemap"]
    for seed in (0, 1):
        out = tmp_path / f"out{seed}.png"
        predictor = _predictor(tmp_path / f"p{seed}.pt", names, seed=seed)
        r = _run("tune", src, "-o", out, *[a for n in names for a in ("--op", n)], "--predictor", predictor,
                 "--steps", "0", "--weights", weights_file, "--json")
        assert r.exit_code == 0, r.output + r.stderr
        record, got, photo = json.loads(r.stdout), read(out), read(src)
        assert got.codes is not None and photo.codes is not None
        if record["kept_input"]:
            assert np.array_equal(got.codes, photo.codes)
            continue
        recipe = Recipe.from_ops(names)
        params = params_from_values(recipe, [o["params"] for o in record["ops"]])
        want = lut.to_codes(lut.render(photo.image, recipe, params, levels=256)[0].permute(1, 2, 0))
        assert int(np.abs(got.codes.astype(int) - want).max()) <= 1
        assert not np.array_equal(got.codes, photo.codes)


@pytest.mark.parametrize("moved,start,noise", [(0, 1.5, 0), (1, 0.5, 25)], ids=["exposure kept", "denoise kept"])
def test_a_best_recipe_on_a_jpeg_renders_the_kept_operator(tmp_path: Path, weights_file: str, moved: int,
                                                           start: float, noise: float) -> None:
    """select = "best" on a JPEG from a prediction: a pointwise operator kept goes through the 8-bit
    tables, a spatial one through the float render; either way the file holds the recorded values'
    render (within one level). (The photos and predictions are ones the test scorer prefers to the
    input: a smooth photo brightened, a noisy one denoised.)"""
    from enhance.predict import combine

    src = _photo(tmp_path / "large.jpg", (1400, 1000), seed=2)
    noisy = np.asarray(Image.open(src)).astype(float) + np.random.default_rng(0).normal(0, noise, (1000, 1400, 3))
    Image.fromarray(noisy.clip(0, 255).round().astype(np.uint8)).save(src, quality=95)
    recipe_file = tmp_path / "best.toml"
    recipe_file.write_text('select = "best"\n[[op]]\nname = "exposure"\n[[op]]\nname = "denoise"\n')
    recipe = Recipe.from_ops(["exposure", "denoise"], select="best")
    nets = [Predictor(recipe.alone(k)) for k in range(2)]  # untrained: the identity, but for the one moved
    with torch.no_grad():
        nets[moved].head[-1].bias.fill_(start)
    save_predictor(tmp_path / "p.pt", combine(recipe, nets), {"note": "test"})
    out = tmp_path / "out.png"
    r = _run("tune", src, "-o", out, "--recipe", recipe_file, "--predictor", tmp_path / "p.pt", "--steps", "0",
             "--weights", weights_file, "--json")
    assert r.exit_code == 0, r.output + r.stderr
    record, got, photo = json.loads(r.stdout), read(out), read(src)
    assert not record["kept_input"], record["note"]
    assert [o["params"] == st.op.identity for o, st in zip(record["ops"], recipe.stages)] == [moved == 1, moved == 0]
    want = render(photo.image, recipe, params_from_values(recipe, [o["params"] for o in record["ops"]])).clamp(0, 1)
    assert got.codes is not None
    assert int(np.abs(got.codes.astype(int) - lut.to_codes(want[0].permute(1, 2, 0))).max()) <= 1


def test_predicted_records_refuse_hdr_radiance(tmp_path: Path, tiny_scorer) -> None:  # type: ignore[no-untyped-def]
    predictor = load_predictor(_predictor(tmp_path / "p.pt", ["tonemap"]))
    radiance = Source.of(torch.rand(1, 3, 32, 48) * 8, linear=True)
    with pytest.raises(ValueError, match="display-referred photos only"):
        predicted_records([radiance], Recipe.from_ops(["tonemap"]), tiny_scorer, predictor, crops=2, seed=0)


def test_no_predict_climbs_from_the_identity_and_steps_0_needs_a_predictor(tmp_path: Path, weights_file: str) -> None:
    src = _photo(tmp_path / "p.png", (80, 64))
    predictor = _predictor(tmp_path / "p.pt", ["exposure"])
    r = _run("tune", src, "-o", tmp_path / "a.png", "--op", "exposure", "--predictor", predictor, "--no-predict",
             "--steps", "2", "--weights", weights_file, "--json")
    assert r.exit_code == 0, r.output + r.stderr
    assert json.loads(r.stdout)["predicted"] is None
    r = _run("tune", src, "-o", tmp_path / "b.png", "--op", "levels", "--steps", "0", "--weights", weights_file)
    assert r.exit_code == 2 and "no parameter predictor" in r.stderr
    r = _run("tune", src, "-o", tmp_path / "c.png", "--op", "levels", "--predictor", predictor, "--weights", weights_file)
    assert r.exit_code == 2 and "trained for" in r.stderr and not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("names", [["exposure", "tonemap", "contrast"], ["levels", "white_balance"],
                                   ["tonemap", "sharpen", "exposure"]])
def test_lut_render_equals_the_torch_render_within_one_level(names: list[str]) -> None:
    """On a full render larger than a tile, with random parameters, for 8-bit input."""
    g = torch.Generator().manual_seed(len(names))
    x = F.interpolate(torch.rand(1, 3, 6, 7, generator=g), size=(1100, 1300), mode="bilinear", align_corners=False)
    image = ((x ** 1.5 + 0.03 * torch.randn(1, 3, 1100, 1300, generator=g)).clamp(0, 1) * 255).round() / 255
    recipe = Recipe.from_ops(names)
    gen = np.random.default_rng(1)
    for _ in range(2):
        values = [{s.name: float(gen.uniform(s.lo, s.hi)) for s in st.specs} for st in recipe.stages]
        params = params_from_values(recipe, values)
        fast = full_render(Source.of(image, levels=256), recipe, params)
        exact = render(image, recipe, params).clamp(0, 1)
        assert float(((fast - exact) * 255).round().abs().max()) <= 1


def test_batched_candidates_climb_as_each_alone(tiny_scorer) -> None:  # type: ignore[no-untyped-def]
    """select = "best": the candidates' one batched climb gives each the result of its own climb, to
    within float32 rounding, which differs with the batch size and which Adam's normalised steps
    carry on: the same steps, and renders within one 8-bit level of each other."""
    g = torch.Generator().manual_seed(3)
    image = F.interpolate(torch.rand(1, 3, 4, 5, generator=g), size=(60, 80), mode="bilinear", align_corners=False) * 0.5
    recipe = Recipe.from_ops(["exposure", "levels", "contrast"], select="best", proxy=64)
    source = Source.of(image)
    alone = [recipe.alone(i) for i in range(len(recipe.stages))]
    together = climb([source] * len(alone), alone, tiny_scorer, steps=6, seed=0, patience=3)
    for r, batched in zip(alone, together):
        (single,) = climb([source], r, tiny_scorer, steps=6, seed=0, patience=3)
        assert batched.steps == single.steps
        apart = (render(image, r, batched.params) - render(image, r, single.params)).abs().max()
        assert float(apart) <= 1 / 255, r.stages[0].op.name
        assert batched.after.mean == pytest.approx(single.after.mean, abs=1e-3)


@pytest.mark.parametrize("steps", [0, 4])
def test_a_best_recipe_keeps_the_stage_that_rose_most_from_its_prediction(tiny_scorer, stage_predictors,  # type: ignore[no-untyped-def]
                                                                          steps: int) -> None:
    """select = "best" with a predictor: every stage's own prediction is scored, the FINALISTS that
    rose most are refined in one batch, and the photo keeps the stage that rose most, as that stage
    tuned alone from the same prediction would be; the other stages are recorded at their identity."""
    from enhance.predict import combine
    from enhance.tune import FINALISTS, tune

    g = torch.Generator().manual_seed(5)
    image = F.interpolate(torch.rand(1, 3, 4, 5, generator=g), size=(60, 80), mode="bilinear", align_corners=False) * 0.5
    image = (image * 255).round() / 255
    recipe = Recipe.from_ops(["exposure", "levels", "contrast"], select="best", proxy=64)
    alone = stage_predictors(recipe, 20)
    out, result = tune(image, recipe, tiny_scorer, steps=steps, predictor=combine(recipe, alone), patience=3)
    kept = next(i for i, o in enumerate(result.ops) if o["params"] != recipe.stages[i].op.identity)
    assert all(o["params"] == recipe.stages[i].op.identity for i, o in enumerate(result.ops) if i != kept)
    assert all(o["params"] == recipe.stages[i].op.identity for i, o in enumerate(result.predicted) if i != kept)
    single_out, single = tune(image, recipe.alone(kept), tiny_scorer, steps=steps, predictor=alone[kept], patience=3)
    assert result.predicted[kept] == single.predicted[0]
    # refined in a batch of FINALISTS or alone: the same to within float32 rounding (see above)
    assert result.ops[kept]["name"] == single.ops[0]["name"]
    assert result.ops[kept]["params"] == pytest.approx(single.ops[0]["params"], abs=1e-3)
    assert float((out - single_out).abs().max()) <= 1 / 255
    gains = [float(x.split()[1]) for x in result.note.split("gain: ")[1].split(")")[0].split(", ")]
    assert gains[kept] == max(gains), result.note
    assert result.note.count(" unrefined") == len(recipe.stages) - (FINALISTS if steps else 0), result.note
    assert result.note.startswith(f"{recipe.stages[kept].op.name} kept") != result.kept_input, result.note


@pytest.mark.parametrize("choice,stages", [(("--recipe", "tonemap"), 2), (("--recipe", "auto"), 5), (("--op", "tonemap"), 1)])
def test_train_predictor_runs_on_a_tiny_configuration(tmp_path: Path, weights_file: str, choice: tuple[str, str],
                                                      stages: int) -> None:
    """Two steps of `enhance train-predictor` for the shipped recipes and for `--op tonemap` on four
    small photos: a predictor file that `tune --predictor` takes with the same choice."""
    from nima import load_checkpoint, save_checkpoint

    weights = tmp_path / "w.pt"
    save_checkpoint(weights, load_checkpoint(weights_file)[0], {"val_split": ["Images/c.jpg"]})
    data = tmp_path / "data"
    (data / "clive" / "Images").mkdir(parents=True)
    (data / "kodak").mkdir()
    for i, rel in enumerate(["clive/Images/a.jpg", "clive/Images/b.jpg", "clive/Images/c.jpg", "kodak/kodim01.png",
                             "kodak/kodim20.png"]):
        _photo(data / rel, (96, 64), seed=i)
    out = tmp_path / "predictor.pt"
    r = _run("train-predictor", *choice, "--out", out, "--data", data, "--steps", "2", "--batch", "2",
             "--weights", weights)
    assert r.exit_code == 0, r.output + r.stderr
    assert "3 photos, 2 steps" in r.stdout  # c.jpg (validation) and kodim20 (held out) left out
    src = _photo(tmp_path / "p.png", (96, 64))
    t = _run("tune", src, "-o", tmp_path / "o.png", *choice, "--predictor", out, "--steps", "0",
             "--weights", weights, "--json")
    assert t.exit_code == 0, t.output + t.stderr
    assert len(json.loads(t.stdout)["predicted"]) == stages
    # --init: trained further from that file; a predictor of other operators is refused in one line
    again = _run("train-predictor", *choice, "--out", tmp_path / "again.pt", "--data", data, "--steps", "1",
                 "--batch", "2", "--weights", weights, "--init", out)
    assert again.exit_code == 0, again.output + again.stderr
    other = ("--recipe", "tonemap") if choice == ("--op", "tonemap") else ("--op", "tonemap")
    bad = _run("train-predictor", *other, "--out", tmp_path / "bad.pt", "--data", data, "--steps", "1",
               "--batch", "2", "--weights", weights, "--init", out)
    assert bad.exit_code == 2 and bad.stderr.strip().count("\n") == 0, bad.output + bad.stderr
    assert f"{out}: cannot start from it" in bad.stderr and not (tmp_path / "bad.pt").exists()
