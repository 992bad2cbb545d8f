"""A self-contained HTML report of tuned or ranked photos.

One page, no external resources: thumbnails are base64 JPEG ``data:`` URIs, charts are inline
SVG, the style is inline CSS and there is no JavaScript. A tuned photo shows its before/after
thumbnails, the predicted score distributions (1..10) before and after, the tuned operators and
parameters, and the per-step score curve; a ranked photo shows as a card in a grid, best first.
Items keep only their thumbnails, so a batch of hundreds of photos stays small in memory.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from enhance.io import atomic_path
from enhance.rank import FileScore
from enhance.render import resize_long

_OPENING = b'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="generator" content="enhance">\n'
THUMB = 320      # long side of thumbnails, pixels
QUALITY = 85     # JPEG quality of thumbnails


@dataclass(frozen=True)
class ReportItem:
    """One photo of the report: a title, thumbnails as data URIs (None: no image) of the input (or
    the ranked photo) and the output, and either the sidecar ``record`` of a tuned photo (see
    :func:`enhance.files.tune_file`) or the ``score`` of a ranked one (``FileScore.as_dict()``)."""

    title: str
    before: str | None = None
    after: str | None = None
    record: Mapping[str, Any] | None = None
    score: Mapping[str, Any] | None = None


def thumbnail(image: torch.Tensor, long_side: int = THUMB) -> str:
    """A ``data:image/jpeg;base64,...`` URI of (1,3,H,W) sRGB ``image`` in [0,1] (clamped),
    shrunk (never enlarged) to ``long_side`` pixels."""
    if image.ndim != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"expected a (1,3,H,W) image, got {tuple(image.shape)}")
    small = resize_long(image.detach().to("cpu", torch.float32), long_side)
    pixels = (small.nan_to_num(0.0).clamp(0, 1)[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def tune_item(
    title: str, before: torch.Tensor | None, after: torch.Tensor | None, record: Mapping[str, Any]
) -> ReportItem:
    """A tuned photo: input and output (1,3,H,W) sRGB in [0,1] (None: not shown) and its sidecar record."""
    return ReportItem(title, _thumb(before), _thumb(after), record=record)


def rank_item(title: str, image: torch.Tensor | None, score: FileScore | Mapping[str, Any]) -> ReportItem:
    """A ranked photo: its (1,3,H,W) sRGB image in [0,1] (None: not shown) and its predicted opinion."""
    return ReportItem(title, _thumb(image), score=score.as_dict() if isinstance(score, FileScore) else score)


def file_item(src: str | os.PathLike[str], out: str | os.PathLike[str], record: Mapping[str, Any]) -> ReportItem:
    """A tuned photo from its files: input ``src`` (HDR input shown as the tuner displays it before
    tuning, at the recorded ``hdr_scale``), output ``out`` and its sidecar ``record``."""
    from enhance.io import read
    from enhance.render import Source

    photo = read(src)
    before = Source.of(photo.image, True, record.get("hdr_scale")).plain if photo.linear else photo.image
    return tune_item(str(src), before, read(out).image, record)


def folder_items(outdir: str | os.PathLike[str], records: Sequence[Mapping[str, Any]]) -> list[ReportItem]:
    """The tuned photos of a batch: one :func:`file_item` per ``done`` or ``skipped`` manifest
    record (see :func:`enhance.batch.tune_folder`), with the sidecar of its output under ``outdir``.
    Photos read one at a time; failed records are left out (the manifest has them)."""
    import json

    from enhance.files import sidecar_path

    items = []
    for rec in records:
        if rec.get("status") in ("done", "skipped"):
            out = Path(outdir) / str(rec["output"])
            items.append(file_item(rec["path"], out, json.loads(sidecar_path(out).read_text(encoding="utf-8"))))
    return items


def write_report(path: str | os.PathLike[str], items: Sequence[ReportItem], *, title: str = "enhance report") -> None:
    """Write the HTML report of ``items`` to ``path`` atomically, UTF-8. Tuned photos come first in
    the given order, then ranked photos in a grid sorted by mean score, best first."""
    with atomic_path(path) as tmp:
        tmp.write_text(render_report(items, title=title), encoding="utf-8")


def is_report(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a page :func:`write_report` wrote (its opening lines say so), which a
    later run may replace without ``--force``."""
    from enhance.outputs import opens_with

    return opens_with(path, _OPENING)


def render_report(items: Sequence[ReportItem], *, title: str = "enhance report") -> str:
    """The report page as a string (see :func:`write_report`)."""
    tuned = [i for i in items if i.record is not None]
    ranked = sorted((i for i in items if i.score is not None), key=_mean, reverse=True)
    records = [i.record for i in tuned if i.record is not None]
    body = [f"<header><h1>{_e(title)}</h1>{_totals(records, [_mean(i) for i in ranked])}</header>", "<main>"]
    if tuned:
        body += ['<section class="tuned">', *(_tuned(i) for i in tuned), "</section>"]
    if ranked:
        body += ['<section class="ranked"><h2 class="section">Ranked, best first</h2><ol class="grid">',
                 *(_card(n, i) for n, i in enumerate(ranked, 1)), "</ol></section>"]
    if not items:
        body.append('<p class="empty">No images.</p>')
    body.append("</main>")
    return (_OPENING.decode()
            + f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


# --- pieces -------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _mean(item: ReportItem) -> float:
    return float(item.score["mean"]) if item.score is not None else float("nan")


def _thumb(image: torch.Tensor | None) -> str | None:
    return None if image is None else thumbnail(image)


def _img(uri: str | None, alt: str) -> str:
    if uri is None:
        return f'<div class="noimg">no {_e(alt)} image</div>'
    return f'<img src="{_e(uri)}" alt="{_e(alt)}">'


def _opinions(record: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """The headline scores (whole photo, as ``enhance score``) of the input and of the output written."""
    return record["score"]["before"], record["score"]["after"]


def _totals(records: list[Mapping[str, Any]], means: list[float]) -> str:
    """Header line: tuned photos (mean score before -> as written, improved, kept input) and
    ranked photos (``means`` best first)."""
    parts = []
    if records:
        pairs = [_opinions(r) for r in records]
        before = sum(float(b["mean"]) for b, _ in pairs) / len(pairs)
        after = sum(float(a["mean"]) for _, a in pairs) / len(pairs)
        kept = sum(bool(r.get("kept_input")) for r in records)
        improved = sum(float(a["mean"]) > float(b["mean"]) for b, a in pairs)
        parts += [f"<b>{len(records)}</b> tuned", f"mean score <b>{before:.3f}</b> → <b>{after:.3f}</b>",
                  f"<b>{improved}</b> improved", f"<b>{kept}</b> kept input"]
    if means:
        parts += [f"<b>{len(means)}</b> ranked", f"mean score <b>{sum(means) / len(means):.3f}</b>",
                  f"best <b>{means[0]:.3f}</b>", f"worst <b>{means[-1]:.3f}</b>"]
    return f'<p class="totals">{" · ".join(parts)}</p>' if parts else ""


def _tuned(item: ReportItem) -> str:
    r = item.record
    assert r is not None
    before, after = _opinions(r)
    kept = bool(r.get("kept_input"))
    delta = float(after["mean"]) - float(before["mean"])
    seconds = sum(float(v) for v in r.get("seconds", {}).values())
    meta = [_e(r.get("recipe", "")), f'{_e(r.get("steps", 0))} steps', f"{seconds:.1f} s",
            f'<span class="delta {"up" if delta > 0 else "flat"}">{delta:+.3f}</span>']
    badge = ' <span class="badge">kept input</span>' if kept else ""
    tuned, given = (float(r["objective"][k]["full"]["mean"]) for k in ("after", "before"))
    note = (f'<p class="note">{_e(r.get("note", ""))} (objective of the tuned result {tuned:.3f}, '
            f'of the input {given:.3f})</p>' if kept else "")
    top = max(max(map(float, before["dist"])), max(map(float, after["dist"])))
    return (
        f'<article class="item{" kept" if kept else ""}">'
        f'<h2>{_e(item.title)}{badge}</h2><p class="meta">{" · ".join(meta)}</p>{note}'
        f'<div class="pair">'
        f'<figure>{_img(item.before, "before")}<figcaption>before</figcaption>{_dist_chart(before, top)}</figure>'
        f'<figure>{_img(item.after, "after")}<figcaption>after{" (input kept)" if kept else ""}</figcaption>'
        f"{_dist_chart(after, top, after=True)}</figure>"
        f"</div>"
        f'<div class="details">{_ops_table(r.get("ops", []))}{_curve(r.get("history", []))}</div>'
        f"</article>"
    )


def _card(rank: int, item: ReportItem) -> str:
    s = item.score
    assert s is not None
    return (f'<li class="card"><span class="rank">#{rank}</span>{_img(item.before, "photo")}'
            f'<p class="name" title="{_e(item.title)}">{_e(item.title)}</p>'
            f'{_dist_chart(s, max(map(float, s["dist"])), width=200, height=64)}</li>')


def _units() -> dict[tuple[str, str], tuple[str, str]]:
    """(operator, parameter) -> (unit, meaning) of the registered operators."""
    from enhance import ops

    return {(op.name, p.name): (p.unit, p.doc) for op in ops.REGISTRY.values() for p in op.params}


def _ops_table(ops: Sequence[Mapping[str, Any]]) -> str:
    units = _units()
    rows = []
    for op in ops:
        for name, value in op.get("params", {}).items():
            unit, doc = units.get((op["name"], name), ("", ""))
            rows.append(f'<tr><td>{_e(op["name"])}</td><td title="{_e(doc)}">{_e(name)}</td>'
                        f'<td class="num">{float(value):.4g}</td><td>{_e(unit)}</td></tr>')
    if not rows:
        return '<p class="empty">No operators.</p>'
    return ('<table class="ops"><thead><tr><th>operator</th><th>parameter</th><th>value</th><th>unit</th>'
            "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _dist_chart(opinion: Mapping[str, Any], top: float, *, width: int = 300, height: int = 84,
                after: bool = False) -> str:
    """10 bars (scores 1..10) of the predicted distribution, scaled so that ``top`` fills the
    height, with a line at the mean and the mean ± std written above."""
    dist = [float(v) for v in opinion["dist"]]
    mean, std = float(opinion["mean"]), float(opinion["std"])
    head, foot = 16, 14
    plot = height - head - foot
    step = width / len(dist)
    top = top if top > 0 else 1.0
    bars, labels = [], []
    for k, p in enumerate(dist):
        h = plot * p / top
        x = k * step
        bars.append(f'<rect class="bar" x="{x + 1:.1f}" y="{head + plot - h:.1f}" width="{step - 2:.1f}" '
                    f'height="{h:.1f}"><title>score {k + 1}: {100 * p:.1f}%</title></rect>')
        labels.append(f'<text class="tick" x="{x + step / 2:.1f}" y="{height - 3}">{k + 1}</text>')
    mx = (mean - 0.5) * step  # score s sits at the centre of bar s-1
    return (f'<svg class="dist{" after" if after else ""}" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="score distribution">'
            f'<text class="label" x="0" y="11">mean {mean:.3f} ± {std:.2f}</text>'
            + "".join(bars) + "".join(labels)
            + f'<line class="mean" x1="{mx:.1f}" x2="{mx:.1f}" y1="{head - 2}" y2="{head + plot}"></line></svg>')


def _curve(history: Sequence[float], width: int = 420, height: int = 160) -> str:
    """The mean score at each step as a polyline, with labelled axes."""
    values = [float(v) for v in history]
    if not values:
        return '<p class="empty">No steps recorded.</p>'
    left, right, top, bottom = 52, 10, 10, 34
    pw, ph = width - left - right, height - top - bottom
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or 0.01
    lo, hi = lo - pad, hi + pad
    last = max(len(values) - 1, 1)

    def xy(i: int, v: float) -> str:
        return f"{left + pw * i / last:.1f},{top + ph * (hi - v) / (hi - lo):.1f}"

    points = " ".join(xy(i, v) for i, v in enumerate(values))
    bx, by = xy(values.index(max(values)), max(values)).split(",")
    x0, y0, x1, y1 = left, top, left + pw, top + ph
    return (
        f'<svg class="curve" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="score per step">'
        f'<line class="axis" x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}"></line>'
        f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}"></line>'
        f'<text class="tick end" x="{x0 - 4}" y="{y0 + 8}">{hi - pad:.3f}</text>'
        f'<text class="tick end" x="{x0 - 4}" y="{y1}">{lo + pad:.3f}</text>'
        f'<text class="tick" x="{x0}" y="{y1 + 12}">0</text>'
        f'<text class="tick" x="{x1}" y="{y1 + 12}">{len(values) - 1}</text>'
        f'<text class="axis-label" x="{x0 + pw / 2:.1f}" y="{height - 2}">step</text>'
        f'<text class="axis-label" transform="rotate(-90)" x="{-(y0 + ph / 2):.1f}" y="11">mean score</text>'
        f'<polyline class="line" points="{points}"></polyline>'
        f'<circle class="peak" cx="{bx}" cy="{by}" r="3"><title>peak {max(values):.4f}</title></circle>'
        f"</svg>"
    )


_CSS = """
:root{--fg:#1d2127;--muted:#667085;--line:#d0d5dd;--before:#98a2b3;--after:#2e6bd8;--up:#12864b;--warn:#b54708}
*{box-sizing:border-box}
body{margin:0;padding:20px 28px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:#f6f7f9}
header{margin-bottom:16px}h1{font-size:22px;margin:0 0 4px}
.totals{margin:0;color:var(--muted)}.totals b{color:var(--fg)}
.item{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 18px;margin:0 0 16px}
.item.kept{border-color:#f5c98b}
h2{font-size:16px;margin:0;overflow-wrap:anywhere}h2.section{margin:4px 0 10px}
.meta,.note{margin:2px 0 10px;color:var(--muted)}.note{color:var(--warn)}
.badge{font-size:12px;font-weight:600;color:var(--warn);border:1px solid currentColor;border-radius:10px;padding:0 7px;margin-left:8px;vertical-align:middle}
.delta.up{color:var(--up);font-weight:600}
.pair{display:flex;flex-wrap:wrap;gap:18px}
figure{margin:0;width:320px}
figure img,.noimg{display:block;width:320px;height:auto;border-radius:4px;background:#eaecf0}
.noimg{height:200px;display:flex;align-items:center;justify-content:center;color:var(--muted)}
figcaption{font-weight:600;margin:4px 0 2px}
.details{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start;margin-top:12px}
table.ops{border-collapse:collapse;font-size:13px}
.ops th,.ops td{border-bottom:1px solid var(--line);padding:3px 10px 3px 0;text-align:left}
.ops th{color:var(--muted);font-weight:500}.ops td.num{text-align:right;font-variant-numeric:tabular-nums}
svg text{font:11px system-ui,sans-serif;fill:var(--muted)}
svg .label{fill:var(--fg);font-weight:600}
svg .tick{text-anchor:middle}svg .tick.end{text-anchor:end}
svg .axis-label{text-anchor:middle;fill:var(--fg)}
svg .axis{stroke:var(--line)}
svg .bar{fill:var(--before)}svg.after .bar{fill:var(--after)}
svg .mean{stroke:var(--fg);stroke-width:1.5;stroke-dasharray:3 2}
.curve .line{fill:none;stroke:var(--after);stroke-width:2;stroke-linejoin:round}
.curve .peak{fill:var(--up)}
.ranked .grid{list-style:none;margin:0;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(224px,1fr));gap:14px}
.card{position:relative;background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.card img,.card .noimg{display:block;width:100%;height:150px;object-fit:cover;border-radius:4px;background:#eaecf0}
.card .rank{position:absolute;top:16px;left:18px;background:rgba(0,0,0,.65);color:#fff;border-radius:10px;padding:0 8px;font-weight:600}
.card .name{margin:6px 0 2px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.card svg{width:100%;height:auto}
.empty{color:var(--muted)}
"""
