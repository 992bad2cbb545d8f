"""How noisy a photo is, measured rather than scored.

The scorer rates a noisy photo made darker, flatter or more contrasty above the same photo
denoised, on photos unlike its training set (benchmarks/RESULTS.md, Restoration), so a
``select = "best"`` recipe with ``when_noisy`` tunes only its denoiser on a photo whose measured
noise is at least `NOISY`, and the scorer does not choose there.

The estimate is the median absolute value of the finest diagonal Haar coefficients, divided by
0.6745 (Donoho's robust noise estimate), taken per block and per channel; texture raises it
everywhere but in flat parts, noise everywhere, so the blocks' low quantile `QUANTILE` is kept.
Blocks near black or white are left out, where clipping hides noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from enhance.render import resize_long
from enhance.views import DETAIL

# Gaussian noise of 10/255 reads 6.7/255 or more on the restoration benchmark's 54 photos; the same
# photos clean or with any other of its degradations read at most 2.2/255, and 2,129 real photos of
# CLIVE and BIQ2021 at most 5.2/255 (dense texture, such as a cactus's spines, not noise):
# benchmarks/noise.py.
NOISY = 6 / 255
QUANTILE = 0.02  # of the blocks, ordered by their own estimate
BLOCK = 8  # Haar coefficients a side (16 pixels)
MAD_TO_SIGMA = 1 / 0.6745  # the median absolute value of N(0, s^2) is 0.6745 s
MIN_BLOCKS = 16  # fewer usable blocks than this: no estimate (0)
DARK, BRIGHT = 0.06, 0.94  # block means outside these are left out (clipping)


@torch.no_grad()
def noise_level(image: torch.Tensor) -> torch.Tensor:
    """Estimated standard deviation of white noise in (B,3,H,W) sRGB ``image`` in [0,1], averaged
    over the three channels, taken at the tuner's detail scale (long side ``DETAIL``; smaller
    images as they are): (B,), in the image's units. The low quantile reads white noise low, at
    about 0.72 times its level (10/255 reads 7.4/255 on flat grey). 0 where the photo has fewer
    than `MIN_BLOCKS` blocks that are neither near black nor near white.

    >>> flat = torch.full((1, 3, 128, 128), 0.5)
    >>> float(noise_level(flat))
    0.0
    >>> noisy = flat + 0.04 * torch.randn(flat.shape, generator=torch.Generator().manual_seed(0))
    >>> 0.025 < float(noise_level(noisy)) < 0.035
    True
    """
    x = resize_long(image.float(), DETAIL)
    b, c = x.shape[:2]
    side = 2 * BLOCK
    h, w = x.shape[-2] // side * side, x.shape[-1] // side * side
    if h == 0 or w == 0:
        return x.new_zeros(b)
    x = x[..., :h, :w]
    a, p, q, d = x[..., 0::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    diagonal = (a - p - q + d) / 2  # (B,C,h/2,w/2): unit gain for white noise
    means = F.avg_pool2d(x, side).reshape(b, c, -1)  # (B,C,blocks)
    blocks = F.unfold(diagonal.reshape(b * c, 1, h // 2, w // 2), BLOCK, stride=BLOCK)  # (B*C,BLOCK^2,blocks)
    sigma = blocks.abs().median(dim=1).values.reshape(b, c, -1) * MAD_TO_SIGMA
    usable = (means > DARK) & (means < BRIGHT)
    out = x.new_zeros(b)
    for k in range(b):
        per_channel = [torch.quantile(sigma[k, ch][usable[k, ch]], QUANTILE)
                       for ch in range(c) if int(usable[k, ch].sum()) >= MIN_BLOCKS]
        if len(per_channel) == c:
            out[k] = torch.stack(per_channel).mean()
    return out
