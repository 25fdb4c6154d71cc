"""benchmarks/gpu.sh: ready to run on a CUDA machine, and clean without one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.sh"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})


def test_dry_run_lists_every_step_and_finds_their_files():
    r = run("--dry-run")
    assert r.returncode == 0, r.stderr
    names = [line[:26].strip() for line in r.stdout.splitlines()]
    assert names == ["tests on cuda", "throughput", "hinton2006 fp32 compiled", "hinton2006 bf16 compiled",
                     "pretraining best", "infilling block:14"]
    limits = [int(line[26:].split("s", 1)[0]) for line in r.stdout.splitlines()]
    assert sum(limits) <= 6 * 60, limits  # the budget: at most 6 minutes on one card


def test_the_vae_recipes_are_a_step_of_their_own():
    r = run("--dry-run", "--vae")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vae recipes")
    assert "--rows vae,iwae,vamp,hierarchical --device cuda" in lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: gpu.sh would really run")
def test_without_cuda_it_stops_at_once_with_one_line():
    r = run()
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "no CUDA GPU" in r.stderr, r.stderr
