"""The forward cost model: what it recovers from measured forwards, and what it says about
batching on a device where a batch costs the sum of its rows and on one where it costs one row."""

from __future__ import annotations

import numpy as np
import pytest

from voxserve.vocoder.cost_model import MIN_SHAPES, Coefficients, CostModel, fit

SHAPES = [(rows, tokens) for rows in (1, 2, 4, 8) for tokens in (23, 33, 103)]
# A CPU: every row's tokens cost their own time. A GPU: a forward costs its window, not its rows.
CPU = Coefficients(fixed=0.00002, per_window_token=0.0, per_batch_token=0.00004)
GPU = Coefficients(fixed=0.004, per_window_token=0.00002, per_batch_token=0.0000002)


def measured(truth: Coefficients, noise: float = 0.0, seed: int = 0) -> CostModel:
    rng = np.random.default_rng(seed)
    model = CostModel()
    for rows, tokens in SHAPES * 3:
        model.record(rows, tokens, truth.seconds(rows, tokens) * (1 + noise * rng.standard_normal()))
    model.refit()
    return model


@pytest.mark.parametrize("truth", [CPU, GPU], ids=["cpu", "gpu"])
def test_the_fit_recovers_the_costs(truth: Coefficients) -> None:
    model = measured(truth)
    for rows, tokens in [(1, 23), (3, 50), (16, 103)]:
        assert model.seconds(rows, tokens) == pytest.approx(truth.seconds(rows, tokens), rel=1e-6)


def test_noisy_forwards_still_predict_within_their_noise() -> None:
    model = measured(GPU, noise=0.05, seed=3)
    for rows, tokens in SHAPES:
        assert model.seconds(rows, tokens) == pytest.approx(GPU.seconds(rows, tokens), rel=0.05)


def test_coefficients_are_never_negative() -> None:
    rows = np.array([1, 2, 4, 8, 1, 2, 4, 8], dtype=float)
    tokens = np.array([10, 10, 10, 10, 80, 80, 80, 80], dtype=float)
    # Cheaper with more tokens at one row: an unconstrained fit would go negative somewhere.
    seconds = np.array([0.010, 0.012, 0.016, 0.024, 0.008, 0.030, 0.070, 0.150])
    coefficients = fit(rows, tokens, seconds)
    assert min(coefficients.fixed, coefficients.per_window_token, coefficients.per_batch_token) >= 0


def test_no_prediction_before_enough_shapes() -> None:
    model = CostModel()
    for _ in range(10):
        model.record(1, 23, 0.001)
        model.record(2, 23, 0.002)
    assert not model.fitted and model.seconds(4, 23) == 0.0
    assert not model.batching_pays(1, 23, 0.05)
    model.record(4, 23, 0.004)
    assert MIN_SHAPES == 3 and model.fitted


def test_batching_pays_on_a_gpu_not_on_a_cpu() -> None:
    assert all(measured(GPU).batching_pays(rows, 33, 0.05) for rows in (1, 2, 4, 8, 16))
    assert not any(measured(CPU).batching_pays(rows, 33, 0.05) for rows in (1, 2, 4, 8, 16))


def test_the_model_follows_the_device_as_it_changes() -> None:
    """Only the recent forwards count: a device that became slower is seen as such."""
    model = measured(GPU)
    for rows, tokens in SHAPES * 30:
        model.record(rows, tokens, CPU.seconds(rows, tokens))
    assert model.seconds(8, 103) == pytest.approx(CPU.seconds(8, 103), rel=1e-6)
