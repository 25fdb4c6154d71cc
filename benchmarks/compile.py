"""``--compile`` against eager fp32 for aekit's own loop: speed, and the same loss after 200 steps.

For each model (default: the deep 784-1000-500-250-30 relu mlp), aekit's loop trains for a fixed
number of steps (batch 256, Adam, MSE on sigmoid outputs) on MNIST, eagerly and with
``compile="on"``, interleaved round after round in alternating order after a warm-up that also
compiles; the table gives the median samples/s and the median per-round ratio.

For an mlp it also times the step's matrix products alone (the forward's, and the backward's for
the inputs' and the weights' gradients, at the step's shapes, one after another): no compiler can
make a step faster than those, so eager step time / their time is the most ``--compile`` can gain
when it keeps fp32 arithmetic (the "ceiling" column).

Then, for each of ``--parity-seeds`` seeds, both train 200 steps from the same initial weights and
data order, and the script reports the difference of the mean training loss over those steps and of
the test MSE after them (goal: below 1e-4). Differences of that size are chaotic rounding: 200 steps
of Adam through ReLUs amplify any change in the last bit. For scale, a third run per seed trains
eagerly from the same weights moved by one float32 ulp; the table gives the median over the seeds of
each difference, and the JSON every seed's figures.

    python benchmarks/compile.py [--device cpu] [--data-dir ../shared/datasets/mnist] [--rounds 5]
        [--models deep,small,conv] [--parity-seeds 5] [--profile] [--out benchmarks/results/compile.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch

from aekit.config import TrainConfig
from aekit.data.dataset import Split
from aekit.data.sources import load_dataset
from aekit.metrics import evaluate_model
from aekit.registry import create_model
from aekit.training.loop import fit
from aekit.training.speed import keep_freed_memory

MODELS = {  # key -> (label, family, options, steps per measurement)
    "deep": ("mlp 784-1000-500-250-30", "mlp", {"layers": [1000, 500, 250], "code": 30, "activation": "relu"}, 40),
    "small": ("mlp 784-32", "mlp", {"layers": [], "code": 32, "activation": "relu"}, 200),
    "conv": ("conv 32,64 code 32", "conv", {"channels": [32, 64], "code": 32}, 12),
}
BATCH = 256
PARITY_STEPS = 200


def timed_fit(model: torch.nn.Module, train: Split, steps: int, compile: str, device: torch.device) -> float:
    cfg = TrainConfig(epochs=1, batch_size=BATCH, max_steps=steps, compile=compile)
    t0 = time.perf_counter()
    res = fit(model, train, None, cfg, progress=False, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    assert res.steps == steps and res.compiled == (compile == "on"), "the measurement must fit in one epoch"
    return steps * BATCH / (time.perf_counter() - t0)


def parity(family: str, options: dict, train: Split, test_x, device: torch.device, seed: int) -> dict:
    """Both modes, and eager from weights one ulp away, for PARITY_STEPS steps from the same weights
    (drawn with ``seed``) and the same data order."""
    torch.manual_seed(seed)
    start = create_model(family, (1, 28, 28), **options)
    start.resolve_output("unit")
    out = {}
    for mode in ("off", "on", "ulp"):
        m = copy.deepcopy(start)
        if mode == "ulp":
            with torch.no_grad():
                for p in m.parameters():
                    p.copy_(torch.nextafter(p, torch.full_like(p, float("inf"))))
        cfg = TrainConfig(epochs=1, batch_size=BATCH, max_steps=PARITY_STEPS, compile="on" if mode == "on" else "off",
                          seed=seed + 1)
        res = fit(m, train, None, cfg, progress=False, device=device)
        out[mode] = {"train_loss": res.history[-1]["train_loss"], "test_mse": evaluate_model(m, test_x)["mse"]}
    for key in ("train_loss", "test_mse"):
        out[f"{key}_diff"] = abs(out["on"][key] - out["off"][key])
        out[f"{key}_diff_one_ulp_eager"] = abs(out["ulp"][key] - out["off"][key])
    return out


def matmul_seconds(model: torch.nn.Module, batch: int, repeat: int = 20) -> float | None:
    """Seconds of one step's matrix products alone, at its shapes (None for a model with convolutions)."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not linears or any(isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d) for m in model.modules()):
        return None
    calls = []
    for k, lin in enumerate(linears):
        x, g = torch.rand(batch, lin.in_features), torch.rand(batch, lin.out_features)
        w, b = lin.weight.detach().clone(), torch.rand(lin.out_features)
        calls.append(lambda x=x, w=w, b=b: torch.addmm(b, x, w.t()))  # forward
        calls.append(lambda x=x, g=g: torch.mm(g.t(), x))  # the weight's gradient, in its layout, as autograd does
        if k > 0:  # the first layer's input needs no gradient
            calls.append(lambda g=g, w=w: torch.mm(g, w))
    times = []
    for r in range(3 + repeat):
        t = time.perf_counter()
        for call in calls:
            call()
        if r >= 3:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def median_of(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/mnist"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", default="deep")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--parity-seeds", type=int, default=5)
    ap.add_argument("--profile", action="store_true",
                    help="also print torch.profiler's table (self time per op and per generated kernel) for "
                         "one measurement of each mode")
    ap.add_argument("--out", default="benchmarks/results/compile.json")
    args = ap.parse_args()
    if args.parity_seeds < 1 or args.rounds < 1:
        ap.error("--rounds and --parity-seeds must be at least 1")
    from aekit.device import resolve_device

    device = resolve_device(args.device)
    if device.type == "cpu":
        keep_freed_memory()  # as aekit's loop does on the CPU (training/speed.py); both modes run under it
    if args.profile:
        import torch._inductor.config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True  # inductor's generated kernels get names in the table
    ds = load_dataset("mnist", args.data_dir)
    train, test_x = Split(ds.train.x), ds.test.x
    results = []
    for key in args.models.split(","):
        label, family, options, steps = MODELS[key]
        models = {}
        for mode in ("off", "on"):
            torch.manual_seed(0)
            models[mode] = create_model(family, (1, 28, 28), **options)
            models[mode].resolve_output("unit")
        t = time.perf_counter()
        for mode, m in models.items():  # warm-up; "on" compiles here
            timed_fit(m, train, steps, mode, device)
        warm = time.perf_counter() - t
        speeds: dict[str, list[float]] = {"off": [], "on": []}
        for r in range(args.rounds):
            for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                speeds[mode].append(timed_fit(models[mode], train, steps, mode, device))
            print(f"{label}: round {r + 1}/{args.rounds}", flush=True)
        ratio = statistics.median(a / b for a, b in zip(speeds["on"], speeds["off"], strict=True))
        if args.profile:
            for mode in ("off", "on"):
                with torch.profiler.profile() as prof:
                    timed_fit(models[mode], train, steps, mode, device)
                print(f"\n{label}, compile {mode}, {steps} steps:\n"
                      + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12), flush=True)
        mm = matmul_seconds(models["off"], BATCH) if device.type == "cpu" else None
        eager_step = BATCH / statistics.median(speeds["off"])
        seeds = []
        for seed in range(args.parity_seeds):
            seeds.append(parity(family, options, train, test_x, device, seed))
            print(f"{label}: parity seed {seed + 1}/{args.parity_seeds}", flush=True)
        row = {"model": label, "device": str(device), "batch_size": BATCH, "steps": steps, "rounds": args.rounds,
               "eager_samples_per_s": round(statistics.median(speeds["off"])),
               "compiled_samples_per_s": round(statistics.median(speeds["on"])), "ratio": round(ratio, 3),
               "warmup_and_compile_seconds": round(warm, 1),
               "all": {k: [round(x) for x in v] for k, v in speeds.items()},
               "eager_step_ms": round(1e3 * eager_step, 2),
               "matmul_ms": round(1e3 * mm, 2) if mm else None,
               "ceiling": round(eager_step / mm, 3) if mm else None,
               "parity_200_steps": {f"median_{k}": median_of(seeds, k) for k in (
                   "train_loss_diff", "test_mse_diff", "train_loss_diff_one_ulp_eager", "test_mse_diff_one_ulp_eager")}
               | {"seeds": seeds}}
        results.append(row)
    print(f"\n{'model':<26} {'eager':>9} {'compiled':>9} {'ratio':>6} {'ceiling':>8} {'|Δ train loss|':>15} "
          f"{'|Δ test mse|':>13} {'1-ulp start: |Δ train|':>23} {'|Δ test|':>9}")
    for r in results:
        p = r["parity_200_steps"]
        ceiling = f"{r['ceiling']:.2f}x" if r["ceiling"] else "-"
        print(f"{r['model']:<26} {r['eager_samples_per_s']:>9,} {r['compiled_samples_per_s']:>9,} {r['ratio']:>5.2f}x "
              f"{ceiling:>8} {p['median_train_loss_diff']:>15.2e} {p['median_test_mse_diff']:>13.2e} "
              f"{p['median_train_loss_diff_one_ulp_eager']:>23.2e} {p['median_test_mse_diff_one_ulp_eager']:>9.2e}")
    print(f"(samples/s, median of the rounds; ceiling: eager step time / its matrix products' alone; differences "
          f"after 200 steps, median over {args.parity_seeds} seeds, compiled vs eager and eager vs eager from weights "
          "one ulp apart; goal on the CPU for the deep mlp: >= 1.15x, differences < 1e-4)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device)}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
