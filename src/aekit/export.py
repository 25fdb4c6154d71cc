"""Export a trained autoencoder as ONNX or TorchScript, with its metadata and a parity check.

Four parts can be exported: ``full`` (input -> reconstruction), ``encoder`` (input -> code),
``decoder`` (code -> output) and ``score`` (input -> per-sample anomaly score and per-value error
map, each value's share of the score). Every part takes float32 input already scaled as aekit
scales it (the metadata says how: uint8 pixels / 255, or the values as they are), with a dynamic
batch axis. Of a VAE, the encoder gives the posterior's mean (``code``) and log-variance
(``logvar``), the decoder takes z and gives the likelihood's mean (pixel probabilities for a
Bernoulli likelihood), and ``full`` and ``score`` decode the posterior mean, as aekit does. A
conditional VAE, whose parts also take a label, is not exported.

The ``score`` part computes aekit's one anomaly score (:func:`aekit.tasks.anomaly.score_of`: the
squared error summed over all values, each over its error scale where the data is not in [0, 1]; the
scale is a constant in the file and in its metadata), summed in float64 as aekit sums it, so its
output is the number ``aekit anomaly`` writes. Its threshold (``--threshold RULE``, chosen on the
validation split, else the one the run keeps in threshold.json) travels in the file's metadata with
the rule that chose it, the split and where it came from.

After writing, the file is run on up to 1,000 test samples (onnxruntime / ``torch.jit.load``) and
compared with aekit's own outputs: a difference over 1e-5 is an error, as anomalib users found
exported scores silently drifting from the checkpoint's. ``--check-only`` first compares the file's
metadata with what the run would write now (a threshold, input shape or scaling edited in the file is
refused, not only changed outputs). Before a runtime reads a file, its size and, for TorchScript's
zip archive, every entry's declared size are held to what the run's model can need
(:func:`file_budget`), so a small archive that expands to gigabytes is refused unread.

The ONNX files come from PyTorch's TorchScript-based exporter (``dynamo=False``): the dynamo
exporter needs onnxscript, one more dependency, and these graphs (linear layers, convolutions,
transposed convolutions whose kernel is summed from a convolution's weights, upsampling)
need nothing it adds.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aekit.errors import AekitError
from aekit.io import atomic_write_bytes
from aekit.tasks.anomaly import shown

TOLERANCE = 1e-5  # max abs difference allowed between the exported file and aekit (fp32; see check_parity)
CHECK_SAMPLES = 1000
UNBOUNDED = ("score", "code", "logvar")  # outputs checked relative to their size above 1 (see check_parity)
OPSET = 17
EXPORT_SOURCE = "aekit export --threshold"  # threshold_source of a threshold chosen at export time
FILE_SLACK = 8 << 20  # bytes a file may hold beyond its tensors (graph, code, pickles: under 30 KB seen)


class _Part(nn.Module):
    """A part of model ``m`` to export: its ``forward`` is what the exported graph computes."""

    def __init__(self, m: Any) -> None:
        super().__init__()
        self.m = m


class _Full(_Part):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m.recon_tensor(x)


class _Encoder(_Full):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m.encoder(x)


class _Decoder(_Full):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.m.decode(z)


class _Score(_Part):
    scale: torch.Tensor  # a buffer, registered in __init__ where there is a scale

    def __init__(self, m: Any, scale: np.ndarray | None = None) -> None:
        super().__init__(m)
        self.scaled = scale is not None
        if scale is not None:  # float64, as score_of divides (a constant in the exported graph)
            self.register_buffer("scale", torch.from_numpy(np.asarray(scale, np.float64).reshape(m.input_shape)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        err = torch.square(x - self.m.recon_tensor(x))  # (B, *input_shape)
        if self.scaled:
            share = err.double() / self.scale
            return share.reshape(err.shape[0], -1).sum(1), share.float()
        return err.reshape(err.shape[0], -1).double().sum(1), err  # float64 sum, as score_of sums


class _PosteriorEncoder(_Part):
    """A VAE's encoder: q(z|x)'s mean and log-variance."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        post = self.m.encoder.distribution(x)
        return post.mean, post.logvar


PARTS = {"full": (_Full, ["x"], ["recon"]), "encoder": (_Encoder, ["x"], ["code"]),
         "decoder": (_Decoder, ["code"], ["recon"]), "score": (_Score, ["x"], ["score", "error_map"])}
VAE_ENCODER = (_PosteriorEncoder, ["x"], ["code", "logvar"])


def _variational(m: Any) -> bool:
    from aekit.models.variational import VariationalAE

    return isinstance(m, VariationalAE)


def part_spec(m: Any, part: str) -> tuple[type[nn.Module], list[str], list[str]]:
    """(module class, input names, output names) of ``part`` of model ``m``."""
    return VAE_ENCODER if part == "encoder" and _variational(m) else PARTS[part]


def check_request(fmt: str, part: str, out: str | Path | None, threshold: Any = None,
                  check_only: bool = False) -> None:
    """Before any work: a known format and part, an output file named for the format, and a
    ``threshold`` rule only where it is used (a new score file)."""
    from aekit.config import EXPORT_FORMATS, EXPORT_PARTS
    from aekit.outputs import check_output_file
    from aekit.tasks.anomaly import parse_threshold

    if fmt not in EXPORT_FORMATS:
        raise AekitError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r:.40}")
    if part not in EXPORT_PARTS:
        raise AekitError(f"--part must be one of {', '.join(EXPORT_PARTS)}, got {part!r:.40}")
    if threshold is not None:  # never silently ignored: a --threshold that did nothing misleads
        if check_only:
            raise AekitError("--threshold and --check-only: a file is checked against the threshold its own "
                             "metadata names (its threshold_rule, or the run's threshold.json); drop --threshold")
        if part != "score":
            raise AekitError(f"--threshold is for --part score; a {part} part carries no threshold")
        parse_threshold(threshold)
    check_output_file(out, (".onnx",) if fmt == "onnx" else (".pt", ".ts"), "--out")


def metadata(o: Any, part: str, threshold: dict[str, Any] | None) -> dict[str, str]:
    """What a user of the file needs, as string key/values (ONNX metadata_props take strings)."""
    from aekit import __version__
    from aekit.tasks.anomaly import SCORE_PLAIN, SCORE_SCALED, THRESHOLD_FILE

    m, data = o.model, o.info.get("data", {})
    scaling = "uint8 / 255" if data.get("dtype") == "uint8" else "none (values as in the data)"
    meta = {"aekit_version": __version__, "part": part, "model": m.family,
            "input_shape": json.dumps(list(m.input_shape)), "code_size": str(m.code_size),
            "value_scaling": scaling, "value_range": str(data.get("value_range", "")),
            "output": m.output, "dataset": str(data.get("name", ""))}
    if _variational(m):  # what a VAE's parts mean (see the module's notes)
        meta["likelihood"] = str(m.options["likelihood"])
        meta["outputs"] = ", ".join(part_spec(m, part)[2])
    if threshold is not None:
        scale = threshold.get("error_scale")
        meta["score_definition"] = SCORE_SCALED + " (error_scale)" if scale is not None else SCORE_PLAIN
        if scale is not None:
            meta["error_scale"] = json.dumps(scale)
        meta.update({"threshold": repr(float(threshold["threshold"])), "threshold_rule": threshold["rule"],
                     "threshold_split": threshold["split"],
                     "threshold_source": f"{THRESHOLD_FILE} ({threshold['set_by']})" if threshold.get("set_by")
                     else EXPORT_SOURCE})
    return meta


def example_input(m: Any, part: str, batch: int = 2) -> torch.Tensor:
    shape = (batch, m.code_size) if part == "decoder" else (batch, *m.input_shape)
    return torch.rand(shape, generator=torch.Generator().manual_seed(0))


def onnx_bytes(module: nn.Module, x: torch.Tensor, part: str, meta: dict[str, str]) -> bytes:
    try:
        import onnx
    except ImportError:
        raise AekitError("ONNX export needs the export extra: pip install 'aekit[export]'") from None
    _, inputs, outputs = part_spec(module.m, part)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated, see the module notes
        warnings.simplefilter("ignore")
        # The TorchScript-based exporter (dynamo=False) writes to a file object too; torch's annotation
        # of `f` names only paths
        torch.onnx.export(module, (x,), buf, dynamo=False,  # type: ignore[arg-type]
                          input_names=inputs, output_names=outputs,
                          opset_version=OPSET, dynamic_axes={n: {0: "batch"} for n in inputs + outputs})
    proto = onnx.load_from_string(buf.getvalue())
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    return proto.SerializeToString()


def torchscript_bytes(module: nn.Module, x: torch.Tensor, meta: dict[str, str]) -> bytes:
    with warnings.catch_warnings():  # tracing warns about Python control flow on shapes, fixed per model
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, (x,), check_trace=False)
    buf = io.BytesIO()
    torch.jit.save(traced, buf, _extra_files={"aekit.json": json.dumps(meta)})
    return buf.getvalue()


def reference(m: Any, part: str, x: np.ndarray, scale: np.ndarray | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """(the input the part takes, aekit's own outputs) for scaled float32 samples ``x`` (``scale``:
    the score's error scale)."""
    from aekit.tasks.anomaly import scores

    if part == "encoder" and _variational(m):
        return x, _posterior_rows(m, x)
    if part == "encoder":
        return x, [m.encode(x)]
    if part == "decoder":
        z = m.encode(x)
        return z, [m.decode(z)]
    if part == "full":
        return x, [m.reconstruct(x)]
    s, err = scores(m, x, scale)
    return x, [s, err]


def _posterior_rows(m: Any, x: np.ndarray) -> list[np.ndarray]:
    """A VAE's posterior mean and log-variance of ``x``, each float32 ``(N, code)``, in aekit's batches."""
    def both(t: torch.Tensor, _: Any) -> torch.Tensor:
        post = m.posterior(t)
        return torch.cat([post.mean, post.logvar], -1)

    rows = m.numpy_map(both, m._as_inputs(x), None, (2 * m.code_size,))
    return [rows[:, : m.code_size], rows[:, m.code_size :]]


def _unrunnable(path: Path, fmt: str, exc: Exception) -> AekitError:
    if isinstance(exc, ImportError):
        return AekitError("checking an ONNX file needs onnxruntime: pip install 'aekit[export]'")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return AekitError(f"{path}: cannot run it as {fmt} ({shown(first, 200)})")  # it may quote the file's names


def file_budget(m: Any, part: str) -> int:
    """The most bytes an exported ``part`` of model ``m`` can hold, in all and in any one entry: twice
    its tensors (parameters, buffers, a score's float64 error scale) plus FILE_SLACK. The files aekit
    writes hold at most the tensors plus 30 KB of graph or code (linear, MLP and conv models, every
    part, both formats), so the margin refuses only what no export of the run holds."""
    tensors = sum(t.numel() * t.element_size() for t in (*m.parameters(), *m.buffers()))
    return 2 * (tensors + (8 * m.n_inputs if part == "score" else 0)) + FILE_SLACK


def check_sizes(path: Path, fmt: str, budget: int) -> None:
    """Refuse a file larger than ``budget`` bytes, or (TorchScript, a zip archive) one whose entries
    declare more, in all or alone, before a runtime reads it: torch allocates each entry's declared
    size and inflates it, so a 1 MB archive can ask for gigabytes."""
    try:
        size = path.stat().st_size
        if size > budget:
            raise AekitError(f"{path}: {size:,} bytes, more than an exported model of this run holds "
                             f"({budget:,}); was it exported from this run?")
        if fmt != "torchscript":
            return
        with zipfile.ZipFile(path) as z:  # reads the central directory only, nothing is inflated
            entries = z.infolist()
    except AekitError:  # the size refused above (an AekitError is a ValueError too)
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise _unrunnable(path, fmt, exc) from None
    big = max(entries, key=lambda e: e.file_size, default=None)
    if big is not None and big.file_size > budget:
        raise AekitError(f"{path}: its entry '{shown(big.filename, 60)}' declares {big.file_size:,} bytes, more "
                         f"than an exported model of this run holds ({budget:,}); refused unread")
    total = sum(e.file_size for e in entries)
    if total > budget:
        raise AekitError(f"{path}: its {len(entries)} entries declare {total:,} bytes, more than an exported "
                         f"model of this run holds ({budget:,}); refused unread")


def open_file(path: Path, fmt: str, budget: int) -> tuple[Callable[[np.ndarray], list[np.ndarray]], dict[str, str]]:
    """Load an exported file once with the runtime its users will use, after :func:`check_sizes` holds
    it to ``budget`` bytes: (a function that runs it on a batch, the metadata it carries: ONNX
    metadata_props, TorchScript's aekit.json)."""
    check_sizes(path, fmt, budget)
    try:
        if fmt == "onnx":
            import onnxruntime as ort

            # From its bytes (size checked), so no external data file beside it is ever read.
            sess = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
            meta: Any = dict(sess.get_modelmeta().custom_metadata_map)

            def forward(inp: np.ndarray) -> list[np.ndarray]:
                return list(sess.run(None, {sess.get_inputs()[0].name: inp}))
        else:
            extra = {"aekit.json": ""}
            mod = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
            meta = json.loads(extra["aekit.json"] or "{}")

            def forward(inp: np.ndarray) -> list[np.ndarray]:
                with torch.no_grad():
                    out = mod(torch.from_numpy(inp))
                return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]
    except Exception as exc:  # the runtimes raise their own types for a corrupt or foreign file
        raise _unrunnable(path, fmt, exc) from None

    def run(inp: np.ndarray) -> list[np.ndarray]:
        try:
            return forward(inp)
        except Exception as exc:  # a foreign file may load and still refuse this input
            raise _unrunnable(path, fmt, exc) from None

    return run, meta if isinstance(meta, dict) else {}


def run_file(path: Path, fmt: str, inp: np.ndarray, budget: int) -> list[np.ndarray]:
    """Run an exported file (at most ``budget`` bytes, :func:`file_budget`) on ``inp`` with the runtime
    its users will use."""
    return open_file(path, fmt, budget)[0](inp)


def check_parity(o: Any, run: Callable[[np.ndarray], list[np.ndarray]], path: Path, part: str, x: np.ndarray,
                 scale: np.ndarray | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Max abs difference of each output between the opened file ``run`` and aekit on ``x``, and the
    same held to the tolerance (relative for a score); an error over 1e-5. A score is compared with
    aekit's under ``scale``."""
    from aekit.metrics import as_float

    inp, want = reference(o.model, part, as_float(x[:CHECK_SAMPLES]), scale)
    got = run(np.ascontiguousarray(inp, dtype=np.float32))
    names = part_spec(o.model, part)[2]
    if len(got) != len(want) or any(g.shape != w.shape for g, w in zip(got, want, strict=False)):
        raise AekitError(f"{path}: its outputs {[g.shape for g in got]} are not a {part} part's "
                         f"{[w.shape for w in want]}; was it exported from this run with --part {part}?")
    diffs, scaled = {}, {}
    for n, g, w in zip(names, got, want, strict=True):
        d = np.abs(g.astype(np.float64) - w.astype(np.float64))
        diffs[n] = float(np.max(d, initial=0.0))
        # Outputs in [0, 1] (reconstructions of images, error maps) are held to 1e-5 absolute. A
        # score sums every value's squared error (784 for MNIST): two runtimes whose float32
        # reconstructions differ in the last bit give sums that differ by up to ~1e-7 x 784, 6.7e-5
        # for a trained MNIST model's scores of ~50, while float32 itself only holds such a number
        # to ~4e-6; codes are unbounded too (9.5e-6 seen on a trained 784-512-128-32 encoder). So
        # scores and codes are held to 1e-5 relative to their size where it exceeds 1. So is an
        # error map on tabular data: each squared error over its error scale has no bound either.
        rel = n in UNBOUNDED or (n == "error_map" and scale is not None)
        size = np.maximum(np.abs(w.astype(np.float64)), 1.0) if rel else 1.0
        scaled[n] = float(np.max(d / size, initial=0.0))
    bad = {n: d for n, d in scaled.items() if not d <= TOLERANCE}  # NaN fails too
    if bad:
        raise AekitError(f"{path}: the exported {part} differs from aekit by up to "
                         + ", ".join(f"{diffs[n]:.3g} ({n})" for n in bad) + f", over {TOLERANCE:g}")
    return diffs, scaled


def score_threshold(o: Any, rule: Any, data: str | None, data_dir: str | None) -> dict[str, Any]:
    """The anomaly threshold for ``score``: chosen by ``rule`` on the validation split as ``aekit
    anomaly`` does, else the run's stored one (threshold.json), else an error."""
    from aekit.tasks.anomaly import run_threshold, stored_threshold

    if rule is not None:
        return run_threshold(o, rule, data, data_dir)
    stored = error_threshold(o, stored_threshold(o.dir, score=None))
    if stored is None:
        where = o.dir if o.dir is not None else "this model"
        raise AekitError(f"--part score needs a threshold and {where} has none stored: add --threshold "
                         "contamination:0.01 (or percentile:P, fpr:F), or store one with aekit anomaly RUN "
                         "--threshold RULE --save-threshold")
    return stored


def error_threshold(o: Any, rec: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run's stored threshold ``rec`` where it is on the reconstruction error; one error line where it
    is on the latent score (``aekit anomaly --score latent``), which no exported part computes."""
    from aekit.tasks.anomaly import THRESHOLD_FILE, score_kind

    if rec is not None and score_kind(rec) != "error":
        raise AekitError(f"{o.dir}/{THRESHOLD_FILE}: the stored threshold is on the {score_kind(rec)} score, and an "
                         "exported score part computes the reconstruction error; add --threshold RULE to choose one "
                         "on the error scores, or store one with aekit anomaly RUN --threshold RULE --save-threshold")
    return rec


def file_threshold(o: Any, path: Path, meta: dict[str, Any], data: str | None,
                   data_dir: str | None) -> dict[str, Any]:
    """The threshold the run gives the score file ``path`` (``--check-only``), by the source its
    metadata ``meta`` names: the rule it was exported with, chosen again, else the run's threshold.json."""
    from aekit.tasks.anomaly import parse_threshold, run_threshold, stored_threshold

    if meta.get("threshold_source") == EXPORT_SOURCE:
        rule = meta.get("threshold_rule")
        try:
            parse_threshold(rule)
        except AekitError:
            raise AekitError(f"{path}: its threshold_rule '{shown(rule, 40)}' is no rule aekit writes; "
                             "export it again") from None
        return run_threshold(o, rule, data, data_dir)
    stored = error_threshold(o, stored_threshold(o.dir, score=None))
    if stored is None:
        raise AekitError(f"{path}: it carries a threshold from a threshold.json that "
                         f"{o.dir if o.dir is not None else 'this model'} does not have; export it again")
    return stored


def _same(key: str, got: Any, want: str) -> bool:
    """A metadata value of the file against the run's: the threshold and error scale as numbers (a
    threshold chosen again may differ in its last bits from one CPU to another), the rest as text."""
    if key not in ("threshold", "error_scale") or not isinstance(got, str):
        return got == want
    try:
        g, w = np.asarray(json.loads(got), np.float64), np.asarray(json.loads(want), np.float64)
    except (ValueError, TypeError, RecursionError):
        return False
    return g.shape == w.shape and bool(np.all(np.abs(g - w) <= TOLERANCE * np.maximum(np.abs(w), 1.0)))


def compare_metadata(path: Path, got: dict[str, Any], want: dict[str, str], part: str) -> None:
    """The file's metadata ``got`` must be what the run would write now, ``want`` (all but the aekit
    version that wrote it): an edited threshold, shape or scaling is an error, even where the outputs
    still agree."""
    if not got:
        raise AekitError(f"{path}: it carries no aekit metadata; was it exported with aekit export?")
    if got.get("part") != part:
        raise AekitError(f"{path}: it holds a '{shown(got.get('part'), 20)}' part, not {part}; was it exported "
                         f"from this run with --part {part}?")
    for key in sorted((set(got) | set(want)) - {"aekit_version"}):
        if key not in want:
            raise AekitError(f"{path}: its metadata holds '{shown(key, 40)}', which this run would not write; "
                             "export it again")
        if not _same(key, got.get(key), want[key]):
            have = "no value" if key not in got else f"'{shown(got[key], 60)}'"
            raise AekitError(f"{path}: its metadata {key} is {have} but this run gives '{shown(want[key], 60)}'; "
                             "edited, or exported from other weights, data or threshold: export it again")


def export_run(o: Any, fmt: str, part: str, out: str | Path, threshold: Any = None, check: bool = True,
               check_only: bool = False, data: str | None = None, data_dir: str | None = None) -> dict[str, Any]:
    """Write ``part`` of the opened run ``o`` to ``out`` as ``fmt`` (unless ``check_only``), then
    compare the file with aekit on up to 1,000 test samples (unless ``check`` is False)."""
    from aekit.tasks.anomaly import record_scale
    from aekit.tasks.generate import check_unconditional

    check_request(fmt, part, None if check_only else out, threshold, check_only)
    check_unconditional(o.model, "aekit export")
    path = Path(out)
    m = o.model.cpu().float().eval()
    res: dict[str, Any] = {"path": str(path), "format": fmt, "part": part}
    if not check_only:
        th = score_threshold(o, threshold, data, data_dir) if part == "score" else None
        meta = metadata(o, part, th)
        scale = record_scale(th, m) if th is not None else None
        module = (_Score(m, scale) if part == "score" else part_spec(m, part)[0](m)).eval()
        x = example_input(m, part)
        atomic_write_bytes(path, onnx_bytes(module, x, part, meta) if fmt == "onnx"
                           else torchscript_bytes(module, x, meta))
        res["metadata"] = meta
    elif not path.is_file():
        raise AekitError(f"{path}: no such file to check")
    if check or check_only:
        test = o.split("test", data, data_dir)
        if len(test) == 0:
            raise AekitError("no test samples to check the exported file on; use --no-check")
        run, file_meta = open_file(path, fmt, file_budget(m, part))
        if check_only:  # what this run would write now, with the threshold the file says it carries
            th = file_threshold(o, path, file_meta, data, data_dir) if file_meta.get("part") == part == "score" \
                else None
            meta = metadata(o, part, th)
            scale = record_scale(th, m) if th is not None else None
        compare_metadata(path, file_meta, meta, part)
        res["max_abs_diff"], res["max_checked_diff"] = check_parity(o, run, path, part, test.x, scale)
        res["checked_samples"] = min(len(test), CHECK_SAMPLES)
    return res
