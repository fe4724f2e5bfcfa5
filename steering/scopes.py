"""Where ``steer`` writes: which absolute token positions of each row get the vector.

Positions are absolute (counted from the start of the sequence, including what the KV cache
holds), so a scope means the same thing in one full forward pass and in cached generation one
token at a time. The *prompt* is the input of the first forward pass of a sequence (a pass with
an empty cache); everything after it is *generated*. Padding positions are never steered.

Scopes (a tuple of them means their union):

- ``"all"``, ``"prompt"``, ``"generated"``;
- ``"prompt_last"``: once, at each row's last prompt token;
- ``Window(start, stop)``: offsets ``start <= t - prompt_len < stop`` (``Window(0, 8)``: the first
  8 generated positions; ``Window(-1, None)``: the last prompt token and everything generated);
- ``Tokens(*markers)``: wherever a marker occurs (e.g. each step end);
- ``Span(start, stop)``: per row, from a start marker (inclusive) up to a stop marker (exclusive),
  e.g. ``Span("<think>", "</think>")`` steers only while the model is writing its thoughts.

Stored form (JSON, for metadata and registries): :mod:`steering.scope_json`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import torch
from torch import Tensor

from .errors import InvalidArgumentError, UnknownOptionError
from .markers import Marker, Tokens, encode_markers, match_ends


@dataclass(frozen=True)
class Chunk:
    """What one forward pass covers: absolute positions ``past .. past + length`` of each row."""

    past: int
    length: int
    batch: int
    prompt_len: int  # padded prompt width of the current sequence
    prompt_last: Tensor  # (B,) absolute index of each row's last prompt token
    history: Tensor | None  # (B, past + length) token ids of the sequence so far, if known
    device: torch.device

    def offsets(self) -> Tensor:
        """``(1, T)`` absolute positions of this chunk."""
        return torch.arange(self.past, self.past + self.length, device=self.device)[None]


Mask = Tensor | bool  # (B, T) bool, or True / False for every position


class Scope:
    """Base class: ``mask(chunk)`` says which positions of the chunk to steer."""

    needs_tokens = False

    def bind(self, tokenizer: Any) -> Scope:
        return self

    def mask(self, chunk: Chunk) -> Mask:
        raise NotImplementedError


@dataclass(frozen=True)
class All(Scope):
    def mask(self, chunk: Chunk) -> Mask:
        return True


@dataclass(frozen=True)
class Window(Scope):
    """Positions whose offset from the end of the prompt is in ``[start, stop)`` (``stop=None``: no end)."""

    start: int = 0
    stop: int | None = None

    def __post_init__(self) -> None:
        for name in ("start", "stop"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise InvalidArgumentError(
                    f"Window.{name} must be an int (an offset from the end of the prompt), got {v!r}."
                )
        if self.stop is not None and self.stop <= self.start:
            raise InvalidArgumentError(f"Window(start={self.start}, stop={self.stop}) is empty; need stop > start.")

    def mask(self, chunk: Chunk) -> Mask:
        lo = chunk.prompt_len + self.start
        hi = None if self.stop is None else chunk.prompt_len + self.stop
        first, last = chunk.past, chunk.past + chunk.length  # chunk covers [first, last)
        if first >= lo and (hi is None or last <= hi):
            return True
        if last <= lo or (hi is not None and first >= hi):
            return False
        pos = chunk.offsets()
        inside = pos >= lo if hi is None else (pos >= lo) & (pos < hi)
        return inside.expand(chunk.batch, -1)


@dataclass(frozen=True)
class PromptLast(Scope):
    def mask(self, chunk: Chunk) -> Mask:
        if chunk.past > int(chunk.prompt_last.max()):
            return False
        return chunk.offsets() == chunk.prompt_last.to(chunk.device)[:, None]


@dataclass(frozen=True)
class _TokenScope(Scope):
    patterns: tuple[tuple[int, ...], ...] = ()
    needs_tokens = True

    def _ends(self, chunk: Chunk, patterns: tuple[tuple[int, ...], ...]) -> Tensor:
        """(B, T) bool: a pattern ends at this chunk position (patterns may start in earlier chunks)."""
        require_history(chunk)
        longest = max(len(p) for p in patterns)
        tail = chunk.history[:, max(0, chunk.past - longest + 1) :]  # type: ignore[index]
        return match_ends(tail, list(patterns))[:, -chunk.length :]


def require_history(chunk: Chunk) -> None:
    if chunk.history is None:
        from .errors import ScopeError

        raise ScopeError(
            "This scope matches token ids, but the forward pass got no input_ids (inputs_embeds only, "
            "or a continuation whose earlier tokens were never seen). Pass input_ids, or use a "
            "positional scope such as 'generated' or Window(...)."
        )


@dataclass(frozen=True, init=False)
class TokenScope(_TokenScope):
    """``Tokens(...)`` used as a scope: the positions where a marker ends."""

    markers: tuple[Marker, ...] = ()

    def __init__(self, markers: tuple[Marker, ...], patterns: tuple[tuple[int, ...], ...] = ()) -> None:
        object.__setattr__(self, "markers", markers)
        object.__setattr__(self, "patterns", patterns)

    def bind(self, tokenizer: Any) -> Scope:
        return TokenScope(self.markers, tuple(encode_markers(self.markers, tokenizer, "scope=Tokens(...)")))

    def mask(self, chunk: Chunk) -> Mask:
        return self._ends(chunk, self.patterns)


@dataclass(frozen=True)
class Span(Scope):
    """Per row, positions from a ``start`` marker (inclusive) up to a ``stop`` marker (exclusive).

    Steering the start marker's own position shapes the first token inside the span; the stop
    marker's position (which predicts what follows the span) is left alone.
    """

    start: Marker | tuple[Marker, ...]
    stop: Marker | tuple[Marker, ...]
    needs_tokens = True

    def bind(self, tokenizer: Any) -> Scope:
        def markers(m: Any) -> tuple[Marker, ...]:
            return m if isinstance(m, tuple) and not all(isinstance(i, int) for i in m) else (m,)

        starts = encode_markers(markers(self.start), tokenizer, "Span start")
        stops = encode_markers(markers(self.stop), tokenizer, "Span stop")
        return _BoundSpan(tuple(starts), tuple(stops))


@dataclass(frozen=True)
class _BoundSpan(_TokenScope):
    stops: tuple[tuple[int, ...], ...] = ()

    def mask(self, chunk: Chunk) -> Mask:
        require_history(chunk)
        hist = chunk.history  # (B, L): the whole sequence so far; the state is re-derived from it
        starts = match_ends(hist, list(self.patterns))  # type: ignore[arg-type]
        stops = match_ends(hist, list(self.stops))  # type: ignore[arg-type]
        event = torch.where(stops, -1, torch.where(starts, 1, 0))  # a stop wins a tie
        pos = torch.arange(hist.shape[1], device=hist.device).expand_as(event)  # type: ignore[union-attr]
        last = torch.where(event != 0, pos, -1).cummax(dim=1).values
        inside = event.gather(1, last.clamp(min=0)) == 1
        inside &= last >= 0
        return inside[:, -chunk.length :]


@dataclass(frozen=True)
class Union(Scope):
    parts: tuple[Scope, ...]

    @property
    def needs_tokens(self) -> bool:  # type: ignore[override]
        return any(p.needs_tokens for p in self.parts)

    def bind(self, tokenizer: Any) -> Scope:
        return Union(tuple(p.bind(tokenizer) for p in self.parts))

    def mask(self, chunk: Chunk) -> Mask:
        out: Mask = False
        for part in self.parts:
            m = part.mask(chunk)
            if m is True:
                return True
            if m is not False:
                out = m if out is False else out | m  # type: ignore[operator]
        return out


# What ``steer(scope=...)`` takes: a name, a scope object, Tokens, or a tuple/list of these (their union).
ScopeSpec: TypeAlias = "str | Scope | Tokens | tuple[ScopeSpec, ...] | list[ScopeSpec]"

FAR_PAST = -(2**62)  # an offset before the start of any prompt: Window(FAR_PAST, 0) is the whole prompt

NAMED: dict[str, Scope] = {
    "all": All(),
    "prompt": Window(FAR_PAST, 0),
    "generated": Window(0, None),
    "prompt_last": PromptLast(),
}


def as_scope(scope: ScopeSpec, tokenizer: Any = None) -> Scope:
    """Resolve a scope name, object, or tuple/list of them (their union) and encode its markers."""
    if isinstance(scope, str):
        if scope not in NAMED:
            raise UnknownOptionError(
                f"Unknown scope {scope!r}; expected one of {list(NAMED)}, Window(start, stop), "
                "Tokens(...), Span(start, stop), or a tuple of these."
            )
        return NAMED[scope]
    if isinstance(scope, Tokens):
        return TokenScope(scope.markers).bind(tokenizer)
    if isinstance(scope, Scope):
        return scope.bind(tokenizer)
    if isinstance(scope, (tuple, list)) and scope:
        return Union(tuple(as_scope(s, tokenizer) for s in scope))
    raise UnknownOptionError(f"Unknown scope {scope!r} ({type(scope).__name__}).")
