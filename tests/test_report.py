"""Tests for enhance/report.py: the self-contained HTML report of tuned and ranked photos."""

from __future__ import annotations

import base64
import copy
import io
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from enhance.rank import FileScore
from enhance.recipe import Recipe
from enhance.report import ReportItem, rank_item, render_report, thumbnail, tune_item, write_report
from enhance.tune import tune

HOSTILE = "<script>alert(1)</script>&\"'.jpg"
VOID = {"meta", "img", "br", "hr", "input", "link"}


def _photo(h: int = 240, w: int = 400, seed: int = 0) -> torch.Tensor:
    """A (1,3,h,w) photo-like image in (0,1): colour gradients, an edge and some noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([0.2 + 0.5 * xx, 0.3 + 0.4 * yy, 0.6 - 0.3 * xx * (yy > 0.5)])
    return (base + 0.03 * torch.randn(3, h, w, generator=g)).clamp(0.02, 0.98)[None]


@pytest.fixture(scope="module")
def tuned(tiny_scorer: Any) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """A real tuning run (random-weight scorer, 3 steps) and its sidecar-like record, made to
    read as improved whatever the random scorer thought."""
    image = _photo()
    out, result = tune(image, Recipe.from_ops(["exposure", "sharpen"]), tiny_scorer, steps=3, crops=1)
    record = {"input": "photo.jpg", "output": "photo.enhanced.jpg", "recipe": "exposure+sharpen",
              **result.as_dict()}
    record["kept_input"], record["note"] = False, "improved"
    record["score"]["after"]["mean"] = record["score"]["before"]["mean"] + 0.25
    return image, out, record


def _kept(record: dict[str, Any]) -> dict[str, Any]:
    r = copy.deepcopy(record)
    r["kept_input"], r["note"] = True, "the tuned result did not score above the input"
    r["objective"]["after"]["full"]["mean"] = r["objective"]["before"]["full"]["mean"] - 0.5
    r["score"]["after"] = copy.deepcopy(r["score"]["before"])  # the input, returned unchanged
    return r


class _Page(HTMLParser):
    """Collects tags with their attributes and checks that non-void tags nest and close."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def count(self, tag: str, cls: str | None = None) -> int:
        return sum(t == tag and (cls is None or cls in (a.get("class") or "").split()) for t, a in self.tags)


def _parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    p.close()
    assert not p.errors and not p.stack, (p.errors, p.stack)
    return p


def _svg_bars(page: str) -> list[int]:
    """Number of bars in each distribution chart."""
    return [s.count('class="bar"') for s in re.findall(r'<svg class="dist.*?</svg>', page, re.S)]


# --- unit tests ---------------------------------------------------------------------------


def test_thumbnail_is_a_small_jpeg_data_uri() -> None:
    uri = thumbnail(_photo(480, 640))
    assert uri.startswith("data:image/jpeg;base64,")
    im = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert im.format == "JPEG" and im.size == (320, 240)
    small = Image.open(io.BytesIO(base64.b64decode(thumbnail(_photo(50, 100)).split(",", 1)[1])))
    assert small.size == (100, 50)  # never enlarged
    with pytest.raises(ValueError, match=r"\(1,3,H,W\)"):
        thumbnail(_photo()[0])


def test_tune_page_is_well_formed_with_two_images_and_ten_bars_per_chart(tuned: Any) -> None:
    image, out, record = tuned
    items = [tune_item("a.jpg", image, out, record), tune_item("b.jpg", image, image, _kept(record))]
    page = render_report(items, title="tune")
    p = _parse(page)
    assert p.count("html") == p.count("head") == p.count("body") == 1
    assert p.count("article") == 2 and p.count("img") == 4
    for _, attrs in (t for t in p.tags if t[0] == "img"):
        assert (attrs["src"] or "").startswith("data:image/jpeg;base64,")
    assert _svg_bars(page) == [10] * 4
    assert p.count("svg", "curve") == 2 and p.count("polyline") == 2
    n_params = sum(len(op["params"]) for op in record["ops"])
    assert p.count("tr") == 2 * (1 + n_params)  # header row plus one per parameter, per item
    text = " ".join(" ".join(p.text).split())
    assert "2 tuned" in text and "1 kept input" in text and "kept input" in text
    assert "EV" in text  # exposure's unit, from the operator registry
    assert "1 improved" in text and "+0.250" in text


def test_kept_input_scores_as_the_input_in_the_totals(tuned: Any) -> None:
    _, _, record = tuned
    before = record["score"]["before"]["mean"]
    kept = _kept(record)
    page = render_report([tune_item("k.jpg", None, None, kept)], title="t")
    assert f"<b>{before:.3f}</b> → <b>{before:.3f}</b>" in page
    objective = kept["objective"]
    assert (f"objective of the tuned result {objective['after']['full']['mean']:.3f}, "
            f"of the input {objective['before']['full']['mean']:.3f}") in page
    assert "0</b> improved" in page and page.count('class="noimg"') == 2


def test_hostile_names_are_escaped(tuned: Any) -> None:
    image, out, record = tuned
    r = copy.deepcopy(record)
    r["ops"][0]["name"] = HOSTILE
    r["note"] = HOSTILE
    items = [tune_item(HOSTILE, image, out, _kept(r)), rank_item(HOSTILE, image, FileScore(HOSTILE, 5, 2, [0.1] * 10))]
    page = render_report(items, title=HOSTILE)
    assert "<script" not in page.lower()
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#x27;.jpg") >= 5
    p = _parse(page)
    assert HOSTILE in " ".join(p.text)  # the browser shows the name as written


def test_no_external_references(tuned: Any) -> None:
    image, out, record = tuned
    page = render_report([tune_item("a.jpg", image, out, record), rank_item("r.jpg", image, FileScore("r", 5, 2, [0.1] * 10))])
    assert "http://" not in page and "https://" not in page and 'src="/' not in page
    assert "<script" not in page and "<link" not in page and "url(" not in page
    for tag, attrs in _parse(page).tags:
        for key in ("src", "href", "srcset", "poster", "data"):
            assert key not in attrs or (attrs[key] or "").startswith("data:image/jpeg;base64,"), (tag, key)


def test_rank_grid_is_best_first_with_a_chart_per_card() -> None:
    scores = [FileScore(f"p{k}.jpg", 3.0 + k, 1.5, [0.1] * 10) for k in (2, 0, 3, 1)]
    items = [rank_item(s.path, _photo(seed=k), s) for k, s in enumerate(scores)]
    page = render_report(items, title="rank")
    p = _parse(page)
    assert p.count("li", "card") == 4 and p.count("img") == 4
    assert re.findall(r'class="name" title="(p\d\.jpg)"', page) == ["p3.jpg", "p2.jpg", "p1.jpg", "p0.jpg"]
    assert re.findall(r'class="rank">#(\d)', page) == ["1", "2", "3", "4"]
    assert _svg_bars(page) == [10] * 4
    assert "mean 6.000 ± 1.50" in page and "best <b>6.000</b>" in page and "worst <b>3.000</b>" in page


@pytest.mark.parametrize("history", [[], [5.2]])
def test_short_histories(tuned: Any, history: list[float]) -> None:
    _, _, record = tuned
    r = dict(record, history=history)
    page = render_report([tune_item("h.jpg", None, None, r)])
    _parse(page)
    assert ("No steps recorded." in page) == (not history)
    assert not re.search(r"\b(nan|inf)\b", page, re.I)


def test_write_report_is_atomic(tmp_path: Path, tuned: Any) -> None:
    image, out, record = tuned
    path = tmp_path / "report.html"
    write_report(path, [tune_item(HOSTILE, image, out, record)], title="ünïcode ✓")
    assert os.listdir(tmp_path) == ["report.html"]
    first = path.read_text(encoding="utf-8")
    assert "ünïcode ✓" in first and first.startswith("<!DOCTYPE html>")
    broken = ReportItem("bad.jpg", record={"ops": []})  # no scores: rendering fails
    with pytest.raises(KeyError):
        write_report(path, [broken], title="x")
    assert os.listdir(tmp_path) == ["report.html"] and path.read_text(encoding="utf-8") == first


# --- a real browser -----------------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
# Runs after the page's load event: how many images decoded, written into the DOM and the console.
CHECK = ("<script>window.addEventListener('load',()=>{const im=[...document.images];"
         "const ok=im.filter(i=>i.complete&&i.naturalWidth>0).length;"
         "document.body.dataset.decoded=ok+'/'+im.length;console.log('report-check '+ok+'/'+im.length);});</script>")


def _chromium(page: Path, tmp: Path) -> tuple[str, str]:
    """(dumped DOM, stderr) of headless Chromium loading ``page`` with :data:`CHECK` injected."""
    probe = tmp / f"probe-{page.name}"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"), encoding="utf-8")
    run = subprocess.run(
        [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=30,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout, run.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)")
def test_report_opens_in_headless_chromium(tmp_path: Path, tuned: Any) -> None:
    image, out, record = tuned
    items = [tune_item(HOSTILE, image, out, record), tune_item("kept.jpg", image, image, _kept(record)),
             *(rank_item(f"r{k}.jpg", _photo(seed=k), FileScore(f"r{k}", 4 + k, 2, [0.1] * 10)) for k in range(3))]
    report = tmp_path / "report.html"
    write_report(report, items, title="browser check")
    dom, log = _chromium(report, tmp_path)
    assert 'data-decoded="7/7"' in dom  # 2 + 2 tuned, 3 ranked: every image decoded
    assert "report-check 7/7" in log  # the console reaches stderr, so the check below can fail
    assert "Uncaught" not in log and not re.search(r"CONSOLE.*(error|Error)", log), log
    assert dom.count('class="item') == 2 and dom.count('class="card"') == 3 and dom.count('class="bar"') == 7 * 10
    assert "<script>alert" not in dom

    # The probe itself notices a broken image and a script error.
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="data:image/jpeg;base64,AAAA">'
                   "<script>undefinedFunction()</script></body></html>", encoding="utf-8")
    dom, log = _chromium(bad, tmp_path)
    assert 'data-decoded="0/1"' in dom and "Uncaught" in log


def test_tune_and_rank_commands_write_their_reports(tiny_scorer: Any, tmp_path: Path) -> None:
    """``enhance tune --report`` and ``enhance rank --report`` through the command line."""
    from click.testing import CliRunner

    import cli
    from enhance.io import write
    from nima.checkpoint import save_checkpoint

    weights = tmp_path / "w.pt"
    save_checkpoint(weights, tiny_scorer.model)
    for i in range(2):
        write(tmp_path / f"p{i}.png", _photo(96, 128, seed=i) * (0.6 + 0.3 * i))
    runner = CliRunner()
    done = runner.invoke(cli.main, ["tune", str(tmp_path / "p0.png"), "--op", "exposure", "--steps", "2",
                                    "--weights", str(weights), "--report", str(tmp_path / "tune.html")])
    assert done.exit_code == 0, done.output
    page = (tmp_path / "tune.html").read_text(encoding="utf-8")
    assert page.count('<article class="item') == 1 and page.count("data:image/jpeg;base64,") == 2
    assert f"<h2>{tmp_path / 'p0.png'}" in page
    ranked = runner.invoke(cli.main, ["rank", str(tmp_path / "p0.png"), str(tmp_path / "p1.png"),
                                      "--weights", str(weights), "--report", str(tmp_path / "rank.html")])
    assert ranked.exit_code == 0, ranked.output
    page = (tmp_path / "rank.html").read_text(encoding="utf-8")
    assert page.count('<li class="card">') == 2 and "<b>2</b> ranked" in page
