"""A dependency-free terminal progress bar for the CLI."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    if seconds < 0:
        return "?"
    m, s = divmod(int(seconds + 0.5), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


class ProgressBar:
    """Redraws one line on a terminal; writes a plain line every few seconds to a log or pipe."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 28, log_interval: float = 2.0) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self.log_interval = log_interval
        self._last_log = 0.0
        self._drawn = False

    def update(self, stage: str, value: float, maximum: float, *, fps: float = 0.0,
               eta_seconds: float = -1.0, unit: str = "") -> None:
        frac = min(1.0, value / maximum) if maximum > 0 else 0.0
        fill = int(frac * self.width)
        bar = "#" * fill + "-" * (self.width - fill)
        rate = f" {fps:.1f}/s" if fps > 0 else ""
        eta = f" ETA {_duration(eta_seconds)}" if eta_seconds >= 0 else ""
        digits = 1 if maximum < 100 and unit else 0
        text = f"{stage:<10} [{bar}] {frac * 100:5.1f}% {value:.{digits}f}/{maximum:.{digits}f}{unit}{rate}{eta}"
        if self.tty:
            self.stream.write("\r" + text.ljust(79))
            self._drawn = True
        else:
            now = time.monotonic()
            if now - self._last_log < self.log_interval and frac < 1.0:
                return
            self._last_log = now
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
        self._drawn = False
