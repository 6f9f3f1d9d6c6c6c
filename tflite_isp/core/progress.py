"""A progress bar for long work: redrawn in place on a terminal, a line per 10 % in logs."""
from __future__ import annotations

import sys
import time


class Progress:
    """``Progress(total, "epoch 3/10")``; ``update(done, loss=0.04, **{"patch/s": 130})``; ``close()``."""

    def __init__(self, total: int, label: str = "", *, enabled: bool = True, stream=None, width: int = 24):
        self.total, self.label, self.enabled, self.width = max(int(total), 1), label, enabled, width
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_decile = -1

    def _line(self, done: int, values: dict) -> str:
        frac = min(done / self.total, 1.0)
        filled = int(frac * self.width)
        elapsed = time.perf_counter() - self.start
        eta = elapsed / done * (self.total - done) if done else 0.0
        stats = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        return (f"{self.label} [{'=' * filled}{'.' * (self.width - filled)}] {done}/{self.total}"
                f"  {stats}  ETA {int(eta // 60)}:{int(eta % 60):02d}")

    def update(self, done: int, **values) -> None:
        if not self.enabled:
            return
        if self.tty:
            now = time.perf_counter()
            if now - self._last_draw >= 0.1 or done >= self.total:
                self._last_draw = now
                self.stream.write("\r\033[K" + self._line(done, values))
                self.stream.flush()
        else:
            decile = int(10 * done / self.total)
            if decile > self._last_decile:
                self._last_decile = decile
                print(self._line(done, values), file=self.stream, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
