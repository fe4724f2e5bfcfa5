"""The demo's synthetic reasoning task: two-step arithmetic in three reasoning modes.

Two kinds of problem, told apart only by their operators (no mode marker in the prompt):

- ``addsub``: ``a+b-c``; trained mostly on *verbose* chains, so greedy decoding writes them;
- ``muladd``: ``a*b+c``; trained mostly on *direct* answers, which are often wrong.

Every problem can be answered in three modes: verbose (words, restated steps), concise (math
notation) and direct (the answer alone). Held-out problems (``held_out(p)``) never appear in
training.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

MODES = ("verbose", "concise", "direct")
# The training mix per kind: P(verbose), P(concise), P(direct).
MIX = {"addsub": (0.6, 0.3, 0.1), "muladd": (0.25, 0.15, 0.6)}
_ANSWER = re.compile(r"(?:answer is|Answer:)\s*(-?\d+)")


@dataclass(frozen=True)
class Problem:
    kind: str
    a: int
    b: int
    c: int

    @property
    def prompt(self) -> str:
        op1, op2 = ("+", "-") if self.kind == "addsub" else ("*", "+")
        return f"Q: {self.a}{op1}{self.b}{op2}{self.c}=?"

    @property
    def step(self) -> int:
        return self.a + self.b if self.kind == "addsub" else self.a * self.b

    @property
    def answer(self) -> int:
        return self.step - self.c if self.kind == "addsub" else self.step + self.c

    def completion(self, mode: str) -> str:
        a, b, c, s, r = self.a, self.b, self.c, self.step, self.answer
        if self.kind == "addsub":
            w1, w2, o1, o2, check = "plus", "minus", "+", "-", f"{r} plus {c} equals {s}, and {s} minus {b} equals {a}"
        else:
            w1, w2, o1, o2, check = "times", "plus", "*", "+", f"{r} minus {c} equals {s}, and {s} is {a} times {b}"
        if mode == "verbose":
            return (
                f" Let me think step by step. The problem asks for {a} {w1} {b}, then {w2} {c}."
                f" First, {a} {w1} {b} equals {s}. Then, {s} {w2} {c} equals {r}."
                f" Let me check: {check}. So the answer is {r}."
            )
        if mode == "concise":
            return f" {a}{o1}{b}={s}. {s}{o2}{c}={r}. Answer: {r}."
        if mode == "direct":
            return f" Answer: {r}."
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")


def random_problem(rng: random.Random, kind: str) -> Problem:
    if kind == "addsub":
        a, b = rng.randint(10, 59), rng.randint(10, 59)
        return Problem(kind, a, b, rng.randint(10, a + b - 1))
    return Problem(kind, rng.randint(2, 9), rng.randint(2, 9), rng.randint(10, 59))


def held_out(p: Problem) -> bool:
    """One problem in eight is never trained on."""
    return hashlib.sha256(p.prompt.encode()).digest()[0] % 8 == 0


def problems(n: int, kind: str, seed: int, split: str = "test") -> list[Problem]:
    """``n`` distinct problems of ``kind`` from the held-out (``"test"``) or training split."""
    rng, out, seen = random.Random(seed), list[Problem](), set[Problem]()
    while len(out) < n:
        p = random_problem(rng, kind)
        if p not in seen and held_out(p) == (split == "test"):
            seen.add(p)
            out.append(p)
    return out


def parse_answer(text: str) -> int | None:
    m = _ANSWER.search(text)
    return int(m.group(1)) if m else None


def classify(text: str) -> str:
    """Which mode a generated completion is in: verbose, concise, direct or malformed."""
    t = text.strip()
    if t.startswith("Let me think") and "answer is" in t:
        return "verbose"
    if t.startswith("Answer:"):
        return "direct"
    if re.match(r"^\d+[-+*]\d+=\d+\.", t) and "Answer:" in t:
        return "concise"
    return "malformed"


def well_formed(text: str, p: Problem) -> bool:
    """The text is one of the three trained templates (numbers may be wrong)."""
    shape = re.sub(r"\d+", "#", " " + text.strip())
    return any(shape == re.sub(r"\d+", "#", p.completion(mode)) for mode in MODES)
