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
10.53 dB (docs/benchmarks.md gives the 60-epoch model).

Tried and dropped, same set-up: persistent chains that advance one pass per training step,
which are cheaper but show the same images step after step (9.70 dB); guesses mixed with the mean
image at random strengths (10.28 dB); a code of 256 instead of 64 (no better).
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

import torch

from aekit.data.dataset import Split
from aekit.data.noise import Noise
from aekit.models.base import Autoencoder
from aekit.training.batches import mean_image

# How many passes the model has made before a guess batch, drawn uniformly: up to just past the
# 20 passes inpainting makes by default (with up to 16 passes: 10.32 dB after 20 passes).
GUESS_PASSES = (1, 2, 3, 4, 6, 8, 12, 16, 20, 24)


@torch.no_grad()
def own_guesses(model: Autoencoder, noise: Noise, xb: torch.Tensor, generator: torch.Generator,
                labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, target) of a guess batch made from the clean batch ``xb`` (and its ``labels``, for a
    model conditioned on them).

    The input is ``xb`` with a ``block:S`` square refilled by the model's passes; the target is
    ``xb`` with the model's first pass in the square.
    """
    filled, mask = noise.block(xb, generator)
    passes = guess_passes(generator)
    kw = {} if labels is None else {"labels": labels}
    cur = first = torch.where(mask, model(filled, **kw).recon.to(xb.dtype), xb)
    for _ in range(passes - 1):
        cur = torch.where(mask, model(cur, **kw).recon.to(xb.dtype), xb)
    return cur, first


def guess_passes(generator: torch.Generator) -> int:
    """How many passes a guess batch gets, chosen on the host from the noise generator's state.

    Drawing it with ``torch.randint`` on a CUDA generator and reading the number back would stop
    the device every other step. The state (seed and offset on CUDA, the Mersenne twister on the
    CPU) is host memory and changes with every draw, and it is checkpointed, so a resumed run
    makes the same choices.
    """
    state = generator.get_state().numpy().tobytes()
    return GUESS_PASSES[zlib.crc32(state) % len(GUESS_PASSES)]


class Corruption:
    """How a clean batch becomes the model's (input, target): ``noise`` drawn afresh for every batch.

    ``noise`` is any ``noise(x, generator) -> x`` (a :class:`aekit.data.noise.Noise`, or your own);
    None trains a plain autoencoder. ``labels`` are the batch's, given to a model conditioned on them
    wherever the corruption runs the model itself (None for any other model).
    """

    def __init__(self, noise: Any = None) -> None:
        self.noise = noise

    def prepare(self, x_train: Any, device: torch.device) -> None:
        """Called once with the training data before the first batch."""

    def pair(self, model: Autoencoder, xb: torch.Tensor, step: int, generator: torch.Generator,
             labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.noise(xb, generator) if self.noise is not None else xb), xb


class MeanFilled(Corruption):
    """``center:S``: the square filled with the training mean image (what inpainting starts from)."""

    def prepare(self, x_train: Any, device: torch.device) -> None:
        if self.noise.fill is None:
            self.noise = dataclasses.replace(self.noise, fill=mean_image(x_train, device=device))


class GuessBatches(MeanFilled):
    """``block:S``: squares filled with the training mean image, and on every other batch the
    model's own later guesses (see the module docstring)."""

    def pair(self, model: Autoencoder, xb: torch.Tensor, step: int, generator: torch.Generator,
             labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if step % 2 == 1:
            return own_guesses(model, self.noise, xb, generator, labels)
        return self.noise(xb, generator), xb


class Binarized(Corruption):
    """Dynamic binarisation (the ``NAME-binary`` datasets): every batch is a fresh draw of binary
    values, each 1 with its grey level's probability, used as input and target alike, and then
    corrupted as ``inner`` says. Drawn from the loop's noise generator, which checkpoints keep, so a
    resumed run draws the same values. (Salakhutdinov & Murray, ICML 2008, binarised MNIST once, a
    static set; drawing afresh every time, as Burda et al. 2016 did, regularises and gives other
    likelihoods: the two are not comparable.)"""

    def __init__(self, inner: Corruption) -> None:
        super().__init__()
        self.inner = inner

    def prepare(self, x_train: Any, device: torch.device) -> None:
        self.inner.prepare(x_train, device)

    def pair(self, model: Autoencoder, xb: torch.Tensor, step: int, generator: torch.Generator,
             labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.rand(xb.shape, generator=generator, device=xb.device, dtype=xb.dtype)
        return self.inner.pair(model, (u < xb).to(xb.dtype), step, generator, labels)


def training_view(split: Split, noise: Any, clip: bool = True) -> tuple[Split, Corruption]:
    """What the loop trains on for a split and a ``--noise`` spec: the split and its corruption, or,
    for a dynamically binarised split (one with grey ``levels``), its levels and fresh draws from
    them for every batch."""
    corruption = corruption_for(noise, clip)
    if split.levels is None:
        return split, corruption
    return Split(split.levels, split.y), Binarized(corruption)


def corruption_for(noise: Any, clip: bool = True) -> Corruption:
    """The corruption of a run: a ``--noise`` spec, a noise object or callable, or None."""
    if isinstance(noise, Corruption):
        return noise
    if isinstance(noise, str):
        from aekit.data.noise import parse_noise

        noise = parse_noise(noise, clip=clip)
    if isinstance(noise, Noise) and noise.kind in ("block", "center"):
        return GuessBatches(noise) if noise.kind == "block" else MeanFilled(noise)
    return Corruption(noise)
