"""Chunk sizes and the windows a stream offers the scheduler."""

from __future__ import annotations

import pytest
import torch

from voxserve.vocoder.stream import ChunkPolicy, DecodeStream, Window

POLICY = ChunkPolicy(first_chunk_tokens=10, max_chunk_tokens=80, left_context_tokens=8, lookahead_tokens=6)


def new_stream() -> DecodeStream:
    return DecodeStream(conditioning=torch.zeros(1), samples_per_token=320, sample_rate=16000)


def test_chunk_sizes_double_from_the_first_to_the_largest() -> None:
    assert POLICY.sizes == (10, 20, 40, 80)
    assert ChunkPolicy(10, 100, 0, 0).sizes == (10, 20, 40, 80, 100)
    assert ChunkPolicy(10, 10, 0, 0).sizes == (10,)
    assert POLICY.longest_window == 8 + 80 + 6
    with pytest.raises(ValueError, match="first_chunk_tokens"):
        ChunkPolicy(20, 10, 0, 0)


def test_chunk_size_grows_with_pressure_and_never_exceeds_the_clients_lead() -> None:
    assert POLICY.chunk_size(None, 1.0) == 10  # no audio out yet: first audio fast
    # Idle: a quarter of the lead, rounded down to a size in use.
    assert POLICY.chunk_size(50.0, 0.0) == 10
    assert POLICY.chunk_size(100.0, 0.0) == 20
    assert POLICY.chunk_size(1000.0, 0.0) == 80
    # Busy: up to three quarters of the lead.
    assert POLICY.chunk_size(60.0, 1.0) == 40
    assert POLICY.chunk_size(50.0, 1.0) == 20  # 37.5 rounds down
    assert POLICY.chunk_size(1000.0, 1.0) == 80
    assert POLICY.chunk_size(100.0, 0.5) == 40  # halfway: 50
    # Tokens already here cost no waiting: a stream behind its generator takes its backlog.
    assert POLICY.chunk_size(5.0, 0.0, backlog_tokens=45) == 40
    assert POLICY.chunk_size(5.0, 0.0, backlog_tokens=500) == 80
    assert POLICY.chunk_size(None, 0.0, backlog_tokens=500) == 10  # but the first chunk stays small


def test_a_client_about_to_run_dry_gets_whatever_tokens_are_here() -> None:
    assert POLICY.chunk_size(4.9, 0.0, backlog_tokens=3) == 3  # under half a first chunk of lead
    assert POLICY.chunk_size(-2.0, 1.0, backlog_tokens=7) == 7  # already starved
    assert POLICY.chunk_size(4.9, 0.0, backlog_tokens=0) == 10  # nothing here: wait for a chunk
    assert POLICY.chunk_size(5.0, 0.0, backlog_tokens=3) == 10  # lead enough to wait
    assert POLICY.chunk_size(4.0, 0.0, backlog_tokens=45) == 40  # a large backlog goes as before
    # A starving client still gets whole first-size chunks.
    assert POLICY.chunk_size(3.0, 1.0) == 10
    assert POLICY.chunk_size(-50.0, 1.0) == 10


def test_windows_wait_for_their_lookahead_and_one_is_in_flight_at_a_time() -> None:
    stream = new_stream()
    stream.append([0] * 15)
    assert stream.next_window(POLICY, 10) is None  # 10 + 6 lookahead not there yet
    stream.append([0])
    first = stream.next_window(POLICY, 10)
    assert first == Window(stream.id, 0, 10, 0, 6, final=False)
    stream.in_flight = True
    assert stream.next_window(POLICY, 10) is None
    stream.deliver(first, torch.zeros(3200), now=5.0)
    assert not stream.in_flight and stream.first_audio_at == 5.0
    stream.append([0] * 30)
    assert stream.next_window(POLICY, 40) is None  # 10 + 40 + 6 > 46 tokens
    assert stream.next_window(POLICY, 20) == Window(stream.id, 10, 30, 8, 6, final=False)
    stream.end()
    # End releases the rest without lookahead.
    assert stream.next_window(POLICY, 40) == Window(stream.id, 10, 46, 8, 0, final=True)


def test_a_long_remainder_at_end_goes_in_largest_chunks() -> None:
    stream = new_stream()
    stream.append([0] * 500)
    stream.end()
    windows = []
    while (window := stream.next_window(POLICY, 10)) is not None:
        windows.append(window)
        stream.deliver(window, torch.zeros((window.end - window.start) * 320), now=0.0)
    assert [(w.start, w.end, w.final) for w in windows] == [
        (0, 80, False),
        (80, 160, False),
        (160, 240, False),
        (240, 320, False),
        (320, 400, False),
        (400, 480, False),  # 100 left is more than a largest chunk and its lookahead
        (480, 500, True),
    ]
    assert max(w.length for w in windows) <= POLICY.longest_window
    assert stream.finished


def test_backlog_is_what_could_be_decoded_now() -> None:
    stream = new_stream()
    assert stream.backlog_tokens(POLICY) == 0
    stream.append([0] * 50)
    stream.decoded_tokens = 20
    assert stream.backlog_tokens(POLICY) == 50 - 20 - 6


def test_deadline_and_lead_follow_real_time_playback() -> None:
    stream = new_stream()
    assert stream.deadline() is None and stream.lead_seconds(1.0) is None
    stream.append([0] * 16)
    window = stream.next_window(POLICY, 10)
    assert window is not None
    stream.deliver(window, torch.zeros(3200), now=100.0)
    # 10 tokens = 0.2 s of audio from the first sample at t=100.
    assert stream.deadline() == pytest.approx(100.2)
    assert stream.lead_seconds(100.05) == pytest.approx(0.15)
    assert stream.lead_seconds(100.5) == pytest.approx(-0.3)
