"""What a vLLM request may ask for: ``SamplingParams(extra_args={"steering": [...]})``, checked alike in
the server's front end (a refused request gets a 400; the others are served) and in its workers.

Each entry names a vector in the registry the operator configured (``$STEERING_REGISTRY``), never a
path or URL, with an optional strength (default: the vector's ``recommended_strength``, else 1) and an
optional scope in its JSON form (:mod:`steering.scope_json`; default: the vector's
``recommended_scope``, else ``"all"``). A bare name stands for an entry with the defaults; the list may
also come as a JSON string (the OpenAI server's ``vllm_xargs`` values are strings, numbers or lists of
them). No ``"steering"`` key: the engine-wide default applies (none,
or what ``steering_attach`` set); ``"steering": []``: unsteered. Entries add up in list order.

Operator limits, read from the environment at start-up: ``STEERING_MAX_NORM_FRACTION`` (refuse a
strength whose ``strength * |v|`` exceeds this share of the layer's typical residual norm),
``STEERING_MAX_VECTORS`` (distinct vectors a server loads, so also the most in any batch; default 16)
and ``STEERING_MAX_ENTRIES`` (entries per request; default 8).

    >>> parse({"steering": [{"vector": "concise", "strength": 2, "scope": "generated"}]})
    [Entry(vector='concise', strength=2.0, scope='generated')]
    >>> parse({"steering": '["concise"]'}), parse({"steering": []}), parse({"seed_note": 1}) is None
    ([Entry(vector='concise', strength=None, scope=None)], [], True)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgumentError, RegistryError, SteeringError
from ..scope_json import scope_from_json, scope_to_json
from ..scopes import Scope, as_scope
from ..vector import SteeringVector

KEY = "steering"
CHECKED = "steering_checked"  # the front end's stamp: the entries as it resolved them
FIELDS = {"vector", "strength", "scope"}


@dataclass(frozen=True)
class Entry:
    vector: str
    strength: float | None = None
    scope: Any = None  # JSON form


@dataclass(frozen=True)
class Limits:
    max_norm_fraction: float | None = None
    max_vectors: int = 16
    max_entries: int = 8

    @classmethod
    def from_env(cls, env: Any = os.environ) -> Limits:
        def number(name: str, kind: type, default: Any) -> Any:
            raw = env.get(name)
            if raw in (None, ""):
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise InvalidArgumentError(f"{name} must be a {kind.__name__}, got {raw!r}.") from None
            if not value > 0:
                raise InvalidArgumentError(f"{name} must be positive, got {raw!r}.")
            return value

        return cls(
            number("STEERING_MAX_NORM_FRACTION", float, None),
            number("STEERING_MAX_VECTORS", int, 16),
            number("STEERING_MAX_ENTRIES", int, 8),
        )


@dataclass(frozen=True)
class Resolved:
    """An entry with its vector loaded and its defaults filled in."""

    name: str
    vector: SteeringVector
    strength: float
    scope: Any  # JSON form
    digest: str  # sha256 of the vector's directions: what the prefix cache keys on

    def as_json(self) -> dict[str, Any]:
        return {"vector": self.name, "strength": self.strength, "scope": self.scope, "digest": self.digest}


def _refuse(msg: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"steering: {msg}")


def parse(extra_args: Any, limits: Limits | None = None) -> list[Entry] | None:
    """The entries of a request's ``extra_args`` (``None``: no ``"steering"`` key)."""
    if not extra_args or KEY not in extra_args:
        return None
    limits = limits or Limits()
    raw = extra_args[KEY]
    if isinstance(raw, str):  # the OpenAI server's vllm_xargs take no objects: a JSON string, or one name
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raw = [raw]
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise _refuse(
            f'"steering" must be a list of {{"vector": NAME, "strength": S, "scope": SCOPE}}, got {raw!r:.80}.'
        )
    if len(raw) > limits.max_entries:
        raise _refuse(
            f"{len(raw)} entries in one request; this server allows {limits.max_entries} (STEERING_MAX_ENTRIES)."
        )
    out = []
    for item in raw:
        if isinstance(item, str):
            item = {"vector": item}
        if not isinstance(item, dict) or not isinstance(item.get("vector"), str) or set(item) - FIELDS:
            raise _refuse(
                f'each entry is {{"vector": NAME, "strength": S, "scope": SCOPE}} (strength and scope optional), '
                f"got {item!r:.120}."
            )
        s = item.get("strength")
        if s is not None:
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
                raise _refuse(f"strength must be a finite number, got {s!r} for vector {item['vector']!r}.")
            s = float(s)
        scope = item.get("scope")
        if scope is not None:
            try:
                scope = scope_to_json(scope_from_json(scope))  # refuses what is not a stored scope
            except SteeringError as e:
                raise _refuse(f"scope {scope!r:.80} of vector {item['vector']!r}: {e}") from None
        out.append(Entry(item["vector"], s, scope))
    return out


def check_name(spec: str) -> tuple[str | None, str]:
    """``(model, name)`` of ``NAME`` or ``MODEL:NAME``; anything else (a path, a URL) is refused."""
    from ..registry.index import check_name as check
    from ..registry.index import model_slug

    model, _, name = spec.rpartition(":") if ":" in spec else (None, "", spec)
    try:
        check(name, "vector name")
        if model is not None:
            model_slug(model)
    except RegistryError:
        raise _refuse(
            f"a request names a vector in the server's registry (NAME or MODEL:NAME: letters, digits, '.', "
            f"'_', '-'), not a path or URL; got {spec[:80]!r}."
        ) from None
    return model or None, name


def load_named(spec: str, source: str | None) -> SteeringVector:
    """The vector ``spec`` names, from the operator's registry ``source``."""
    from ..registry import pull

    model, name = check_name(spec)
    if not source:
        raise _refuse(
            "this vLLM server has no steering registry: start it with STEERING_REGISTRY set to a registry folder "
            "(or https:// / hf:// registry) holding the vectors requests may name."
        )
    try:
        return pull(name, model, source=source, progress=False)
    except SteeringError:  # the registry's own message names the server's paths: not for a client
        raise _refuse(f"no vector {spec!r} in this server's registry.") from None


class Resolver:
    """Loads each named vector once (thread-safe) and resolves entries against the operator's limits."""

    def __init__(
        self,
        source: str | None,
        limits: Limits,
        load: Callable[[str, str | None], SteeringVector] = load_named,
    ) -> None:
        self.source, self.limits, self._load = source, limits, load
        self._vectors: dict[str, tuple[SteeringVector, str]] = {}
        self._lock = threading.Lock()

    def vector(self, spec: str) -> tuple[SteeringVector, str]:
        with self._lock:
            if spec in self._vectors:
                return self._vectors[spec]
            if len(self._vectors) >= self.limits.max_vectors:
                raise _refuse(
                    f"this server already serves {len(self._vectors)} distinct vectors, its limit "
                    f"(STEERING_MAX_VECTORS={self.limits.max_vectors}); {spec!r} is not one of them."
                )
        vec = self._load(spec, self.source)
        digest = hashlib.sha256()
        for layer in sorted(vec.directions):
            digest.update(str(layer).encode() + vec.directions[layer].float().contiguous().numpy().tobytes())
        with self._lock:
            return self._vectors.setdefault(spec, (vec, digest.hexdigest()))

    def resolve(self, entry: Entry) -> Resolved:
        from ..calibrate import norm_fraction_of

        vec, digest = self.vector(entry.vector)
        s = entry.strength if entry.strength is not None else vec.metadata.get("recommended_strength", 1.0)
        scope = entry.scope if entry.scope is not None else vec.metadata.get("recommended_scope") or "all"
        limit = self.limits.max_norm_fraction
        if limit is not None and s != 0:
            try:
                fraction = norm_fraction_of(vec, abs(float(s)))
            except InvalidArgumentError:
                raise _refuse(
                    f"vector {entry.vector!r} records no residual norms, so its strength cannot be checked against "
                    f"this server's limit (STEERING_MAX_NORM_FRACTION={limit:g}); re-extract it with steering.extract."
                ) from None
            if fraction > limit:
                raise _refuse(
                    f"strength {s:g} of {entry.vector!r} is {fraction:.3g} of the layer's typical residual norm; this "
                    f"server allows at most {limit:g} (STEERING_MAX_NORM_FRACTION): use a strength up to "
                    f"{s * limit / fraction:.4g}."
                )
        return Resolved(entry.vector, vec, float(s), scope, digest)

    def resolve_all(self, entries: list[Entry]) -> list[Resolved]:
        return [r for r in map(self.resolve, entries) if r.strength != 0]  # strength 0 is no steering


def salt(resolved: list[Resolved], prompt_len: int, salt_given: str | None = None) -> str | None:
    """What a steered request's prefix-cache entries key on: its steering (and its prompt length when a
    scope depends on it), so cached KV computed under one steering never serves another. ``None``
    for an unsteered request (it shares the cache with every other unsteered request)."""
    if not resolved:
        return salt_given
    positional = any(r.scope != "all" for r in resolved)
    key = json.dumps([[r.as_json() for r in resolved], prompt_len if positional else None, salt_given])
    return "steering-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def bind_scope(scope_json: Any, tokenizer: Any) -> Scope:
    """The :class:`~steering.scopes.Scope` a request's JSON scope means (markers encoded with ``tokenizer``)."""
    return as_scope(scope_from_json(scope_json), tokenizer)
