#!/usr/bin/env bash
# The GPU figures in one short run (about 5 minutes on one recent card): the speed table on CUDA
# and the Hinton & Salakhutdinov 2006 recipe in bf16. Writes JSON under benchmarks/results/gpu/.
#   bash benchmarks/gpu.sh [MNIST_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
M=${1:-../shared/datasets/mnist}
OUT=benchmarks/results/gpu
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/card.txt"
"$PY" benchmarks/throughput.py --device cuda --data-dir "$M" --rounds 5 --out "$OUT/throughput.json"
rm -rf "$OUT/hinton2006-bf16"
"$PY" -m aekit train --config configs/hinton2006.toml --data-dir "$M" --device cuda --precision bf16 \
    --out "$OUT/hinton2006-bf16" --quiet --json > "$OUT/hinton2006-bf16.json"
"$PY" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
s = json.load(open(f"{out}/hinton2006-bf16.json"))
print(f"hinton2006 bf16 on CUDA: test sse_per_image {s['metrics']['test']['sse_per_image']:.3f}, "
      f"{s['train_seconds']:.0f}s of training")
PY
