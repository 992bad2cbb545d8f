"""Training end to end on a tiny configuration of two datasets: checkpoint, split, exact resume, the
CLI with a TOML run configuration, and the loss terms."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import cli
from nima import load_checkpoint
from nima.checkpoint import save_checkpoint
from nima.data import read_pairs
from nima.model import NIMA, mean_score
from nima.data import synthetic
from nima.data.distortions import COMPOUND_BASES, FAMILIES, SMOOTHING
from nima.loss import fidelity_loss, pair_loss, rank_loss
from nima.sources import pristine_paths
from nima import cache, training
from nima.training import TrainConfig, batches, read_config, train
from test_biq2021 import write_biq2021


def _tiny_data(folder: Path, n: int = 8) -> tuple[list[str], str]:
    """Two rated datasets (a CSV of n images, a BIQ2021 folder of n training and 2 test images) and a
    folder of 3 'pristine' photos, all small. Returns the dataset specs and the pristine folder."""
    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    (folder / "pristine").mkdir(exist_ok=True)
    rows = ["path,mean,std"]
    for i in range(n):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(folder / "img" / f"{i}.png")
        rows.append(f"img/{i}.png,{3 + 4 * rng.random():.3f},1.2")
    (folder / "ratings.csv").write_text("\n".join(rows) + "\n")
    write_biq2021(folder / "biq", {f"ss03 ({i}).jpg": float(rng.random()) for i in range(n)},
                  {"ss01 (1).jpg": 0.3, "ss01 (2).jpg": 0.6})
    yy, xx = np.mgrid[0:120, 0:160]
    for i in range(3):
        smooth = np.stack([(xx / 160), (yy / 120), 0.5 + 0.3 * np.sin(xx / (10 + 5 * i))], -1)
        Image.fromarray((smooth * 255).astype(np.uint8)).save(folder / "pristine" / f"p{i}.png")
    return [f"csv:{folder / 'ratings.csv'}", f"biq2021:{folder / 'biq'}"], str(folder / "pristine")


def _config(tmp_path: Path, **kw) -> TrainConfig:
    datasets, pristine = _tiny_data(tmp_path / "data")
    base = dict(datasets=datasets, pristine=[pristine], holdout_sources=0, epochs=2, batch_size=4,
                val_fraction=0.25, pretrained=False, groups_per_source=1, groups_per_step=1, per_group=3,
                frozen_blocks=15, emd=["csv"], out=str(tmp_path / "w.pt"))
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
    # each pair weighted by its worse member: (0,1) by 1, (0,2) and (1,2) by 3
    weighted = rank_loss(bad, level, family, 0.2, weight=torch.tensor([1.0, 1.0, 3.0]))
    assert float(weighted) == pytest.approx((1.2 * 1 + 0.6 * 3 + 0 * 3) / 7)
    assert float(rank_loss(bad, level, family, 0.2, weight=torch.ones(3))) == pytest.approx((1.2 + 0.6) / 3)


def test_fidelity_loss_hand_computed_and_blind_to_a_dataset_offset() -> None:
    human, std = torch.tensor([6.0, 4.0]), torch.tensor([1.0, 1.0])
    pred = torch.tensor([5.0, 5.0])  # no preference: q = 1/2; humans: p = Phi(2 / sqrt(2))
    p = 0.5 * (1 + torch.erf(torch.tensor(2 / 2.0)))
    want = 1 - (0.5 * p).sqrt() - (0.5 * (1 - p)).sqrt()
    assert float(fidelity_loss(pred, human, std)) == pytest.approx(float(want), abs=1e-5)
    ordered = torch.tensor([6.5, 3.0, 5.0])
    three = torch.tensor([7.0, 2.0, 5.0])
    base = fidelity_loss(ordered, three, torch.ones(3))
    assert float(fidelity_loss(ordered + 3.0, three, torch.ones(3))) == pytest.approx(float(base), abs=1e-6)
    assert float(fidelity_loss(ordered.flip(0), three, torch.ones(3))) > float(base)


def test_pristine_sources_keep_the_order_given_and_read_lists_under_the_data_root(tmp_path: Path) -> None:
    _, folder = _tiny_data(tmp_path)
    listed = tmp_path / "sources.csv"
    listed.write_text("path,licence\npristine/p2.png,CC0-1.0\npristine/p0.png,CC0-1.0\n")
    root = str(Path(folder).parent)
    paths = pristine_paths([str(listed), "pristine/p1.png", "pristine"], root)
    assert [Path(p).name for p in paths] == ["p2.png", "p0.png", "p1.png", "p0.png", "p1.png", "p2.png"]
    listed.write_text("path,licence\npristine/nope.png,CC0-1.0\n")
    with pytest.raises(ValueError, match=r"sources.csv:2: .*nope.png is not a file"):
        pristine_paths([str(listed)], root)
    with pytest.raises(ValueError, match="no such file or folder"):
        pristine_paths(["missing"], root)


def test_two_datasets_train_end_to_end_and_the_official_test_split_is_never_trained_on(tmp_path: Path) -> None:
    config = _config(tmp_path, epochs=1)
    figures = train(config)
    model, meta = load_checkpoint(config.out)
    assert {"csv_srcc", "biq2021_srcc", "val_srcc", "loss_emd", "loss_fidelity", "loss_rank"} <= set(figures)
    assert figures["loss_rank"] > 0 and figures["loss_fidelity"] > 0
    assert figures["steps"] == 2  # 6 training images a dataset, one whole batch of 4 each
    split = json.loads((config.run_dir / "split.json").read_text())
    assert not set(split["train"]) & set(split["val"])
    assert len(split["train"]) == 12 and len(split["val"]) == 4  # 8 + 8 images, a quarter of each validates
    assert not [p for p in split["train"] + split["val"] if "ss01" in p]  # BIQ2021's test images
    assert meta["validation"]["epoch"] == 1 and len(meta["val_split"]) == 4


def test_input_size_sets_the_cached_view_and_is_saved_with_the_weights(tmp_path: Path) -> None:
    native = _config(tmp_path / "a", epochs=1)
    train(native)
    larger = _config(tmp_path / "b", epochs=1, input_size=256)
    train(larger)
    for config, size in ((native, 224), (larger, 256)):
        assert load_checkpoint(config.out)[0].input_size == size
        # the stem and 15 blocks of EfficientNet-Lite0 reduce 32 times
        cached = torch.load(config.run_dir / "cache-train.pt", map_location="cpu", weights_only=False)
        assert cached["data"].x.shape[-1] == size // 32
    again = _config(tmp_path / "c", epochs=1, init=larger.out)  # from a checkpoint, its size is kept
    train(again)
    assert load_checkpoint(again.out)[0].input_size == 256
    with pytest.raises(ValueError, match="at least 32; got 16"):
        train(_config(tmp_path / "d", epochs=1, init=larger.out, input_size=16))


def test_each_batch_comes_from_one_dataset() -> None:
    rated = cache.Rated(torch.zeros(10, 1, 1, 1), torch.zeros(10, 10), torch.zeros(10),
                        torch.tensor([0, 1, 0, 1, 0, 1, 1, 1, 1, 1]))
    got = batches(rated, 3, torch.Generator().manual_seed(0))
    assert sorted(len(b) for b in got) == [3, 3, 3]  # dataset 1's partial batch of one dropped; dataset 0 has one batch
    assert all(len(set(rated.dataset[b].tolist())) == 1 for b in got)


def test_repeats_pass_over_a_small_dataset_several_times_an_epoch() -> None:
    rated = cache.Rated(torch.zeros(14, 1, 1, 1), torch.zeros(14, 10), torch.zeros(14), torch.tensor([0] * 4 + [1] * 10))
    got = batches(rated, 2, torch.Generator().manual_seed(0), [3, 1])
    small = torch.cat([b for b in got if int(rated.dataset[b[0]]) == 0])
    assert sorted(small.tolist()) == sorted([0, 1, 2, 3] * 3)  # each image of dataset 0 in each of its 3 passes
    assert len(got) == 6 + 5 and all(len(set(rated.dataset[b].tolist())) == 1 for b in got)
    assert [b.tolist() for b in batches(rated, 2, torch.Generator().manual_seed(0), [1, 1])] == \
        [b.tolist() for b in batches(rated, 2, torch.Generator().manual_seed(0))]


@pytest.mark.parametrize("settings, message", [
    ({"repeats": {"koniq": 2}}, "repeats: 'koniq' is not one of the run's datasets (csv, biq2021)"),
    ({"repeats": {"csv": True}}, "csv = True; a dataset's passes per epoch are a whole number"),
    ({"repeats": {"csv": 0}}, "csv = 0; a dataset's passes per epoch are a whole number"),
    ({"val_fraction": {"cvs": 0.25}}, "val_fraction: 'cvs' is not one of the run's datasets (csv, biq2021)"),
    ({"emd": ["csv", "clive"]}, "emd: 'clive' is not one of the run's datasets (csv, biq2021)")])
def test_per_dataset_settings_name_a_dataset_of_the_run(tmp_path: Path, settings, message) -> None:
    """A misspelt kind is refused, not ignored (it would leave, say, a dataset without validation photos)."""
    with pytest.raises(ValueError, match=re.escape(message)):
        train(_config(tmp_path, epochs=1, **settings))


def test_seed_leaves_the_split_to_split_seed(tmp_path: Path) -> None:
    """Runs with other seeds validate on the same images; the split seed changes them."""
    def val(name: str, **kw) -> list[str]:
        config = _config(tmp_path / name, epochs=1, rank_weight=0, **kw)
        datasets, _ = _tiny_data(tmp_path / "shared", n=16)
        config.datasets = datasets
        train(config)
        return json.loads((config.run_dir / "split.json").read_text())["val"]
    base = val("a")
    assert val("b", seed=3) == base
    assert val("c", split_seed=1) != base


def test_eval_every_measures_figures_on_its_epochs_and_always_after_the_last(tmp_path: Path) -> None:
    config = _config(tmp_path, epochs=3, eval_every=2, rank_weight=0)
    figures = train(config)
    history = torch.load(config.run_dir / "last.pt", weights_only=False)["history"]
    assert ["val_srcc" in h for h in history] == [False, True, True]
    assert figures["epoch"] == 3 and "val_srcc" in figures


def test_resume_continues_exactly_and_reuses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    straight = _config(tmp_path / "a", epochs=2)
    train(straight)

    class Killed(Exception):
        pass

    real_save = training.save_state

    def save_then_die(*args, **kwargs) -> None:  # the run dies right after epoch 1 is saved
        real_save(*args, **kwargs)
        raise Killed

    killed = _config(tmp_path / "b", epochs=2)
    monkeypatch.setattr(training, "save_state", save_then_die)
    with pytest.raises(Killed):
        train(killed)
    monkeypatch.setattr(training, "save_state", real_save)
    made = {p.name: p.stat().st_mtime_ns for p in killed.run_dir.glob("cache-*.pt")}
    assert set(made) == {"cache-train.pt", "cache-val.pt", "cache-groups.pt"}
    train(_config(tmp_path / "b", epochs=2, resume=True))
    assert {p.name: p.stat().st_mtime_ns for p in killed.run_dir.glob("cache-*.pt")} == made
    a, _ = load_checkpoint(straight.out)
    b, _ = load_checkpoint(killed.out)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_a_changed_set_of_families_rebuilds_the_distortion_caches(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The ranking groups and the held-out distortions are keyed on the families they draw from, so a
    run after a family is added or removed does not reuse the distortions of the old set."""
    def mtimes() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in (tmp_path / "w.run").glob("cache-*.pt")}

    train(_config(tmp_path, epochs=1, holdout_sources=1))
    made = mtimes()
    assert set(made) == {"cache-train.pt", "cache-val.pt", "cache-groups.pt", "cache-held.pt"}
    train(_config(tmp_path, epochs=1, holdout_sources=1))
    assert mtimes() == made
    fewer = FAMILIES[:-1]
    monkeypatch.setattr(synthetic, "FAMILIES", fewer)
    monkeypatch.setattr(training, "FAMILIES", fewer)
    train(_config(tmp_path, epochs=1, holdout_sources=1))
    now = mtimes()
    assert now["cache-train.pt"] == made["cache-train.pt"] and now["cache-val.pt"] == made["cache-val.pt"]
    assert now["cache-groups.pt"] != made["cache-groups.pt"] and now["cache-held.pt"] != made["cache-held.pt"]


def test_held_out_sources_give_pristine_first_by_level(tmp_path: Path) -> None:
    figures = train(_config(tmp_path, epochs=1, holdout_sources=1, rank_weight=0))
    assert {"pristine_first", "pristine_first_2_5", "pristine_first_1", "pristine_first_worst_family_2_5"} <= set(figures)
    assert load_checkpoint(tmp_path / "w.pt")[1]["pristine_holdout"] == ["p2.png"]


def test_cli_trains_from_a_run_configuration_with_overrides(tmp_path: Path) -> None:
    datasets, pristine = _tiny_data(tmp_path / "data")
    run = tmp_path / "run.toml"
    root = tmp_path / "data"
    run.write_text(f'data_root = "{root}"\ndatasets = ["csv:ratings.csv", "biq2021:biq"]\npristine = ["pristine"]\n'
                   'holdout_sources = 0\npretrained = false\nfrozen_blocks = 15\nper_group = 3\n'
                   'groups_per_source = 1\nemd = ["csv"]\nepochs = 5\nval_fraction = { csv = 0.25, biq2021 = 0.5 }\n'
                   'repeats = { csv = 2 }\n')
    out = tmp_path / "w.pt"
    result = CliRunner().invoke(cli.main, ["train", "--config", str(run), "--epochs", "1", "--batch-size", "4",
                                           "--workers", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    meta = load_checkpoint(out)[1]
    assert meta["config"]["epochs"] == 1 and meta["config"]["per_group"] == 3 and meta["datasets"][1] == "biq2021:biq"
    assert meta["config"]["repeats"] == {"csv": 2}
    assert meta["validation"]["steps"] == 2 + 1  # the CSV's 6 training images twice, BIQ2021's 4 once
    assert len(meta["val_split"]) == 2 + 4
    run.write_text('datasets = ["csv:x.csv"]\nper_grup = 3\n')
    bad = CliRunner().invoke(cli.main, ["train", "--config", str(run)])
    assert bad.exit_code == 2 and "unknown setting 'per_grup'; did you mean 'per_group'?" in bad.output
    none = CliRunner().invoke(cli.main, ["train", "--epochs", "1"])
    assert none.exit_code == 2 and "no datasets" in none.output


def test_cli_refuses_to_write_the_weights_over_its_init_before_training(tmp_path: Path) -> None:
    config = _config(tmp_path, epochs=1, rank_weight=0)
    train(config)
    before = Path(config.out).read_bytes()
    run_files = {p.name: p.stat().st_mtime_ns for p in config.run_dir.iterdir()}
    data = tmp_path / "data"
    result = CliRunner().invoke(cli.main, ["train", "--dataset", f"csv:{data / 'ratings.csv'}", "--init", config.out,
                                           "--out", config.out, "--epochs", "1", "--workers", "0"])
    assert result.exit_code == 2 and "is an input of this run: refusing to overwrite the input" in result.output
    assert Path(config.out).read_bytes() == before
    assert {p.name: p.stat().st_mtime_ns for p in config.run_dir.iterdir()} == run_files  # nothing ran


def test_read_config_rejects_an_unreadable_file(tmp_path: Path) -> None:
    broken = tmp_path / "run.toml"
    broken.write_text("epochs = [\n")
    with pytest.raises(ValueError, match="run.toml: cannot read the run configuration"):
        read_config(str(broken))


def test_compound_groups_are_cached_on_a_noisy_anchor(tmp_path: Path) -> None:
    """compound=1: every cached group starts from a noisy copy of its source instead of the source
    itself, and no member of it is a smoothing family (smoothing may improve a noisy photo)."""
    plain, noisy = _config(tmp_path / "a", epochs=1), _config(tmp_path / "b", epochs=1, compound=1.0)
    train(plain)
    train(noisy)
    a, b = (torch.load(c.run_dir / "cache-groups.pt", map_location="cpu", weights_only=False)["data"] for c in (plain, noisy))
    assert a.x.shape == b.x.shape
    assert not torch.equal(a.x[:, 0], b.x[:, 0])
    assert not torch.isin(b.family, torch.tensor([FAMILIES.index(f) for f in SMOOTHING])).any()
    assert load_checkpoint(noisy.out)[1]["config"]["compound"] == 1.0
    bad = _config(tmp_path / "c", epochs=1, compound=1.5)
    with pytest.raises(ValueError, match=r"compound must be in \[0,1\], got 1.5"):
        train(bad)
    assert not (bad.run_dir / "cache-train.pt").exists()  # refused before any caching


def test_denoised_groups_are_cached_and_recorded(tmp_path: Path) -> None:
    """denoised=1: the cached groups differ from plain ones (a new cache, not the plain run's),
    and the checkpoint records the share; other edit levels make the groups again (only them); a
    share beyond 1 - compound is refused before caching."""
    plain, dn = _config(tmp_path / "a", epochs=1), _config(tmp_path / "b", epochs=1, denoised=1.0)
    train(plain)
    train(dn)
    a, b = (torch.load(c.run_dir / "cache-groups.pt", map_location="cpu", weights_only=False)["data"] for c in (plain, dn))
    assert a.x.shape == b.x.shape and not torch.equal(a.x[:, 0], b.x[:, 0])
    assert torch.isin(b.family[:, 1], torch.tensor([FAMILIES.index(f) for f in COMPOUND_BASES])).all()
    assert load_checkpoint(dn.out)[1]["config"]["denoised"] == 1.0
    stamps = {p.name: p.stat().st_mtime_ns for p in dn.run_dir.glob("cache-*.pt")}
    stronger = _config(tmp_path / "b", epochs=1, denoised=1.0, denoised_edit_levels=5)
    train(stronger)  # the edit levels key the groups cache: only it is made again
    now = {p.name: p.stat().st_mtime_ns for p in dn.run_dir.glob("cache-*.pt")}
    assert now["cache-train.pt"] == stamps["cache-train.pt"] and now["cache-groups.pt"] != stamps["cache-groups.pt"]
    assert load_checkpoint(stronger.out)[1]["config"]["denoised_edit_levels"] == 5
    bad = _config(tmp_path / "c", epochs=1, compound=0.5, denoised=0.6)
    with pytest.raises(ValueError, match="denoised must be in"):
        train(bad)
    assert not (bad.run_dir / "cache-train.pt").exists()


def test_training_leaves_denormals_representable(tmp_path: Path) -> None:
    """train() flushes denormals while it runs, not after: later code (hypothesis's float
    strategies, numerics in the tuner) needs IEEE subnormals."""
    train(_config(tmp_path, epochs=1, rank_weight=0))
    assert torch.tensor(1e-40, dtype=torch.float32).item() != 0.0


def test_the_ranking_term_compares_a_group_without_dropout_noise() -> None:
    """In training mode the rated images go through the head's dropout, but a synthetic group's
    members do not: the hinge compares them with each other, and an independent dropout mask per
    member adds noise to every difference that the hinge can only lower by flattening every score
    (a full run collapsed to one score for all photos that way)."""
    g = torch.Generator().manual_seed(0)
    model = NIMA(pretrained=False).train()
    _, late = model.split(15)
    x = torch.randn(6, 192, 2, 2, generator=g)
    dist = torch.softmax(torch.randn(6, 10, generator=g), 1)
    group = (torch.randn(2, 4, 192, 2, 2, generator=g), torch.arange(4).repeat(2, 1),
             torch.tensor([-1, 0, 0, 0]).repeat(2, 1))
    terms = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        terms.append(training.losses(model, late, x, dist, True, group, margin=0.2))
    assert terms[0]["emd"] != terms[1]["emd"]  # dropout is on for the rated images
    assert terms[0]["rank"] == terms[1]["rank"] and terms[0]["rank"] > 0


def test_rank_family_weights_weigh_the_pairs_of_a_family() -> None:
    """A family named with weight 1 changes nothing; a larger weight on the family whose member is
    ranked worst raises the ranking term, a smaller one lowers it; the table is indexed by family + 1."""
    g = torch.Generator().manual_seed(0)
    model = NIMA(pretrained=False).eval()
    _, late = model.split(15)
    x = torch.randn(4, 192, 2, 2, generator=g)
    dist = torch.softmax(torch.randn(4, 10, generator=g), 1)
    members = torch.tensor([[-1, 0, 1, 2]])
    group = (torch.randn(1, 4, 192, 2, 2, generator=g), torch.tensor([[0, 3, 3, 3]]), members)
    with torch.no_grad():
        scores = mean_score(model.predict(late(group[0][0]), dropout=False))
    worst = FAMILIES[int(members[0, 1 + int(scores[1:].argmax())])]  # scored highest: hinged most

    def rank(weights: dict[str, float]) -> float:
        with torch.no_grad():
            return float(training.losses(model, late, x, dist, True, group, 0.2,
                                         training.family_weight_table(weights))["rank"])

    assert training.family_weight_table({}) is None
    assert rank({worst: 1.0}) == pytest.approx(rank({}))
    assert rank({worst: 5.0}) > rank({}) > rank({worst: 0.2})


@pytest.mark.parametrize("weights, message", [
    ({"contrast_hihg": 2.0}, "unknown family 'contrast_hihg'; did you mean 'contrast_high'"),
    ({"gamma_dark": 0}, "gamma_dark = 0; a weight is a positive number"),
    ({"gamma_dark": "2"}, "a weight is a positive number"),
])
def test_rank_family_weights_refuse_a_bad_name_or_weight_before_caching(tmp_path: Path, weights, message) -> None:
    bad = _config(tmp_path, epochs=1, rank_family_weights=weights)
    with pytest.raises(ValueError, match=re.escape(message)):
        train(bad)
    assert not (bad.run_dir / "cache-train.pt").exists()


def test_rank_family_weights_reuse_the_groups_cache_and_are_recorded(tmp_path: Path) -> None:
    """The weights act on the loss, not on the groups: a run that adds them reads the same cache
    back (nothing is cached again) and the checkpoint records them."""
    plain = _config(tmp_path, epochs=1)
    train(plain)
    stamp = (plain.run_dir / "cache-groups.pt").stat().st_mtime_ns
    weighted = _config(tmp_path, epochs=1, rank_family_weights={"contrast_high": 3.0}, out=str(tmp_path / "w2.pt"))
    weighted.run_dir.mkdir()
    for name in ("train", "val", "groups"):
        (weighted.run_dir / f"cache-{name}.pt").hardlink_to(plain.run_dir / f"cache-{name}.pt")
    train(weighted)
    assert (weighted.run_dir / "cache-groups.pt").stat().st_mtime_ns == stamp
    assert load_checkpoint(weighted.out)[1]["config"]["rank_family_weights"] == {"contrast_high": 3.0}


def _write_pairs(folder: Path, n: int = 3) -> Path:
    """n preference pairs: a smooth image above a noisy copy of it."""
    rng = np.random.default_rng(1)
    (folder / "pairs").mkdir(parents=True, exist_ok=True)
    rows = ["better,worse,kind"]
    yy, xx = np.mgrid[0:48, 0:64]
    for i in range(n):
        clean = np.stack([xx / 64, yy / 48, np.full(xx.shape, 0.2 + 0.2 * i)], -1)
        noisy = np.clip(clean + rng.normal(0, 0.2, clean.shape), 0, 1)
        for name, image in (("clean", clean), ("noisy", noisy)):
            Image.fromarray((image * 255).astype(np.uint8)).save(folder / "pairs" / f"{i}_{name}.png")
        rows.append(f"pairs/{i}_clean.png,pairs/{i}_noisy.png,clean > noisy")
    (folder / "pairs.csv").write_text("\n".join(rows) + "\n")
    return folder / "pairs.csv"


def test_pair_loss_hand_computed() -> None:
    better, worse = torch.tensor([6.0, 5.0, 4.0]), torch.tensor([5.0, 5.1, 3.9])
    # gaps 1.0, -0.1, 0.1 against a margin of 0.2: hinges 0, 0.3, 0.1
    assert float(pair_loss(better, worse, 0.2)) == pytest.approx(0.4 / 3)


def test_read_pairs_resolves_paths_and_names_the_file_and_the_problem(tmp_path: Path) -> None:
    listed = _write_pairs(tmp_path)
    pairs = read_pairs(str(listed))
    assert len(pairs) == 3 and pairs[0] == (str(tmp_path / "pairs" / "0_clean.png"), str(tmp_path / "pairs" / "0_noisy.png"))
    (tmp_path / "pairs" / "empty.png").write_bytes(b"")
    (tmp_path / "pairs" / "text.png").write_text("not an image")
    bad = tmp_path / "bad.csv"
    for text, message in [
        ("better,kind\npairs/0_clean.png,x\n", r"bad.csv: missing columns \['worse'\]"),
        ("better,worse\npairs/0_clean.png,pairs/gone.png\n", r"bad.csv, line 2: .*gone.png: no such file"),
        ("better,worse\npairs/0_clean.png,pairs/1_noisy.png\npairs/empty.png,pairs/0_noisy.png\n",
         r"bad.csv, line 3: .*empty.png: empty file"),
        ("better,worse\npairs/0_clean.png,pairs/text.png\n", r"bad.csv, line 2: .*text.png: not an image"),
        ("better,worse\n", "bad.csv: no pairs"),
    ]:
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_pairs(str(bad))
    with pytest.raises(ValueError, match="absent.csv: cannot read the preference pairs"):
        read_pairs(str(tmp_path / "absent.csv"))


def test_preference_pairs_train_and_are_cached_once(tmp_path: Path) -> None:
    """A run with ``pairs`` ranks them (a non-zero hinge, recorded per epoch), caches both images of
    each pair once (a second run reads them back) and caches them again when the images change."""
    listed = _write_pairs(tmp_path / "mined")
    config = _config(tmp_path, epochs=1, pairs=[str(listed)], pairs_per_step=2, pair_weight=1.0, rank_margin=5.0)
    figures = train(config)
    assert figures["loss_pairs"] > 0
    cached = torch.load(config.run_dir / "cache-pairs.pt", map_location="cpu", weights_only=False)["data"]
    assert cached.shape[:2] == (3, 2)
    stamp = (config.run_dir / "cache-pairs.pt").stat().st_mtime_ns
    train(config)
    assert (config.run_dir / "cache-pairs.pt").stat().st_mtime_ns == stamp
    changed = tmp_path / "mined" / "pairs" / "0_noisy.png"
    before = changed.stat().st_mtime_ns
    Image.new("RGB", (64, 48), (200, 10, 10)).save(changed)
    os.utime(changed, ns=(before + 10**9, before + 10**9))  # a file system with coarse times would miss it
    train(config)
    assert (config.run_dir / "cache-pairs.pt").stat().st_mtime_ns != stamp
    plain = train(_config(tmp_path / "plain", epochs=1))
    assert plain["loss_pairs"] == 0


def test_the_pair_term_moves_the_better_image_up() -> None:
    """The pair term's gradient raises the better image's score over the worse one's."""
    g = torch.Generator().manual_seed(0)
    model = NIMA(pretrained=False).train()
    _, late = model.split(15)
    x = torch.randn(4, 192, 2, 2, generator=g)
    dist = torch.softmax(torch.randn(4, 10, generator=g), 1)
    pair = torch.randn(3, 2, 192, 2, 2, generator=g)
    opt = torch.optim.SGD(model.head.parameters(), lr=0.5)

    def gap() -> float:
        with torch.no_grad():
            s = mean_score(model.predict(late(pair.flatten(0, 1)), dropout=False)).view(3, 2)
        return float((s[:, 0] - s[:, 1]).mean())

    before = gap()
    for _ in range(5):
        terms = training.losses(model, late, x, dist, False, None, margin=2.0, pair=pair)
        opt.zero_grad()
        terms["pairs"].backward()
        opt.step()
    assert gap() > before


def test_the_cache_is_keyed_on_the_frozen_blocks_weights_not_the_file(tmp_path: Path) -> None:
    """A run started from a copy of the weights under another name, or from weights whose trainable
    blocks differ, reads the cache back; weights whose frozen blocks differ make it again."""
    model = NIMA(pretrained=False)
    save_checkpoint(tmp_path / "a.pt", model, {})
    first = _config(tmp_path, epochs=1, init=str(tmp_path / "a.pt"), frozen_blocks=12, rank_weight=0)
    train(first)
    stamp = (first.run_dir / "cache-train.pt").stat().st_mtime_ns
    with torch.no_grad():
        model.head.weight.add_(1.0)  # the head trains: the cache still holds
    save_checkpoint(tmp_path / "b.pt", model, {})
    train(_config(tmp_path, epochs=1, init=str(tmp_path / "b.pt"), frozen_blocks=12, rank_weight=0))
    assert (first.run_dir / "cache-train.pt").stat().st_mtime_ns == stamp
    with torch.no_grad():
        next(model.features.frozen_part(12)[0].parameters()).add_(0.1)  # the stem is frozen: a new cache
    save_checkpoint(tmp_path / "c.pt", model, {})
    train(_config(tmp_path, epochs=1, init=str(tmp_path / "c.pt"), frozen_blocks=12, rank_weight=0))
    assert (first.run_dir / "cache-train.pt").stat().st_mtime_ns != stamp


def test_pairs_per_step_must_be_a_whole_number_of_pairs(tmp_path: Path) -> None:
    listed = _write_pairs(tmp_path / "mined")
    bad = _config(tmp_path, epochs=1, pairs=[str(listed)], pairs_per_step=0)
    with pytest.raises(ValueError, match="pairs_per_step = 0"):
        train(bad)
    assert not (bad.run_dir / "cache-train.pt").exists()
