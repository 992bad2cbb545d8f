"""Training: human opinion from several rated datasets plus a ranking term on synthetic distortions.

Scores of different datasets are not comparable (0.7 in BIQ2021 is not 70 in CLIVE), so each step
takes its rated images from one dataset and asks the model to order them as people did (the
fidelity loss on every pair, as UNIQUE and LIQE do); the datasets named in ``emd`` also fit the
whole opinion distribution (EMD, r = 2), which sets where the 1..10 scale sits. A few synthetic
groups join each step: a pristine photo and graded distortions of it under one view, ranked by a
hinge on mean scores (pristine above each distortion, a milder level above a stronger one of the
same family). Preference pairs given as files (a better and a worse image of one scene) join each
step the same way. The model keeps NIMA's 10-bucket distribution output.

The stem and the first ``frozen_blocks`` blocks stay frozen and their activations are computed
once per run (:mod:`nima.cache`), so an epoch trains the last blocks and the head on the cache.
State is saved every epoch into the run folder; ``resume=True`` continues from the last saved
epoch exactly.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from nima import cache
from nima.checkpoint import load_checkpoint, save_checkpoint
from nima.data import Sample, open_dataset, read_pairs, split_groups
from nima.data.distortions import DENOISED_EDIT_LEVELS, FAMILIES
from nima.data.synthetic import SyntheticRanking
from nima.evaluate import pristine_first_of
from nima.loss import emd, fidelity_loss, pair_loss, rank_loss
from nima.metrics import summarise
from nima.model import NIMA, checked_input_size, mean_score, std_score
from nima.scorer import pick_device
from nima.sources import pristine_paths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class TrainConfig:
    """Everything a run needs; saved beside the weights so a run can be repeated.

    The first group is what ``enhance train`` takes as options; the rest comes from a TOML run
    configuration (``--config``). ``datasets`` are ``"KIND:PATH"`` specs (ava, tid2013, clive,
    koniq, biq2021, csv) and ``pristine`` lists pristine photos (files, folders, ``skimage:NAME`` or
    a ``.csv`` list of sources) for the ranking term; relative paths in both, and in ``pairs``, are
    read under ``data_root``. The last ``holdout_sources`` pristine photos (in the order given, a
    folder's files sorted by name) are kept out of training and used for validation. A dataset's
    official test split is never trained on; of the rest, ``val_fraction`` (one share, or one per
    dataset kind) is held out for validation, chosen by ``split_seed`` alone so runs with different
    seeds stay comparable. ``emd`` names the dataset kinds whose opinion distributions are fitted (None:
    all); every dataset is ranked by the fidelity loss. ``repeats`` (kind -> passes, 1 where not
    given) lets a small dataset beside a large one pass over its images several times an epoch, each
    pass in a new order, so that it keeps a share of the steps. Each synthetic source gets
    ``groups_per_source`` cached groups of ``per_group`` distortions (from ``families``; None: all),
    ``groups_per_step`` of which join each step; ``rank_family_weights`` (family -> weight, 1 where
    not given) weighs each ranking pair by the family of its worse member, so that families the
    scorer ranks poorly can count more without more ranking in all (the cache stays the same); a
    share ``compound`` of the groups is anchored on a noisy copy of the source and ranks it above
    tone, colour and detail changes of it; a share ``denoised`` is anchored on a denoised noisy copy
    and ranks it above the noisy copy and tone or colour edits of either, at levels
    1..``denoised_edit_levels`` (`nima.data.synthetic.SyntheticRanking`). ``pairs`` lists CSV files of
    preference pairs (`nima.data.read_pairs`: a better and a worse image of one scene, such as a
    photo above a climb's output that lies farther from it); ``pairs_per_step`` of them join each
    step, ranked by a hinge of ``rank_margin`` weighted by ``pair_weight``. ``init`` starts from a
    NIMA weights file instead of ImageNet features. ``input_size`` is the square view the model is
    trained and later scores at (None: ``init``'s, else the backbone's native size).
    ``eval_every``: validation figures every N epochs and after the last. ``limit`` keeps the first
    N images of each dataset (smoke tests).
    """

    datasets: list[str]
    backbone: str = "efficientnet_lite0"
    init: str | None = None
    input_size: int | None = None
    epochs: int = 10
    batch_size: int = 32
    lr_backbone: float = 1e-4
    lr_head: float = 1e-3
    out: str = "nima.pt"
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    workers: int = 0

    data_root: str = "."
    pretrained: bool | str = True
    frozen_blocks: int = 15
    val_fraction: float | dict[str, float] = 0.2
    split_seed: int = 0
    emd: list[str] | None = None
    emd_weight: float = 1.0
    repeats: dict[str, int] = field(default_factory=dict)
    fidelity_weight: float = 1.0
    pristine: list[str] = field(default_factory=list)
    holdout_sources: int = 6
    rank_weight: float = 1.0
    rank_margin: float = 0.2
    groups_per_source: int = 2
    groups_per_step: int = 2
    per_group: int = 6
    families: list[str] | None = None
    rank_family_weights: dict[str, float] = field(default_factory=dict)
    compound: float = 0.0
    denoised: float = 0.0
    denoised_edit_levels: int = DENOISED_EDIT_LEVELS
    pairs: list[str] = field(default_factory=list)
    pair_weight: float = 1.0
    pairs_per_step: int = 4
    eval_every: int = 1
    limit: int | None = None

    @property
    def run_dir(self) -> Path:
        return Path(self.out).with_suffix(".run")

    def under_root(self, path: str) -> str:
        """``path`` as given when absolute, else under ``data_root``."""
        return path if os.path.isabs(path) else os.path.join(self.data_root, path)


def read_config(path: str | None, **overrides: Any) -> TrainConfig:
    """A TrainConfig from a TOML run configuration (every key a field of TrainConfig), with
    ``overrides`` (those not None) replacing its values. ValueError names the file and an unknown
    key with its close matches, or a missing ``datasets``."""
    settings: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                settings = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the run configuration ({exc})") from None
    known = {f.name for f in fields(TrainConfig)}
    for key in settings:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            raise ValueError(f"{path}: unknown setting {key!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if not settings.get("datasets"):
        raise ValueError("no datasets: give --dataset KIND:PATH or a run configuration that lists them")
    return TrainConfig(**settings)


@dataclass
class RunData:
    """The run's data: per dataset its kind, training and validation samples, and the pristine
    sources for training and held out."""

    kinds: list[str]
    train: list[list[Sample]]
    val: list[list[Sample]]
    pristine_train: list[str]
    pristine_held: list[str]
    roots: list[str]
    pairs: list[tuple[str, str]]


@dataclass
class Cached:
    """The cache of one run (see :mod:`nima.cache`)."""

    train: cache.Rated
    val: cache.Rated
    groups: cache.Groups | None
    held: cache.Distorted | None
    pairs: Tensor | None


# --- set-up and data ----------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def load_data(config: TrainConfig) -> RunData:
    """Read the datasets and split each into training and validation; split the pristine sources.
    ValueError for ``val_fraction``, ``emd`` or ``repeats`` naming a kind the run does not read, or
    for passes that are not a whole number >= 1."""
    kinds, train, val, roots = [], [], [], []
    for spec in config.datasets:
        kind, _, path = spec.partition(":")
        ratings = open_dataset(f"{kind}:{config.under_root(path)}")
        usable = [s for s in ratings.samples if ratings.official_split.get(s.path) != "test"]
        if config.limit:
            usable = usable[: config.limit]
        share = config.val_fraction
        fraction = share.get(ratings.kind, 0.0) if isinstance(share, dict) else share
        part_train, part_val = split_groups(usable, fraction, config.split_seed)
        kinds.append(ratings.kind)
        train.append(part_train)
        val.append(part_val)
        roots.append(ratings.root)
    share = config.val_fraction
    for setting, named in (("val_fraction", share if isinstance(share, dict) else {}), ("emd", config.emd or []),
                           ("repeats", config.repeats)):
        for kind in named:  # a misspelt kind would otherwise be ignored: no validation photos, say
            if kind not in kinds:
                raise ValueError(f"{setting}: {kind!r} is not one of the run's datasets ({', '.join(kinds)})")
    for kind, passes in config.repeats.items():
        if not _whole_number_at_least_one(passes):
            raise ValueError(f"repeats: {kind} = {passes!r}; a dataset's passes per epoch are a whole number, at least 1")
    if config.pairs and not _whole_number_at_least_one(config.pairs_per_step):
        raise ValueError(f"pairs_per_step = {config.pairs_per_step!r}; the pairs a step ranks are a whole number, at least 1")
    sources = pristine_paths(config.pristine, config.data_root)
    hold = min(config.holdout_sources, max(len(sources) - 1, 0))
    pairs = [pair for file in config.pairs for pair in read_pairs(config.under_root(file))]
    return RunData(kinds, train, val, sources[: len(sources) - hold], sources[len(sources) - hold :], roots, pairs)


def _whole_number_at_least_one(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def write_split(config: TrainConfig, data: RunData) -> None:
    run = config.run_dir
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    split = {"train": [s.path for part in data.train for s in part], "val": [s.path for part in data.val for s in part],
             "pristine_train": data.pristine_train, "pristine_holdout": data.pristine_held}
    (run / "split.json").write_text(json.dumps(split, indent=1) + "\n")


# --- model and cache ----------------------------------------------------------------------


def build_model(config: TrainConfig, device: torch.device) -> NIMA:
    """The model to train, its first ``frozen_blocks`` blocks frozen."""
    if config.init:
        model, _ = load_checkpoint(config.init)
        if model.spec.name != config.backbone:
            raise ValueError(f"{config.init}: backbone {model.spec.name!r}, not {config.backbone!r}")
        if config.input_size is not None:
            model.input_size = checked_input_size(config.input_size)
    else:
        model = NIMA(config.backbone, pretrained=config.pretrained, input_size=config.input_size)
    model.freeze(config.frozen_blocks)
    return model.to(device)


def build_cache(config: TrainConfig, data: RunData, model: NIMA, device: torch.device) -> Cached:
    """The run's cache, one file per part in the run folder; a part made for this configuration
    is read back (an interrupted run resumes without recomputing the parts it finished)."""
    early, _ = model.split(config.frozen_blocks)
    model.eval()
    size, workers = model.input_size, config.workers
    frozen_part = getattr(model.features, "frozen_part", None)
    frozen = cache.weights_digest(frozen_part(config.frozen_blocks) if frozen_part is not None else [])
    common = dict(backbone=config.backbone, frozen=config.frozen_blocks, frozen_weights=frozen, size=size)

    def part(name: str, make: Callable[[], Any], **depends: object) -> Any:
        path, key = config.run_dir / f"cache-{name}.pt", cache.fingerprint(**common, **depends)
        blob = cache.load(path, key)
        if blob is None:
            blob = {"key": key, "data": make()}
            cache.save(path, blob)
        return blob["data"]

    # The ranking set checks its settings (families, per_group, compound, denoised) when built: build it
    # before the rated images' cache, which can take an hour, so a bad setting fails at once.
    synth = None
    if data.pristine_train and config.rank_weight > 0:
        synth = SyntheticRanking(data.pristine_train, per_group=config.per_group, size=size, seed=config.seed,
                                 groups_per_epoch=len(data.pristine_train) * config.groups_per_source,
                                 families=config.families, compound=config.compound, denoised=config.denoised,
                                 denoised_edit_levels=config.denoised_edit_levels)
    train = part("train", lambda: cache.rated(early, data.train, size, device, workers),
                 paths=[[s.path for s in p] for p in data.train])
    val = part("val", lambda: cache.rated(early, data.val, size, device, workers),
               paths=[[s.path for s in p] for p in data.val])
    groups = None
    if synth is not None:
        groups = part("groups", lambda: cache.groups(early, synth, device, workers), **synth.settings())
    held = None
    if data.pristine_held:
        held = part("held", lambda: cache.distorted(early, data.pristine_held, size, device), sources=data.pristine_held,
                    families=FAMILIES)
    pairs = None
    if data.pairs and config.pair_weight > 0:
        # keyed on the files' times too: mining again rewrites images under the same names
        pairs = part("pairs", lambda: cache.pairs(early, data.pairs, size, device), pairs=data.pairs,
                     written=[os.stat(path).st_mtime_ns for pair in data.pairs for path in pair])
    return Cached(train, val, groups, held, pairs)


def optimiser(config: TrainConfig, model: NIMA) -> tuple[torch.optim.Optimizer, Any]:
    """Adam, one learning rate for the trainable backbone blocks and one for the head, cosine decay."""
    body = [p for p in model.features.parameters() if p.requires_grad]
    opt = torch.optim.Adam([{"params": body, "lr": config.lr_backbone},
                            {"params": list(model.head.parameters()), "lr": config.lr_head}])
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(config.epochs, 1))


def set_bn_eval(model: nn.Module) -> None:
    """Keep every BatchNorm layer on its ImageNet statistics (small mixed batches would corrupt them)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


# --- one step -----------------------------------------------------------------------------


def batches(rated: cache.Rated, batch_size: int, generator: torch.Generator,
            repeats: Sequence[int] | None = None) -> list[Tensor]:
    """One epoch of index batches, each from one dataset, in random order: ``repeats[k]`` passes
    (default 1) over dataset k, each in its own order. A pass larger than a batch drops its last,
    partial one."""
    out: list[Tensor] = []
    for k in rated.dataset.unique().tolist():
        every = torch.nonzero(rated.dataset == k).flatten()
        for _ in range(repeats[k] if repeats is not None else 1):
            index = every[torch.randperm(len(every), generator=generator)]
            chunks = list(index.split(batch_size))
            if len(index) > batch_size and len(chunks[-1]) < batch_size:
                chunks.pop()
            out += chunks
    return [out[i] for i in torch.randperm(len(out), generator=generator).tolist()]


def flip(x: Tensor, generator: torch.Generator) -> Tensor:
    """Flip each item of (B,...,h,w) horizontally with probability 1/2."""
    mask = torch.rand(x.shape[0], generator=generator) < 0.5
    x = x.clone()
    x[mask] = x[mask].flip(-1)
    return x


def family_weight_table(weights: dict[str, float]) -> Tensor | None:
    """(len(FAMILIES) + 1,) ranking weights indexed by family id + 1 (the anchor's -1 first), 1 for
    families not named; None when none is named. ValueError names an unknown family, with its
    close matches, or a weight that is not a positive number."""
    if not weights:
        return None
    table = torch.ones(len(FAMILIES) + 1)
    for name, value in weights.items():
        if name not in FAMILIES:
            close = difflib.get_close_matches(name, FAMILIES, n=1)
            raise ValueError(f"rank_family_weights: unknown family {name!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise ValueError(f"rank_family_weights: {name} = {value!r}; a weight is a positive number")
        table[FAMILIES.index(name) + 1] = float(value)
    return table


def losses(model: NIMA, late: Callable[[Tensor], Tensor], x: Tensor, dist: Tensor, fit_emd: bool,
           group: tuple[Tensor, Tensor, Tensor] | None, margin: float, family_weight: Tensor | None = None,
           pair: Tensor | None = None) -> dict[str, Tensor]:
    """The named loss terms of one step.

    x (B,C,h,w) activations of rated images from one dataset, dist (B,10) their human
    distributions; ``fit_emd``: whether the dataset's distributions are fitted. ``group``:
    (activations (G,K,C,h,w), level (G,K), family (G,K)) of synthetic groups, or None;
    ``family_weight``: `family_weight_table`'s table, or None for equal weights. ``pair``:
    activations (P,2,C,h,w) of preference pairs, the better image first, or None.

    The groups' and pairs' scores skip the head's dropout: the hinge compares members of a group,
    and an independent dropout mask per member adds noise to every difference that the hinge can
    only lower by flattening all scores, down to one score for every photo.
    """
    parts = [x] + ([group[0].flatten(0, 1)] if group is not None else []) + ([pair.flatten(0, 1)] if pair is not None else [])
    features = late(torch.cat(parts).float().contiguous(memory_format=torch.channels_last))
    n = len(x)
    rated = model.predict(features[:n])
    human, human_std = mean_score(dist), std_score(dist)
    terms = {"fidelity": fidelity_loss(mean_score(rated), human, human_std),
             "emd": emd(rated, dist, r=2).mean() if fit_emd else rated.sum() * 0,
             "rank": rated.sum() * 0, "pairs": rated.sum() * 0}
    if group is not None:
        _, level, family = group
        scores = mean_score(model.predict(features[n:n + level.numel()], dropout=False)).view(level.shape)
        weight = [None] * len(level) if family_weight is None else family_weight.to(family.device)[family + 1]
        terms["rank"] = torch.stack([rank_loss(s, lv, fm, margin, w)
                                     for s, lv, fm, w in zip(scores, level, family, weight)]).mean()
    if pair is not None:
        scores = mean_score(model.predict(features[len(features) - 2 * len(pair):], dropout=False)).view(-1, 2)
        terms["pairs"] = pair_loss(scores[:, 0], scores[:, 1], margin)
    return terms


def run_epoch(config: TrainConfig, model: NIMA, late: Callable[[Tensor], Tensor], data: Cached, kinds: list[str],
              opt: torch.optim.Optimizer, epoch: int, device: torch.device,
              family_weight: Tensor | None) -> dict[str, float]:
    """One pass over the cached rated images (``family_weight``: `family_weight_table`'s table, or
    None); returns the mean of each loss term and the number of steps."""
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    torch.manual_seed(config.seed * 100_003 + epoch)  # dropout
    model.train()
    set_bn_eval(model)
    weights = {"emd": config.emd_weight, "fidelity": config.fidelity_weight, "rank": config.rank_weight,
               "pairs": config.pair_weight}
    g = data.groups
    order = torch.randperm(len(g.x), generator=generator) if g is not None else None
    pair_order = torch.randperm(len(data.pairs), generator=generator) if data.pairs is not None else None
    totals: dict[str, float] = {k: 0.0 for k in weights}
    steps = batches(data.train, config.batch_size, generator, [config.repeats.get(kind, 1) for kind in kinds])
    emd_kinds = {k for k, kind in enumerate(kinds) if config.emd is None or kind in config.emd}
    for i, index in enumerate(tqdm(steps, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False)):
        group = None
        if g is not None and order is not None and config.rank_weight > 0:
            pick = order[(i * config.groups_per_step + torch.arange(config.groups_per_step)) % len(order)]
            group = (flip(g.x[pick], generator).to(device), g.level[pick].to(device), g.family[pick].to(device))
        pair = None
        if data.pairs is not None and pair_order is not None and config.pair_weight > 0:
            pick = pair_order[(i * config.pairs_per_step + torch.arange(config.pairs_per_step)) % len(pair_order)]
            pair = flip(data.pairs[pick], generator).to(device)
        kind = int(data.train.dataset[index[0]])
        terms = losses(model, late, flip(data.train.x[index], generator).to(device), data.train.dist[index].to(device),
                       kind in emd_kinds, group, config.rank_margin, family_weight, pair)
        loss = sum(weights[k] * v for k, v in terms.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        opt.step()
        for k, v in terms.items():
            totals[k] += v.item() / len(steps)
    return {**{f"loss_{k}": v for k, v in totals.items()}, "steps": len(steps)}


# --- validation and checkpoints -----------------------------------------------------------


@torch.no_grad()
def predict_cached(model: NIMA, late: Callable[[Tensor], Tensor], x: Tensor, device: torch.device) -> np.ndarray:
    """(n,10) distributions of cached activations, in eval mode."""
    out = [model.predict(late(chunk.to(device).float())).cpu() for chunk in x.split(64)]
    return torch.cat(out).numpy() if out else np.zeros((0, 10), np.float32)


def validate(model: NIMA, late: Callable[[Tensor], Tensor], data: Cached, kinds: list[str],
             device: torch.device) -> dict[str, Any]:
    """Per dataset kind its agreement on the validation split (``{kind}_srcc``, ...); the mean
    SRCC over datasets (``val_srcc``); pristine-first on the held-out sources."""
    model.eval()
    figures: dict[str, Any] = {}
    pred = predict_cached(model, late, data.val.x, device)
    srccs = []
    for k, kind in enumerate(kinds):
        mask = (data.val.dataset == k).numpy()
        if mask.sum() > 1:
            got = summarise(pred[mask], data.val.dist[mask].numpy(), data.val.mean[mask].numpy())
            figures.update({f"{kind}_{name}": value for name, value in got.items()})
            srccs.append(got["srcc"])
    if srccs:
        figures["val_srcc"] = float(np.mean(srccs))
    if data.held is not None:
        scores = predict_cached(model, late, data.held.x, device) @ np.arange(1, 11)
        pf = pristine_first_of(data.held.rows, scores.tolist())
        figures.update(pristine_first=pf["accuracy"], pristine_first_2_5=pf["levels_2_5"],
                       pristine_first_1=pf["level_1"], pristine_first_worst_family_2_5=min(pf["per_family_2_5"].values()))
    return figures


def save_state(config: TrainConfig, model: NIMA, opt: torch.optim.Optimizer, sched: Any, epoch: int,
               history: list[dict[str, Any]], elapsed: float) -> None:
    """Everything ``resume`` needs, written atomically to the run folder's last.pt."""
    tmp, state_file = config.run_dir / "last.pt.tmp", config.run_dir / "last.pt"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "epoch": epoch, "history": history, "elapsed": elapsed}, tmp)
    os.replace(tmp, state_file)


def load_state(config: TrainConfig, model: NIMA, opt: torch.optim.Optimizer, sched: Any) -> tuple[int, list, float]:
    """(next epoch, history, seconds so far) from the run folder when resuming, else a fresh start."""
    state_file = config.run_dir / "last.pt"
    if not (config.resume and state_file.exists()):
        return 0, [], 0.0
    state = torch.load(state_file, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    return state["epoch"], state["history"], state["elapsed"]


def write_weights(config: TrainConfig, model: NIMA, data: RunData, final: dict[str, Any], elapsed: float,
                  device: torch.device) -> None:
    meta = {
        "datasets": config.datasets, "pristine_train": [Path(p).name for p in data.pristine_train],
        "pristine_holdout": [Path(p).name for p in data.pristine_held],
        "val_split": [_relative(s.path, root) for part, root in zip(data.val, data.roots) for s in part],
        "config": asdict(config), "validation": final, "train_seconds": elapsed, "device": str(device),
    }
    save_checkpoint(config.out, model, meta)


def _relative(path: str, root: str) -> str:
    """A sample path relative to its dataset root, so a split travels with the weights."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return path


# --- the run ------------------------------------------------------------------------------


def train(config: TrainConfig) -> dict[str, Any]:
    """Train a NIMA scorer and write ``config.out``; returns the final validation figures.

    Denormals are flushed to zero while it runs (denormal activations can slow CPU kernels many
    times over); the process-wide setting is turned off again afterwards, as it was by default.
    """
    torch.set_flush_denormal(True)
    try:
        return _train(config)
    finally:
        torch.set_flush_denormal(False)


def _train(config: TrainConfig) -> dict[str, Any]:
    device = pick_device(config.device)
    seed_everything(config.seed)
    family_weight = family_weight_table(config.rank_family_weights)  # a bad name fails before the caching
    data = load_data(config)
    write_split(config, data)
    model = build_model(config, device)
    cached = build_cache(config, data, model, device)
    if device.type == "cpu":
        # oneDNN's convolutions and their backward pass run faster channels-last (see NIMA.forward).
        model.to(memory_format=torch.channels_last)
    _, late = model.split(config.frozen_blocks)
    opt, sched = optimiser(config, model)
    start, history, elapsed = load_state(config, model, opt, sched)
    figures: dict[str, Any] = history[-1] if history else {}
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        terms = run_epoch(config, model, late, cached, data.kinds, opt, epoch, device, family_weight)
        sched.step()
        elapsed += time.perf_counter() - t0
        last = epoch + 1 == config.epochs
        figures = validate(model, late, cached, data.kinds, device) if last or (epoch + 1) % config.eval_every == 0 else {}
        figures.update(epoch=epoch + 1, seconds=elapsed, **terms)
        history.append(figures)
        tqdm.write(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))
        save_state(config, model, opt, sched, epoch + 1, history, elapsed)
    write_weights(config, model, data, figures, elapsed, device)
    return figures
