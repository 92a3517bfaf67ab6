"""How busy the decode device has been lately: the fraction of recent wall time its lanes spent
in forwards, and on a CPU the whole host's load."""

from __future__ import annotations

from collections import deque
from pathlib import Path


class LoadMeter:
    def __init__(self, window_seconds: float = 1.0, lanes: int = 1):
        """`lanes`: forwards the device runs at once; all of them busy is a load of 1."""
        if window_seconds <= 0 or lanes < 1:
            raise ValueError(f"window_seconds must be > 0 and lanes >= 1, got {window_seconds}, {lanes}")
        self.window_seconds = window_seconds
        self.lanes = lanes
        self._busy: deque[tuple[float, float]] = deque()

    def record(self, started: float, ended: float) -> None:
        """One forward ran from `started` to `ended` (monotonic seconds)."""
        self._busy.append((started, ended))

    def load(self, now: float) -> float:
        """Busy fraction of the lanes over the last `window_seconds`, in [0, 1]."""
        horizon = now - self.window_seconds
        while self._busy and self._busy[0][1] <= horizon:
            self._busy.popleft()
        busy = sum(min(end, now) - max(start, horizon) for start, end in self._busy)
        return min(1.0, max(0.0, busy / (self.window_seconds * self.lanes)))


class HostCpuLoad:
    """Busy fraction of all the host's CPUs (every process, not only ours), from /proc/stat.

    A vocoder decoding on the CPU shares it with whatever else runs there (on a small machine,
    the generator): that load is the device's load too. Re-read at most every `interval_seconds`;
    0 where /proc/stat cannot be read.
    """

    def __init__(self, interval_seconds: float = 0.5, stat_path: Path = Path("/proc/stat")):
        self.interval_seconds = interval_seconds
        self.stat_path = stat_path
        self._sampled_at = float("-inf")
        self._last: tuple[int, int] | None = None
        self._value = 0.0

    def _read(self) -> tuple[int, int] | None:
        """(busy, total) jiffies since boot, or None."""
        try:
            fields = self.stat_path.read_text().splitlines()[0].split()
        except (OSError, IndexError):
            return None
        if not fields or fields[0] != "cpu":
            return None
        # user nice system idle iowait irq softirq steal
        values = [int(v) for v in fields[1:9]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        total = sum(values)
        return total - idle, total

    def __call__(self, now: float) -> float:
        if now - self._sampled_at < self.interval_seconds:
            return self._value
        self._sampled_at = now
        sample = self._read()
        if sample is not None and self._last is not None:
            busy = sample[0] - self._last[0]
            total = sample[1] - self._last[1]
            if total > 0:
                self._value = min(1.0, max(0.0, busy / total))
        self._last = sample
        return self._value
