"""A service's cap on concurrent calls: past it, a call is refused at once, never queued.

An unbounded queue would let every admitted stream slow down together; refusing fast with a
retry hint lets a client (or a load balancer) try another replica or come back later.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from voxserve.common.status import RETRY_PUSHBACK, RETRY_PUSHBACK_MS, Overloaded

__all__ = ["RETRY_PUSHBACK", "Admission", "Overloaded"]


class Admission:
    def __init__(self, limit: int, what: str):
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self.what = what
        self.active = 0

    @contextlib.contextmanager
    def enter(self) -> Iterator[None]:
        """Holds one place for the duration of a call; raises Overloaded when none is free."""
        if self.active >= self.limit:
            raise Overloaded(
                f"this service holds its maximum of {self.limit} {self.what}; "
                f"retry after {RETRY_PUSHBACK_MS} ms or on another replica"
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
