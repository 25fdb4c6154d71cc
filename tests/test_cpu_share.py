"""The training threads follow the CPUs other processes leave free (aekit/cpu_share.py).

The machine's load is simulated (``/proc/stat``'s busy seconds and this process's CPU time), so the
tests are deterministic; benchmarks/throughput.py --contended measures the real thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from aekit import cpu_share
from aekit.errors import AekitError
from tests.badinput import assert_one_line_error


class Clock:
    """A fake machine: wall time, the machine's busy CPU seconds and this process's CPU seconds."""

    def __init__(self) -> None:
        self.wall, self.busy, self.own = 100.0, 1000.0, 10.0

    def advance(self, seconds: float, own_cpus: float, other_cpus: float) -> None:
        self.wall += seconds
        self.own += seconds * own_cpus
        self.busy += seconds * (own_cpus + other_cpus)


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Any:
    clock = Clock()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("AEKIT_THREADS", raising=False)
    monkeypatch.setattr(cpu_share, "_machine_busy_seconds", lambda cpus: clock.busy)
    monkeypatch.setattr(cpu_share, "_affinity", lambda: {0, 1, 2, 3})
    monkeypatch.setattr(cpu_share.CpuShare, "_own", staticmethod(lambda: clock.own))
    monkeypatch.setattr(cpu_share.time, "monotonic", lambda: clock.wall)
    monkeypatch.setattr(cpu_share, "usable_cpus", lambda: 4)
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    yield clock
    torch.set_num_threads(before)


def test_quiet_machine_keeps_every_thread(machine: Clock) -> None:
    share = cpu_share.CpuShare(torch.device("cpu"))
    for _ in range(5):
        machine.advance(0.6, own_cpus=3.9, other_cpus=0.05)
        share.tick()
    assert share.active and torch.get_num_threads() == 4 and share.changes == 0


def test_busy_neighbours_take_threads_away_and_give_them_back(machine: Clock) -> None:
    share = cpu_share.CpuShare(torch.device("cpu"))
    machine.advance(0.6, own_cpus=1.0, other_cpus=3.0)  # three busy processes on four cores
    share.tick()
    assert torch.get_num_threads() == 1
    machine.advance(0.6, own_cpus=1.0, other_cpus=1.0)  # two of them ended
    share.tick()
    assert torch.get_num_threads() == 3
    machine.advance(0.1, own_cpus=3.0, other_cpus=0.0)  # too soon to look again: no change
    share.tick()
    assert torch.get_num_threads() == 3
    machine.advance(0.6, own_cpus=3.0, other_cpus=0.0)
    share.tick()
    assert torch.get_num_threads() == 4
    machine.advance(0.6, own_cpus=1.0, other_cpus=3.0)
    share.tick()
    share.restore()  # the caller gets back the count it had
    assert torch.get_num_threads() == 4


def test_a_deterministic_run_keeps_its_count_on_a_busy_machine(machine: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_share.os, "cpu_count", lambda: 4)  # the mask is the whole machine
    monkeypatch.setattr(cpu_share, "_runnable", lambda: 4)  # three others runnable at the start
    share = cpu_share.CpuShare(torch.device("cpu"), deterministic=True)
    machine.advance(1.0, own_cpus=1.0, other_cpus=3.0)
    share.tick()
    assert not share.active and torch.get_num_threads() == 4 and share.changes == 0
    auto = cpu_share.CpuShare(torch.device("cpu"))  # the same start without --deterministic
    assert auto.threads == 1
    auto.restore()


def test_a_fixed_count_is_left_alone(machine: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEKIT_THREADS", "2")
    share = cpu_share.CpuShare(torch.device("cpu"))
    assert not share.active and torch.get_num_threads() == 2
    machine.advance(1.0, own_cpus=1.0, other_cpus=3.0)
    share.tick()
    assert torch.get_num_threads() == 2
    share.restore()
    assert torch.get_num_threads() == 4
    monkeypatch.setenv("AEKIT_THREADS", "auto")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert not cpu_share.CpuShare(torch.device("cpu")).active


@pytest.mark.parametrize("value", ["0", "two", "-1", "99999", "1.5"])
def test_a_bad_thread_count_is_refused(machine: Clock, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AEKIT_THREADS", value)
    with pytest.raises(AekitError, match="AEKIT_THREADS"):
        cpu_share.CpuShare(torch.device("cpu"))


def test_a_bad_thread_count_is_one_error_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AEKIT_THREADS", "lots")
    assert_one_line_error(["train", "--data", "synthetic:plane", "--epochs", "1", "--out", tmp_path / "r"], capsys,
                          "AEKIT_THREADS")


def test_a_quota_under_the_mask_ignores_the_rest_of_the_hosts_load(machine: Clock,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A container allowed 2 CPUs on a 4-CPU mask: others using 1.5 CPUs still leave it its 2."""
    monkeypatch.setattr(cpu_share, "usable_cpus", lambda: 2)
    share = cpu_share.CpuShare(torch.device("cpu"))
    machine.advance(0.6, own_cpus=2.0, other_cpus=1.5)
    share.tick()
    assert torch.get_num_threads() == 2
    machine.advance(0.6, own_cpus=1.0, other_cpus=3.0)
    share.tick()
    assert torch.get_num_threads() == 1


def test_busy_time_counts_only_the_given_cpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  300 0 100 900 5 0 0 50 0 0\ncpu0 100 0 50 400 5 0 0 25 0 0\n"
                    "cpu1 200 0 50 500 0 0 0 25 0 0\nintr 1 2 3\n")
    real_open = open
    monkeypatch.setattr(cpu_share, "open", lambda p, m="r": real_open(stat if p == "/proc/stat" else p, m),
                        raising=False)
    tick = cpu_share.CLOCK_TICKS
    assert cpu_share._machine_busy_seconds(None) == pytest.approx(400 / tick)  # steal and iowait left out
    assert cpu_share._machine_busy_seconds({1}) == pytest.approx(250 / tick)
    assert cpu_share._machine_busy_seconds({7}) is None


def test_quota_bounds_usable_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_share, "_cgroup_quota", lambda: 1.5)
    monkeypatch.setattr(cpu_share, "_affinity", lambda: {0, 1, 2, 3})
    assert cpu_share.usable_cpus() == 2
    monkeypatch.setattr(cpu_share, "_cgroup_quota", lambda: None)
    assert cpu_share.usable_cpus() == 4


def test_a_run_that_starts_beside_busy_processes_starts_with_fewer_threads(machine: Clock,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_share.os, "cpu_count", lambda: 4)  # the mask is the whole machine
    monkeypatch.setattr(cpu_share, "_runnable", lambda: 4)  # this thread and three others
    share = cpu_share.CpuShare(torch.device("cpu"))
    assert torch.get_num_threads() == 1 and share.changes == 1
    share.restore()
    monkeypatch.setattr(cpu_share, "_runnable", lambda: 1)  # alone
    cpu_share.CpuShare(torch.device("cpu"))
    assert torch.get_num_threads() == 4


def test_the_nll_estimator_follows_the_share_and_gives_the_count_back(machine: Clock,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """aekit.tasks.generate.log_likelihood ticks a CpuShare after every batch (its passes take minutes),
    so busy neighbours take its threads as they take training's; the caller's count comes back."""
    from aekit.models.variational import VariationalAE
    from aekit.tasks.generate import log_likelihood

    seen: list[int] = []
    real_tick = cpu_share.CpuShare.tick

    def tick(self: cpu_share.CpuShare) -> None:
        machine.advance(0.6, own_cpus=1.0, other_cpus=3.0)  # three busy processes on four cores
        real_tick(self)
        seen.append(torch.get_num_threads())

    monkeypatch.setattr(cpu_share.CpuShare, "tick", tick)
    model = VariationalAE((6,), code=2, layers=[4], likelihood="bernoulli")
    x = (np.random.default_rng(0).random((5, 6)) < 0.5).astype(np.float32)
    log_likelihood(model, x, samples=8, batch=16)  # two rows a batch: three batches
    assert seen == [1, 1, 1] and torch.get_num_threads() == 4


def test_a_run_that_fails_before_its_first_step_gives_the_thread_count_back(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The share is made inside the try that restores the caller's count: a resume that fails on a
    damaged checkpoint leaves the Python caller's threads as they were."""
    import aekit

    monkeypatch.setenv("AEKIT_THREADS", "1")
    cfg = aekit.RunConfig(model={"name": "mlp", "code": 2, "layers": [8]})
    aekit.train(cfg, tmp_path / "r", progress=False, **{"train.epochs": 1, "train.max_steps": 2})
    from aekit.training import loop

    def damaged(self: loop.Trainer) -> None:
        raise AekitError("the checkpoint is damaged")

    monkeypatch.setattr(loop.Trainer, "restore", damaged)  # as a checkpoint that fails its checks on load
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(AekitError):
            aekit.train(cfg, tmp_path / "r", resume=True, progress=False, **{"train.epochs": 2})
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
