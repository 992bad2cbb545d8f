"""The documents a newcomer reads keep their shape, and their links lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/python.md", "docs/experiments.md", "benchmarks/RESULTS.md",
        "nima/weights/README.md", "examples/README.md"]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return re.findall(r"^#+ (.*)$", text, re.M)


def sections(path: Path) -> dict[str, str]:
    """Each level-2 section's text, by heading."""
    parts = re.split(r"^## (.*)$", path.read_text(encoding="utf-8"), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.parametrize("doc", DOCS)
def test_every_relative_link_and_anchor_exists(doc: str) -> None:
    path = ROOT / doc
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists() or (anchor and anchor not in {slug(h) for h in headings(dest)}):
            broken.append(target)
    assert not broken, f"{doc}: broken links {broken}"


def test_readme_results_are_at_most_eight_rows_each_linked_to_results_md() -> None:
    results = sections(ROOT / "README.md")["Results"]
    rows = [line for line in results.splitlines() if line.startswith("| [")]
    table = [line for line in results.splitlines() if line.startswith("|")]
    assert rows and len(rows) == len(table) - 2 <= 8      # header and rule, then only linked rows
    assert all("](benchmarks/RESULTS.md#" in row for row in rows)
    assert all(row.rstrip(" |").rsplit("|", 1)[1].strip() in {"yes", "no"} for row in rows)


def test_model_card_is_short_and_keeps_its_sections() -> None:
    card = ROOT / "nima/weights/README.md"
    assert len(card.read_text(encoding="utf-8").splitlines()) < 150
    assert {"Data and licences", "How to reproduce", "Figures", "Known weaknesses"} <= set(sections(card))


def test_every_results_section_opens_with_its_command() -> None:
    for heading, text in sections(ROOT / "benchmarks/RESULTS.md").items():
        first = text.strip().split("\n\n")[0]
        assert re.search(r"`(OMP_NUM_THREADS=\d+ |PYTHONPYCACHEPREFIX=\S+ )?python benchmarks/\w+\.py", first), heading
