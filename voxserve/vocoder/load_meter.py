"""How busy the decode device has been lately: the fraction of recent wall time spent in forwards."""

from __future__ import annotations

from collections import deque


class LoadMeter:
    def __init__(self, window_seconds: float = 1.0):
        if window_seconds <= 0:
            raise ValueError(f"window_seconds must be > 0, got {window_seconds}")
        self.window_seconds = window_seconds
        self._busy: deque[tuple[float, float]] = deque()

    def record(self, started: float, ended: float) -> None:
        """One forward ran from `started` to `ended` (monotonic seconds)."""
        self._busy.append((started, ended))

    def load(self, now: float) -> float:
        """Busy fraction of the last `window_seconds`, in [0, 1]."""
        horizon = now - self.window_seconds
        while self._busy and self._busy[0][1] <= horizon:
            self._busy.popleft()
        busy = sum(min(end, now) - max(start, horizon) for start, end in self._busy)
        return min(1.0, max(0.0, busy / self.window_seconds))
