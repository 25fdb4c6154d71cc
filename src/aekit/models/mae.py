"""Masked autoencoders: a small Vision Transformer that sees a random quarter of an image's patches.

He, Chen, Xie, Li, Dollár & Girshick, "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022
(arXiv:2111.06377, 2021). An image is cut into ``patch`` x ``patch`` squares (a 28x28 digit into 49
patches of 4x4); each patch becomes a token (a linear map of its pixels plus a fixed 2-D sine-cosine
position). In training a random ``mask_ratio`` share of every image's patches (0.75) is hidden: the
encoder, pre-norm Transformer blocks of ``width`` channels, sees only the visible tokens; the light
decoder (``decoder_depth`` blocks of ``decoder_width``) gets them back at their positions, a shared
learnt mask token at every hidden one, and predicts every patch's pixels. The loss is the squared
error on the *hidden* patches only (the visible ones are copied, not predicted, and do not count).

``norm_pix`` is the paper's per-patch normalised target (each hidden patch's pixels minus their
mean, over their standard deviation). A normalised prediction alone is no picture, so with it the
decoder also predicts each patch's mean and standard deviation (a second squared-error term, on the
hidden patches too), which turn its prediction back into pixels for reconstructions and infilling.

What aekit adds to the paper, so that the model is an autoencoder like every family here:

- the code (``code`` numbers) is the encoder's tokens, mean-pooled and mapped linearly; ``encode``
  gives it for all patches unmasked. In training the code of the visible tokens is one more token
  of the decoder's input, so the reconstruction trains it (without that the map would stay random);
- ``reconstruct`` (evaluation, ``aekit reconstruct``/``evaluate``, anomaly scores, the exported
  ``full`` part) predicts *every* patch from a view where it is hidden: a fixed cycle of masks, each
  hiding ``mask_ratio`` of the patches as in training, together hiding each patch at least once (two
  passes at 0.75); a patch hidden in several is their mean. Deterministic, independent of the batch
  and of the other rows, and it copies no input pixel, so its error is an honest one. The validation
  loss is the training loss on these masks;
- infilling (``aekit inpaint``, :meth:`MaskedAE.infill`): the patches that hold a missing pixel are
  hidden, the whole ones are seen, and the decoder predicts the hidden ones in one pass;
- fine-tuning (``aekit finetune``, :meth:`MaskedAE.classifier_body`): the classifier's head sits
  on the encoder's mean-pooled tokens over the whole image (``width`` numbers), as in the paper;
- there is no decoder from a code alone (``decode``, interpolation, a decoded manifold, the exported
  ``decoder`` part): the decoder reconstructs from the patches it sees, and says so in one line.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aekit.errors import AekitError
from aekit.models.base import OUTPUTS, AEOutput, Autoencoder, check_parameter_count, check_positive
from aekit.registry import register_model

MAX_DEPTH = 64  # Transformer blocks; ViT-Huge has 32
MAX_HEADS = 1024
MAX_PATCH = 4096  # the largest image side aekit reads (data.image_size)
MAX_TOKENS = 4096  # patches per image: attention's cost grows with their square
COVER_SEED = 0  # the fixed masks of evaluation come from this seed (see the module's notes)
NORM_EPS = 1e-6  # the paper's epsilon under the patch variance of norm_pix
DEFAULTS: dict[str, Any] = {"code": 32, "patch": 4, "width": 64, "depth": 4, "heads": 4, "decoder_width": 64,
                            "decoder_depth": 1, "mask_ratio": 0.75, "norm_pix": False, "output": "auto"}


def check_mask_ratio(value: Any) -> float:
    """The hidden share of the patches: strictly between 0 (nothing to predict) and 1 (nothing seen)."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not real or not 0 < value < 1:
        raise AekitError(f"mask ratio (--mask-ratio) is the share of patches hidden and must lie strictly between "
                         f"0 and 1 (0.75 in He et al.), got {value!r:.40}")
    return float(value)


def check_mae_options(options: dict[str, Any]) -> dict[str, Any]:
    """The mae family's options that do not depend on the data, checked and completed with the
    defaults (the config checker calls it before any data is read)."""
    o = {**DEFAULTS, **options}
    o["patch"] = check_positive("patch size (--patch)", o["patch"], MAX_PATCH)
    for key, flag in (("width", "--width"), ("decoder_width", "--decoder-width")):
        o[key] = check_positive(f"{key.replace('_', ' ')} ({flag})", o[key])
    for key, flag in (("depth", "--depth"), ("decoder_depth", "--decoder-depth")):
        o[key] = check_positive(f"{key.replace('_', ' ')} ({flag})", o[key], MAX_DEPTH)
    o["heads"] = check_positive("attention heads (--heads)", o["heads"], MAX_HEADS)
    for key, flag in (("width", "--width"), ("decoder_width", "--decoder-width")):
        if o[key] % o["heads"]:
            fits = [h for h in (1, 2, 4, 8, 16) if o[key] % h == 0]
            raise AekitError(f"--heads {o['heads']} does not divide the {key.replace('_', ' ')} {o[key]} ({flag}): "
                             f"each head takes width / heads channels; use e.g. --heads {fits[-1]}")
    o["mask_ratio"] = check_mask_ratio(o["mask_ratio"])
    if o["output"] not in OUTPUTS:
        raise AekitError(f"unknown output {o['output']!r}; use auto, sigmoid or identity")
    return o


def grid_of(shape: tuple[int, ...], patch: int) -> tuple[int, int]:
    """Patches down and across images of ``shape`` (C, H, W); one line where the patch does not fit."""
    if len(shape) != 3:
        raise AekitError(f"the mae model needs images (C, H, W); this data has samples of shape {tuple(shape)}")
    _, h, w = shape
    if h % patch or w % patch:
        fits = [p for p in range(1, math.gcd(h, w) + 1) if math.gcd(h, w) % p == 0 and (h // p) * (w // p) >= 2]
        hint = f"; sizes that fit: {', '.join(map(str, fits[:8]))}" if fits else ""
        raise AekitError(f"patch size (--patch) {patch} does not divide the {h}x{w} images into whole patches{hint}")
    grid = (h // patch, w // patch)
    if grid[0] * grid[1] < 2:
        raise AekitError(f"patch size (--patch) {patch} makes one patch of each {h}x{w} image: nothing is left to "
                         "hide and predict; use a smaller patch")
    if grid[0] * grid[1] > MAX_TOKENS:
        raise AekitError(f"patch size (--patch) {patch} cuts each {h}x{w} image into {grid[0] * grid[1]:,} patches, "
                         f"more than the {MAX_TOKENS:,} aekit attends over; use a larger patch")
    return grid


def visible_count(n: int, mask_ratio: float) -> int:
    """Patches seen of ``n``: the rest of the ratio, at least one seen and one hidden."""
    return min(n - 1, max(1, round(n * (1 - mask_ratio))))


def block_parameters(width: int) -> int:
    """Weights and biases of one Transformer block: two layer norms, q/k/v and output maps, a 4x MLP."""
    return 2 * 2 * width + (3 * width * width + 3 * width) + (width * width + width) + (8 * width * width + 5 * width)


def mae_parameters(shape: tuple[int, ...], o: dict[str, Any]) -> int:
    """Every weight and bias of the model built below, counted before anything is allocated."""
    c = shape[0]
    w, dw, code, pd = o["width"], o["decoder_width"], o["code"], o["patch"] ** 2 * c
    out = pd + 2 if o["norm_pix"] else pd
    encoder = pd * w + w + o["depth"] * block_parameters(w) + 2 * w + w * code + code
    decoder = (w * dw + dw) + (code * dw + dw) + dw + o["decoder_depth"] * block_parameters(dw) + 2 * dw \
        + dw * out + out
    return encoder + decoder


def sincos_positions(dim: int, grid: tuple[int, int]) -> torch.Tensor:
    """Fixed 2-D sine-cosine positions ``(1, H*W, dim)`` of a patch grid (the paper's; a quarter of the
    channels each for sin and cos of the row and of the column, at geometric frequencies)."""
    quarter = math.ceil(dim / 4)
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    r, c = rows.reshape(-1, 1) * omega, cols.reshape(-1, 1) * omega  # (n, quarter)
    return torch.cat([r.sin(), r.cos(), c.sin(), c.cos()], 1)[:, :dim].float()[None]


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, n, patch*patch*C), patches row by row, each patch's pixels row by row."""
    c, h, w = x.shape[1:]
    t = x.reshape(-1, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 3, 5, 1)
    return t.reshape(-1, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(t: torch.Tensor, patch: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The inverse of :func:`patchify`: (B, n, patch*patch*C) -> (B, C, H, W)."""
    c, h, w = shape
    x = t.reshape(-1, h // patch, w // patch, patch, patch, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(-1, c, h, w)


def take(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Tokens ``idx`` of ``t`` (B, n, D): one index list ``(k,)`` for every row, or one per row ``(B, k)``."""
    if idx.ndim == 1:
        return t[:, idx]
    return torch.gather(t, 1, idx.unsqueeze(-1).expand(-1, -1, t.shape[-1]))


class Block(nn.Module):
    """A pre-norm Transformer block: x + attention(norm(x)), then x + MLP(norm(x)) with 4x GELU units."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, n, 3*D) -> q, k, v each (B, heads, n, D/heads); no batch size is named, so an exported
        # graph keeps its batch axis free
        q, k, v = self.qkv(self.norm1(x)).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(a.transpose(1, 2).flatten(2))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """The encoder's trunk: images -> the tokens of the patches ``keep`` (all without it), normalised."""

    def __init__(self, shape: tuple[int, ...], patch: int, grid: tuple[int, int], width: int, depth: int,
                 heads: int) -> None:
        super().__init__()
        self.patch = patch
        self.embed = nn.Linear(patch * patch * shape[0], width)
        self.register_buffer("pos", sincos_positions(width, grid), persistent=False)  # rebuilt from the config
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        t = self.embed(patchify(x, self.patch)) + self.pos  # (B, n, D)
        if keep is not None:
            t = take(t, keep)  # (B, k, D): the seen patches only
        for block in self.blocks:
            t = block(t)
        return self.norm(t)


class Pooled(nn.Module):
    """The trunk's tokens of all patches, mean-pooled: (B, C, H, W) -> (B, width), what a classifier sees."""

    def __init__(self, trunk: ViT) -> None:
        super().__init__()
        self.trunk = trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x).mean(1)


class MAEEncoder(nn.Module):
    """Images -> codes: the trunk's tokens mean-pooled and mapped to ``code`` numbers (all patches when
    called as a module, as ``encode`` and the exported encoder do)."""

    def __init__(self, trunk: ViT, width: int, code: int) -> None:
        super().__init__()
        self.trunk, self.proj = trunk, nn.Linear(width, code)

    def code_of(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(tokens.mean(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.code_of(self.trunk(x))


class MAEDecoder(nn.Module):
    """Seen tokens, their code and the mask token -> every patch's prediction ``(B, n, out)``."""

    pos: torch.Tensor  # a buffer, registered in __init__

    def __init__(self, width: int, code: int, grid: tuple[int, int], dwidth: int, depth: int, heads: int,
                 out: int) -> None:
        super().__init__()
        self.embed, self.from_code = nn.Linear(width, dwidth), nn.Linear(code, dwidth)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dwidth))
        self.register_buffer("pos", sincos_positions(dwidth, grid), persistent=False)
        self.blocks = nn.ModuleList(Block(dwidth, heads) for _ in range(depth))
        self.norm, self.head = nn.LayerNorm(dwidth), nn.Linear(dwidth, out)

    def forward(self, tokens: torch.Tensor, restore: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """``tokens`` (B, k, W) of the seen patches in ``keep`` order; ``restore`` ``(n,)`` or ``(B, n)``
        gives each position's place in [seen..., hidden...] (the inverse of the order keep + hidden)."""
        y = self.embed(tokens)
        hidden = self.mask_token.expand(y.shape[0], self.pos.shape[1] - y.shape[1], -1)
        h = take(torch.cat([y, hidden], 1), restore) + self.pos  # (B, n, dW), every patch at its place
        h = torch.cat([self.from_code(code).unsqueeze(1), h], 1)  # the code as one more token in front
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h)[:, 1:])


def covering_masks(n: int, visible: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fixed masks of evaluation: (keep ``(P, visible)``, restore ``(P, n)``, hidden ``(P, n)`` as
    0/1). Mask ``k`` hides the ``n - visible`` patches at places k*h ... of one seeded permutation,
    cyclically, so P = ceil(n / h) masks hide every patch at least once, each as many as in training.
    Made in NumPy: a model is also built on the meta device (run.py checks a config's shapes so), where
    torch's factories make no values."""
    perm = np.random.default_rng(COVER_SEED).permutation(n)
    h = n - visible
    keeps, restores, hiddens = [], [], []
    for k in range(math.ceil(n / h)):
        flag = np.zeros(n, bool)
        flag[perm[(k * h + np.arange(h)) % n]] = True
        keeps.append(np.flatnonzero(~flag))
        restores.append(np.argsort(np.concatenate([keeps[-1], np.flatnonzero(flag)])))
        hiddens.append(flag.astype(np.float32))
    return tuple(torch.from_numpy(np.stack(a)) for a in (keeps, restores, hiddens))  # type: ignore[return-value]


@register_model("mae", "masked autoencoder (He et al. 2021): a small ViT encoder sees a random quarter of the "
                "patches (--mask-ratio), a light decoder predicts the rest; images only")
class MaskedAE(Autoencoder):
    """A masked autoencoder on images ``(C, H, W)``; see the module's notes for what each map does."""

    encoder: MAEEncoder
    decoder: MAEDecoder
    cover_keep: torch.Tensor  # the fixed masks' buffers, registered in __init__
    cover_restore: torch.Tensor
    cover_hidden: torch.Tensor
    decodes_codes = False  # no decoder from a code alone (latent maps draw no decoded manifold)

    def __init__(
        self,
        input_shape: tuple[int, ...],
        code: int = 32,
        patch: int = 4,
        width: int = 64,
        depth: int = 4,
        heads: int = 4,
        decoder_width: int = 64,
        decoder_depth: int = 1,
        mask_ratio: float = 0.75,
        norm_pix: bool = False,
        output: str = "auto",
    ) -> None:
        super().__init__(input_shape, code, "mse", output)
        o = check_mae_options({"code": self.code_size, "patch": patch, "width": width, "depth": depth,
                               "heads": heads, "decoder_width": decoder_width, "decoder_depth": decoder_depth,
                               "mask_ratio": mask_ratio, "norm_pix": bool(norm_pix), "output": output})
        grid = grid_of(self.input_shape, o["patch"])
        check_parameter_count("mae", mae_parameters(self.input_shape, o))
        self.patch, self.norm_pix, self.width = o["patch"], o["norm_pix"], o["width"]
        self.n_patches = grid[0] * grid[1]
        self.patch_dim = o["patch"] ** 2 * self.input_shape[0]
        self.n_visible = visible_count(self.n_patches, o["mask_ratio"])
        self.encoder = MAEEncoder(ViT(self.input_shape, self.patch, grid, o["width"], o["depth"], o["heads"]),
                                  o["width"], self.code_size)
        # With norm_pix each patch's prediction also holds its mean and standard deviation.
        out = self.patch_dim + 2 if self.norm_pix else self.patch_dim
        self.decoder = MAEDecoder(o["width"], self.code_size, grid, o["decoder_width"], o["decoder_depth"], o["heads"],
                                  out)
        self._init_weights()
        keep, restore, hidden = covering_masks(self.n_patches, self.n_visible)
        self.register_buffer("cover_keep", keep, persistent=False)  # rebuilt from the config and the fixed seed
        self.register_buffer("cover_restore", restore, persistent=False)
        self.register_buffer("cover_hidden", hidden, persistent=False)
        self.options.update({k: o[k] for k in DEFAULTS if k not in ("code", "output")})
        del self.options["loss"], self.options["sparse"], self.options["contractive"]  # not options of this family

    def _init_weights(self) -> None:
        """As the paper: Xavier-uniform linear maps with zero biases, the mask token N(0, 0.02²)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.decoder.mask_token, std=0.02)

    @classmethod
    def check_config(cls, options: dict[str, Any]) -> None:
        """The shared ranges (code, output) and this family's, before any data is read."""
        super().check_config(options)
        check_mae_options(options)

    # --- masks --------------------------------------------------------------------------------------
    def random_masks(self, b: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A fresh mask for each of ``b`` images, from torch's default generator (which a checkpoint
        keeps, so a resumed run draws the same): (keep ``(b, v)``, restore ``(b, n)``, hidden ``(b, n)``)."""
        order = torch.argsort(torch.rand(b, self.n_patches, device=device), 1)  # a random order per image
        restore = torch.argsort(order, 1)
        return order[:, : self.n_visible], restore, (restore >= self.n_visible).float()

    # --- predictions and the loss -------------------------------------------------------------------
    def predict(self, x: torch.Tensor, keep: torch.Tensor, restore: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the decoder's raw output for every patch ``(B, n, out)``, fp32 under autocast; the code of
        the seen tokens), seeing the patches ``keep``."""
        tokens = self.encoder.trunk(x, keep)
        code = self.encoder.code_of(tokens)
        raw = self.decoder(tokens, restore, code)
        return (raw.float() if raw.dtype in (torch.float16, torch.bfloat16) else raw), code

    def pixels(self, raw: torch.Tensor) -> torch.Tensor:
        """Patches of pixels ``(B, n, patch_dim)`` from the raw predictions."""
        if self.norm_pix:  # the normalised patch times its predicted spread plus its predicted mean
            pix = raw[..., : self.patch_dim] * raw[..., -1:].clamp_min(0) + raw[..., -2:-1]
            return pix.clamp(0, 1) if self.output == "sigmoid" else pix
        return torch.sigmoid(raw) if self.output == "sigmoid" else raw

    def patch_errors(self, raw: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each patch's mean squared error ``(B, n)`` against ``target``'s patches: on the pixels, or
        with norm_pix on the normalised pixels (``recon``) and on the patch's mean and spread (``stats``)."""
        if not self.norm_pix:
            return {"recon": torch.square(self.pixels(raw) - target).mean(-1)}
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True, unbiased=False)
        std = torch.sqrt(var + NORM_EPS)
        stats = torch.square(raw[..., -2:] - torch.cat([mean, std], -1)).mean(-1)
        return {"recon": torch.square(raw[..., : self.patch_dim] - (target - mean) / std).mean(-1), "stats": stats}

    def masked_terms(self, raw: torch.Tensor, target: torch.Tensor, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss terms: each patch error averaged over the hidden patches only (``hidden`` 1 there)."""
        return {k: (e * hidden).sum() / hidden.sum() for k, e in self.patch_errors(raw, target).items()}

    def covered(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Evaluation: (every patch predicted where the fixed masks hide it ``(B, n, patch_dim)``, the
        loss terms on those masks). Passes run one after another: no tensor names the batch size."""
        terms: dict[str, torch.Tensor]
        recon, terms = torch.zeros((), device=x.device), {}
        weight = self.cover_hidden / self.cover_hidden.sum(0)  # (P, n): a patch hidden twice takes each half
        for k in range(len(self.cover_keep)):
            raw = self.predict(x, self.cover_keep[k], self.cover_restore[k])[0]
            recon = recon + self.pixels(raw) * weight[k, :, None]
            for name, t in self.masked_terms(raw, target, self.cover_hidden[k].expand(raw.shape[0], -1)).items():
                terms[name] = terms.get(name, 0) + t / len(self.cover_keep)
        return recon, terms

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None) -> AEOutput:
        """With gradients on (training): a random mask per image, the loss on its hidden patches, and
        as ``recon`` the seen patches with the predicted ones between them. With gradients off
        (validation, evaluation): the fixed masks of :meth:`covered`, ``code`` of all patches."""
        x = self.shaped(x)
        goal = patchify(x if target is None else self.shaped(target, "a target"), self.patch)
        if torch.is_grad_enabled():
            keep, restore, hidden = self.random_masks(len(x), x.device)
            raw, code = self.predict(x, keep, restore)  # code: of the seen patches
            terms = self.masked_terms(raw, goal, hidden)
            recon = torch.where(hidden.bool()[..., None], self.pixels(raw), goal)
        else:
            recon, terms = self.covered(x, goal)
            code = self.encoder(x)
        loss = sum((t for name, t in terms.items() if name != "recon"), terms["recon"])
        return AEOutput(unpatchify(recon, self.patch, self.input_shape), code, loss, terms)

    # --- the public maps ----------------------------------------------------------------------------
    def recon_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Every patch predicted from the fixed masks that hide it (what ``full`` and ``score`` export)."""
        x = self.shaped(x)
        return unpatchify(self.covered(x, patchify(x, self.patch))[0], self.patch, self.input_shape)

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return self._numpy_batches(self._as_inputs(x), self.recon_tensor, None)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        raise AekitError("the mae model predicts hidden patches from the patches it sees, not from a code alone: "
                         "it has no decoder for codes (decode, interpolate, a decoded manifold, --part decoder); "
                         "use reconstruct, inpaint, encode or finetune")

    def decode(self, z: Any) -> Any:
        return self.decode_logits(z)

    def infill(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
        """Inpainting's hook (:func:`aekit.tasks.inpaint.fill`): images ``(N, C, H, W)`` whose pixels
        are missing where ``mask`` ``(H, W)`` is True, with the patches that hold a missing pixel
        predicted from the whole ones in one pass (the other pixels as given). None where no patch is
        whole (e.g. a random pixel mask): inpainting then iterates :meth:`reconstruct` instead."""
        m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)).expand(1, self.input_shape[0], *mask.shape)
        flag = patchify(m, self.patch)[0].amax(-1) > 0  # (n,): the patches to predict
        if bool(flag.all()):
            return None
        keep, hide = torch.nonzero(~flag)[:, 0], torch.nonzero(flag)[:, 0]
        restore = torch.argsort(torch.cat([keep, hide]))
        ref = next(self.parameters()).device

        def fill(t: torch.Tensor) -> torch.Tensor:
            pix = self.pixels(self.predict(t, keep.to(ref), restore.to(ref))[0])
            return unpatchify(pix, self.patch, self.input_shape)

        return self._numpy_batches(self._as_inputs(x), fill, None)

    def classifier_body(self) -> tuple[nn.Module, int]:
        """What ``aekit finetune`` puts a softmax layer on: the trunk's tokens of the whole image,
        mean-pooled (``width`` numbers), in a Sequential so that ``--dropout`` follows it."""
        return nn.Sequential(Pooled(self.encoder.trunk)), self.width


__all__ = ["MaskedAE", "check_mae_options", "covering_masks", "mae_parameters", "patchify", "unpatchify"]
