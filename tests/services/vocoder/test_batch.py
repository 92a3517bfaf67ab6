from __future__ import annotations

import pytest
import torch

from voxserve.vocoder.batch import Batch
from voxserve.vocoder.codecs.base import crop_rows
from voxserve.vocoder.stream import DecodeStream, Window


def _stream(n: int) -> DecodeStream:
    stream = DecodeStream(conditioning=torch.full((4,), float(n)), samples_per_token=320, sample_rate=16000)
    stream.append(list(range(n, n + 40)))
    return stream


def test_from_requests_and_filter() -> None:
    streams = {s.id: s for s in (_stream(1), _stream(2), _stream(3))}
    ids = list(streams)
    windows = [Window(i, 10, 20, 5, 5, final=False) for i in ids]
    batch = Batch.from_requests(windows, streams)
    assert batch.size == 3 and batch.window_length == 20
    assert batch.rows[1].tokens.tolist() == streams[ids[1]].tokens[5:25]
    kept = batch.filter({ids[0], ids[2]})
    assert kept is not None and [w.stream_id for w in kept.windows] == [ids[0], ids[2]]
    assert [float(row.conditioning[0]) for row in kept.rows] == [1.0, 3.0]
    assert batch.filter(set()) is None
    assert batch.filter(set(ids)) is batch
    with pytest.raises(ValueError, match="equal length"):
        Batch.from_requests([windows[0], Window(ids[1], 10, 20, 5, 0, final=True)], streams)


def test_outputs_follow_filtering() -> None:
    streams = {s.id: s for s in (_stream(1), _stream(2))}
    a, b = list(streams)
    batch = Batch.from_requests([Window(a, 0, 3, 0, 2, False), Window(b, 6, 8, 2, 1, False)], streams)
    with pytest.raises(ValueError, match="not been decoded"):
        batch.outputs()
    batch.audio = [torch.zeros(3 * 320), torch.ones(2 * 320)]
    (w1, first), (w2, second) = batch.outputs()
    assert (w1.stream_id, w2.stream_id) == (a, b) and first.numel() == 960 and second.numel() == 640
    # A stream cancelled during the forward is filtered out; the others keep their own rows.
    live = batch.filter({b})
    assert live is not None
    [(window, samples)] = live.outputs()
    assert window.stream_id == b and torch.equal(samples, second)


def test_crop_rows_keeps_each_rows_own_tokens() -> None:
    streams = {s.id: s for s in (_stream(1), _stream(2))}
    a, b = list(streams)
    batch = Batch.from_requests([Window(a, 0, 3, 0, 2, False), Window(b, 6, 8, 2, 1, False)], streams)
    audio = torch.arange(2 * 5 * 320, dtype=torch.float32).reshape(2, 5 * 320)
    first, second = crop_rows(audio, batch.rows, 320)
    assert torch.equal(first, audio[0, : 3 * 320])
    assert torch.equal(second, audio[1, 2 * 320 : 4 * 320])
