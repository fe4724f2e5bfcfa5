"""Thought-switching penalty (TIP, arXiv 2501.18585) and the underthinking score."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..errors import InvalidArgumentError
from ..markers import match_ends

SWITCH_WORDS = ("Alternatively", " Alternatively", "Wait", " Wait")


class SplitWordWarning(UserWarning):
    """A switch word encodes to several tokens, so only its continuation can be penalised."""


class ThoughtSwitchPenalty:
    """A ``transformers`` logits processor: subtract ``alpha`` from the logits of thought-switch
    tokens during the first ``beta`` tokens of every thought (the paper's best: alpha=3, beta=600).

    A thought starts where generation starts and right after every complete switch word. A switch
    word that is one token is penalised as such. One that the tokenizer splits into several tokens
    is matched as the whole sequence: its tokens after the first are penalised while the text so
    far spells the word's beginning (penalising a first piece such as ``" "`` or ``"A"`` would hit
    every word that starts with it); a :class:`SplitWordWarning` says so. A new ``generate`` call
    (an input that does not extend the previous one) starts a new prompt.

    Examples:
        >>> import torch
        >>> tip = ThoughtSwitchPenalty([7], alpha=3.0, beta=2)
        >>> tip(torch.tensor([[1, 2]]), torch.zeros(1, 10))[0, 7].item()
        -3.0
    """

    def __init__(
        self, switch: Sequence[int | str] = SWITCH_WORDS, alpha: float = 3.0, beta: int = 600, tokenizer: Any = None
    ) -> None:
        patterns: set[tuple[int, ...]] = set()
        for s in switch:
            if isinstance(s, int):
                patterns.add((s,))
                continue
            if tokenizer is None:
                raise InvalidArgumentError(f"switch word {s!r} is a string: pass tokenizer=... (or token ids).")
            enc = tuple(int(i) for i in tokenizer(s, add_special_tokens=False)["input_ids"])
            if len(enc) > 1:
                warnings.warn(
                    f"Switch word {s!r} is {len(enc)} tokens {list(enc)}; its first token alone is not penalised, "
                    "only the tokens that continue the word.",
                    SplitWordWarning,
                    stacklevel=2,
                )
            if enc:
                patterns.add(enc)
        if not patterns:
            raise InvalidArgumentError("ThoughtSwitchPenalty needs at least one switch token.")
        self.patterns = sorted(patterns)
        self.alpha, self.beta = float(alpha), int(beta)
        self.prompt_len: int | None = None
        self._seen: torch.Tensor | None = None  # the previous call's input ids

    def _new_generation(self, input_ids: torch.Tensor) -> bool:
        seen = self._seen
        if seen is None or seen.shape[0] != input_ids.shape[0] or seen.shape[1] >= input_ids.shape[1]:
            return True
        return not torch.equal(input_ids[:, : seen.shape[1]], seen.to(input_ids.device))

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.prompt_len is None or self._new_generation(input_ids):
            self.prompt_len = input_ids.shape[1]  # the first call of a generation sees the prompt alone
        self._seen = input_ids
        gen = input_ids[:, self.prompt_len :]  # (B, G)
        ends = match_ends(gen, self.patterns)  # (B, G): a whole switch word ends here
        pos = torch.arange(gen.shape[1], device=gen.device).expand_as(gen)
        # The current thought starts after the last complete switch word (or where generation started).
        start = torch.where(ends, pos + 1, 0).max(dim=1).values if gen.shape[1] else torch.zeros(gen.shape[0])
        in_window = (gen.shape[1] - start.to(gen.device)) < self.beta  # (B,)
        penalty = torch.zeros_like(scores)
        for pat in self.patterns:
            if len(pat) == 1:
                penalty[:, pat[0]] = self.alpha
                continue
            for j in range(1, len(pat)):  # the word's first j tokens are the text's last j: penalise the next
                if input_ids.shape[1] >= j:
                    rows = (input_ids[:, -j:] == torch.tensor(pat[:j], device=input_ids.device)).all(dim=1)
                    penalty[rows, pat[j]] = self.alpha
        return scores - in_window[:, None].to(scores.dtype) * penalty  # (B, V)


def underthinking_score(
    responses: Sequence[Sequence[str]],
    correct: Sequence[bool],
    is_correct_thought: Callable[[str], bool],
    count_tokens: Callable[[str], int],
) -> float:
    """Mean over incorrect responses of ``1 - T_first / T``: the share of tokens spent after the
    first thought that already held a correct result (0 when no thought was correct).

    ``responses`` are lists of thoughts; ``correct`` says which final answers were right.
    """
    scores = []
    for thoughts, ok in zip(responses, correct):
        if ok:
            continue
        lengths = [count_tokens(t) for t in thoughts]
        total = sum(lengths)
        first = next((i for i, t in enumerate(thoughts) if is_correct_thought(t)), None)
        scores.append(0.0 if first is None or total == 0 else 1 - sum(lengths[: first + 1]) / total)
    return sum(scores) / len(scores) if scores else 0.0
