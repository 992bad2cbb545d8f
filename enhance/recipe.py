"""Recipes: an ordered list of operators with their parameter bounds and start values, plus the
tuner's settings, read from TOML.

```toml
description = "Exposure, tone curve and contrast"   # one line, shown by `enhance recipes`
steps = 50          # step budget of the tuner
proxy = 512         # long side of the tuning proxy, pixels
strength = 0.05     # pull toward identity
fidelity = 20.0     # HDR input: weight of structural fidelity to the scene (enhance.fidelity)
hdr_strength = 3.0  # HDR input: pull toward the start (global Reinhard, its contrast capped), in place of strength
hdr_gain = 0.1      # HDR input: least rise of the score over the start that a tuned rendering must show
select = "all"      # "all": tune the operators together; "best": each alone, keep the one scored highest
when_noisy = "denoise"  # select = "best" only: on a clearly noisy photo tune this operator alone (enhance.noise)

[[op]]
name = "exposure"
params.ev = { lo = -2.0, hi = 2.0, start = 0.0 }   # narrows the operator's default bounds

[[op]]
name = "tonemap"
```
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from enhance import ops
from enhance.fidelity import HDR_WEIGHT
from enhance.ops import Operator, ParamSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_STEPS, DEFAULT_PROXY, DEFAULT_STRENGTH = 50, 512, 0.05
# HDR input's start is already a rendering (global Reinhard, enhance.render.scene_start), and the
# scorer's preferences among renderings of a scene are weak: a stronger pull keeps the climb near it
# unless a move pays (benchmarks/RESULTS.md, HDR).
DEFAULT_HDR_STRENGTH = 3.0
# For the same reason a tuned HDR rendering replaces the start only when its objective's score
# rises by at least this much on the full render: smaller rises do not tell renderings apart.
DEFAULT_HDR_GAIN = 0.1
SELECT = ("all", "best")


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file and, where known, the line."""


@dataclass(frozen=True)
class Stage:
    """One operator of a pipeline with its (possibly narrowed) parameter specs and start values."""

    op: Operator
    specs: tuple[ParamSpec, ...]
    start: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str) -> "Stage":
        op = ops.get(name)
        return cls(op, op.params, op.identity)


@dataclass(frozen=True)
class Recipe:
    """Operators in order, and the tuner's settings."""

    stages: tuple[Stage, ...]
    name: str = "custom"
    description: str = ""
    steps: int = DEFAULT_STEPS
    proxy: int = DEFAULT_PROXY
    strength: float = DEFAULT_STRENGTH
    select: str = "all"  # "all": tune every stage together; "best": each alone, keep the best (tune())
    fidelity: float = HDR_WEIGHT  # HDR input: weight of structural fidelity to the scene in the objective
    hdr_strength: float = DEFAULT_HDR_STRENGTH  # HDR input: the pull toward the start, in place of strength
    hdr_gain: float = DEFAULT_HDR_GAIN  # HDR input: the least rise of the score that keeps a tuned rendering
    when_noisy: str | None = None  # select = "best": the operator tuned alone on a noisy photo (enhance.noise)

    def pull(self, linear: bool) -> float:
        """The strength of the pull toward the identity for display-referred input, or toward the
        start (:func:`enhance.render.hdr_start`) for (``linear``) HDR input."""
        return self.hdr_strength if linear else self.strength

    def least_gain(self, linear: bool) -> float:
        """How far the full render's objective score must rise above the input as displayed for the
        tuned result to be returned: 0 for display-referred input, ``hdr_gain`` for (``linear``) HDR input."""
        return self.hdr_gain if linear else 0.0

    def __post_init__(self) -> None:
        problem = _settings_problem(self.stages, self.select, self.when_noisy)
        if problem:
            raise ValueError(problem[0])

    def alone(self, i: int) -> "Recipe":
        """The same settings with stage ``i`` only (how ``select = "best"`` tunes each stage)."""
        return replace(self, stages=(self.stages[i],), name=f"{self.name}:{self.stages[i].op.name}", select="all",
                       when_noisy=None)

    def candidates(self, noisy: bool) -> list[int]:
        """The stages ``select = "best"`` tunes alone on a photo: every one, or on a ``noisy`` photo
        only the ``when_noisy`` operator's when the recipe names one."""
        if noisy and self.when_noisy is not None:
            return [next(i for i, s in enumerate(self.stages) if s.op.name == self.when_noisy)]
        return list(range(len(self.stages)))

    @classmethod
    def from_ops(cls, names: Sequence[str], **settings: Any) -> "Recipe":
        """A recipe of the named operators with their default bounds."""
        return cls(tuple(Stage.of(n) for n in names), name="+".join(names), **settings)

    def with_values(self, values: Sequence[dict[str, float]]) -> "Recipe":
        """The same recipe starting from ``values`` (one dict per stage), e.g. fitted ones."""
        return replace(self, stages=tuple(replace(s, start=dict(v)) for s, v in zip(self.stages, values)))

    def to_toml(self) -> str:
        """TOML text that :func:`load_recipe` reads back into an equal recipe."""
        lines = [f"description = {_q(self.description)}", f"steps = {self.steps}",
                 f"proxy = {self.proxy}", f"strength = {self.strength!r}"]
        if self.select != "all":
            lines.append(f"select = {_q(self.select)}")
        if self.when_noisy is not None:
            lines.append(f"when_noisy = {_q(self.when_noisy)}")
        if self.fidelity != HDR_WEIGHT:
            lines.append(f"fidelity = {self.fidelity!r}")
        if self.hdr_strength != DEFAULT_HDR_STRENGTH:
            lines.append(f"hdr_strength = {self.hdr_strength!r}")
        if self.hdr_gain != DEFAULT_HDR_GAIN:
            lines.append(f"hdr_gain = {self.hdr_gain!r}")
        for stage in self.stages:
            lines += ["", "[[op]]", f"name = {_q(stage.op.name)}"]
            for spec in stage.specs:
                lines.append(f"params.{spec.name} = {{ lo = {spec.lo!r}, hi = {spec.hi!r}, "
                             f"start = {float(stage.start[spec.name])!r} }}")
        return "\n".join(lines) + "\n"


def _settings_problem(stages: Sequence[Stage], select: str, when_noisy: str | None) -> tuple[str, str] | None:
    """What makes ``select`` or ``when_noisy`` unusable with ``stages``, as (message, the recipe key
    it is about), or None.

    ``select = "best"`` leaves the operators it does not choose at their identity, so each
    parameter's bounds must hold its identity there; ``when_noisy`` names one of its operators."""
    if select not in SELECT:
        return f"select must be one of {', '.join(repr(v) for v in SELECT)}, got {select!r}", "select"
    if when_noisy is not None:
        names = [s.op.name for s in stages]
        if select != "best":
            return 'when_noisy needs select = "best": it names the operator tuned alone on a noisy photo', "when_noisy"
        if names.count(when_noisy) != 1:
            return (f"when_noisy must name one operator of the recipe ({', '.join(names)}), "
                    f"got {when_noisy!r}"), "when_noisy"
    if select == "best":
        for stage in stages:
            for s in stage.specs:
                if not s.lo <= s.identity <= s.hi:
                    return (f'{stage.op.name}.{s.name} range [{s.lo}, {s.hi}] leaves out its identity {s.identity}: '
                            'select = "best" keeps the operators it does not choose at their identity'), s.name
    return None


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def as_recipe(recipe: Recipe | str | Sequence[str]) -> Recipe:
    """A Recipe as is; a string names a shipped recipe or a TOML file; a list names operators."""
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str):
        return load_recipe(recipe)
    return Recipe.from_ops(list(recipe))


def builtin_recipes() -> dict[str, Path]:
    """Name -> file of the recipes shipped with the package."""
    folder = resources.files("enhance.recipes")
    return {Path(str(f)).stem: Path(str(f)) for f in folder.iterdir() if str(f).endswith(".toml")}


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A shipped recipe by name, or a TOML file by path. RecipeError names the problem's line."""
    builtin = builtin_recipes()
    path = builtin.get(str(name_or_path)) or Path(name_or_path)
    if not path.is_file():
        raise RecipeError(f"{name_or_path}: no such recipe (shipped: {', '.join(sorted(builtin))})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_recipe(text, str(path), name=path.stem)


def _line_of(text: str, *needles: str) -> str:
    """' (line N)' for the first line holding all needles, or ''."""
    for i, line in enumerate(text.splitlines(), 1):
        if all(n in line for n in needles):
            return f" (line {i})"
    return ""


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecipeError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _stage(entry: dict[str, Any], text: str, source: str) -> Stage:
    """One ``[[op]]`` entry of recipe ``text`` as a Stage; errors name ``source`` and the line."""
    op_name = entry.get("name")
    where = f"{source}{_line_of(text, 'name', repr(op_name)[1:-1])}"
    if not isinstance(op_name, str):
        raise RecipeError(f"{where}: an operator's name must be a string, got {op_name!r}")
    try:
        op = ops.get(op_name)
    except ValueError as exc:
        raise RecipeError(f"{where}: {exc}") from None
    for key in entry:
        if key not in ("name", "params"):
            raise RecipeError(f"{source}{_line_of(text, key)}: unknown key {key!r} in operator {op_name!r}")
    by_name = {p.name: p for p in op.params}
    start = op.identity
    for pname, bounds in entry.get("params", {}).items():
        pwhere = f"{source}{_line_of(text, pname)}"
        if pname not in by_name:
            raise RecipeError(f"{pwhere}: operator {op_name!r} has no parameter {pname!r}; "
                              f"it has: {', '.join(by_name)}")
        if not isinstance(bounds, dict) or set(bounds) - {"lo", "hi", "start"}:
            raise RecipeError(f"{pwhere}: {pname} takes a table with lo, hi and start")
        lo = _number(bounds["lo"], pwhere) if "lo" in bounds else None
        hi = _number(bounds["hi"], pwhere) if "hi" in bounds else None
        try:
            spec = by_name[pname].narrowed(lo, hi)
        except ValueError as exc:
            raise RecipeError(f"{pwhere}: {pname}: {exc}") from None
        value = _number(bounds.get("start", min(max(spec.identity, spec.lo), spec.hi)), pwhere)
        if not spec.lo <= value <= spec.hi:
            raise RecipeError(f"{pwhere}: {pname} start {value} lies outside [{spec.lo}, {spec.hi}]")
        by_name[pname], start[pname] = spec, value
    for p in by_name.values():  # identity outside narrowed bounds: start at the nearest bound
        start[p.name] = min(max(start[p.name], p.lo), p.hi)
    return Stage(op, tuple(by_name[p.name] for p in op.params), start)


def parse_recipe(text: str, source: str = "<recipe>", name: str = "custom") -> Recipe:
    """Parse recipe TOML text; every error names ``source`` and the offending line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{source}: invalid TOML: {exc}") from None
    known_top = {"description", "steps", "proxy", "strength", "fidelity", "hdr_strength", "hdr_gain", "select",
                 "when_noisy", "op"}
    for key in data:
        if key not in known_top:
            raise RecipeError(f"{source}{_line_of(text, key)}: unknown setting {key!r}")
    entries = data.get("op", [])
    if not isinstance(entries, list) or not entries:
        raise RecipeError(f"{source}: a recipe needs at least one [[op]] entry")
    stages = [_stage(entry, text, source) for entry in entries]
    settings: dict[str, Any] = {}
    for key, lo, hi in (("steps", 1, 10_000), ("proxy", 64, 8192)):
        if key in data:
            value = data[key]
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise RecipeError(f"{source}{_line_of(text, key)}: {key} must be an integer in [{lo}, {hi}]")
            settings[key] = value
    # hdr_gain is in score units (1..10)
    for key, hi in (("strength", 100), ("fidelity", 100), ("hdr_strength", 100), ("hdr_gain", 9)):
        if key in data:
            s = _number(data[key], f"{source}{_line_of(text, key)}")
            if not 0 <= s <= hi:
                raise RecipeError(f"{source}{_line_of(text, key)}: {key} must lie in [0, {hi}]")
            settings[key] = s
    settings.update({key: data[key] for key in ("select", "when_noisy") if key in data})
    problem = _settings_problem(stages, settings.get("select", "all"), settings.get("when_noisy"))
    if problem:
        raise RecipeError(f"{source}{_line_of(text, problem[1])}: {problem[0]}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise RecipeError(f"{source}{_line_of(text, 'description')}: description must be a string")
    return Recipe(tuple(stages), name=name, description=description, **settings)

