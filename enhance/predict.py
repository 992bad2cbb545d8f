"""The parameter predictor: a photo's thumbnail -> a recipe's parameters, in one forward pass.

A small CNN (four stride-2 convolutions, mean and spread pooling) plus the thumbnail's tone
statistics (channel means and spreads, luminance quantiles) feed a two-layer head that gives one
unconstrained value per parameter, mapped onto the recipe's bounds by the same sigmoid as the
tuner (`ParamSpec.bounded`). The head's last layer starts at zero with its bias at the recipe's
start values, so an untrained predictor returns the start (the identity), and the identity stays
reachable. A ``select = "best"`` recipe's predictor is one such network per stage, each that
stage's own predictor (``recipe.alone(k)``): it gives every operator's candidate parameters, and
the tuner lets the scorer choose among them, as it chooses among the climbs without a predictor.

It is trained (`train_predictor`) the way the tuner climbs, by gradient ascent on the frozen
scorer through the operators: the same views (`enhance.views.Views`), the same objective (mean
score minus ``strength`` times `enhance.params.identity_pull`), over a collection of photos and
random degradations of them (`degrade`), so that it sees photos needing each correction and
photos needing none. The scorer is any `nima.Scorer`; the predictor keeps nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from enhance.recipe import Recipe, as_recipe, parse_recipe
from enhance.params import bounded, identity_pull
from enhance.render import Params, pipeline
from enhance.views import Views
from nima import Scorer, mean_score

THUMB = 224          # the predictor sees the photo resized to THUMB x THUMB
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)  # of the thumbnail's luma, among its inputs
SHIPPED = Path(__file__).with_name("predictors")        # <recipe name>.pt: the shipped predictors
REFINE_STEPS = 10    # refining steps after a prediction, for a predictor whose file names no count of its own
_LUMA = (0.2126, 0.7152, 0.0722)


def thumbnail(image: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) sRGB in [0,1] -> (B,3,THUMB,THUMB), antialiased (the aspect ratio is not kept:
    the predictor reads tones and textures, not shapes)."""
    return F.interpolate(image, size=(THUMB, THUMB), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def tone_statistics(thumb: torch.Tensor) -> torch.Tensor:
    """(B,3,h,w) -> (B,13): per-channel mean and standard deviation, and the luma quantiles."""
    flat = thumb.flatten(2)
    luma = (flat * thumb.new_tensor(_LUMA).view(1, 3, 1)).sum(1)
    q = torch.quantile(luma, thumb.new_tensor(QUANTILES), dim=1).t()
    return torch.cat([flat.mean(2), flat.std(2), q], 1)


def _layout(recipe: Recipe) -> list[tuple[int, str]]:
    """(stage index, parameter name) of every output value, in order."""
    return [(i, s.name) for i, st in enumerate(recipe.stages) for s in st.specs]


class Predictor(nn.Module):
    """Thumbnail (B,3,THUMB,THUMB) -> unconstrained parameters (B,P) of every stage, in the order
    of the recipe's parameters. For ``select = "best"`` recipes, ``stages[k]`` is stage ``k``'s own
    predictor (trained as if the stage were tuned alone), so that each operator's parameters are
    its best alone, whichever the scorer then keeps."""

    def __init__(self, recipe: Recipe, width: int = 32) -> None:
        super().__init__()
        self.recipe = recipe
        self.width = width
        self.meta: dict[str, Any] = {}  # how it was trained (the file's record)
        if recipe.select == "best":
            self.stages = nn.ModuleList(Predictor(recipe.alone(k), width) for k in range(len(recipe.stages)))
            return
        chans = [3, width // 2, width, 2 * width, 2 * width]
        layers: list[nn.Module] = []
        for a, b in zip(chans, chans[1:]):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(4 * width + 3 + 3 + len(QUANTILES), 64), nn.ReLU(inplace=True),
                                  nn.Linear(64, len(_layout(recipe))))
        last = self.head[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        with torch.no_grad():  # start at the recipe's start values
            last.bias.copy_(torch.tensor([float(s.unbounded(torch.tensor(st.start[s.name])))
                                          for st in recipe.stages for s in st.specs]))

    @property
    def refine_steps(self) -> int:
        """How many refining steps `tune` and `batch` take after this predictor's prediction by
        default: the count its file records (``meta["refine_steps"]``, measured on training photos
        with ``benchmarks/refine.py``), else `REFINE_STEPS`."""
        return int(self.meta.get("refine_steps", REFINE_STEPS))

    def forward(self, thumb: torch.Tensor) -> torch.Tensor:
        if self.recipe.select == "best":
            return torch.cat([p(thumb) for p in self.stages], 1)
        f = self.features(thumb)
        return self.head(torch.cat([f.mean((2, 3)), f.flatten(2).std(2), tone_statistics(thumb)], 1))

    def params(self, u: torch.Tensor) -> Params:
        """Unconstrained (B,P) -> one dict per stage of (B,) tensors in human units."""
        per_stage: list[dict[str, torch.Tensor]] = [{} for _ in self.recipe.stages]
        for j, (i, name) in enumerate(_layout(self.recipe)):
            per_stage[i][name] = u[:, j]
        return bounded(self.recipe, per_stage)


def combine(recipe: Recipe, predictors: Sequence[Predictor]) -> Predictor:
    """The predictor of a ``select = "best"`` recipe made of predictors trained for each of its
    stages alone (``predictors[k]`` for ``recipe.alone(k)``: `train_predictor` with that stage's
    recipe, or a shipped one of the same operator and bounds): each stage trained apart, as
    training the recipe's own predictor trains it together. Its ``meta["stages"]`` holds theirs.
    ValueError when a predictor was trained for other operators or bounds than its stage."""
    if recipe.select != "best" or len(predictors) != len(recipe.stages):
        raise ValueError(f"combine takes a select = \"best\" recipe and one predictor per stage "
                         f"({len(recipe.stages)}), got {len(predictors)}")
    whole = Predictor(recipe, predictors[0].width)
    for k, (mine, given) in enumerate(zip(whole.stages, predictors)):
        check_predictor(given, recipe.alone(k))
        mine.load_state_dict(given.state_dict())
    whole.meta = {"stages": [dict(p.meta) for p in predictors]}
    return whole.eval()


# --- using a predictor ------------------------------------------------------------------------


@torch.no_grad()
def predict(predictor: Predictor, image: torch.Tensor) -> list[dict[str, float]]:
    """Parameters in human units for (1,3,H,W) sRGB ``image`` (any size: the tuner's proxy is as
    good as the full photo and cheaper to shrink), one dict per stage. For ``select = "best"``
    recipes, every stage's values are its own candidate, to be used alone."""
    if image.dim() != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"expected a (1,3,H,W) image, got {tuple(image.shape)}")
    u = predictor(thumbnail(image.float()))
    return [{k: float(v[0]) for k, v in p.items()} for p in predictor.params(u)]


def predict_params(photo: Any, recipe: Recipe | str, predictor: Predictor | None = None) -> list[dict[str, float]]:
    """The predicted parameters of ``recipe`` for ``photo`` (a (1,3,H,W) sRGB tensor in [0,1] or an
    ``enhance.io.Photo``), one dict per stage in human units, as ``enhance.params.params_from_values``
    takes them: what ``tune --steps 0`` applies and where a refining climb starts. For
    ``select = "best"`` recipes, each stage's candidate (see `predict`): ``tune`` keeps the one the
    scorer rates highest.

    ``predictor`` defaults to the shipped one trained for the recipe (:func:`find_predictor`); ValueError when there is none,
    when it was trained for other operators or bounds, or for HDR (linear) input, which no
    predictor has been trained on.
    """

    recipe = as_recipe(recipe)
    if getattr(photo, "linear", False):
        raise ValueError(f"{getattr(photo, 'path', 'photo')}: no parameter predictor for HDR input; tune it instead")
    image = photo.image if hasattr(photo, "image") else photo
    predictor = predictor or find_predictor(recipe)
    if predictor is None:
        have = sorted(p.stem for p in SHIPPED.glob("*.pt")) if SHIPPED.is_dir() else []
        raise ValueError(f"no shipped parameter predictor for recipe {recipe.name!r} (shipped: {', '.join(have) or 'none'})")
    check_predictor(predictor, recipe)
    return predict(predictor, image.float())


def check_predictor(predictor: Predictor, recipe: Recipe) -> None:
    """ValueError when ``predictor`` was trained for other operators, bounds or selection than ``recipe``."""
    if _signature(predictor.recipe) != _signature(recipe):
        raise ValueError(f"the predictor was trained for {predictor.recipe.name!r} "
                         f"({_signature(predictor.recipe)}), not for this recipe ({_signature(recipe)})")


def fingerprint(predictor: Predictor) -> str:
    """SHA-256 of the predictor's recipe and weights: what a finished batch output depends on."""
    import hashlib

    digest = hashlib.sha256(predictor.recipe.to_toml().encode())
    for name, tensor in predictor.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def find_predictor(recipe: Recipe) -> Predictor | None:
    """The shipped predictor trained for ``recipe``'s operators, bounds and selection (the file of
    its name first, then ``op-<name>.pt``, as ``tune --op``'s are named, then any other shipped
    one), or None when none was: the tuner then climbs from the recipe's start values as before."""
    files = sorted(SHIPPED.glob("*.pt")) if SHIPPED.is_dir() else []
    files.sort(key=lambda p: (p.stem != recipe.name, p.stem != f"op-{recipe.name}"))
    for path in files:
        predictor = load_predictor(path)
        if _signature(predictor.recipe) == _signature(recipe):
            return predictor
    return None


def _signature(recipe: Recipe) -> str:
    """The operators, parameter bounds and selection a predictor's outputs depend on."""
    bounds = "; ".join(f"{st.op.name}(" + ", ".join(f"{s.name} {s.lo:g}..{s.hi:g}" for s in st.specs) + ")"
                       for st in recipe.stages)
    return f"{bounds}; select {recipe.select}"


def save_predictor(path: str | Path, predictor: Predictor, meta: dict[str, Any]) -> None:
    """Write the predictor (its recipe as TOML, width, weights) and ``meta`` atomically."""
    from enhance.io import atomic_path

    blob = {"recipe": predictor.recipe.to_toml(), "name": predictor.recipe.name, "width": predictor.width,
            "state": predictor.state_dict(), "meta": meta}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_predictor(path: str | Path) -> Predictor:
    """A predictor written by `save_predictor`, in eval mode; ValueError naming the file otherwise."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        recipe = parse_recipe(blob["recipe"], str(path), name=blob["name"])
        predictor = Predictor(recipe, width=int(blob["width"]))
        predictor.load_state_dict(blob["state"])
    except FileNotFoundError:
        raise ValueError(f"{path}: no such predictor file") from None
    except Exception as exc:  # unpickling, a missing key, a shape mismatch: one clear line
        raise ValueError(f"{path}: not a parameter predictor ({' '.join(str(exc).split())[:200]})") from None
    predictor.meta = blob.get("meta", {})
    return predictor.eval()


# --- training ---------------------------------------------------------------------------------

DEGRADATIONS = ("none", "under", "over", "flat", "gamma", "haze", "cast", "noise")


def degrade(image: torch.Tensor, kind: str, gen: np.random.Generator) -> torch.Tensor:
    """(1,3,H,W) sRGB in [0,1] with one random degradation ``kind`` of `DEGRADATIONS` (random
    strength from ``gen``), rounded to 8 bits as a file would hold it."""
    from enhance.ops.color import linear_to_srgb, srgb_to_linear

    def u(lo: float, hi: float) -> float:
        return float(gen.uniform(lo, hi))

    x = image
    if kind in ("under", "over", "cast"):
        ev = [-u(0.7, 2.5)] * 3 if kind == "under" else [u(0.5, 1.5)] * 3 if kind == "over" else \
            [u(-0.4, 0.4) for _ in range(3)]
        x = linear_to_srgb(srgb_to_linear(x) * torch.exp2(x.new_tensor(ev)).view(1, 3, 1, 1))
    elif kind == "flat":
        mid = u(0.35, 0.6)
        x = mid + (x - mid) * u(0.45, 0.75)
    elif kind == "gamma":
        x = x.clamp(0, 1) ** (u(1.4, 2.2) if gen.random() < 0.5 else u(0.5, 0.75))
    elif kind == "haze":
        amount = u(0.2, 0.5)
        x = x * (1 - amount) + amount * x.new_tensor([u(0.75, 0.95) for _ in range(3)]).view(1, 3, 1, 1)
    elif kind == "noise":
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(int(gen.integers(1 << 31))))
        x = x + u(0.02, 0.07) * noise
    elif kind != "none":
        raise ValueError(f"unknown degradation {kind!r}; known: {', '.join(DEGRADATIONS)}")
    return (x.clamp(0, 1) * 255).round() / 255


def _scores(recipe: Recipe, params: Params, views: Sequence[Views], scorer: Scorer) -> torch.Tensor:
    """(B,) mean score of each photo over its views rendered with its own (row of) ``params``."""
    size = scorer.input_size
    shots = []
    for i, v in enumerate(views):
        mine = [{k: t[i: i + 1] for k, t in p.items()} for p in params]
        shots.append(v.render(size, pipeline(recipe, mine, linear=False)))
    per_view = mean_score(scorer(torch.cat(shots)))
    return torch.stack([s.mean() for s in per_view.split([s.shape[0] for s in shots])])


def objectives(
    predictor: Predictor, images: Sequence[torch.Tensor], views: Sequence[Views], scorer: Scorer, strength: float,
) -> torch.Tensor:
    """The tuner's objective (mean score over the views minus ``strength`` times the identity pull)
    of the predicted parameters on each photo: (B,1), or (B,K) for ``select = "best"`` recipes
    (each stage alone, with its own network's values)."""
    recipe = predictor.recipe
    params = predictor.params(predictor(torch.cat([thumbnail(im) for im in images])))
    if recipe.select != "best":
        return (_scores(recipe, params, views, scorer) - strength * identity_pull(recipe, params))[:, None]
    columns = []
    for k in range(len(recipe.stages)):
        alone = recipe.alone(k)
        columns.append(_scores(alone, [params[k]], views, scorer) - strength * identity_pull(alone, [params[k]]))
    return torch.stack(columns, 1)


HELD_OUT_KODAK = tuple(f"kodim{i}.png" for i in range(19, 25))  # the benchmarks' held-out photos


def training_photos(data: str | Path, scorer_meta: dict[str, Any], also: Sequence[str | Path] = ()) -> list[Path]:
    """The training collection under ``data`` (a folder holding ``clive/`` and ``kodak/``): the CLIVE
    photos outside the scorer's validation split (``scorer_meta["val_split"]``) and the Kodak
    photos outside `HELD_OUT_KODAK` and the scorer's held-out sources; then the photos ``also``
    names (`listed_photos`), the same ones left out. ValueError when the scorer records no split,
    a listed photo is missing or no photo is found."""
    from enhance.io import is_image_path

    root = Path(data)
    if "val_split" not in scorer_meta:
        raise ValueError("the scorer records no validation split (meta 'val_split'): cannot keep its validation photos out")
    val = set(scorer_meta["val_split"])
    held = set(HELD_OUT_KODAK) | set(scorer_meta.get("pristine_holdout", []))
    clive = root / "clive" / "Images"
    photos = [p for p in sorted(clive.glob("*")) if is_image_path(p) and f"Images/{p.name}" not in val]
    photos += [p for p in sorted((root / "kodak").glob("*.png")) if p.name not in held]
    photos += [p for p in listed_photos(also, root) if f"Images/{p.name}" not in val and p.name not in held]
    if not photos:
        raise ValueError(f"{root}: no training photos (expected clive/Images and kodak/ under it)")
    return photos


def listed_photos(entries: Sequence[str | Path], root: Path) -> list[Path]:
    """The photos each entry names, in order: a folder's images (recursively, sorted), or the
    ``path`` column of a CSV file, each relative to ``root`` (as ``configs/sources/*.csv`` list
    them). ValueError names a missing folder, list or photo."""
    import csv

    from enhance.io import is_image_path

    out: list[Path] = []
    for entry in map(Path, entries):
        if entry.is_dir():
            out += [p for p in sorted(entry.rglob("*")) if is_image_path(p)]
            continue
        try:
            with open(entry, encoding="utf-8", newline="") as fh:
                listed = [root / row["path"] for row in csv.DictReader(fh)]
        except (OSError, KeyError) as exc:
            raise ValueError(f"{entry}: not a folder of photos or a CSV with a `path` column ({exc})") from None
        missing = next((p for p in listed if not p.is_file()), None)
        if missing is not None:
            raise ValueError(f"{entry}: lists {missing}, which is not a file (is --data right?)")
        out += listed
    return out


@dataclass
class PredictorTraining:
    """Settings of `train_predictor`. ``clean``: the share of photos left as they are; the others
    get one of the `DEGRADATIONS` at random. ``every``: steps between checkpoints of the run.
    ``init``: a predictor file to start from instead of the start values (trained for the same
    operators, bounds, selection and width), to train it again against another scorer; the new
    file keeps its number of refining steps."""

    recipe: Recipe | str
    out: str
    steps: int = 1000
    batch: int = 8
    lr: float = 1e-3
    seed: int = 0
    crops: int = 2
    clean: float = 0.25
    strength: float | None = None
    width: int = 32
    every: int = 20
    resume: bool = False
    init: str | None = None

    @property
    def state_path(self) -> Path:
        """Where the run's checkpoint (weights, optimiser, step) lives: ``<out>.run/state.pt``."""
        return Path(self.out).with_suffix(".run") / "state.pt"


def starting_predictor(path: str | Path, recipe: Recipe, width: int) -> Predictor:
    """The predictor file ``path`` as the start of a run for ``recipe`` at ``width``; ValueError
    naming the file when it was trained for other operators, bounds, selection or width."""
    predictor = load_predictor(path)
    try:
        check_predictor(predictor, recipe)
    except ValueError as exc:
        raise ValueError(f"{path}: cannot start from it: {exc}") from None
    if predictor.width != width:
        raise ValueError(f"{path}: cannot start from it: its width is {predictor.width}, not {width}")
    return predictor


def _batch(photos: Sequence[Path], config: PredictorTraining, step: int, size: int, recipe: Recipe,
           device: torch.device) -> tuple[list[torch.Tensor], list[Views]]:
    """Step ``step``'s photos, degraded, and their views; the same for a given seed and step."""
    from enhance.io import read

    gen = np.random.default_rng([config.seed, step])
    images, views = [], []
    for j in gen.choice(len(photos), size=min(config.batch, len(photos)), replace=False):
        photo = read(photos[int(j)])
        kind = "none" if gen.random() < config.clean else str(gen.choice(DEGRADATIONS[1:]))
        image = degrade(photo.image, kind, gen).to(device)
        images.append(image)
        views.append(Views.of(image, recipe, config.crops, size, int(gen.integers(1 << 31))))
    return images, views


def train_predictor(
    config: PredictorTraining, photos: Sequence[Path], scorer: Scorer,
    on_step: Callable[[int, float], None] | None = None,
) -> Predictor:
    """Train a predictor for ``config.recipe`` on ``photos`` against the frozen ``scorer`` by Adam on
    minus the mean of `objectives` (for ``select = "best"``: of every stage's, each stage's network
    climbing its own, as if trained alone), checkpointing every ``config.every`` steps
    (``config.resume`` continues from the checkpoint), and write it to ``config.out``.
    ``on_step(step, objective)``: after each step, the batch's mean objective (the best
    operator's, for ``select = "best"``)."""
    from enhance.io import atomic_path

    recipe = as_recipe(config.recipe)
    strength = recipe.strength if config.strength is None else config.strength
    device = next(scorer.parameters()).device
    with torch.random.fork_rng(devices=[]):  # the initial weights follow config.seed alone
        torch.manual_seed(config.seed)
        predictor = Predictor(recipe, config.width).to(device)
    kept: dict[str, Any] = {}  # what the file records of the predictor it started from
    if config.init is not None:
        start_from = starting_predictor(config.init, recipe, config.width)
        predictor.load_state_dict(start_from.state_dict())
        kept["init"] = Path(config.init).name
        if "refine_steps" in start_from.meta:
            kept["refine_steps"] = start_from.meta["refine_steps"]
    opt = torch.optim.Adam(predictor.parameters(), lr=config.lr)
    start, history = 0, []
    if config.resume and config.state_path.is_file():
        state = torch.load(config.state_path, map_location=device, weights_only=True)
        predictor.load_state_dict(state["predictor"])
        opt.load_state_dict(state["optimizer"])
        start, history = int(state["step"]), list(state["history"])
    config.state_path.parent.mkdir(parents=True, exist_ok=True)
    for step in range(start, config.steps):
        images, views = _batch(photos, config, step, scorer.input_size, recipe, device)
        objs = objectives(predictor, images, views, scorer, strength)
        loss = -objs.sum(1).mean()  # a select = "best" recipe's stage networks each climb their own column
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {step + 1}: the training loss is not finite")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(round(float(objs.detach().max(1).values.mean()), 5))
        if on_step:
            on_step(step + 1, history[-1])
        if (step + 1) % config.every == 0 or step + 1 == config.steps:
            with atomic_path(config.state_path) as tmp:
                torch.save({"predictor": predictor.state_dict(), "optimizer": opt.state_dict(),
                            "step": step + 1, "history": history}, tmp)
    meta = {"steps": config.steps, "batch": config.batch, "lr": config.lr, "seed": config.seed, "clean": config.clean,
            "strength": strength, "photos": len(photos), "scorer": getattr(scorer, "weights_sha256", None),
            **kept, "history": history}
    predictor.meta = meta
    save_predictor(config.out, predictor, meta)
    return predictor.eval()
