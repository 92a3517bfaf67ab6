"""Joins the audio of consecutive segments into one stream, crossfading where they meet.

Each segment is a separate generator call, so its first samples do not continue the previous
segment's waveform: played back to back they click. The last `fade` samples of a segment are held
back until the next segment's first samples arrive and the two are mixed with linear gains that
sum to 1 (an equal-gain fade keeps the level of two similar signals of one voice steady, where an
equal-power fade would bulge). Nothing is dropped: the stitched stream is the segments' samples
less one fade length per seam, and the end of the last segment is flushed by `finish`.

Holding back costs the listener lead, which is scarcest right after the first audio. The caller
says how many samples of the segment are certain to follow (tokens already on their way to the
vocoder); samples that cannot be among the segment's last `fade` go out at once, so only the
final chunk's tail is ever held.
"""

from __future__ import annotations

import numpy as np


def fade_in_gains(length: int) -> np.ndarray:
    """Gains of the incoming segment over a fade; the outgoing one gets 1 - gain."""
    return ((np.arange(length, dtype=np.float64) + 0.5) / length).astype(np.float32)


class Stitcher:
    def __init__(self, fade_samples: int):
        if fade_samples < 0:
            raise ValueError("fade_samples must be >= 0")
        self.fade_samples = fade_samples
        self._held = np.zeros(0, np.float32)
        """The newest samples of the current segment, not yet sent: they may be faded out."""
        self._outgoing: np.ndarray | None = None
        """The previous segment's held tail, waiting for the new segment's first samples."""
        self._incoming = np.zeros(0, np.float32)
        self.samples_out = 0
        self.seams: list[int] = []
        """Output sample index where each seam's fade starts."""

    def add(self, pcm: np.ndarray, more: int = 0) -> np.ndarray:
        """The current segment's next samples; returns what can be sent now.

        `more`: samples of this segment certain to follow these (0 when unknown or at its end).
        """
        if more < 0:
            raise ValueError("more must be >= 0")
        pcm = np.asarray(pcm, dtype=np.float32)
        if self._outgoing is not None:
            self._incoming = np.concatenate([self._incoming, pcm])
            if self._incoming.size < self._outgoing.size:
                return np.zeros(0, np.float32)
            pcm = self._join()
        return self._hold_tail(np.concatenate([self._held, pcm]), more)

    def next_segment(self) -> np.ndarray:
        """The current segment has ended; the next samples added start a new one."""
        out = self._join() if self._outgoing is not None else np.zeros(0, np.float32)
        if out.size:  # the segment ended inside its own fade-in: it becomes the tail to fade out
            out = self._hold_tail(np.concatenate([self._held, out]))
        if self._held.size:
            self._outgoing, self._held = self._held, np.zeros(0, np.float32)
        return out

    def finish(self) -> np.ndarray:
        """Everything still held: the end of the last segment."""
        out = self.next_segment()
        tail = self._outgoing if self._outgoing is not None else np.zeros(0, np.float32)
        self._outgoing = None
        return np.concatenate([out, self._count(tail)])

    def _join(self) -> np.ndarray:
        """Mixes the held tail with the new segment's first samples (fewer if it was shorter)."""
        assert self._outgoing is not None
        outgoing, incoming = self._outgoing, self._incoming
        length = min(outgoing.size, incoming.size)
        gains = fade_in_gains(length)
        lead = outgoing[: outgoing.size - length]
        mixed = outgoing[outgoing.size - length :] * (1.0 - gains) + incoming[:length] * gains
        if length:
            self.seams.append(self.samples_out + lead.size)
        self._outgoing, self._incoming = None, np.zeros(0, np.float32)
        return np.concatenate([lead, mixed, incoming[length:]])

    def _hold_tail(self, pcm: np.ndarray, more: int = 0) -> np.ndarray:
        keep = min(max(0, self.fade_samples - more), pcm.size)
        self._held = pcm[pcm.size - keep :]
        return self._count(pcm[: pcm.size - keep])

    def _count(self, pcm: np.ndarray) -> np.ndarray:
        self.samples_out += pcm.size
        return pcm
