"""Contrastive pairs: one prompt, a completion to steer towards and one to steer away from.

Sign convention (used everywhere in this library): a vector points from ``negative`` to
``positive``. ``extract`` returns ``mean(act(positive) - act(negative))``; adding it with a
positive strength pushes the model towards the ``positive`` completions.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_write_bytes
from .errors import InvalidArgumentError, PairError
from .fileformat import load_json
from .prompts import check_prompt

_FIELDS = ("prompt", "positive", "negative")


@dataclass(frozen=True)
class Pair:
    """A prompt with the completion to steer towards (``positive``) and away from (``negative``).

    The prompt is text, or chat messages (``[{"role": "user", "content": ...}]``) that go through the
    tokenizer's chat template; the completions are the text that follows it.

    Examples:
        >>> Pair("2+3=?", positive=" 5", negative=" Let me think... 5").positive
        ' 5'
    """

    prompt: Any
    positive: str
    negative: str

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "prompt", check_prompt(self.prompt, "Pair.prompt"))
        except InvalidArgumentError as e:
            raise PairError(str(e)) from None
        for name in ("positive", "negative"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise PairError(f"Pair.{name} must be a str, got {type(value).__name__}: {value!r}.")
        for name in ("positive", "negative"):
            if not getattr(self, name):
                raise PairError(
                    f"Pair.{name} is empty (prompt={str(self.prompt)[:60]!r}). Both completions need at"
                    " least one token: the activations are read on the completion."
                )


def _pair_from_row(row: object, where: str) -> Pair:
    if isinstance(row, Pair):
        return row
    if not isinstance(row, Mapping):
        raise PairError(f"{where}: expected an object with keys {list(_FIELDS)}, got {type(row).__name__}.")
    missing = [k for k in _FIELDS if k not in row]
    if missing:
        raise PairError(
            f"{where}: missing key(s) {missing}; got keys {sorted(row)}. Each row needs"
            ' {"prompt": ..., "positive": ..., "negative": ...} (positive = the behaviour to steer towards).'
        )
    try:
        return Pair(row["prompt"], row["positive"], row["negative"])
    except PairError as e:
        raise PairError(f"{where}: {e}") from None


def load_pairs(source: str | os.PathLike[str] | Iterable[Pair | Mapping[str, str]]) -> list[Pair]:
    """Read pairs from a JSONL file (one ``{"prompt", "positive", "negative"}`` per line) or an iterable.

    Examples:
        >>> load_pairs([{"prompt": "Q", "positive": " a", "negative": " b"}])
        [Pair(prompt='Q', positive=' a', negative=' b')]
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise PairError(f"No pairs file at {str(path)!r}. Pass a JSONL file path or a list of Pair.")
        pairs = []
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise PairError(
                f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save the pairs file as UTF-8."
            ) from None
        except OSError as e:
            raise PairError(f"{path}: could not be read ({e.strerror or e}).") from None
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            row = load_json(line, f"{path}:{lineno}", PairError)
            pairs.append(_pair_from_row(row, f"{path}:{lineno}"))
    else:
        pairs = [_pair_from_row(row, f"pair {i}") for i, row in enumerate(source)]
    if not pairs:
        raise PairError(f"No pairs in {source!r}: extraction needs at least one pair (about 50 is typical).")
    return pairs


def save_pairs(pairs: Iterable[Pair], path: str | os.PathLike[str]) -> Path:
    """Write pairs as JSONL (atomically), readable by :func:`load_pairs`."""
    lines = [
        json.dumps(
            {
                "prompt": p.prompt if isinstance(p.prompt, str) else list(p.prompt),
                "positive": p.positive,
                "negative": p.negative,
            },
            ensure_ascii=False,
        )
        for p in pairs
    ]
    return atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def pairs_hash(pairs: Iterable[Pair]) -> str:
    """A sha256 over the pairs' text, recorded in a vector's metadata to say what it was made from."""
    h = hashlib.sha256()
    for p in pairs:
        prompt = p.prompt if isinstance(p.prompt, str) else list(p.prompt)
        h.update(json.dumps([prompt, p.positive, p.negative], ensure_ascii=False, sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()
