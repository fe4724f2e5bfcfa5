"""Steered serving inside stock vLLM, through its public extension point: a worker extension.

vLLM's V1 engine runs the model in worker processes; ``LLM(..., worker_extension_cls=EXTENSION)``
mixes :class:`SteeringExtension` into each worker, and ``llm.collective_rpc("steering_attach", ...)``
calls it in every worker (every tensor-parallel rank). The extension registers the same write hooks
``steer`` uses (``steering.apply.every_position_hooks``, through :mod:`steering.hooks`) on vLLM's
decoder layers.

Where the vector lands: a vLLM decoder layer returns ``(hidden_states, residual)`` and the residual
stream after block ``L`` is their sum (the next layer's fused add-norm adds them). Adding the vector
to ``hidden_states`` therefore adds it to the stream after block ``L``: our layer ``L``, exactly where
``steer`` adds it in transformers (tested token for token against HF).

Scopes: only ``"all"``. vLLM batches requests continuously and flattens their tokens, so "the prompt"
or "the last prompt token" of one request is not visible to a layer hook; steering every position of
every request is correct under any batching, and what llama.cpp does too. Everything else is refused.
One vector at a time for the whole engine (not per request).

Vectors are named, never located by the caller: ``steering_attach("concise-answers")`` (or
``"MODEL:NAME"`` where several models share a name) resolves against the registry the operator
configured before start-up, ``$STEERING_REGISTRY`` (a folder, an HTTPS registry or ``hf://``), read
once when the worker imports this module. A path, a URL or anything else that is not a registry name
is refused, so a request can neither read the server's files nor make it fetch other URLs; every
file read is size-capped (``STEERING_MAX_FILE_BYTES``) and sha256-verified first.

    from vllm import LLM
    # the server's environment: STEERING_REGISTRY=/srv/vectors
    llm = LLM(model=folder, dtype="float32", enforce_eager=True, worker_extension_cls=EXTENSION)
    llm.collective_rpc("steering_attach", args=("concise-answers", "2.2"))
    llm.generate(prompts)
    llm.collective_rpc("steering_detach")

A server: ``STEERING_REGISTRY=/srv/vectors VLLM_SERVER_DEV_MODE=1 vllm serve FOLDER
--worker-extension-cls EXTENSION``, then ``POST /collective_rpc {"method": "steering_attach", "args":
["concise-answers", "2.2"]}`` (dev mode exposes that endpoint; its arguments are strings, which is why
these methods take strings).
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import InvalidArgumentError, RegistryError
from .runtimes import require_every_position

EXTENSION = "steering.interop.vllm.SteeringExtension"
STARTUP_REGISTRY = os.environ.get("STEERING_REGISTRY")  # the operator's, read once per worker process


def _load(spec: str, source: str | None) -> Any:
    """The vector a request names (``NAME`` or ``MODEL:NAME``) from the operator's registry ``source``."""
    from ..registry import pull
    from ..registry.index import check_name, model_slug

    if not isinstance(spec, str):
        raise InvalidArgumentError(f"steering_attach takes a registry name, got a {type(spec).__name__}.")
    model, _, name = spec.rpartition(":") if ":" in spec else (None, "", spec)
    try:
        check_name(name, "vector name")
        if model is not None:
            model_slug(model)
    except RegistryError:
        raise InvalidArgumentError(
            f"steering_attach takes the name of a vector in the server's registry (NAME or MODEL:NAME: letters, "
            f"digits, '.', '_', '-'), not a path or URL; got {spec[:80]!r}."
        ) from None
    if not source:
        raise InvalidArgumentError(
            "This vLLM server has no steering registry: start it with STEERING_REGISTRY set to a registry folder "
            "(or https:// / hf:// registry) holding the vectors requests may name."
        )
    return pull(name, model or None, source=source, progress=False)


class SteeringExtension:
    """Mixed into vLLM's worker class; its methods run in every worker process."""

    _steering: Any = None  # the hooks.Attachment in force, if any
    steering_source: str | None = STARTUP_REGISTRY  # where names resolve; never taken from a request

    def _steering_model(self) -> Any:
        runner: Any = getattr(self, "model_runner", None)
        model = runner.get_model() if hasattr(runner, "get_model") else getattr(runner, "model", None)
        if model is None:
            raise RuntimeError("steering: this vLLM worker exposes no model (model_runner.get_model()).")
        return model

    def steering_attach(self, vector: str, strength: str = "", scope: str = "") -> str:
        """Steer every position of every request with the registry vector ``vector`` (``NAME``) until
        :meth:`steering_detach`. ``strength`` defaults to the vector's recommended strength; a vector
        recommended for another scope than ``"all"`` is refused unless ``scope="all"`` is passed."""
        from ..apply import every_position_hooks
        from ..hooks import Attachment

        vec = _load(vector, self.steering_source)
        require_every_position(scope or None, vec.metadata.get("recommended_scope"), "vLLM (continuous batching)")
        try:
            s = float(strength) if strength else vec.metadata.get("recommended_strength", 1.0)
        except ValueError:
            msg = f"strength must be a number as a string, e.g. '2.2'; got {strength!r}."
            raise InvalidArgumentError(msg) from None
        self.steering_detach()
        hooks = every_position_hooks(self._steering_model(), vec, s)
        self._steering = Attachment(hooks)  # in every thread of the worker: it serves every request
        return f"steering layers {vec.layers} at strength {s:g}"

    def steering_detach(self) -> str:
        """Remove the vector (a no-op when none is attached)."""
        if self._steering is not None:
            self._steering.remove()
            self._steering = None
        return "steering off"
