from __future__ import annotations

import torch

from voxserve.vocoder.codecs.s3gen.noise import flow_noise, harmonic_phases, mix, sine_noise


def test_a_frame_gets_the_same_noise_whichever_chunk_draws_it() -> None:
    whole = flow_noise(seed=7, first_frame=0, frames=40, mel_bins=80)
    assert whole.shape == (80, 40)
    parts = torch.cat([flow_noise(7, 0, 13, 80), flow_noise(7, 13, 20, 80), flow_noise(7, 33, 7, 80)], dim=1)
    assert torch.equal(whole, parts)
    assert torch.equal(flow_noise(7, 10, 5, 80), whole[:, 10:15])


def test_seeds_frames_and_uses_differ() -> None:
    a = flow_noise(1, 0, 4, 80)
    assert not torch.equal(a, flow_noise(2, 0, 4, 80))
    assert not torch.equal(a[:, 0], a[:, 1])
    # The sine noise of frame 0 is not the flow noise of frame 0.
    assert not torch.equal(sine_noise(1, 0, 1, 9, 480)[0, :80], a[:, 0])
    assert len({mix(0, i, 1) for i in range(10000)}) == 10000
    assert 0.9 < float(flow_noise(3, 0, 500, 80).std()) < 1.1


def test_sine_noise_is_laid_out_by_sample_position() -> None:
    whole = sine_noise(5, 2, 3, harmonics=9, samples_per_frame=480)
    assert whole.shape == (9, 3 * 480)
    assert torch.equal(whole[:, 480:960], sine_noise(5, 3, 1, 9, 480))


def test_harmonic_phases_are_fixed_per_stream() -> None:
    phases = harmonic_phases(4, 9)
    assert phases[0] == 0.0 and torch.all(phases.abs() <= torch.pi)
    assert torch.equal(phases, harmonic_phases(4, 9)) and not torch.equal(phases, harmonic_phases(5, 9))
