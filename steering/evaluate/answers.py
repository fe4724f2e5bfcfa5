"""Read a final answer out of a reasoning chain: the last ``\\boxed{...}``, as math-tuned models write it.

Examples:
    >>> parse_boxed(r"so 3 + 4 = 7. The answer is \\boxed{7}.")
    '7'
    >>> parse_boxed(r"\\boxed{1,200} dollars, i.e. \\boxed{\\$1,250}")  # the last box; thousands separators dropped
    '1250'
    >>> parse_boxed(r"\\boxed{\\frac{1}{2}}")  # nested braces
    '\\\\frac{1}{2}'
    >>> parse_boxed("no box here") is None
    True
"""

from __future__ import annotations

import re

_BOX = "\\boxed{"


def parse_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` in ``text`` (braces balanced), or ``None`` without one.

    Dollar signs are dropped and so are commas between digits, so ``"$1,200"`` reads ``"1200"``.
    """
    start = text.rfind(_BOX)
    if start < 0:
        return None
    depth, i = 1, start + len(_BOX)
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            inner = text[i:j]
            break
    else:
        return None  # the box never closes (the reply was cut)
    inner = inner.replace("\\$", "").replace("$", "")
    inner = re.sub(r"(?<=\d),(?=\d{3}\b)", "", inner)
    return inner.strip()
