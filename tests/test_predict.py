"""The parameter predictor (enhance.predict): outputs, training, resume, files. No shared data needed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from enhance.predict import (
    DEGRADATIONS, Predictor, PredictorTraining, combine, degrade, load_predictor, objectives, predict, predict_params,
    save_predictor, train_predictor, training_photos,
)
from enhance.recipe import Recipe
from enhance.views import Views


def small(names: list[str], **settings: object) -> Recipe:
    return Recipe.from_ops(names, proxy=64, **settings)  # type: ignore[arg-type]


def photo(seed: int, h: int = 48, w: int = 64, gain: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(1, 3, 4, 5, generator=g), size=(h, w), mode="bilinear", align_corners=False)
    return ((x * gain).clamp(0, 1) * 255).round() / 255


def saved(folder: Path, images: list[torch.Tensor]) -> list[Path]:
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / f"p{i}.png")
        Image.fromarray((image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(paths[-1])
    return paths


def shaken(predictor: Predictor, seed: int) -> Predictor:
    """The predictor with random weights in its last layer(s) (untrained, it returns the start)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for net in predictor.stages if predictor.recipe.select == "best" else [predictor]:
            for p in net.head[-1].parameters():
                p.normal_(0, 3)
    return predictor


def test_an_untrained_predictor_returns_the_start() -> None:
    recipe = small(["exposure", "levels", "contrast"])
    values = predict(Predictor(recipe), photo(0))
    for got, stage in zip(values, recipe.stages):
        assert got == pytest.approx(stage.start, abs=1e-5)


@pytest.mark.parametrize("select", ["all", "best"])
def test_output_shapes_and_bounds(select: str) -> None:
    recipe = small(["exposure", "tonemap", "denoise"], select=select)
    predictor = shaken(Predictor(recipe), 1)
    u = predictor(torch.rand(5, 3, 224, 224))
    assert u.shape == (5, 1 + 3 + 3)
    for stage, p in zip(recipe.stages, predictor.params(u * 100)):  # saturated: still inside the bounds
        for spec in stage.specs:
            assert p[spec.name].shape == (5,)
            assert bool(((p[spec.name] >= spec.lo) & (p[spec.name] <= spec.hi)).all())
    values = predict(predictor, photo(2, h=300, w=200))
    assert [set(v) for v in values] == [{s.name for s in st.specs} for st in recipe.stages]
    if select == "best":  # every stage's candidate is its own network's, as if it were tuned alone
        for k, net in enumerate(predictor.stages):
            assert net.recipe.stages == (recipe.stages[k],) and predict(net, photo(2, h=300, w=200)) == [values[k]]


def test_a_tiny_training_run_raises_the_objective(tmp_path: Path, tiny_scorer) -> None:  # type: ignore[no-untyped-def]
    """Seconds of training on four dim photos raise the scorer's objective on them."""
    images = [photo(i, gain=0.4) for i in range(4)]
    recipe = small(["exposure", "contrast"])
    config = PredictorTraining("unused", str(tmp_path / "p.pt"), steps=10, batch=4, lr=0.003, crops=0, clean=1.0,
                               every=6)

    def objective(predictor: Predictor) -> float:
        views = [Views.of(im, recipe, 0, tiny_scorer.input_size, 0) for im in images]
        with torch.no_grad():
            return float(objectives(predictor, images, views, tiny_scorer, recipe.strength)[0].mean())

    before = objective(Predictor(recipe))
    trained = train_predictor(replace(config, recipe=_toml(tmp_path, recipe)), saved(tmp_path, images), tiny_scorer)
    assert objective(trained) > before + 0.01
    assert load_predictor(config.out).state_dict()["head.2.bias"].equal(trained.state_dict()["head.2.bias"])
    assert (tmp_path / "p.pt").stat().st_size < 5_000_000


def _toml(folder: Path, recipe: Recipe) -> str:
    path = folder / "recipe.toml"
    path.write_text(recipe.to_toml())
    return str(path)


def test_resume_continues_the_same_run(tmp_path: Path, tiny_scorer) -> None:  # type: ignore[no-untyped-def]
    """Two steps, stop, resume to four: the same weights as four steps at once."""
    photos = saved(tmp_path, [photo(i) for i in range(3)])
    recipe = _toml(tmp_path, small(["exposure"]))
    whole = PredictorTraining(recipe, str(tmp_path / "whole.pt"), steps=4, batch=2, crops=0, every=1)
    straight = train_predictor(whole, photos, tiny_scorer)
    split = replace(whole, out=str(tmp_path / "split.pt"), steps=2)
    train_predictor(split, photos, tiny_scorer)
    resumed = train_predictor(replace(split, steps=4, resume=True), photos, tiny_scorer)
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert len(resumed.meta["history"]) == 4


def test_init_starts_from_a_predictor_file(tmp_path: Path, tiny_scorer) -> None:  # type: ignore[no-untyped-def]
    """--init: the run starts from the file's weights (a step at a vanishing rate leaves them), and
    refuses a predictor of other operators."""
    photos = saved(tmp_path, [photo(i) for i in range(3)])
    recipe = _toml(tmp_path, small(["exposure"]))
    first = train_predictor(PredictorTraining(recipe, str(tmp_path / "a.pt"), steps=2, batch=2, crops=0, lr=0.01),
                            photos, tiny_scorer)
    save_predictor(tmp_path / "a.pt", first, {**first.meta, "refine_steps": 4})
    fresh = Predictor(small(["exposure"])).state_dict()
    assert any(not torch.allclose(v, fresh[k]) for k, v in first.state_dict().items())
    again = train_predictor(PredictorTraining(recipe, str(tmp_path / "b.pt"), steps=1, batch=2, crops=0, lr=1e-12,
                                              init=str(tmp_path / "a.pt")), photos, tiny_scorer)
    for k, v in first.state_dict().items():
        assert torch.allclose(v, again.state_dict()[k], atol=1e-6), k
    meta = load_predictor(tmp_path / "b.pt").meta
    assert (meta["init"], meta["refine_steps"]) == ("a.pt", 4)
    other = _toml(tmp_path, small(["contrast"]))
    with pytest.raises(ValueError, match="a.pt: cannot start from it"):
        train_predictor(PredictorTraining(other, str(tmp_path / "c.pt"), steps=1, batch=2, crops=0,
                                          init=str(tmp_path / "a.pt")), photos, tiny_scorer)
    assert not (tmp_path / "c.pt").exists()


def test_predict_params_checks_its_inputs(tmp_path: Path) -> None:
    recipe = small(["exposure", "levels"])
    predictor = shaken(Predictor(recipe), 3)
    save_predictor(tmp_path / "p.pt", predictor, {"note": "test"})
    loaded = load_predictor(tmp_path / "p.pt")
    assert loaded.meta == {"note": "test"}
    assert predict_params(photo(4), recipe, loaded) == predict(predictor, photo(4))
    with pytest.raises(ValueError, match="trained for"):
        predict_params(photo(4), small(["exposure"]), loaded)
    with pytest.raises(ValueError, match="HDR"):
        predict_params(type("Photo", (), {"linear": True, "path": "x.exr", "image": photo(4)})(), recipe, loaded)
    with pytest.raises(ValueError, match="no shipped parameter predictor"):
        predict_params(photo(4), recipe)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        load_predictor(tmp_path / "bad.pt")


def test_best_recipes_train_each_stage_on_its_own_objective(tiny_scorer) -> None:  # type: ignore[no-untyped-def]
    """A select = "best" predictor's stage networks share nothing: stage k's objective moves
    stage k's network only, so training the recipe's predictor trains each stage as if alone."""
    recipe = small(["exposure", "contrast"], select="best")
    predictor = shaken(Predictor(recipe), 4)
    images = [photo(i, gain=0.5) for i in range(2)]
    views = [Views.of(im, recipe, 0, tiny_scorer.input_size, 0) for im in images]
    objs = objectives(predictor, images, views, tiny_scorer, recipe.strength)
    assert objs.shape == (2, 2)
    objs[:, 1].sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in predictor.stages[0].parameters())
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in predictor.stages[1].parameters())


def test_combine_builds_a_best_predictor_from_stage_predictors(tmp_path: Path) -> None:
    recipe = small(["exposure", "levels"], select="best")
    alone = [shaken(Predictor(recipe.alone(k)), 10 + k) for k in range(2)]
    for k, p in enumerate(alone):
        p.meta = {"steps": 7 + k}
    whole = combine(recipe, alone)
    image = photo(6)
    assert predict(whole, image) == [predict(p, image)[0] for p in alone]
    assert whole.meta == {"stages": [{"steps": 7}, {"steps": 8}]}
    save_predictor(tmp_path / "best.pt", whole, whole.meta)
    assert predict(load_predictor(tmp_path / "best.pt"), image) == predict(whole, image)
    with pytest.raises(ValueError, match="trained for"):
        combine(recipe, alone[::-1])
    with pytest.raises(ValueError, match="one predictor per stage"):
        combine(recipe, alone[:1])


def test_degradations() -> None:
    image = photo(5)
    gen = np.random.default_rng(0)
    assert torch.equal(degrade(image, "none", gen), image)
    for kind in DEGRADATIONS[1:]:
        out = degrade(image, kind, gen)
        assert out.shape == image.shape and 0 <= float(out.min()) and float(out.max()) <= 1
        assert torch.equal(out, (out * 255).round() / 255) and not torch.equal(out, image), kind
    assert float(degrade(image, "under", gen).mean()) < float(image.mean())
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(image, "blurry", gen)


def test_training_photos_leave_out_validation_and_held_out(tmp_path: Path) -> None:
    for rel in ("clive/Images/a.jpg", "clive/Images/b.jpg", "kodak/kodim01.png", "kodak/kodim19.png", "kodak/kodim02.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    meta = {"val_split": ["Images/b.jpg"], "pristine_holdout": ["kodim02.png"]}
    assert [p.name for p in training_photos(tmp_path, meta)] == ["a.jpg", "kodim01.png"]
    with pytest.raises(ValueError, match="validation split"):
        training_photos(tmp_path, {})
    # More photos from a folder and from a CSV listing paths under the data folder; held-out ones stay out
    for rel in ("more/x.png", "more/notes.txt", "biq/Images/y.jpg", "biq/Images/kodim19.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "best.csv").write_text("path,licence\nbiq/Images/y.jpg,x\nbiq/Images/kodim19.png,x\n")
    got = training_photos(tmp_path, meta, [tmp_path / "more", tmp_path / "best.csv"])
    assert [p.name for p in got] == ["a.jpg", "kodim01.png", "x.png", "y.jpg"]
    (tmp_path / "bad.csv").write_text("path\nbiq/Images/gone.jpg\n")
    with pytest.raises(ValueError, match="bad.csv.*gone.jpg"):
        training_photos(tmp_path, meta, [tmp_path / "bad.csv"])
    with pytest.raises(ValueError, match="nothing.csv"):
        training_photos(tmp_path, meta, [tmp_path / "nothing.csv"])


@pytest.mark.parametrize("chosen", ["tonemap", ["tonemap"]], ids=["recipe tonemap", "op tonemap"])
def test_a_shipped_predictor_on_a_photo_it_never_saw(chosen: str | list[str]) -> None:
    """examples/coffee-flat.jpg (scikit-image's coffee, flattened; not among the training photos):
    the shipped prediction for ``--recipe tonemap`` and for ``--op tonemap`` raises the shipped
    scorer's mean score on the tuner's views."""
    from enhance.io import read
    from enhance.params import params_from_values
    from enhance.recipe import as_recipe
    from enhance.render import apply_pipeline
    from nima import load_scorer

    scorer, recipe = load_scorer(), as_recipe(chosen)
    image = read(Path(__file__).resolve().parents[1] / "examples" / "coffee-flat.jpg").image
    values = predict_params(image, recipe)
    views = Views.of(image, recipe, 2, scorer.input_size, 0)

    def score(values: list[dict[str, float]]) -> float:
        params = params_from_values(recipe, values)
        with torch.no_grad():
            return float(scorer.mean(views.render(scorer.input_size, lambda x, ref: apply_pipeline(x, recipe, params, ref))).mean())

    for stage, v in zip(recipe.stages, values):
        assert all(s.lo <= v[s.name] <= s.hi for s in stage.specs)
    assert score(values) > score([st.start for st in recipe.stages]) + 0.3
