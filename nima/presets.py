"""Named training configurations; ``enhance train --preset NAME`` reproduces each end to end.

Paths are relative to the working directory: run from the repository root, where
``../shared/data`` holds the CLIVE ratings and the Kodak photographs.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # The shipped weights: human opinion (CLIVE) plus two-sided synthetic rankings (Kodak).
    "default": {
        "datasets": ["clive:../shared/data/clive"],
        "pristine": ["../shared/data/kodak"],
        "out": "nima/weights/nima_default.pt",
        "epochs": 12,
        "batch_size": 16,
        "frozen_blocks": 3,
        "lr_backbone": 5e-5,
        "rank_weight": 0.3,
    },
    # The baseline the ranking term is measured against: human opinion only.
    "mos-only": {
        "datasets": ["clive:../shared/data/clive"],
        "out": "runs/nima_mos_only.pt",
        "epochs": 12,
        "batch_size": 16,
        "frozen_blocks": 3,
        "rank_weight": 0.0,
    },
}
