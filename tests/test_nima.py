"""The NIMA model, backbones, loss, metrics, checkpoints and the frozen scorer."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nima import DEFAULT_WEIGHTS, NIMA, Scorer, emd, load_checkpoint, load_scorer, mean_score, save_checkpoint, std_score
from nima.backbones import BACKBONES, get_backbone
from nima.model import Mixture
from nima.metrics import accuracy, plcc, srcc, summarise
from nima.resize import resize_separable


def test_emd_hand_computed():
    p = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    q = torch.tensor([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    # CDFs: p = (.5, 1, 1), q = (0, .5, 1); |diff| = (.5, .5, 0)
    assert torch.allclose(emd(p, q, r=1), torch.tensor([1 / 3, 0.0]))
    assert torch.allclose(emd(p, q, r=2), torch.tensor([np.sqrt(0.5 / 3), 0.0], dtype=torch.float32), atol=1e-5)


def test_emd_is_per_sample_not_one_root_over_the_batch():
    p = torch.tensor([[1.0, 0, 0], [1.0, 0, 0]])
    q = torch.tensor([[0, 0, 1.0], [1.0, 0, 0]])
    # per sample: sqrt(2/3) and 0, averaged: sqrt(2/3)/2; one root over the batch would give sqrt(1/3)
    assert float(emd(p, q).mean()) == pytest.approx(np.sqrt(2 / 3) / 2, abs=1e-5)


def test_emd_gradient_finite_when_equal():
    p = torch.tensor([[0.2, 0.3, 0.5]], requires_grad=True)
    emd(p, p.detach()).sum().backward()
    assert torch.isfinite(p.grad).all()


def test_mean_and_std_of_distributions():
    d = torch.zeros(1, 10)
    d[0, 2], d[0, 6] = 0.5, 0.5  # scores 3 and 7
    assert float(mean_score(d)) == pytest.approx(5.0)
    assert float(std_score(d)) == pytest.approx(2.0)


def test_correlations_are_nan_without_a_warning_when_undefined():
    flat, varied = np.full(4, 5.0), np.array([1.0, 2, 3, 4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy warns on constant input; these must not reach it
        for pred, human in ((flat, varied), (varied, flat), (varied[:1], varied[:1])):
            assert math.isnan(srcc(pred, human)) and math.isnan(plcc(pred, human))


def test_metrics_hand_computed():
    pred, human = np.array([1.0, 2, 3, 4]), np.array([2.0, 1, 4, 3])
    assert srcc(pred, human) == pytest.approx(0.6)
    assert plcc(pred, pred * 3 + 1) == pytest.approx(1.0)
    assert accuracy(np.array([4.9, 5.0, 7]), np.array([4.0, 6.0, 4.0])) == pytest.approx(2 / 3)
    dist = np.eye(10, dtype=np.float32)[[2, 4, 6]]
    out = summarise(dist, dist, np.array([10.0, 50, 90]))
    assert out["n"] == 3 and out["srcc"] == pytest.approx(1.0) and out["emd1"] == 0 and out["emd2"] < 1e-5


def test_registry_names_and_unknown():
    assert set(BACKBONES) == {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2",
                              "vgg16", "inception_v3"}
    with pytest.raises(ValueError, match="Known: efficientnet_lite0"):
        get_backbone("resnet9000")
    with pytest.raises(ValueError, match="Did you mean efficientnet_lite2"):
        get_backbone("efficientnet-lite2")


@pytest.mark.parametrize("name, size, blocks", [("efficientnet_lite1", 240, 21), ("efficientnet_lite2", 260, 21)])
def test_larger_lites_load_their_imagenet_weights_and_cut_where_asked(name, size, blocks):
    """The released weights fit the scaled architecture exactly (strict loading), and the early and
    late parts of a cut compose to the whole model; on the CPU the early part runs channels-last,
    as the whole model does (the training cache runs it over every image)."""
    spec = get_backbone(name)
    features, _ = spec.build(True)
    assert spec.input_size == size and len(features._blocks) == blocks
    model = NIMA(name, pretrained=True).eval()
    early, late = model.split(blocks - 2)
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        h = early(x)
        assert h.is_contiguous(memory_format=torch.channels_last) and not h.is_contiguous()
        assert torch.allclose(model.predict(late(h)), model(x), atol=1e-5)


def test_mixture_is_the_weighted_average_of_its_models_distributions():
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
    with pytest.raises(ValueError, match=r"one input size; got \[224, 288\]"):
        Mixture([a, NIMA(pretrained=False, input_size=288)])


def test_input_size_travels_with_the_weights_and_sets_the_scorers_view(tmp_path):
    torch.manual_seed(0)
    model = NIMA(pretrained=False, input_size=96).eval()
    save_checkpoint(tmp_path / "w96.pt", model)
    loaded, _ = load_checkpoint(tmp_path / "w96.pt")
    assert loaded.input_size == 96 and NIMA(pretrained=False).input_size == 224
    scorer = load_scorer(tmp_path / "w96.pt")
    assert scorer.input_size == 96
    x = torch.rand(1, 3, 150, 200, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():  # the scorer resizes to 96, not to the backbone's native 224
        ref = model(torch.nn.functional.interpolate(x, size=(96, 96), mode="bilinear", antialias=True))
        assert torch.allclose(scorer(x), ref, atol=2e-3)
    for bad in (8, 100.5):
        with pytest.raises(ValueError, match=f"at least 32; got {bad}"):
            NIMA(pretrained=False, input_size=bad)


def _classify(name: str) -> int:
    skdata = pytest.importorskip("skimage.data")
    spec = get_backbone("efficientnet_lite0")
    features, classifier = spec.build(True)
    features.eval()
    img = torch.from_numpy(getattr(skdata, name)()).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.interpolate(img, size=(224, 224), mode="bilinear", antialias=True)
    x = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.no_grad():
        return int(classifier(features(x).mean((2, 3))).argmax())


def test_imagenet_weights_classify_chelsea_as_a_cat():
    assert _classify("chelsea") in (281, 282, 285)


def test_imagenet_weights_classify_coffee_as_espresso():
    assert _classify("coffee") == 967


def test_torchvision_backbones_build_without_download(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    for name in ("mobilenet_v2",):
        model = NIMA(name, pretrained=False).eval()
        assert model(torch.rand(1, 3, 224, 224)).shape == (1, 10)
        with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
            get_backbone(name).build(True)


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    torch.manual_seed(0)
    model = NIMA(pretrained=False).eval()
    path = tmp_path / "w.pt"
    save_checkpoint(path, model, {"metrics": {"srcc": 0.5}})
    loaded, meta = load_checkpoint(path)
    assert meta == {"metrics": {"srcc": 0.5}}
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():  # fp16 storage: close, not equal
        assert torch.allclose(loaded.eval()(x), model(x), atol=2e-3)
    assert path.stat().st_size < 10 * 2**20
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt: not a readable weights file"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: not a NIMA weights file"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="missing.pt: weights file not found"):
        load_scorer(tmp_path / "missing.pt")


def test_scorer_is_frozen_differentiable_and_takes_any_size(tiny_scorer: Scorer):
    assert not any(p.requires_grad for p in tiny_scorer.parameters())
    tiny_scorer.train()
    assert not tiny_scorer.model.training
    x = torch.rand(2, 3, 123, 301, requires_grad=True)
    m = tiny_scorer.mean(x)
    assert m.shape == (2,) and ((m >= 1) & (m <= 10)).all()
    m.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # deterministic in eval mode (dropout off)
    assert torch.equal(tiny_scorer(x.detach()), tiny_scorer(x.detach()))


def test_scorer_gradient_finite_at_black_and_white(tiny_scorer: Scorer):
    x = torch.zeros(1, 3, 64, 64)
    x[..., 32:] = 1.0
    x.requires_grad_(True)
    tiny_scorer.mean(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_load_scorer_folds_batch_norms_without_changing_scores_or_gradients():
    """The shipped scorer as loaded (batch norms folded) against the same weights unfolded: the same
    scores, and input gradients within float32 rounding of each other (both lie about 1e-3 from a
    float64 reference)."""
    plain = Scorer(load_checkpoint(DEFAULT_WEIGHTS)[0])
    folded = load_scorer()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    gen = torch.Generator().manual_seed(1)
    ramp = torch.linspace(0, 1, 300).view(1, 1, 1, 300).expand(1, 3, 200, 300)
    for x in (torch.rand(2, 3, 224, 224, generator=gen), ramp * torch.rand(1, 3, 1, 1, generator=gen)):
        grads = []
        for scorer in (plain, folded):
            xi = x.clone().requires_grad_(True)
            scorer.mean(xi).sum().backward()
            grads.append(xi.grad)
        with torch.no_grad():
            assert torch.allclose(folded.mean(x), plain.mean(x), atol=1e-5)
        assert float((grads[1] - grads[0]).norm() / grads[0].norm()) < 1e-2
    with pytest.raises(ValueError, match="folded"):
        save_checkpoint("never-written.pt", folded.model)


def test_cpu_backbone_runs_channels_last_with_or_without_input_gradients(tiny_scorer: Scorer, monkeypatch):
    seen: list[bool] = []
    stem = tiny_scorer.model.features._conv_stem
    hook = stem.register_forward_pre_hook(lambda m, a: seen.append(a[0].is_contiguous(memory_format=torch.channels_last)))
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            fast = tiny_scorer.mean(x)
        tiny_scorer.mean(x.clone().requires_grad_(True)).sum().backward()
        monkeypatch.setattr(NIMA, "channels_last", False)
        with torch.no_grad():
            plain = tiny_scorer.mean(x)
    finally:
        hook.remove()
    assert seen == [True, True, False]  # channels-last, also for the climbed input; NCHW when switched off
    assert torch.allclose(fast, plain, atol=1e-5)


def test_channels_last_input_gradients_as_accurate_as_nchw(tiny_scorer: Scorer, monkeypatch):
    """What the tuner climbs: d(mean score)/d(image) in float32, channels-last and NCHW, each against
    the same model in float64, on a smooth photo-like image and on noise."""
    import copy

    reference_model = copy.deepcopy(tiny_scorer).double()
    g = torch.Generator().manual_seed(3)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 240), torch.linspace(0, 1, 320), indexing="ij")
    smooth = torch.stack([xx, yy, (xx * yy) ** 0.5])[None] * 0.8 + 0.1 + 0.02 * torch.rand(1, 3, 240, 320, generator=g)
    noise = torch.rand(1, 3, 224, 224, generator=g)

    def gradient(model: Scorer, image: torch.Tensor) -> torch.Tensor:
        x = image.clone().requires_grad_(True)
        model.mean(x).sum().backward()
        return x.grad.double()

    for image in (smooth, noise):
        reference = gradient(reference_model, image.double())
        errors = {}
        for layout in (True, False):
            monkeypatch.setattr(NIMA, "channels_last", layout)
            errors[layout] = float((gradient(tiny_scorer, image) - reference).norm() / reference.norm())
        assert errors[True] <= max(2 * errors[False], 1e-4), errors


@pytest.mark.parametrize("shape,size", [((2, 3, 341, 512), (224, 224)), ((1, 3, 100, 150), (224, 224)),
                                        ((1, 1, 600, 90), (224, 100))])
def test_resize_separable_matches_interpolate(shape: tuple[int, ...], size: tuple[int, int]) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0), requires_grad=True)
    ref = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    out = resize_separable(x, size)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < 5e-5
    g = torch.rand(ref.shape, generator=torch.Generator().manual_seed(1))
    ga, = torch.autograd.grad((ref * g).sum(), x)
    gb, = torch.autograd.grad((out * g).sum(), x)
    assert (ga - gb).abs().max() < 5e-5


def test_resize_is_interpolate_on_the_cpu() -> None:
    from nima.resize import resize

    x = torch.rand(1, 3, 90, 130, generator=torch.Generator().manual_seed(2))
    ref = F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
    assert torch.equal(resize(x, (64, 64)), ref)
