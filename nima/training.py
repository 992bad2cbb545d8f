"""Training: EMD on human-rated images plus a ranking term on synthetic distortions.

One step sees a batch of rated images (EMD, r = 2, against their vote histograms) and a few
synthetic groups: a pristine photo and several graded distortions of it under one shared view.
The ranking term is a hinge on mean scores: the pristine above each distortion, and a milder
level above a stronger one of the same family, by a margin that grows with the level gap. Given
a file of preference pairs, a few pairs join each step under the same hinge.

Runs on one process or under ``torchrun`` (DDP: gloo on CPU, nccl on CUDA). State is saved
every epoch into the run folder; ``resume=True`` continues from the last saved epoch exactly.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from nima.checkpoint import load_checkpoint, save_checkpoint
from nima.data import ImageRatings, Sample, open_dataset, split_groups
from nima.data.pairs import PreferencePairs, read_pairs
from nima.data.synthetic import LEVELS, TONE_SCALE, SyntheticRanking, tone_edit, tone_mix_strength
from nima.evaluate import evaluate_samples, pristine_first
from nima.loss import emd
from nima.model import NIMA, Mixture, mean_score
from nima.scorer import pick_device


@dataclass
class TrainConfig:
    """Everything a run needs; saved beside the weights so a run can be repeated.

    ``datasets`` are ``"KIND:PATH"`` specs (ava, tid2013, clive, koniq, csv). ``pristine`` lists
    pristine photos (files, folders or ``skimage:NAME``) for the ranking term; the last
    ``holdout_sources`` of them (in the order given, a folder's files sorted by name) are kept out
    of training and used for validation. ``init`` starts from a NIMA weights file instead of
    ImageNet features (keep its ``split_seed``, hence its split); ``blend`` below 1 then writes
    ``init + blend * (trained - init)``, the weight-space ensemble of WiSE-FT (Wortsman et al.,
    2022), which keeps more of the starting model's agreement with human opinion (the figures
    written are measured on the blend). ``distill`` weighs an EMD term that keeps the
    predictions on the rated images and on the synthetic groups' pristine photos close to those
    of ``init`` (learning without forgetting, Li and Hoiem, 2016). With ``teachers`` (weights
    files), ``distill`` instead keeps the predictions on every image of a step (rated, synthetic,
    pairs) close to the teachers' mixture ``sum_k teacher_mix[k] * teacher_k(x)`` (equal shares when
    ``teacher_mix`` is None): ensemble distillation, an average of predictions where ``blend`` is
    an average of weights; the synthetic groups are then drawn even at ``rank_weight`` 0.
    ``compound`` is the share of synthetic groups anchored on a noisy version of the source (see
    ``SyntheticRanking``);
    ``families`` restricts the groups' distortions to those families (None: all). ``pairs`` is a
    CSV of preference pairs (``nima.data.pairs``): ``pairs_per_step`` of them join each step, each
    ranked by the same hinge and margin, weighted ``rank_weight``. ``adversarial`` > 0: each group's
    pristine view is also ranked above the joint tone edit of it (``tone_edit``, at a random level)
    that the model being trained scores highest, found by that many steps of gradient ascent
    (``hardest_tone_edit``): the edits a tuner would climb to. ``eval_every``: validation
    figures every N epochs and after the last. ``seed`` drives initialisation, data order and
    augmentation; ``split_seed`` alone chooses the validation split, so runs with different
    seeds stay comparable.
    """

    datasets: list[str]
    out: str = "nima.pt"
    backbone: str = "efficientnet_lite0"
    pretrained: bool | str = True
    init: str | None = None
    epochs: int = 10
    batch_size: int = 16
    lr_backbone: float = 1e-4
    lr_head: float = 1e-3
    val_fraction: float = 0.2
    seed: int = 0
    split_seed: int = 0
    pristine: list[str] = field(default_factory=list)
    holdout_sources: int = 6
    rank_weight: float = 1.0
    rank_margin: float = 0.2
    distill: float = 0.0
    teachers: list[str] = field(default_factory=list)
    teacher_mix: list[float] | None = None
    groups_per_step: int = 2
    per_group: int = 6
    compound: float = 0.0
    families: list[str] | None = None
    pairs: str | None = None
    pairs_per_step: int = 4
    adversarial: int = 0
    blend: float = 1.0
    frozen_blocks: int = 0
    eval_every: int = 1
    limit: int | None = None
    workers: int = 0
    device: str = "auto"
    resume: bool = False

    @property
    def run_dir(self) -> Path:
        return Path(self.out).with_suffix(".run")


# --- pieces -------------------------------------------------------------------------------


def pristine_paths(entries: list[str]) -> list[str]:
    """Image files named directly or found in the given folders, in the order given (a folder's
    files sorted by name). ``skimage:NAME`` names a photo that ships with scikit-image (the
    public-domain or CC0 ones: astronaut.png, chelsea.png, coffee.png, rocket.jpg)."""
    exts = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
    out: list[str] = []
    for entry in entries:
        p = _skimage_photo(entry) if entry.startswith("skimage:") else Path(entry)
        if p.is_dir():
            out += [str(f) for f in sorted(p.rglob("*")) if f.suffix.lower() in exts]
        elif p.is_file():
            out.append(str(p))
        else:
            raise ValueError(f"{entry}: no such file or folder of pristine photos")
    return out


def _skimage_photo(entry: str) -> Path:
    try:
        import skimage.data
    except ImportError:
        raise ValueError(f"{entry}: needs scikit-image (pip install 'enhance[train]')") from None
    return Path(skimage.data.__file__).parent / entry.split(":", 1)[1]


def rank_loss(scores: torch.Tensor, level: torch.Tensor, family: torch.Tensor, margin: float) -> torch.Tensor:
    """Hinge ranking loss within one synthetic group.

    scores, level, family: (K,). Level 0 is the pristine image. Pairs: pristine above every
    distortion, and within a family a lower level above a higher one; the required gap is
    ``margin`` per level of difference. Returns the mean hinge over pairs (a scalar).
    """
    better = (level[:, None] == 0) & (level[None, :] > 0)
    better |= (family[:, None] == family[None, :]) & (level[:, None] > 0) & (level[:, None] < level[None, :])
    gap = margin * (level[None, :] - level[:, None]).to(scores.dtype)
    hinge = torch.relu(gap - (scores[:, None] - scores[None, :]))
    return hinge[better].mean() if better.any() else scores.sum() * 0


def pair_loss(scores: torch.Tensor, margin: float | torch.Tensor) -> torch.Tensor:
    """Hinge on (P,2) predicted means, the preferred image first: mean of relu(margin - (s0 - s1)).
    ``margin``: one for all pairs, or (P,)."""
    return torch.relu(margin - (scores[:, 0] - scores[:, 1])).mean()


def hardest_tone_edit(model: nn.Module, pristine: torch.Tensor, level: torch.Tensor, steps: int,
                      generator: torch.Generator, angle: float = 0.5) -> torch.Tensor:
    """The joint tone edit of each pristine view that ``model`` scores highest, at a fixed strength.

    pristine (G,3,H,W) in [0,1]; level (G,) in 1..LEVELS, the strength as the ``tone_mix`` family
    grades it (0.3 to 1 of ``TONE_SCALE``). The edit's direction starts at random on the unit
    sphere and takes ``steps`` steps of ``angle`` radians along the score's gradient projected
    onto the sphere (the strength stays fixed, so it cannot shrink toward the identity). Returns
    the edited views (G,3,H,W), detached. The model's weights get no gradient from this search.
    """
    scale = pristine.new_tensor(TONE_SCALE) * tone_mix_strength(level.to(pristine.dtype)[:, None])
    d = torch.randn(pristine.shape[0], len(TONE_SCALE), generator=generator).to(pristine)
    d = d / d.norm(dim=1, keepdim=True)
    for _ in range(steps):
        d.requires_grad_(True)
        (g,) = torch.autograd.grad(mean_score(model(tone_edit(pristine, d * scale))).sum(), d)
        g = g - (g * d).sum(1, keepdim=True) * d  # tangent to the sphere at d
        with torch.no_grad():
            d = math.cos(angle) * d + math.sin(angle) * g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
            d = d / d.norm(dim=1, keepdim=True)
    with torch.no_grad():
        return tone_edit(pristine, d * scale)


def load_model(path: str, backbone: str) -> NIMA:
    """The NIMA model of a weights file; ValueError naming the file when it is not of ``backbone``."""
    model, _ = load_checkpoint(path)
    if model.spec.name != backbone:
        raise ValueError(f"{path}: backbone {model.spec.name!r}, not {backbone!r}")
    return model


def freeze(model: NIMA, frozen_blocks: int) -> None:
    """Freeze the stem and the first ``frozen_blocks`` blocks (EfficientNet-Lite0 layout), and
    keep every BatchNorm layer on its ImageNet statistics (small mixed batches would corrupt them)."""
    if frozen_blocks > 0:
        if model.spec.name != "efficientnet_lite0":
            raise ValueError("frozen_blocks is only defined for efficientnet_lite0")
        feats: Any = model.features
        for module in [feats._conv_stem, feats._bn0, *list(feats._blocks)[:frozen_blocks]]:
            for p in module.parameters():
                p.requires_grad_(False)


def set_bn_eval(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def _cycle(loader: DataLoader, start_epoch: int) -> Iterator[Any]:
    epoch = start_epoch
    while True:
        loader.dataset.set_epoch(epoch)  # type: ignore[attr-defined]
        yield from loader
        epoch += 1


def _is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


# --- the loop -----------------------------------------------------------------------------


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
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(config.device)
    owns_group = world > 1 and not dist.is_initialized()
    if owns_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    rank = dist.get_rank() if dist.is_initialized() else 0
    torch.manual_seed(config.seed + rank)
    random.seed(config.seed + rank)
    np.random.seed(config.seed + rank)

    # Data: rated images split by group; pristine sources split into train and held out.
    samples: list[Sample] = []
    for spec in config.datasets:
        ratings = open_dataset(spec)
        samples += ratings.samples
    if config.limit:
        samples = samples[: config.limit]
    train_s, val_s = split_groups(samples, config.val_fraction, config.split_seed)
    sources = pristine_paths(config.pristine)
    hold = min(config.holdout_sources, max(len(sources) - 1, 0))
    train_src, held_src = sources[: len(sources) - hold], sources[len(sources) - hold :]

    run = config.run_dir
    if _is_main():
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
        split = {"train": [s.path for s in train_s], "val": [s.path for s in val_s],
                 "pristine_train": train_src, "pristine_holdout": held_src}
        (run / "split.json").write_text(json.dumps(split, indent=1) + "\n")

    rated = ImageRatings(train_s, train=True)
    sampler: DistributedSampler | None = DistributedSampler(rated, seed=config.seed) if world > 1 else None
    generator = torch.Generator().manual_seed(config.seed)
    adv_gen = torch.Generator().manual_seed(config.seed + 2000 + rank)  # hardest_tone_edit's levels and starts
    loader = DataLoader(rated, batch_size=config.batch_size, shuffle=sampler is None, sampler=sampler,
                        generator=generator, num_workers=config.workers, drop_last=len(rated) > config.batch_size)
    synth_iter: Iterator[Any] | None = None

    if config.distill > 0 and not (config.init or config.teachers):
        raise ValueError("distill needs init or teachers: the model(s) whose predictions to keep")
    if config.teachers and config.distill <= 0:
        raise ValueError("teachers need distill > 0: the weight of the term that follows them")
    start: NIMA | None = None  # the starting model, frozen: distill's teacher, blend's anchor
    if config.init:
        model = load_model(config.init, config.backbone).to(device)
        if (config.distill > 0 and not config.teachers) or config.blend != 1.0:
            start = copy.deepcopy(model).eval().requires_grad_(False)
    else:
        model = NIMA(config.backbone, pretrained=config.pretrained).to(device)
    teacher: nn.Module | None = start if config.distill > 0 else None
    if config.teachers:
        teacher = Mixture([load_model(p, config.backbone) for p in config.teachers], config.teacher_mix).to(device)
    freeze(model, config.frozen_blocks)
    head = list(model.head.parameters())
    body = [p for p in model.features.parameters() if p.requires_grad]
    opt = torch.optim.Adam([{"params": body, "lr": config.lr_backbone}, {"params": head, "lr": config.lr_head}])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(config.epochs, 1))

    start_epoch, history, elapsed = 0, [], 0.0
    figures: dict[str, Any] = {}
    state_file = run / "last.pt"
    if config.resume and state_file.exists():
        state = torch.load(state_file, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start_epoch, history, elapsed = state["epoch"], state["history"], state["elapsed"]
        torch.set_rng_state(state["rng_torch"])
        generator.set_state(state["rng_loader"])
        if "rng_adv" in state:  # absent from runs saved before the adversarial term existed
            adv_gen.set_state(state["rng_adv"])
        random.setstate(state["rng_py"])
        np.random.set_state(state["rng_np"])

    if train_src and (config.rank_weight > 0 or config.teachers):
        synth = SyntheticRanking(train_src, per_group=config.per_group, seed=config.seed + 1000 * rank,
                                 groups_per_epoch=max(len(loader), 1) * config.groups_per_step,
                                 compound=config.compound, families=config.families)
        synth_iter = _cycle(DataLoader(synth, batch_size=config.groups_per_step, num_workers=config.workers),
                            start_epoch)
    pair_iter: Iterator[Any] | None = None
    if config.pairs and config.rank_weight > 0:
        prefs = PreferencePairs(read_pairs(config.pairs), seed=config.seed + 1000 * rank,
                                pairs_per_epoch=max(len(loader), 1) * config.pairs_per_step)
        pair_iter = _cycle(DataLoader(prefs, batch_size=config.pairs_per_step, num_workers=config.workers), start_epoch)

    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        if sampler is not None:
            sampler.set_epoch(epoch)
        net.train()
        set_bn_eval(net)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not _is_main(), leave=False)
        for x, target in bar:
            x, target = x.to(device), target.to(device)
            n_rated = x.shape[0]
            parts, groups, n_pairs, adv_level = [x], None, 0, None
            if synth_iter is not None:
                images, level, family = next(synth_iter)
                images, groups = images.to(device), (level.to(device), family.to(device))
                parts.append(images.flatten(0, 1))
                if config.adversarial:
                    adv_level = torch.randint(1, LEVELS + 1, (images.shape[0],), generator=adv_gen).to(device)
                    model.eval()
                    adv = hardest_tone_edit(model, images[:, 0], adv_level, config.adversarial, adv_gen)
                    net.train()
                    set_bn_eval(net)
            if pair_iter is not None:
                both = next(pair_iter)
                n_pairs = both.shape[0]
                parts.append(both.flatten(0, 1).to(device))
            if adv_level is not None:
                parts.append(adv)
            x = torch.cat(parts)
            pred = net(x)
            end_groups = n_rated + (groups[0].numel() if groups is not None else 0)
            end_pairs = end_groups + 2 * n_pairs
            loss_emd = emd(pred[:n_rated], target, r=2).mean()
            loss_rank = torch.zeros((), device=device)
            loss_adv = torch.zeros((), device=device)
            if groups is not None:
                scores = mean_score(pred[n_rated:end_groups]).view(*groups[0].shape)
                loss_rank = torch.stack([rank_loss(s, lv, fm, config.rank_margin)
                                         for s, lv, fm in zip(scores, *groups)]).mean()
                if adv_level is not None:
                    loss_adv = pair_loss(torch.stack([scores[:, 0], mean_score(pred[end_pairs:])], 1),
                                         config.rank_margin * adv_level)
            loss_pairs = torch.zeros((), device=device)
            if n_pairs:
                loss_pairs = pair_loss(mean_score(pred[end_groups:end_pairs]).view(n_pairs, 2), config.rank_margin)
            loss_keep = torch.zeros((), device=device)
            if teacher is not None:
                keep = torch.arange(x.shape[0] if config.teachers else n_rated, device=device)
                if groups is not None and not config.teachers:
                    keep = torch.cat([keep, n_rated + torch.nonzero(groups[0].flatten() == 0).flatten()])
                with torch.no_grad():
                    target_keep = teacher(x[keep])
                loss_keep = emd(pred[keep], target_keep, r=2).mean()
            loss = loss_emd + config.rank_weight * (loss_rank + loss_pairs + loss_adv) + config.distill * loss_keep
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.set_postfix(emd=f"{loss_emd.item():.3f}", rank=f"{loss_rank.item():.3f}",
                            pairs=f"{loss_pairs.item():.3f}", adv=f"{loss_adv.item():.3f}", keep=f"{loss_keep.item():.3f}")
        sched.step()
        elapsed += time.perf_counter() - t0

        if _is_main():
            last = epoch + 1 == config.epochs
            figures = _figures(model, val_s, held_src, device, config.workers) \
                if last or (epoch + 1) % config.eval_every == 0 else {}
            figures.update(epoch=epoch + 1, loss_emd=loss_emd.item(), loss_rank=loss_rank.item(),
                           loss_pairs=loss_pairs.item(), loss_adv=loss_adv.item(), loss_keep=loss_keep.item(),
                           seconds=elapsed)
            history.append(figures)
            tqdm.write(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))
            tmp = run / "last.pt.tmp"
            torch.save({
                "model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "epoch": epoch + 1, "history": history, "elapsed": elapsed,
                "rng_torch": torch.get_rng_state(), "rng_loader": generator.get_state(), "rng_adv": adv_gen.get_state(),
                "rng_py": random.getstate(), "rng_np": np.random.get_state(),
            }, tmp)
            os.replace(tmp, state_file)
        if dist.is_initialized():
            dist.barrier()

    final = history[-1] if history else {}
    if start is not None and config.blend != 1.0:
        blend_weights(model, start, config.blend)
        if _is_main():
            final = {**final, **_figures(model, val_s, held_src, device, config.workers), "blend": config.blend}
    if _is_main():
        meta = {
            "datasets": config.datasets, "pristine_train": [Path(p).name for p in train_src],
            "pristine_holdout": [Path(p).name for p in held_src],
            "val_split": [_relative(s.path, config.datasets) for s in val_s],
            "config": asdict(config), "validation": final, "train_seconds": elapsed,
            "world_size": world, "device": str(device),
        }
        save_checkpoint(config.out, model, meta)
    if dist.is_initialized():
        dist.barrier()
    if owns_group:  # PyTorch asks every process to destroy the group it created before exiting
        dist.destroy_process_group()
    return final


def _figures(model: NIMA, val: list[Sample], held: list[str], device: torch.device, workers: int) -> dict[str, Any]:
    """Validation figures: agreement on the rated validation split, pristine-first on held-out sources."""
    figures: dict[str, Any] = dict(evaluate_samples(model, val, device, workers=workers)) if val else {}
    if held:
        figures["pristine_first"] = pristine_first(model, held, device)["accuracy"]
    return figures


def blend_weights(model: nn.Module, start: nn.Module, blend: float) -> None:
    """In place: each floating-point tensor of ``model`` becomes ``start + blend * (model - start)``
    (0 gives ``start``, 1 leaves ``model``); integer buffers are kept."""
    begin = start.state_dict()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(begin[name].to(t) + blend * (t - begin[name].to(t)))


def _relative(path: str, datasets: list[str]) -> str:
    """A sample path relative to its dataset root, so a split travels with the weights."""
    for spec in datasets:
        root = Path(spec.split(":", 1)[1]).resolve()
        try:
            return str(Path(path).resolve().relative_to(root))
        except ValueError:
            continue
    return path
