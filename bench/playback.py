"""The client playback model: how a listener would hear a stream as it arrives.

Playback starts at the first audio byte and runs in real time. When the buffered audio runs
out before the next message has arrived, the player stalls (an underrun) until that message
arrives and then resumes from it; the stall shifts the rest of the schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Summing many chunk durations in floating point leaves residues of ~1e-15 s; an arrival that
# lands exactly on the buffer's end must not count as a stall because of them.
_ROUNDING_SECONDS = 1e-9


@dataclass(frozen=True)
class Stall:
    audio_seconds: float
    """Audio already played when the buffer ran dry."""
    wait_seconds: float


@dataclass(frozen=True)
class Playback:
    count: int
    """Stalls: times the buffer ran dry before the next audio arrived."""
    wait_seconds: float
    """Total time spent stalled (only stalls that were counted)."""
    audio_seconds: float
    """Audio played in all."""
    stalls: tuple[Stall, ...] = ()
    """Each counted stall: where in the audio it fell and how long it lasted."""


def underruns(
    arrivals: Sequence[tuple[float, int]], sample_rate: int, *, slack_seconds: float = 0.0
) -> Playback:
    """Replay `arrivals` — (receive time in seconds, samples in that message), in order — through
    a real-time player.

    `slack_seconds` forgives short stalls: one of at most that length is neither counted nor
    added to the wait (the schedule still shifts by it, as a real player would). The default, 0,
    is strict: any stall counts, however short. Messages without samples are ignored.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if slack_seconds < 0:
        raise ValueError(f"slack_seconds must be >= 0, got {slack_seconds}")
    stalls: list[Stall] = []
    total_samples = 0
    # When the audio buffered so far finishes playing; None until the first audio arrives.
    buffer_end: float | None = None
    previous = float("-inf")
    for received, samples in arrivals:
        if received < previous:
            raise ValueError(f"arrivals out of order: {received} after {previous}")
        if samples < 0:
            raise ValueError(f"negative sample count {samples} at {received}")
        previous = received
        if samples == 0:
            continue
        duration = samples / sample_rate
        total_samples += samples
        if buffer_end is None:
            buffer_end = received + duration
            continue
        stall = received - buffer_end
        if stall > _ROUNDING_SECONDS:
            if stall > slack_seconds:
                stalls.append(Stall(total_samples / sample_rate - duration, stall))
            buffer_end = received
        buffer_end += duration
    return Playback(
        count=len(stalls),
        wait_seconds=sum(s.wait_seconds for s in stalls),
        audio_seconds=total_samples / sample_rate,
        stalls=tuple(stalls),
    )
