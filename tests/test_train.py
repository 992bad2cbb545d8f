"""Training end to end on a tiny dataset: checkpoint, exact resume, the CLI preset path, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import cli
from nima import load_checkpoint
from nima.data.synthetic import FAMILIES
from nima.model import NIMA, Mixture, mean_score
from nima.training import TrainConfig, pristine_paths, rank_loss, train

ROOT = Path(__file__).resolve().parents[1]


def _tiny_dataset(folder: Path, n: int = 8) -> tuple[str, str]:
    """A CSV of n rated images and a folder of 3 'pristine' photos, all small."""
    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    (folder / "pristine").mkdir(exist_ok=True)
    rows = ["path,mean,std"]
    for i in range(n):
        arr = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / "img" / f"{i}.png")
        rows.append(f"img/{i}.png,{3 + 4 * rng.random():.3f},1.2")
    (folder / "ratings.csv").write_text("\n".join(rows) + "\n")
    yy, xx = np.mgrid[0:120, 0:160]
    for i in range(3):
        smooth = np.stack([(xx / 160), (yy / 120), 0.5 + 0.3 * np.sin(xx / (10 + 5 * i))], -1)
        Image.fromarray((smooth * 255).astype(np.uint8)).save(folder / "pristine" / f"p{i}.png")
    return f"csv:{folder / 'ratings.csv'}", str(folder / "pristine")


def _config(tmp_path: Path, **kw) -> TrainConfig:
    data, pristine = _tiny_dataset(tmp_path / "data")
    base = dict(datasets=[data], pristine=[pristine], holdout_sources=1, epochs=2, batch_size=4,
                val_fraction=0.25, pretrained=False, groups_per_step=1, per_group=3, frozen_blocks=3,
                out=str(tmp_path / "w.pt"))
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_rank_loss_hand_computed() -> None:
    level = torch.tensor([0, 1, 3])
    family = torch.tensor([-1, 2, 2])
    good = torch.tensor([7.0, 6.0, 5.0])  # every required gap met with margin 0.2 per level
    assert float(rank_loss(good, level, family, 0.2)) == 0
    bad = torch.tensor([5.0, 6.0, 5.0])
    # pairs: (0,1) gap need .2 have -1 -> 1.2; (0,2) need .6 have 0 -> .6; (1,2) need .4 have 1 -> 0
    assert float(rank_loss(bad, level, family, 0.2)) == pytest.approx((1.2 + 0.6 + 0) / 3)


def test_pristine_sources_keep_the_order_given_so_the_held_out_ones_are_the_last_entry(tmp_path: Path) -> None:
    _, folder = _tiny_dataset(tmp_path)
    pytest.importorskip("skimage")
    paths = pristine_paths(["skimage:coffee.png", "skimage:astronaut.png", folder])
    assert [Path(p).name for p in paths] == ["coffee.png", "astronaut.png", "p0.png", "p1.png", "p2.png"]
    assert all(Path(p).is_file() for p in paths)
    with pytest.raises(ValueError, match="skimage:nope.png"):
        pristine_paths(["skimage:nope.png"])


def test_train_writes_a_self_describing_checkpoint_and_split(tmp_path: Path) -> None:
    config = _config(tmp_path, epochs=1)
    figures = train(config)
    model, meta = load_checkpoint(config.out)
    assert {"srcc", "plcc", "emd1", "emd2", "pristine_first"} <= set(figures)
    assert meta["validation"]["epoch"] == 1 and len(meta["val_split"]) == 2
    split = json.loads((config.run_dir / "split.json").read_text())
    assert not set(split["train"]) & set(split["val"]) and len(split["pristine_holdout"]) == 1


def test_seed_leaves_the_split_to_split_seed(tmp_path: Path) -> None:
    """Runs with other seeds (for a seed study, or from a stage-1 model) validate on the same images."""
    def val(name: str, **kw) -> list[str]:
        config = _config(tmp_path / name, epochs=1, rank_weight=0, holdout_sources=0, limit=None, **kw)
        data, _ = _tiny_dataset(tmp_path / "shared", n=16)
        config.datasets = [data]
        train(config)
        return json.loads((config.run_dir / "split.json").read_text())["val"]

    base = val("a")
    assert val("b", seed=3) == base
    assert val("c", split_seed=1) != base


def test_eval_every_measures_figures_on_its_epochs_and_always_after_the_last(tmp_path: Path) -> None:
    config = _config(tmp_path, epochs=3, eval_every=2, rank_weight=0, holdout_sources=0)
    figures = train(config)
    history = torch.load(config.run_dir / "last.pt", weights_only=False)["history"]
    assert ["srcc" in h for h in history] == [False, True, True]
    assert figures["epoch"] == 3 and "srcc" in figures


def test_blend_writes_the_weight_space_ensemble_of_init_and_trained(tmp_path: Path) -> None:
    """blend=0.5 writes the midpoint of the starting weights and those a blend=1 run (same seed) ends at."""
    start = _config(tmp_path / "s", epochs=1, rank_weight=0)
    train(start)
    quick = dict(epochs=1, init=start.out, holdout_sources=0)  # no pristine-first pass
    full = _config(tmp_path / "f", **quick)
    half = _config(tmp_path / "h", blend=0.5, **quick)
    train(full)
    figures = train(half)
    a, b, mid = (load_checkpoint(c.out)[0].state_dict() for c in (start, full, half))
    moved = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])]
    assert moved  # training changed the weights, so the midpoint is a real test
    for k in moved:
        assert torch.allclose(mid[k], (a[k] + b[k]) / 2, atol=2e-3, rtol=2e-3), k  # fp16 storage
    assert figures["blend"] == 0.5 and load_checkpoint(half.out)[1]["validation"]["blend"] == 0.5


def test_distill_keeps_the_starting_models_predictions(tmp_path: Path) -> None:
    """With a large distill weight and no other signal, training stays close to init's predictions."""
    start = _config(tmp_path / "s", epochs=1, rank_weight=0)
    train(start)
    with pytest.raises(ValueError, match="distill needs init"):
        train(_config(tmp_path / "n", epochs=1, distill=1.0))
    quick = dict(epochs=2, init=start.out, holdout_sources=0, lr_backbone=1e-2, lr_head=1e-1)
    free, kept = _config(tmp_path / "f", **quick), _config(tmp_path / "k", distill=100.0, **quick)
    train(free)
    train(kept)
    history = torch.load(kept.run_dir / "last.pt", weights_only=False)["history"]
    assert history[-1]["loss_keep"] > 0
    x = torch.rand(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    a, b, c = (load_checkpoint(cfg.out)[0].eval() for cfg in (start, free, kept))
    with torch.no_grad():
        drift_free, drift_kept = (float((m(x) - a(x)).abs().sum()) for m in (b, c))
    assert drift_kept < drift_free


def test_mixture_is_the_weighted_average_of_its_models_distributions() -> None:
    torch.manual_seed(0)
    a, b = NIMA(pretrained=False).eval(), NIMA(pretrained=False).eval()
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        pa, pb, mix = a(x), b(x), Mixture([a, b], [1.0, 3.0])(x)
    assert not torch.allclose(pa, pb, atol=1e-3)  # two different models, so the weights matter
    assert torch.allclose(mix, 0.25 * pa + 0.75 * pb, atol=1e-6)
    assert torch.allclose(mean_score(mix), 0.25 * mean_score(pa) + 0.75 * mean_score(pb), atol=1e-5)
    for bad in ([1.0], [-1.0, 2.0], [0.0, 0.0], [float("nan"), 1.0]):
        with pytest.raises(ValueError, match="shares"):
            Mixture([a, b], bad)


def test_teachers_are_followed_on_every_image_of_a_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With teachers, the distill term compares the model with their mixture on each step's rated
    images and on every member of its synthetic groups (plain distill: rated and pristine only),
    and the groups come even without the ranking term."""
    one = _config(tmp_path / "a", epochs=1, rank_weight=0)
    two = _config(tmp_path / "b", epochs=1, rank_weight=0, seed=1)
    train(one)
    train(two)
    with pytest.raises(ValueError, match="teachers need distill"):
        train(_config(tmp_path / "n", epochs=1, teachers=[one.out]))
    seen: list[int] = []
    forward = Mixture.forward

    def spy(self: Mixture, x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return forward(self, x)

    monkeypatch.setattr(Mixture, "forward", spy)
    # 6 rated training images in batches of 4 (the last dropped): one step of 4 rated images and
    # one synthetic group of 1 + 3 images
    kept = _config(tmp_path / "k", epochs=1, init=one.out, distill=1.0, teachers=[one.out, two.out],
                   teacher_mix=[0.25, 0.75], holdout_sources=1, rank_weight=0.0)
    train(kept)
    assert seen == [4 + 1 + 3]
    history = torch.load(kept.run_dir / "last.pt", weights_only=False)["history"]
    assert history[-1]["loss_keep"] > 0
    assert load_checkpoint(kept.out)[1]["config"]["teachers"] == [one.out, two.out]


@pytest.mark.parametrize("adversarial", [0, 1])
def test_resume_continues_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, adversarial: int) -> None:
    straight = _config(tmp_path / "a", epochs=2, adversarial=adversarial)
    train(straight)

    class Killed(Exception):
        pass

    real_replace = os.replace

    def replace_then_die(src: str, dst: str) -> None:  # the run dies right after epoch 1 is saved
        real_replace(src, dst)
        raise Killed

    killed = _config(tmp_path / "b", epochs=2, adversarial=adversarial)
    monkeypatch.setattr("nima.training.os.replace", replace_then_die)
    with pytest.raises(Killed):
        train(killed)
    monkeypatch.setattr("nima.training.os.replace", real_replace)
    train(_config(tmp_path / "b", epochs=2, resume=True, adversarial=adversarial))
    a, _ = load_checkpoint(straight.out)
    b, _ = load_checkpoint(killed.out)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_cli_preset_with_overrides_runs_on_a_tiny_configuration(tmp_path: Path) -> None:
    data, pristine = _tiny_dataset(tmp_path / "data")
    stage1, out = tmp_path / "stage1.pt", tmp_path / "preset.pt"
    runner = CliRunner()
    first = runner.invoke(cli.main, ["train", "--preset", "mos-only", "--dataset", data, "--epochs", "1",
                                     "--batch-size", "4", "--no-pretrained", "--out", str(stage1)])
    assert first.exit_code == 0, first.output
    result = runner.invoke(cli.main, [
        "train", "--preset", "default", "--init", str(stage1), "--dataset", data, "--pristine", pristine,
        "--epochs", "1", "--batch-size", "4", "--workers", "0", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    _, meta = load_checkpoint(out)
    assert meta["config"]["frozen_blocks"] == 3 and meta["datasets"] == [data]
    assert meta["config"]["init"] == str(stage1) and meta["config"]["rank_weight"] == 1.0
    # the preset predates the grain and joint tone families: its groups draw from the first 19, as the shipped run's did
    assert meta["config"]["families"] == list(FAMILIES[:19]) and len(FAMILIES) > 19


def test_two_process_training_with_torchrun(tmp_path: Path) -> None:
    data, pristine = _tiny_dataset(tmp_path / "data")
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "cli",
           "train", "--dataset", data, "--pristine", pristine, "--epochs", "1", "--batch-size", "2",
           "--no-pretrained", "--frozen-blocks", "3", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    _, meta = load_checkpoint(out)
    assert meta["world_size"] == 2


def test_cli_zero_overrides_a_preset(tmp_path: Path) -> None:
    """0 is a value, not 'not given': --frozen-blocks 0 and --rank-weight 0 replace the preset's 3 and 1;
    --families and --pairs reach the configuration too."""
    data, pristine = _tiny_dataset(tmp_path / "data")
    pairs = Path(pristine) / "pairs.csv"
    pairs.write_text("better,worse\np0.png,p1.png\n")
    out = tmp_path / "w.pt"
    result = CliRunner().invoke(cli.main, [
        "train", "--preset", "default", "--init", "", "--dataset", data, "--pristine", pristine, "--no-pretrained",
        "--epochs", "1", "--batch-size", "4", "--workers", "0", "--frozen-blocks", "0", "--rank-weight", "0",
        "--families", "all", "--pairs", str(pairs), "--pairs-per-step", "2", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    config = load_checkpoint(out)[1]["config"]
    assert config["frozen_blocks"] == 0 and config["rank_weight"] == 0 and config["families"] == list(FAMILIES)
    assert config["pairs"] == str(pairs) and config["pairs_per_step"] == 2


def test_cli_teacher_mix_takes_comma_separated_shares(tmp_path: Path) -> None:
    assert cli._shares("0.3, 0.7") == [0.3, 0.7] and cli._shares(None) is None
    result = CliRunner().invoke(cli.main, ["train", "--dataset", "csv:x.csv", "--teacher-mix", "half,half"])
    assert result.exit_code == 2 and "expected comma-separated numbers, got 'half,half'" in result.output


def test_training_leaves_denormals_representable(tmp_path: Path) -> None:
    """train() flushes denormals while it runs, not after: later code (hypothesis's float
    strategies, numerics in the tuner) needs IEEE subnormals."""
    train(_config(tmp_path, epochs=1, rank_weight=0, holdout_sources=0))
    assert torch.tensor(1e-40, dtype=torch.float32).item() != 0.0
