"""Weight averaging: an exponential moving average (EMA) of a model's weights, kept beside them.

Late in training, Adam's steps make the weights wander around a minimum; their running average sits
nearer its centre and usually generalises better than any single step's weights (Polyak averaging;
"EMA" in most modern training recipes). With ``[train] ema = DECAY`` the loop updates the average after
every optimizer step, validates and saves the averaged weights (the model a run keeps), and writes the
average into ``last/`` so that ``--resume`` continues it. BatchNorm's running statistics are averaged
like the weights; integer buffers (BatchNorm's batch counter) are copied.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

PREFIX = "ema."  # the average's tensors in last/optimizer.safetensors


class WeightAverage:
    """The moving average of ``model``'s state with decay ``decay`` (0.999: about the last 1,000 steps).

    For the first steps the decay is ``(1 + n) / (10 + n)`` when that is smaller, so that the random
    initial weights do not linger in the average for thousands of steps.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay, self.updates = decay, 0
        # state_dict() holds detached views of the live tensors: the optimizer's in-place steps show in them.
        live = model.state_dict()
        self.names = list(live)
        self.live = [live[k] for k in self.names]
        self.avg = [v.detach().clone() for v in self.live]
        self.floats = [i for i, v in enumerate(self.live) if v.is_floating_point()]
        self.others = [i for i, v in enumerate(self.live) if not v.is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the current weights (after an optimizer step)."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        if self.floats:
            torch._foreach_lerp_([self.avg[i] for i in self.floats], [self.live[i] for i in self.floats], 1 - decay)
        for i in self.others:
            self.avg[i].copy_(self.live[i])

    def tensors(self) -> dict[str, torch.Tensor]:
        """The average as named tensors, for a checkpoint."""
        return {PREFIX + k: v for k, v in zip(self.names, self.avg, strict=True)}

    @torch.no_grad()
    def resume(self, saved: dict[str, torch.Tensor], updates: int) -> None:
        """Continue a checkpoint's average: KeyError where it has none, ValueError where it does not fit."""
        for k, v in zip(self.names, self.avg, strict=True):
            if saved[PREFIX + k].shape != v.shape:
                raise ValueError(f"its weight average's {k} has shape {tuple(saved[PREFIX + k].shape)}, "
                                 f"not {tuple(v.shape)}")
            v.copy_(saved[PREFIX + k])
        self.updates = int(updates)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The averaged weights in the model for the duration (to validate and save them), then the live ones."""
        with torch.no_grad():
            backup = [v.clone() for v in self.live]
            torch._foreach_copy_(self.live, self.avg)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.live, backup)
