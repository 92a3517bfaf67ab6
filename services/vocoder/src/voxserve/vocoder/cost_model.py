"""What a decode forward costs on this device, learned from the scheduler's own forwards.

A forward of `rows` windows of `tokens` tokens each, on one of the device's lanes, is modelled as

    seconds = fixed + per_window_token * tokens + per_batch_token * rows * tokens

On a CPU core the last term dominates: a batch costs about the sum of its rows, so batching
saves only the fixed part (the forwards measured are those of busy lanes, so what the lanes take
from each other, memory bandwidth and the GIL, is in the figures). On a GPU the first two terms
dominate: until the device is full a batch costs about one row. The model is not told which
device it is on; it is refitted by least squares over the most recent forwards (seeded by the
warm-up's), with every coefficient kept >= 0.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

import numpy as np

# The model needs forwards of at least this many different shapes before it predicts.
MIN_SHAPES = 3
# Refit after this many new forwards (a 3-coefficient least squares is cheap, not free).
REFIT_EVERY = 8


@dataclass(frozen=True)
class Coefficients:
    fixed: float
    per_window_token: float
    per_batch_token: float

    def seconds(self, rows: int, tokens: int) -> float:
        return self.fixed + self.per_window_token * tokens + self.per_batch_token * rows * tokens


def _features(rows: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(rows), tokens, rows * tokens], axis=1)


def fit(rows: np.ndarray, tokens: np.ndarray, seconds: np.ndarray) -> Coefficients:
    """Non-negative least squares over the three terms (an exhaustive active set: 7 subsets)."""
    features = _features(rows.astype(np.float64), tokens.astype(np.float64))
    best: tuple[float, np.ndarray] | None = None
    for size in (3, 2, 1):
        for subset in itertools.combinations(range(3), size):
            solution, *_ = np.linalg.lstsq(features[:, subset], seconds, rcond=None)
            if (solution < 0).any():
                continue
            full = np.zeros(3)
            full[list(subset)] = solution
            error = float(np.sum((features @ full - seconds) ** 2))
            if best is None or error < best[0]:
                best = (error, full)
        if best is not None:
            break  # the largest non-negative subset fits at least as well as any smaller one
    coefficients = best[1] if best is not None else np.array([float(np.mean(seconds)), 0.0, 0.0])
    return Coefficients(*(float(c) for c in coefficients))


@dataclass
class CostModel:
    """Forward seconds as a function of rows and window tokens, for one codec on one device."""

    history: int = 256
    _samples: deque[tuple[int, int, float]] = field(default_factory=deque)
    _since_fit: int = 0
    coefficients: Coefficients | None = None

    def record(self, rows: int, tokens: int, seconds: float) -> None:
        self._samples.append((rows, tokens, seconds))
        while len(self._samples) > self.history:
            self._samples.popleft()
        self._since_fit += 1
        if self.coefficients is None or self._since_fit >= REFIT_EVERY:
            self.refit()

    def refit(self) -> None:
        if len({(r, t) for r, t, _ in self._samples}) < MIN_SHAPES:
            return
        data = np.array(self._samples, dtype=np.float64)
        self.coefficients = fit(data[:, 0], data[:, 1], data[:, 2])
        self._since_fit = 0

    @property
    def fitted(self) -> bool:
        return self.coefficients is not None

    def seconds(self, rows: int, tokens: int) -> float:
        """Predicted seconds of one forward; 0 before the model has seen enough forwards."""
        return 0.0 if self.coefficients is None else self.coefficients.seconds(rows, tokens)

    def batching_pays(self, rows: int, tokens: int, margin: float) -> bool:
        """Whether one more row lowers the predicted cost per row by more than `margin` (a share)."""
        if self.coefficients is None:
            return False
        now = self.seconds(rows, tokens) / rows
        more = self.seconds(rows + 1, tokens) / (rows + 1)
        return more < now * (1 - margin)
