"""A one-line progress bar on stderr for the command-line tools."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class TextProgress:
    """``label [#####-----] 5/10 2.1s/it`` rewritten in place; ``update(n)`` advances by n steps (a fraction too: the
    count shown is the whole steps done). ``per_second`` shows the rate as ``0.48 it/s`` instead."""

    def __init__(
        self, total: int, label: str, stream: TextIO | None = None, width: int = 30, per_second: bool = False
    ) -> None:
        self.total, self.label, self.width, self.per_second = max(total, 1), label, width, per_second
        self.stream = stream or sys.stderr
        self.done, self.start = 0, time.perf_counter()
        self._draw()

    def update(self, steps: float = 1) -> None:
        if self.done >= self.total:
            return
        self.done = min(self.total, self.done + steps)
        if self.total - self.done < 1e-9:  # fractions that add up to the total
            self.done = self.total
        self._draw()
        if self.done == self.total:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self) -> None:
        filled = int(self.width * self.done / self.total)
        elapsed = time.perf_counter() - self.start
        if self.per_second:
            rate = f"{self.done / elapsed if elapsed > 0 else 0.0:.2f} it/s"
        else:
            rate = f"{elapsed / self.done if self.done else 0.0:.2f}s/it"
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {int(self.done + 1e-9)}/{self.total} {rate}")
        self.stream.flush()
