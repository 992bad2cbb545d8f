"""enhance: make photos look better by climbing a learned, differentiable quality scorer.

The pieces, each usable on its own:

- :mod:`enhance.ops`: differentiable operators on (B,3,H,W) sRGB tensors in [0,1], with a
  registry where your own operator (a function plus its parameter specs) can be added and then
  named in a recipe or ``--op``.
- :func:`tune`: tune a recipe's parameters on one image; :func:`render` re-applies them.
- :func:`read` / :func:`write`: photos in and out (EXIF orientation, ICC, 16-bit, HDR, atomic).
- :func:`tune_file` / :func:`apply_file`: the file-to-file jobs behind ``enhance tune`` and
  ``enhance apply``; :func:`rank_files` behind ``enhance rank``; :func:`tune_folder` behind
  ``enhance batch``.
- :func:`tune_batch` / :func:`fit_shared`: several images tuned at once, each with its own
  parameters, or one parameter set fitted to a whole collection.

The scorer itself lives in :mod:`nima` (``nima.load_scorer()``).

>>> import torch, enhance
>>> out, result = enhance.tune(torch.rand(1, 3, 48, 64) * 0.4, ["exposure", "contrast"], steps=2)
>>> [op["name"] for op in result.ops]
['exposure', 'contrast']
"""

from enhance import ops
from enhance.batch import BatchReport, tune_folder
from enhance.files import apply_file, tune_file
from enhance.io import ImageError, Photo, read, write
from enhance.rank import FileScore, find_images, rank_files, score_files
from enhance.recipe import Recipe, RecipeError, load_recipe
from enhance.render import TuneError, render
from enhance.result import TuneResult
from enhance.tune import SharedFit, fit_shared, tune, tune_batch

__all__ = [
    "BatchReport", "FileScore", "ImageError", "Photo", "Recipe", "RecipeError", "SharedFit", "TuneError",
    "TuneResult", "apply_file", "find_images", "fit_shared", "load_recipe", "ops", "rank_files", "read", "render",
    "score_files", "tune", "tune_batch", "tune_file", "tune_folder", "write",
]
