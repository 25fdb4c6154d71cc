"""Training batches for infilling: the square filled with the model's own repeated guesses.

Inpainting (``aekit inpaint``) starts from the mean image in the missing square and repeats
"reconstruct, keep the observed pixels" 20 times by default. A model trained only on mean-filled
squares has never seen its own guesses in the square, and the repetition drifts: each pass reads
the blurry guess as a faint stroke and sharpens it, and committing to the wrong stroke costs
more squared error than the blur did. The better trained the model, the faster it commits.

With ``--noise block:S`` every other training batch therefore holds the model's own guesses:
fresh images, a fresh square, filled with the mean image and then refilled by 1 to 24 passes of
the current weights (the "walkback" of Bengio et al., "Generalized denoising auto-encoders as
generative models", NeurIPS 2013). The target of those batches is the observed pixels with the
model's *first* guess in the square, not the clean image: the first guess is what the
mean-filled batches teach (the best estimate from the observed pixels alone), and the later
passes are taught to stay there instead of sharpening it. Measured on full MNIST, center:14,
784-1000-500-64, 20 epochs, PSNR after 20 passes: clean targets 10.44 dB, first-guess targets
10.53 dB (the README's Results give the 60-epoch model).

Tried and dropped, same set-up: persistent chains that advance one pass per training step,
which are cheaper but show the same images step after step (9.70 dB); guesses mixed with the mean
image at random strengths (10.28 dB); a code of 256 instead of 64 (no better).
"""

from __future__ import annotations

import torch

from aekit.data.noise import Noise
from aekit.models.base import Autoencoder

# How many passes the model has made before a guess batch, drawn uniformly: up to just past the
# 20 passes inpainting makes by default (with up to 16 passes: 10.32 dB after 20 passes).
GUESS_PASSES = (1, 2, 3, 4, 6, 8, 12, 16, 20, 24)


@torch.no_grad()
def own_guesses(model: Autoencoder, noise: Noise, xb: torch.Tensor,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, target) of a guess batch made from the clean batch ``xb``.

    The input is ``xb`` with a ``block:S`` square refilled by the model's passes; the target is
    ``xb`` with the model's first pass in the square.
    """
    filled, mask = noise.block(xb, generator)
    passes = GUESS_PASSES[int(torch.randint(len(GUESS_PASSES), (1,), generator=generator))]
    cur = first = torch.where(mask, model(filled).recon.to(xb.dtype), xb)
    for _ in range(passes - 1):
        cur = torch.where(mask, model(cur).recon.to(xb.dtype), xb)
    return cur, first
