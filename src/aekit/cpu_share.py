"""Training threads sized to the CPUs this process can really use, measured while it trains.

torch's CPU kernels run on an OpenMP team (libgomp in the PyPI wheels) whose threads work in
lock-step: every parallel region ends at a barrier that waits for the slowest thread, and a
waiting thread spins. When another busy process holds one of the cores, one of torch's threads is
descheduled while the others spin at the barrier, and a region that takes microseconds alone
waits for a whole time slice. On a 2-core machine beside one busy process per core, a
784-512-32 autoencoder's 8 epochs on mnist-mini took 20.8 s of training with torch's default two
threads against 1.9 s quiet (11x), and 3.8 s with one thread (2x: about its fair share).

So the training loop, and the NLL estimator (minutes of forward passes; beside a test run on the
same 2 cores it scored 9 digits a second against 50 alone), ask every half second how much of the
machine other processes have used since the last look (``/proc/stat``'s busy time of all CPUs,
less this process's own CPU time) and keep ``round(usable CPUs - others' use)`` threads, between
1 and the count the process started with: all of them on a quiet machine (no slower than before),
fewer as others take cores. The usable
CPUs are the process's affinity mask, bounded by a cgroup's CPU quota (a container's ``--cpus``).
A run that starts while other threads are runnable (``/proc/stat``'s procs_running, where the mask
is the whole machine) starts with fewer threads instead of waiting for its first look.

Nothing is changed where the user fixed the count (``OMP_NUM_THREADS`` or ``AEKIT_THREADS``
set), for ``--deterministic`` runs, on a GPU, or where ``/proc/stat`` does not exist (not Linux);
``AEKIT_THREADS=auto`` is the default. A float sum split over a different number of threads can
differ in its last bits, so a run whose count followed the machine's load repeats its seed's
result only to rounding; ``--deterministic`` keeps the count the process started with, and the
run repeats bit for bit however busy the machine is. ``benchmarks/throughput.py --contended`` measures it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from aekit.device import fixed_threads

INTERVAL = 0.5  # seconds between looks: long enough for /proc/stat's 10 ms ticks to count
FIRST_LOOK = 0.1  # the first look comes sooner: a short run beside busy processes should not spend half a second at 10x
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _affinity() -> set[int] | None:
    """The CPUs this process may run on (None where the platform cannot say)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity mask, bounded by a cgroup v2 or v1 CPU quota."""
    cpus = _affinity()
    n = len(cpus) if cpus else os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(n, math.ceil(quota))) if quota else max(1, n)


def _cgroup_quota() -> float | None:
    """The quota in CPUs (``cpu.max``, or v1's ``cpu.cfs_quota_us``/``cpu.cfs_period_us``); None if unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return q / p if q > 0 and p > 0 else None
    except (OSError, ValueError):
        return None


def _machine_busy_seconds(cpus: set[int] | None) -> float | None:
    """CPU seconds the given CPUs (all where None) have spent busy since boot, from ``/proc/stat``:
    user, nice, system, irq and softirq time. Idle, iowait and steal (time the hypervisor gave to
    another machine) are not other processes of this one."""
    try:
        with open("/proc/stat", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    wanted = {b"cpu"} if cpus is None else {f"cpu{c}".encode() for c in cpus}
    total, seen = 0, 0
    for line in lines:
        fields = line.split()
        if len(fields) >= 8 and fields[0] in wanted:
            user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
            total, seen = total + user + nice + system + irq + softirq, seen + 1
    return total / CLOCK_TICKS if seen else None


def _runnable() -> int:
    """Threads running or ready to run on the machine now (``/proc/stat``'s procs_running); 1 if unknown."""
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"procs_running "):
                    return max(1, int(line.split()[1]))
    except (OSError, ValueError):
        pass
    return 1


class CpuShare:
    """Adjusts ``torch.set_num_threads`` to the CPUs left by other processes; ``tick()`` after every step."""

    def __init__(self, device: torch.device, deterministic: bool = False) -> None:
        self.start = torch.get_num_threads()
        fixed = fixed_threads()
        if fixed is not None and fixed != self.start:
            torch.set_num_threads(fixed)
        # Only the CPUs this process may run on are watched: in a container or under taskset on a
        # large busy host, the rest of the host's load is not this process's concern.
        self.cpus = _affinity()
        self.span = len(self.cpus) if self.cpus else os.cpu_count() or 1
        busy = _machine_busy_seconds(self.cpus)
        self.active = (device.type == "cpu" and fixed is None and not deterministic and busy is not None
                       and self.start > 1)
        self.most = min(self.start, usable_cpus())  # a cgroup quota may allow fewer than the mask
        self.threads = self.start
        self.last = (time.monotonic(), busy or 0.0, self._own())
        self.changes = 0  # how often the count changed
        self.looked = False
        if self.active and self.span == (os.cpu_count() or 1):  # the runnable count is the whole machine's
            others = _runnable() - 1  # this thread is running; torch's others are idle between steps
            self._set(max(1, min(self.most, self.span - others)))

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system

    def tick(self) -> None:
        if not self.active:
            return
        now = time.monotonic()
        if now - self.last[0] < (INTERVAL if self.looked else FIRST_LOOK):
            return
        busy, own = _machine_busy_seconds(self.cpus), self._own()
        if busy is None:
            self.active = False
            return
        t0, busy0, own0 = self.last
        self.last, self.looked = (now, busy, own), True
        others = max(0.0, (busy - busy0) - (own - own0)) / (now - t0)  # CPUs' worth other processes used
        # Threads for the CPUs of the mask that others leave free, at most the quota's; 0.6 of a core
        # left over still earns a thread (a process that runs in bursts), 0.4 does not.
        self._set(max(1, min(self.most, math.floor(self.span - others + 0.4))))

    def _set(self, want: int) -> None:
        if want != self.threads:
            torch.set_num_threads(want)
            self.threads, self.changes = want, self.changes + 1

    def restore(self) -> None:
        """Give the caller's process back the count it had (the Python API's user keeps their setting)."""
        if torch.get_num_threads() != self.start:
            torch.set_num_threads(self.start)


@contextmanager
def shared_threads(device: torch.device) -> Iterator[CpuShare]:
    """For long work outside the training loop (the NLL estimator's thousands of forward passes): the
    same thread count as training would take, ``tick()`` after every batch, the caller's count back
    at the end."""
    share = CpuShare(device)
    try:
        yield share
    finally:
        share.restore()
