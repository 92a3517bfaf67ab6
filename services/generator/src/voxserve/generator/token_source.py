"""What the servicer (and the monolithic benchmark) serve: a source of token frames for a pack's
family. `engine.TokenGenerator` (a token LM) and `t3.generator.T3Generator` are the two kinds;
`source_builders` picks one by family."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from voxserve.families.family import Family
from voxserve.generator.frames import Frame
from voxserve.generator.generate_args import GenerateArgs, Sampling


class TokenSource(Protocol):
    @property
    def family(self) -> Family: ...

    @property
    def num_global(self) -> int:
        """Global (voice) token indices the model knows; 0 where it has none."""
        ...

    @property
    def default_sampling(self) -> Sampling: ...

    @property
    def active_requests(self) -> int:
        """Requests live in the engine."""
        ...

    def generate(self, args: GenerateArgs, request_id: str) -> AsyncIterator[Frame]:
        """Global ids first where the family has them, then semantic ids as the engine writes
        them, then a frame holding the result. Raises InvalidArgument for input the engine
        cannot take (text too long for the model, a speaker the pack does not name)."""
        ...

    def shutdown(self) -> None: ...
