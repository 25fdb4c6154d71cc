from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default=os.environ.get("AEKIT_TEST_DEVICE", "cpu"), choices=("cpu", "cuda", "mps"),
                     help="where the tests train and infer (default $AEKIT_TEST_DEVICE, else cpu): every "
                     "command that would pick its device itself gets this one")


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("--device")
    if name not in ("cpu", "cuda", "mps"):  # a default from $AEKIT_TEST_DEVICE is not checked by choices=
        raise pytest.UsageError(f"AEKIT_TEST_DEVICE={name!r}: use cpu, cuda or mps")
    if name == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError("--device cuda: no CUDA GPU is visible to torch here")


def pytest_report_header(config: pytest.Config) -> str:
    return f"aekit test device: {config.getoption('--device')}"


@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> str:
    """The device named by ``--device`` / ``$AEKIT_TEST_DEVICE`` (cpu unless asked)."""
    return pytestconfig.getoption("--device")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"full MNIST not found at {SHARED_MNIST} (it sits beside the checkout in development and CI)")
    return SHARED_MNIST


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch, device):
    """No test reads or writes the user's real cache or data folder, or the checkout's runs/; and
    ``--device auto`` (every command's default) means the device the suite runs on; and one training
    thread, so that tests which train twice and compare bits do not depend on how busy the machine
    is (tests/test_cpu_share.py unsets it to test the automatic count)."""
    monkeypatch.setenv("AEKIT_DEVICE", device)
    monkeypatch.setenv("AEKIT_THREADS", "1")
    monkeypatch.setenv("AEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AEKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("AEKIT_DATA_DIR", raising=False)


@pytest.fixture(scope="session")
def mini():
    from aekit.data.sources import load_dataset

    return load_dataset("mnist-mini")


@pytest.fixture
def small_images(mini):
    """A 600-image slice of mnist-mini as a Dataset, for quick training runs."""
    from aekit.data.dataset import Dataset, Split

    return Dataset("mini-slice", Split(mini.train.x[:600], mini.train.y[:600]),
                   Split(mini.test.x[:100], mini.test.y[:100]), kind="image")


def tabular(n: int = 200, d: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
