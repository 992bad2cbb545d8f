"""Differentiable image operators on sRGB (B,3,H,W) tensors in [0,1]; importing registers them."""

from __future__ import annotations

from .color import white_balance
from .contrast import contrast, levels
from .denoise import denoise
from .detail import sharpen
from .registry import REGISTRY, Operator, ParamSpec, get, names, register, register_operator
from .tone import exposure, tonemap, tonemap_local

__all__ = [
    "REGISTRY",
    "Operator",
    "ParamSpec",
    "contrast",
    "denoise",
    "exposure",
    "get",
    "levels",
    "names",
    "register",
    "register_operator",
    "sharpen",
    "tonemap",
    "tonemap_local",
    "white_balance",
]
