"""What runtimes that steer every position (llama.cpp control vectors, an engine-wide vLLM attach)
may run: a vector meant for another scope is refused, not silently run everywhere."""

from __future__ import annotations

from typing import Any

from ..errors import UnknownOptionError
from ..scopes import ScopeSpec


def require_every_position(scope: ScopeSpec | None, recommended: Any, runtime: str) -> None:
    """Refuse to run a vector at every position (all ``runtime`` can do) when ``scope``, or when it is
    ``None`` the vector's ``recommended`` scope (JSON, as stored in metadata), is another scope."""
    wanted = scope if scope is not None else (recommended if recommended is not None else "all")
    if wanted != "all":
        raise UnknownOptionError(
            f"{runtime} steers every position (scope 'all' only); this vector is meant for scope {wanted!r}. "
            "Pass scope='all' to run it at every position anyway, or apply it with steer() (any scope) or "
            "through EasySteer (export_vllm: prompt, generated, prompt_last, single tokens)."
        )
