"""Measure generation on any model: accuracy with a bootstrap interval, tokens (and thinking tokens),
wall time, degeneration, sample texts; and a paired comparison of two runs on the same prompts.

Correctness comes from gold answers: with ``check``, a reply is right when ``check(answer text, gold)``
holds (e.g. a task's own verifier); with ``parse``, a reply is right when ``parse(answer text) ==
gold``; without it, when the gold string (or one of a tuple of accepted strings) occurs in the answer
as a whole word, case-insensitively. With ``end_marker`` (``"</think>"`` for R1-style models), the
tokens up to and including the marker are the *thinking* tokens and only the text after it is the
answer; a reply that never closes its thinking has no answer.

*Degeneration* of a reply is the share of its token positions that repeat an n-gram (``n=4``) already
seen earlier in the same reply: 0 for prose that never repeats itself, near 1 for a reply stuck in a
loop ("The The The ...", or one sentence over and over). :func:`measure` reports the mean over replies.

Examples:
    >>> degeneration([5, 6, 7, 8, 9, 10])
    0.0
    >>> round(degeneration([1, 2, 3, 4] * 5), 2)  # after the first cycle, every 4-gram is a repeat
    0.76
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgumentError
from ..prompts import Prompt
from .generation import Generation, generate

DEGENERATION_N = 4


def degeneration(ids: Sequence[int], n: int = DEGENERATION_N) -> float:
    """Share of positions whose ``n``-gram (ending there) already occurred earlier in ``ids``."""
    if len(ids) < n + 1:
        return 0.0
    seen: set[tuple[int, ...]] = set()
    repeats = 0
    for i in range(n - 1, len(ids)):
        gram = tuple(ids[i - n + 1 : i + 1])
        repeats += gram in seen
        seen.add(gram)
    return repeats / (len(ids) - n + 1)


def contains(answer: str, gold: str | Sequence[str]) -> bool:
    """Does ``answer`` hold ``gold`` (or one of several accepted strings) as a whole word, ignoring case?"""
    options = [gold] if isinstance(gold, str) else list(gold)
    return any(re.search(rf"(?<![\w-]){re.escape(str(g))}(?![\w-])", answer, re.I) for g in options)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion ``k / n`` (a share of problems, without the replies).

    Examples:
        >>> wilson(50, 100)
        (0.4038, 0.5962)
    """
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(centre - half, 4), round(centre + half, 4))


def bootstrap_ci(
    values: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``.

    Examples:
        >>> bootstrap_ci([1.0] * 10)
        (1.0, 1.0)
    """
    if not values:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
    lo = int((1 - level) / 2 * n_boot)
    return means[lo], means[n_boot - 1 - lo]


@dataclass(frozen=True)
class Measurement:
    n: int
    tokens: float  # mean generated tokens per reply (up to and including the end of sequence)
    seconds: float  # wall time of generation
    degeneration: float  # mean per-reply share of repeated 4-gram positions, in [0, 1]
    unfinished: float  # share of replies cut by max_new_tokens
    accuracy: float | None = None
    accuracy_ci: tuple[float, float] | None = None
    thinking_tokens: float | None = None  # mean tokens up to and including end_marker
    texts: list[str] = field(default_factory=list, repr=False)
    answers: list[str] = field(default_factory=list, repr=False)  # the text after end_marker (or all of it)
    correct: list[bool] | None = field(default=None, repr=False)
    token_counts: list[int] = field(default_factory=list, repr=False)
    degenerations: list[float] = field(default_factory=list, repr=False)

    def samples(self, k: int = 3) -> list[str]:
        return self.texts[:k]

    def summary(self) -> dict[str, Any]:
        """The numbers (no texts), for results files."""
        keys = ("n", "accuracy", "accuracy_ci", "tokens", "thinking_tokens", "seconds", "degeneration", "unfinished")
        return {k: getattr(self, k) for k in keys}


def measure(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    *,
    gold: Sequence[Any] | None = None,
    parse: Callable[[str], Any] | None = None,
    check: Callable[[str, Any], bool] | None = None,
    end_marker: str | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 16,
    seed: int | None = None,
    progress: bool | None = None,
    **generate_kwargs: Any,
) -> Measurement:
    """Generate for every prompt (inside any active ``steer`` block) and measure the replies.

    ``generate_kwargs`` go to ``generate`` (``do_sample=True, temperature=0.6, top_p=0.95``; ``seed``
    makes sampling repeatable).
    """
    if gold is not None and len(gold) != len(prompts):
        raise InvalidArgumentError(f"{len(prompts)} prompts but {len(gold)} gold answers; they must pair up.")
    gens, seconds = generate(
        model,
        tokenizer,
        list(prompts),
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
        **generate_kwargs,
    )
    return measure_generations(gens, seconds, tokenizer, gold=gold, parse=parse, check=check, end_marker=end_marker)


def measure_generations(
    gens: Sequence[Generation],
    seconds: float,
    tokenizer: Any = None,
    *,
    gold: Sequence[Any] | None = None,
    parse: Callable[[str], Any] | None = None,
    check: Callable[[str, Any], bool] | None = None,
    end_marker: str | None = None,
) -> Measurement:
    """Measure replies generated elsewhere (another engine, e.g. ``LlamaServer.generate``) as :func:`measure` does.

    A reply is right when ``check(answer, gold)`` holds, else when ``parse(answer) == gold``, else when
    it contains ``gold``. ``tokenizer`` is needed only with ``end_marker``.

    Examples:
        >>> from steering.evaluate import Generation
        >>> m = measure_generations([Generation("so 4", 3, [7, 8, 9])], 1.0, gold=["4"])
        >>> m.accuracy, m.tokens
        (1.0, 3.0)
    """
    if not gens:
        raise InvalidArgumentError("No replies to measure: pass at least one generation.")
    if gold is not None and len(gold) != len(gens):
        raise InvalidArgumentError(f"{len(gens)} replies but {len(gold)} gold answers; they must pair up.")
    texts = [g.text for g in gens]
    thinking: list[int] | None = None
    if end_marker is not None:
        if tokenizer is None:
            raise InvalidArgumentError("end_marker needs the tokenizer (to count thinking tokens); pass tokenizer=.")
        marker = [int(i) for i in tokenizer(end_marker, add_special_tokens=False)["input_ids"]]
        thinking = [_until(g.ids, marker) for g in gens]
        answers = [t.split(end_marker, 1)[1] if end_marker in t else "" for t in texts]
    else:
        answers = texts
    correct = None
    if gold is not None:
        correct = [_right(a, g, parse, check) for a, g in zip(answers, gold)]
    counts = [g.n_tokens for g in gens]
    degen = [degeneration(g.ids) for g in gens]
    n = len(gens)
    return Measurement(
        n=n,
        tokens=sum(counts) / n,
        seconds=seconds,
        degeneration=sum(degen) / n,
        unfinished=sum(not g.finished for g in gens) / n,
        accuracy=sum(correct) / n if correct is not None else None,
        accuracy_ci=bootstrap_ci([float(c) for c in correct]) if correct is not None else None,
        thinking_tokens=sum(thinking) / n if thinking is not None else None,
        texts=texts,
        answers=answers,
        correct=correct,
        token_counts=counts,
        degenerations=degen,
    )


def _right(
    answer: str, gold: Any, parse: Callable[[str], Any] | None, check: Callable[[str, Any], bool] | None
) -> bool:
    if check is not None:
        return bool(check(answer, gold))
    if parse is not None:
        return bool(parse(answer) == gold)
    return bool(answer) and contains(answer, gold)


def _until(ids: list[int], marker: list[int]) -> int:
    """Tokens up to and including the first occurrence of ``marker`` (all of them if it never occurs)."""
    k = len(marker)
    for i in range(len(ids) - k + 1):
        if ids[i : i + k] == marker:
            return i + k
    return len(ids)


@dataclass(frozen=True)
class Comparison:
    accuracy_diff: float | None  # steered - baseline
    accuracy_diff_ci: tuple[float, float] | None  # paired bootstrap over prompts
    token_reduction: float  # 1 - steered tokens / baseline tokens
    token_reduction_ci: tuple[float, float]
    degeneration_diff: float  # steered - baseline
    speedup: float  # baseline seconds / steered seconds (one run each: see benchmarks for timing)

    def summary(self) -> dict[str, Any]:
        return dict(self.__dict__)


def compare(baseline: Measurement, steered: Measurement, *, n_boot: int = 2000, seed: int = 0) -> Comparison:
    """Paired differences (the same prompts, resampled together) of a steered run against its baseline."""
    if baseline.n != steered.n:
        raise InvalidArgumentError(f"compare needs runs on the same prompts; got {baseline.n} and {steered.n} replies.")
    rng = random.Random(seed)
    n = baseline.n
    reductions = []
    for _ in range(n_boot):
        idx = [rng.randrange(n) for _ in range(n)]
        b = sum(baseline.token_counts[i] for i in idx)
        s = sum(steered.token_counts[i] for i in idx)
        reductions.append(1 - s / b if b else 0.0)
    reductions.sort()
    lo = int(0.025 * n_boot)
    diff = diff_ci = None
    if baseline.correct is not None and steered.correct is not None:
        d = [float(s) - float(b) for b, s in zip(baseline.correct, steered.correct)]
        diff, diff_ci = sum(d) / n, bootstrap_ci(d, n_boot, seed)
    return Comparison(
        accuracy_diff=diff,
        accuracy_diff_ci=diff_ci,
        token_reduction=1 - steered.tokens / baseline.tokens if baseline.tokens else 0.0,
        token_reduction_ci=(reductions[lo], reductions[n_boot - 1 - lo]),
        degeneration_diff=steered.degeneration - baseline.degeneration,
        speedup=baseline.seconds / steered.seconds if steered.seconds else float("nan"),
    )
