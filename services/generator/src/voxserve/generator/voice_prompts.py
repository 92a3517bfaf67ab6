"""Which prompt a request's voice makes, one class per prompt format (`prompts`); the token-source
builder (`source_builders`) gives a token LM the one its family writes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from voxserve.common.status import InvalidArgument
from voxserve.families.speakers import SpeakerSet
from voxserve.generator.generate_args import GenerateArgs, Speaker, Style
from voxserve.generator.prompts import SparkPromptBuilder, orpheus_prompt, s3_prompt
from voxserve.generator.token_table import TokenTable


@dataclass(frozen=True)
class PromptChoice:
    """A whole `prompt`, or a `head` the model writes the voice's global tokens after (the
    source then continues the head with them: `VoicePrompts.after_globals`)."""

    prompt: str | None = None
    head: str | None = None
    global_ids: tuple[int, ...] | None = None
    """The voice's global token indices, where the request fixes them."""


class VoicePrompts(ABC):
    def __init__(self, table: TokenTable, speakers: SpeakerSet | None):
        self.table = table
        self.speakers = speakers

    @abstractmethod
    def choose(self, args: GenerateArgs) -> PromptChoice:
        """Raises ValueError for text the prompt cannot hold, InvalidArgument for a voice the
        pack does not have."""

    def after_globals(self, head: str, global_ids: Sequence[int]) -> str:
        raise TypeError(f"{type(self).__name__} never writes a head")

    def speaker_name(self, speaker: Speaker | None) -> str:
        """The request's speaker, checked against the pack's; the pack's first by default."""
        if speaker is None:
            if self.speakers is None:
                raise InvalidArgument("speaker is required: this pack's prompt names a speaker")
            return self.speakers.names[0]
        if self.speakers is not None:
            self.speakers.check(speaker.name)
        return speaker.name


PromptFactory = Callable[[TokenTable, SpeakerSet | None], VoicePrompts]


class SparkVoicePrompts(VoicePrompts):
    """Fixed globals make the whole prompt (upstream's cloning prompt where the voice carries
    its reference); a style (or a named speaker of a fine-tune) makes a head the model writes
    its own globals after, unless the speaker's globals are given."""

    def __init__(self, table: TokenTable, speakers: SpeakerSet | None):
        super().__init__(table, speakers)
        self.builder = SparkPromptBuilder.from_token_table(table)

    def choose(self, args: GenerateArgs) -> PromptChoice:
        text, speaker, reference = args.text, args.speaker, args.reference
        if reference is not None and args.global_ids is None:
            raise InvalidArgument("a reference is accepted only with the voice's global ids")
        if args.global_ids is not None:
            if reference is not None:
                prompt = self.builder.cloning(text, args.global_ids, reference.text, reference.semantic_ids)
            else:
                prompt = self.builder.fixed_voice(text, args.global_ids)
            return PromptChoice(prompt=prompt, global_ids=args.global_ids)
        if self.speakers is not None or speaker is not None:
            if self.speakers is None:
                raise InvalidArgument("speaker is not accepted: this pack has no named speakers")
            if args.style is not None:
                raise InvalidArgument(
                    f"style is not accepted: this pack names its speakers ({', '.join(self.speakers.names)})"
                )
            name = self.speaker_name(speaker)
            if speaker is not None and speaker.global_ids:
                prompt = self.builder.speaker_with_globals(text, self.speakers, name, speaker.global_ids)
                return PromptChoice(prompt=prompt, global_ids=speaker.global_ids)
            return PromptChoice(head=self.builder.speaker(text, self.speakers, name))
        style = args.style or Style()
        return PromptChoice(head=self.builder.controllable(text, style.gender, style.pitch, style.speed))

    def after_globals(self, head: str, global_ids: Sequence[int]) -> str:
        return head + self.builder.global_block(global_ids)


class S3VoicePrompts(VoicePrompts):
    """The text alone: the voice is the vocoder's prompt."""

    def choose(self, args: GenerateArgs) -> PromptChoice:
        return PromptChoice(prompt=s3_prompt(args.text))


class OrpheusVoicePrompts(VoicePrompts):
    """The text said by a speaker (the pack's first unless the request names one)."""

    def choose(self, args: GenerateArgs) -> PromptChoice:
        return PromptChoice(prompt=orpheus_prompt(args.text, self.speaker_name(args.speaker)))
