"""Operator registry: parameter specs in human units and their reparameterisation for the optimiser.

Operators register at their definition with the :func:`register_operator` decorator (as timm's
``register_model``); :func:`get` answers an unknown name with the close matches (as pyiqa does).
An operator is a pure function ``fn(image, params, *, ref_size=None) -> image`` on sRGB-encoded
(B,3,H,W) floats in [0,1], with one (B,) tensor per parameter in human units (EV, fractions of the
short side, ...). The optimiser works on unconstrained values ``u``; `ParamSpec.bounded` maps them
into ``[lo, hi]``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import torch
from torch import Tensor

_EDGE = 1e-6  # how close to a bound `unbounded` goes, so that its logit stays finite


@dataclass(frozen=True)
class ParamSpec:
    """One operator parameter: bounds, the value that leaves the image unchanged, unit and meaning.

    >>> spec = ParamSpec("ev", -3.0, 3.0, 0.0, "EV", "exposure change")
    >>> float(spec.bounded(torch.zeros(())))
    0.0
    """

    name: str
    lo: float
    hi: float
    identity: float
    unit: str
    doc: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and self.lo < self.hi):
            raise ValueError(f"{self.name}: need finite lo < hi, got [{self.lo}, {self.hi}]")

    def bounded(self, u: Tensor) -> Tensor:
        """Unconstrained ``u`` (any shape) -> human units in (lo, hi): ``lo + (hi - lo) * sigmoid(u)``."""
        return self.lo + (self.hi - self.lo) * torch.sigmoid(u)

    def unbounded(self, v: Tensor) -> Tensor:
        """Inverse of `bounded`; finite at and beyond the bounds (clamped to 1e-6 inside them)."""
        t = ((v - self.lo) / (self.hi - self.lo)).clamp(_EDGE, 1 - _EDGE)
        return torch.logit(t)

    def narrowed(self, lo: float | None = None, hi: float | None = None) -> ParamSpec:
        """A copy with a tighter range (for recipes). The identity is the operator's and is kept,
        even where it falls outside the new range. ValueError if the range leaves [self.lo, self.hi],
        is empty or is not finite."""
        new_lo = self.lo if lo is None else float(lo)
        new_hi = self.hi if hi is None else float(hi)
        if not (math.isfinite(new_lo) and math.isfinite(new_hi)):
            raise ValueError(f"{self.name}: range must be finite, got [{new_lo}, {new_hi}]")
        if new_lo < self.lo or new_hi > self.hi or new_lo >= new_hi:
            raise ValueError(
                f"{self.name}: range [{new_lo}, {new_hi}] must be non-empty and within "
                f"[{self.lo}, {self.hi}] {self.unit}".rstrip()
            )
        return replace(self, lo=new_lo, hi=new_hi)


def _no_halo(params: dict[str, Tensor], ref_size: int) -> int:
    return 0


@dataclass(frozen=True)
class Operator:
    """A named image operator.

    ``fn(image (B,3,H,W) in [0,1], params {name: (B,)}, *, ref_size=None) -> (B,3,H,W) in [0,1]``;
    ``ref_size`` is the short side in pixels of the full image (None: the image's own), the unit of
    spatial parameters. ``halo(params, ref_size)`` is how many pixels around a tile the operator
    reads (0 for pointwise operators). An operator with ``hdr=True`` also takes scene-referred
    input: ``fn(radiance (B,3,H,W) linear >= 0, params, *, ref_size=None, linear=True)`` returns
    display sRGB in [0,1]; it can be the first stage of a pipeline fed with HDR input.
    """

    name: str
    fn: Callable[..., Tensor]
    params: tuple[ParamSpec, ...]
    doc: str
    halo: Callable[[dict[str, Tensor], int], int] = _no_halo
    hdr: bool = False

    @property
    def identity(self) -> dict[str, float]:
        """{name: value} at which the operator leaves the image unchanged, in human units."""
        return {p.name: p.identity for p in self.params}

    def identity_params(
        self, batch: int = 1, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
    ) -> dict[str, Tensor]:
        """{name: (batch,) tensor at the identity value}."""
        return {k: torch.full((batch,), v, device=device, dtype=dtype) for k, v in self.identity.items()}


REGISTRY: dict[str, Operator] = {}


def register(op: Operator) -> Operator:
    """Add ``op`` to `REGISTRY`; ValueError on a duplicate name or an identity outside its bounds."""
    if op.name in REGISTRY:
        raise ValueError(f"operator {op.name!r} is already registered")
    for p in op.params:
        if not p.lo <= p.identity <= p.hi:
            raise ValueError(f"{op.name}.{p.name}: identity {p.identity} outside [{p.lo}, {p.hi}]")
    REGISTRY[op.name] = op
    return op


Fn = TypeVar("Fn", bound=Callable[..., Tensor])


def register_operator(
    *, params: tuple[ParamSpec, ...], doc: str, halo: Callable[[dict[str, Tensor], int], int] = _no_halo,
    hdr: bool = False, name: str | None = None,
) -> Callable[[Fn], Fn]:
    """Decorator: register the decorated function as an :class:`Operator` named ``name`` (default:
    the function's name) with the given fields, and return the function unchanged."""

    def add(fn: Fn) -> Fn:
        register(Operator(name or fn.__name__, fn, params, doc, halo, hdr))
        return fn

    return add


def get(name: str) -> Operator:
    """The registered operator called ``name``; ValueError naming the close matches (or, when
    none is close, every known name) otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, names(), n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"known: {', '.join(names())}"
        raise ValueError(f"unknown operator {name!r}; {hint}") from None


def names() -> list[str]:
    """Registered operator names, sorted."""
    return sorted(REGISTRY)
