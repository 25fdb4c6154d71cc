"""What long work shows a person: a bar on a terminal, plain lines on stderr otherwise.

Under ``make``, a batch scheduler or ``> log.txt`` a tqdm bar is invisible or a mess of carriage
returns, so when stderr is not a terminal the same work prints one line per epoch and, inside a
long epoch, one line every ``every_s`` seconds. ``enabled=False`` (``--quiet``) prints nothing.
"""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """Progress of one stage of work (an epoch, a fit of probes), ``total`` units long."""

    def __init__(self, total: int, desc: str, enabled: bool | None = True, every_s: float = 30.0,
                 unit: str = "step") -> None:
        self.enabled = enabled is not False
        self.tty = self.enabled and sys.stderr.isatty()
        self.desc, self.total, self.every_s, self.unit = desc, total, every_s, unit
        self.done, self.t0 = 0, time.perf_counter()
        self.last_line = self.t0
        self.bar: Any = None
        if self.tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, leave=False, unit=unit, file=sys.stderr)

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(**postfix)
        elif self.enabled and time.perf_counter() - self.last_line >= self.every_s:
            self.last_line = time.perf_counter()
            extra = "".join(f", {k} {v}" for k, v in postfix.items())
            say(f"{self.desc}: {self.done}/{self.total} {self.unit}s{extra} "
                f"({self.last_line - self.t0:.0f}s)", self.enabled)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def say(line: str, enabled: bool | None = True) -> None:
    """One line on stderr, unless quiet."""
    if enabled is not False:
        print(line, file=sys.stderr, flush=True)
