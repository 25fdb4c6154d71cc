#!/usr/bin/env bash
# The GPU figures in one short run (at most about 6 minutes on one H100/H200), no install step: it
# uses the machine's python and torch, and PYTHONPATH=src where aekit is not installed.
#   bash benchmarks/gpu.sh [--dry-run] [--vae] [MNIST_DIR]
# --vae runs instead the variational family's full recipes (benchmarks/vae.py: VAE, IWAE k=50,
# VampPrior, the Ladder VAE, 1,000 epochs each, test NLL with 5,000 importance samples): hours, not
# minutes, even on a GPU; a CPU cannot train them in a working day (the README's table says what the
# CPU reached with --epochs).
# Each step runs under its own timeout, so one failure or hang does not hide the rest; each writes
# JSON (or a log) under benchmarks/results/gpu/, and the end prints one summary table, also saved
# as benchmarks/results/gpu/summary.md; the exit status is 1 if any step failed or timed out.
# --dry-run lists the steps and checks that their scripts and recipes exist, without a GPU.
# Without CUDA, a real run stops at once with one line, exit 2.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
VAE=0
if [ "${1:-}" = "--vae" ]; then VAE=1; shift; fi
M=${1:-../shared/datasets/mnist}
OUT=benchmarks/results/gpu
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
if ! "$PY" -c "import aekit" 2>/dev/null; then export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"; fi

# name | timeout (s) | command. The timeouts add up to 6 minutes.
STEPS=(
  "tests on cuda|85|$PY -m pytest -q -p no:cacheprovider --device cuda tests/test_on_device.py tests/test_compile.py tests/test_training.py"
  "throughput|60|$PY benchmarks/throughput.py --device cuda --data-dir $M --rounds 3 --compile --out $OUT/throughput.json"
  "hinton2006 fp32 compiled|40|$PY -m aekit train --config configs/hinton2006.toml --data-dir $M --device cuda --precision fp32 --compile --out $OUT/hinton2006-fp32 --quiet --json"
  "hinton2006 bf16 compiled|40|$PY -m aekit train --config configs/hinton2006.toml --data-dir $M --device cuda --precision bf16 --compile --out $OUT/hinton2006-bf16 --quiet --json"
  "pretraining best|80|$PY benchmarks/pretraining.py --part best --data-dir $M --device cuda --compile on --out $OUT/pretraining"
  "infilling block:14|55|$PY -m aekit train --data mnist --data-dir $M --layers 1000,500 --code 64 --epochs 60 --schedule cosine --noise block:14 --device cuda --compile --out $OUT/inpaint-block14 --quiet --json"
)
if [ "$VAE" = 1 ]; then
  STEPS=("vae recipes|86400|$PY benchmarks/vae.py --rows vae,iwae,vamp,hierarchical --device cuda --data-dir $M --out $OUT/vae.json --runs $OUT/vae-runs")
fi

if [ "$DRY" = 1 ]; then
  ok=0
  for s in "${STEPS[@]}"; do
    IFS='|' read -r name limit cmd <<<"$s"
    printf '%-26s %4ss  %s\n' "$name" "$limit" "$cmd"
    for f in $cmd; do
      case "$f" in
        *.py|*.toml) [ -f "$f" ] || { echo "gpu.sh: $name: $f is missing" >&2; ok=2; } ;;
      esac
    done
  done
  exit $ok
fi

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu.sh: error: no CUDA GPU visible to torch here; nothing measured (--dry-run lists the steps)" >&2
  exit 2
fi
mkdir -p "$OUT"
rm -rf "$OUT"/hinton2006-* "$OUT"/inpaint-block14 "$OUT"/pretraining/runs
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/card.txt"

declare -A RC SECS
T0=$(date +%s)
for s in "${STEPS[@]}"; do
  IFS='|' read -r name limit cmd <<<"$s"
  slug=$(echo "$name" | tr ' :' '--')
  echo "== $name (timeout ${limit}s)"
  t=$(date +%s)
  # shellcheck disable=SC2086  # the command is a word list on purpose
  timeout --signal=TERM --kill-after=10 "$limit" $cmd >"$OUT/$slug.out" 2>"$OUT/$slug.err"
  RC[$name]=$?
  SECS[$name]=$(( $(date +%s) - t ))
  tail -n 3 "$OUT/$slug.err" | sed 's/^/   /'
done
echo "total $(( $(date +%s) - T0 ))s"

# One table from the JSON each step wrote (the steps' states go through a file: the script is stdin).
export OUT
failed=0
for s in "${STEPS[@]}"; do
  IFS='|' read -r name _ _ <<<"$s"
  echo "$name|${RC[$name]}|${SECS[$name]}"
  [ "${RC[$name]}" = 0 ] || failed=1
done >"$OUT/steps.txt"
"$PY" - <<'PY'
import json, os, re
from pathlib import Path
out = Path(os.environ["OUT"])

def state(rc):
    return "ok" if rc == "0" else "TIMEOUT" if rc in ("124", "137") else f"failed (exit {rc})"

def read(p):
    try:
        return json.loads(Path(p).read_text())
    except (OSError, ValueError):
        return None

rows = []
for line in (out / "steps.txt").read_text().splitlines():
    name, rc, secs = line.rstrip("\n").split("|")
    slug = name.replace(" ", "-").replace(":", "-")
    figure, goal = "", ""
    if name.startswith("tests"):
        m = re.search(r"(\d+ passed[^\n=]*)", (out / f"{slug}.out").read_text(errors="replace"))
        figure, goal = (m.group(1).strip() if m else "see tests-on-cuda.out"), "all pass"
    elif name == "throughput":
        d = read(out / "throughput.json") or {"results": []}
        parts = [f"{r['model'].split(' ')[-1] if 'conv' not in r['model'] else 'conv'} {r['contender'][6:]}: "
                 f"{r['ratio_to_minimal']:.2f}x" for r in d["results"] if "ratio_to_minimal" in r
                 and r["contender"].startswith("aekit")]
        figure, goal = "; ".join(parts), ">= 3x deep & 784-32, >= 1.5x conv (compiled); bf16 >= fp32"
    elif name.startswith("hinton"):
        d = read(out / f"{slug}.out")
        if d:
            figure = f"test sse {d['metrics']['test']['sse_per_image']:.3f}, {d['train_seconds']:.0f}s training"
        goal = "<= 20 s process start to summary, test <= 3.00"
    elif name.startswith("pretraining"):
        d = read(out / "pretraining" / "pretraining-best.json")
        if d:
            figure = f"test error {d['test_error_percent']:.2f}%, {d['total_seconds']:.0f}s"
        goal = "<= 90 s, <= 1.10%"
    elif name.startswith("infilling"):
        d = read(out / f"{slug}.out")
        if d:
            figure = f"test sse {d['metrics']['test']['sse_per_image']:.3f}, {d['train_seconds']:.0f}s training"
        goal = "<= 60 s (then: aekit inpaint ... --mask center:14, +3 dB)"
    elif name.startswith("vae"):
        d = read(out / "vae.json") or {"rows": []}
        figure = "; ".join(f"{r['label']}: {r['nll']:.2f} nats" for r in d["rows"] if "nll" in r)
        goal = "VAE <= 87.0, IWAE <= 84.5, VampPrior <= 84.5, Ladder <= 81.0"
    rows.append((name, state(rc), f"{secs}s", figure, goal))
head = ("step", "state", "wall", "figure", "goal")
lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
print("\n".join(lines))
(out / "summary.md").write_text("\n".join(lines) + "\n")
PY
exit $(( failed ? 1 : 0 ))
