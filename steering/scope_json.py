"""Scopes as JSON: what a vector's ``recommended_scope`` metadata holds, and back.

Names stay strings, ``Window`` is ``{"window": [start, stop]}``, ``Tokens`` is ``{"tokens": [...]}``,
``Span`` is ``{"span": [[start markers], [stop markers]]}``, a union is a list; token-id markers are
``{"ids": [...]}``.
"""

from __future__ import annotations

from typing import Any

from .errors import UnknownOptionError
from .markers import Marker, Tokens
from .scopes import NAMED, ScopeSpec, Span, Window


def _marker_json(m: Marker) -> Any:
    return {"ids": list(m)} if isinstance(m, tuple) else m


def _marker_from(obj: Any) -> Marker:
    return tuple(obj["ids"]) if isinstance(obj, dict) else obj


def scope_to_json(scope: ScopeSpec) -> Any:
    """A scope as given to ``steer`` (names, ``Window``, ``Tokens``, ``Span``, tuples), as JSON for metadata.

    Examples:
        >>> scope_to_json(("prompt_last", Tokens(". ", 13)))
        ['prompt_last', {'tokens': ['. ', 13]}]
        >>> scope_from_json(scope_to_json(("prompt_last", Window(0, 8)))) == ("prompt_last", Window(0, 8))
        True
    """
    if isinstance(scope, str):
        if scope not in NAMED:
            raise UnknownOptionError(f"Unknown scope {scope!r}; expected one of {list(NAMED)}.")
        return scope
    if isinstance(scope, Window):
        return {"window": [scope.start, scope.stop]}
    if isinstance(scope, Tokens):
        return {"tokens": [_marker_json(m) for m in scope.markers]}
    if isinstance(scope, Span):
        ends: list[tuple[Any, ...]] = [
            s if isinstance(s, tuple) and not all(isinstance(i, int) for i in s) else (s,)
            for s in (scope.start, scope.stop)
        ]
        return {"span": [[_marker_json(m) for m in e] for e in ends]}
    if isinstance(scope, (tuple, list)) and scope:
        return [scope_to_json(s) for s in scope]
    raise UnknownOptionError(f"Scope {scope!r} cannot be stored: use names, Window, Tokens, Span or tuples of them.")


def scope_from_json(obj: Any) -> Any:
    """The inverse of :func:`scope_to_json`."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, list):
        return tuple(scope_from_json(o) for o in obj)
    if isinstance(obj, dict) and "window" in obj:
        return Window(*obj["window"])
    if isinstance(obj, dict) and "tokens" in obj:
        return Tokens(*(_marker_from(m) for m in obj["tokens"]))
    if isinstance(obj, dict) and "span" in obj:
        start, stop = (tuple(_marker_from(m) for m in e) for e in obj["span"])
        return Span(start if len(start) > 1 else start[0], stop if len(stop) > 1 else stop[0])
    raise UnknownOptionError(f"Not a stored scope: {obj!r}.")
