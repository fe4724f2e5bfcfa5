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

from .errors import PairError

_FIELDS = ("prompt", "positive", "negative")


@dataclass(frozen=True)
class Pair:
    """A prompt with the completion to steer towards (``positive``) and away from (``negative``).

    Examples:
        >>> Pair("2+3=?", positive=" 5", negative=" Let me think... 5").positive
        ' 5'
    """

    prompt: str
    positive: str
    negative: str

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str):
                raise PairError(f"Pair.{name} must be a str, got {type(value).__name__}: {value!r}.")
        for name in ("positive", "negative"):
            if not getattr(self, name):
                raise PairError(
                    f"Pair.{name} is empty (prompt={self.prompt[:60]!r}). Both completions need at"
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
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise PairError(f"{path}:{lineno}: not valid JSON ({e.msg}).") from None
                pairs.append(_pair_from_row(row, f"{path}:{lineno}"))
    else:
        pairs = [_pair_from_row(row, f"pair {i}") for i, row in enumerate(source)]
    if not pairs:
        raise PairError(f"No pairs in {source!r}: extraction needs at least one pair (about 50 is typical).")
    return pairs


def pairs_hash(pairs: Iterable[Pair]) -> str:
    """A sha256 over the pairs' text, recorded in a vector's metadata to say what it was made from."""
    h = hashlib.sha256()
    for p in pairs:
        h.update(json.dumps([p.prompt, p.positive, p.negative], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()
