"""docs/demo.png: the bundled example before and after `make demo`, side by side, with the
scores from the demo's sidecar.

    make demo && .venv/bin/python benchmarks/demo_figure.py
"""

from __future__ import annotations

import json

from PIL import Image, ImageDraw

from common import ROOT

before = Image.open(ROOT / "examples/coffee-flat.jpg").convert("RGB")
after = Image.open(ROOT / "examples/coffee-flat.enhanced.jpg").convert("RGB")
record = json.loads((ROOT / "examples/coffee-flat.enhanced.jpg.json").read_text())
w, h = before.size
sheet = Image.new("RGB", (2 * w + 12, h + 28), "white")
sheet.paste(before, (0, 28))
sheet.paste(after, (w + 12, 28))
draw = ImageDraw.Draw(sheet)
draw.text((4, 8), f"before: predicted score {record['score']['before']['mean']:.2f}", fill="black")
draw.text((w + 16, 8), f"after enhance tune --op tonemap: {record['score']['after']['mean']:.2f}", fill="black")
(ROOT / "docs").mkdir(exist_ok=True)
sheet.save(ROOT / "docs/demo.png", optimize=True)
print(f"wrote docs/demo.png ({sheet.size[0]}x{sheet.size[1]})")
