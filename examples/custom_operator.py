"""Register a custom operator (a vignette), tune it on a photo, and name it in a Recipe.

    python examples/custom_operator.py [photo] [-o out.jpg] [--steps N]

An operator is a pure function ``fn(image, params, *, ref_size=None) -> image`` on (B,3,H,W)
sRGB-encoded floats in [0,1], with one (B,) tensor per parameter in human units, plus a
``ParamSpec`` per parameter: bounds, the identity value, unit and meaning. The tuner optimises
unconstrained values and maps them into the bounds, so any registered operator can be tuned.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from torch import Tensor

import enhance
from enhance.ops import Operator, ParamSpec

HERE = Path(__file__).resolve().parent


def vignette(image: Tensor, params: dict[str, Tensor], *, ref_size: int | None = None) -> Tensor:
    """Darken (``strength`` > 0) or brighten (< 0) toward the corners.

    image (B,3,H,W) sRGB-encoded in [0,1]; ``strength`` (B,) in [-0.5, 1], the change of gain at
    the corners (0: none); ``radius`` (B,) in [0.2, 0.95], where the fall-off starts, as a fraction
    of the half-diagonal. The gain ``1 - strength * f`` multiplies the encoded values, with
    ``f = ((r - radius)_+ / (1 - radius))**2`` rising from 0 at ``radius`` to 1 in the corners;
    ``r`` is the distance from the centre over the half-diagonal. Returns (B,3,H,W) in [0,1];
    exactly ``image`` at strength 0. ``ref_size`` is unused: the vignette is relative to the image.
    """
    h, w = image.shape[-2:]
    diagonal = math.hypot(h, w)
    y = torch.linspace(-1, 1, h, device=image.device, dtype=image.dtype) * (h / diagonal)
    x = torch.linspace(-1, 1, w, device=image.device, dtype=image.dtype) * (w / diagonal)
    r = torch.sqrt(y[:, None] ** 2 + x[None, :] ** 2)  # (H,W): 0 at the centre, 1 in the corners
    radius = params["radius"].reshape(-1, 1, 1, 1)
    falloff = ((r - radius).clamp_min(0) / (1 - radius)) ** 2
    gain = 1 - params["strength"].reshape(-1, 1, 1, 1) * falloff
    return (image * gain).clamp(0, 1)


VIGNETTE = Operator(
    name="vignette",
    fn=vignette,
    params=(
        ParamSpec("strength", -0.5, 1.0, 0.0, "", "change of gain in the corners (> 0 darkens)"),
        ParamSpec("radius", 0.2, 0.95, 0.6, "half-diagonal", "where the fall-off starts"),
    ),
    doc="Darken or brighten toward the corners",
)

RECIPE = """\
description = "Global tone curve, then a gentle vignette"
steps = {steps}

[[op]]
name = "tonemap"

[[op]]
name = "vignette"
params.strength = {{ lo = -0.25, hi = 0.5 }}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description="Register a vignette operator, tune it, use it in a recipe.")
    parser.add_argument("photo", nargs="?", default=str(HERE / "coffee-flat.jpg"))
    parser.add_argument("-o", "--out", default="vignette.jpg", help="output photo (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=15, help="tuning steps (default: %(default)s)")
    args = parser.parse_args()

    enhance.ops.register(VIGNETTE)  # now "vignette" works in tune(), Recipe and --op lists
    photo = enhance.read(args.photo)
    image = photo.image  # (1,3,H,W) sRGB in [0,1]

    same = vignette(image, VIGNETTE.identity_params())
    print(f"identity: strength 0 returns the input exactly: {torch.equal(same, image)}")

    # crops=0: score only the whole photo. The default detail crops would each get their own
    # vignette, since this operator is relative to the image it is given, unlike the built-in ones.
    t0 = time.perf_counter()
    out, result = enhance.tune(image, ["vignette"], steps=args.steps, seed=0, crops=0)
    p = result.ops[0]["params"]
    print(f"tune(['vignette']): score {result.score['before'].mean:.3f} -> {result.score['after'].mean:.3f} "
          f"in {result.steps} steps ({time.perf_counter() - t0:.1f} s); "
          f"strength={p['strength']:+.3f} radius={p['radius']:.3f}"
          + ("; no gain, input kept" if result.kept_input else ""))

    # Named in a recipe file next to a built-in operator, its strength range narrowed. Keep the
    # identity strictly inside the range: a start on a bound cannot move (the bound is a sigmoid's end).
    toml = Path(args.out).with_suffix(".toml")
    toml.write_text(RECIPE.format(steps=args.steps), encoding="utf-8")
    recipe = enhance.load_recipe(toml)
    t0 = time.perf_counter()
    out, result = enhance.tune(image, recipe, seed=0, crops=0)
    print(f"recipe {toml} (tonemap > vignette): score {result.score['before'].mean:.3f} -> {result.score['after'].mean:.3f} "
          f"({time.perf_counter() - t0:.1f} s)")
    for op in result.ops:
        print(f"  {op['name']}: " + ", ".join(f"{k}={v:+.3f}" for k, v in op["params"].items()))
    enhance.write(args.out, out, like=photo)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
