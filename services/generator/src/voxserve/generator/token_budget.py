"""How many tokens one request may generate: what it asks for (or the configured default), within
what the model's length leaves after the prompt, in whole frames."""

from __future__ import annotations

from dataclasses import dataclass

from voxserve.common.status import InvalidArgument


@dataclass(frozen=True)
class TokenBudget:
    max_model_len: int
    default_tokens: int
    """The budget of a request that sets no max_tokens (the room permitting)."""
    reserved: int
    """Positions after the prompt that are not the budget's: the markers the model writes."""
    unit: str = "tokens"
    """What a prompt position is called in messages."""
    max_new_tokens: int | None = None
    """Positions the model has for new tokens whatever its length (None: no such limit)."""
    frame_tokens: int = 1
    family: str = ""
    """Named in the message refusing less than one frame."""

    def room(self, prompt_len: int) -> int:
        """Positions the model has after a prompt of `prompt_len`."""
        room = self.max_model_len - prompt_len
        return room if self.max_new_tokens is None else min(room, self.max_new_tokens)

    def tokens(self, requested: int | None, prompt_len: int, what: str = "text") -> int:
        """The budget of a request asking for `requested` tokens (None: the default); `what` names
        what made the prompt in messages."""
        room = self.room(prompt_len) - self.reserved
        per = self.frame_tokens
        if requested is None:
            budget = min(self.default_tokens, room) // per * per
            if budget < 1:
                raise InvalidArgument(
                    f"{what} is too long: its prompt takes {prompt_len} of the model's "
                    f"{self.max_model_len} {self.unit}"
                )
            return budget
        if requested > room:
            holds = "" if what == "text" else f" (it holds the {what})"
            raise InvalidArgument(
                f"sampling.max_tokens={requested} does not fit: the prompt{holds} takes {prompt_len} "
                f"of the model's {self.max_model_len} {self.unit}, leaving {max(room, 0)}"
            )
        if requested < per:
            raise InvalidArgument(
                f"sampling.max_tokens={requested} is less than one {self.family} frame ({per} tokens)"
            )
        return requested // per * per
