"""NIMA: a neural image assessment model that predicts the distribution of human opinion
scores (1..10), its loss, dataset readers, training and evaluation.

The enhancement side uses only :func:`load_scorer`, :class:`Scorer` and :func:`resize` (the
scorer's own input resize, for views it brings to the input size itself).
"""

from nima.backbones import BACKBONES, get_backbone
from nima.checkpoint import load_checkpoint, save_checkpoint
from nima.loss import emd
from nima.model import NIMA, mean_score, std_score
from nima.resize import resize
from nima.scorer import DEFAULT_WEIGHTS, Scorer, load_scorer

__all__ = [
    "BACKBONES", "DEFAULT_WEIGHTS", "NIMA", "Scorer", "TrainConfig", "emd", "get_backbone", "load_checkpoint",
    "load_scorer", "mean_score", "resize", "save_checkpoint", "std_score", "train",
]


def __getattr__(name: str) -> object:
    # Training pulls in the dataset readers and progress bars: load it only when asked for.
    if name in ("train", "TrainConfig"):
        from nima import training

        return getattr(training, name)
    raise AttributeError(f"module 'nima' has no attribute {name!r}")
