"""Steered serving inside stock vLLM: per request, through public extension points.

Per request (:mod:`steering.interop.vllm_plugin`, a vLLM general plugin that installing this package
into vLLM's environment registers): ``SamplingParams(extra_args={"steering": [{"vector": NAME,
"strength": S, "scope": SCOPE}]})``, or ``"vllm_xargs": {"steering": ...}`` in an OpenAI-server request
body. Each request is steered on its own tokens only, at its own positions (any scope ``steer``
takes), batchmates isolated; the request format and the operator's limits are in
:mod:`steering.interop.vllm_requests`.

Engine-wide default (this module): ``LLM(..., worker_extension_cls=EXTENSION)`` mixes
:class:`SteeringExtension` into each worker, and ``llm.collective_rpc("steering_attach", ...)`` sets
the steering of every request that does not carry its own (``"steering": []`` opts out) until
``steering_detach``. After changing the default, reset the prefix cache (``llm.reset_prefix_cache()``):
requests without steering of their own share cached KV.

Vectors are named, never located by the caller: ``NAME`` (or ``"MODEL:NAME"`` where several models
share a name) resolves against the registry the operator configured before start-up,
``$STEERING_REGISTRY`` (a folder, an HTTPS registry or ``hf://``). A path, a URL or anything else that
is not a registry name is refused, so a request can neither read the server's files nor make it
fetch other URLs; every file read is size-capped (``STEERING_MAX_FILE_BYTES``) and sha256-verified.

    from vllm import LLM, SamplingParams
    # the server's environment: STEERING_REGISTRY=/srv/vectors
    llm = LLM(model=folder, dtype="float32", enforce_eager=True)
    steered = SamplingParams(max_tokens=64, extra_args={"steering": [{"vector": "concise-answers", "strength": 2.2}]})
    llm.generate(prompts, steered)
"""

from __future__ import annotations

EXTENSION = "steering.interop.vllm.SteeringExtension"


class SteeringExtension:
    """Mixed into vLLM's worker class; its methods run in every worker process."""

    def steering_attach(self, vector: str, strength: str = "", scope: str = "") -> str:
        """Steer every request that carries no steering of its own with the registry vector ``vector``
        (``NAME``) until :meth:`steering_detach`. ``strength`` defaults to the vector's recommended
        strength, ``scope`` (a name or a JSON scope) to its recommended scope."""
        from .vllm_plugin import default_entries, register, runner_state

        register()  # in this worker, in case the plugin was not loaded through its entry point
        resolved = default_entries(vector, strength, scope)
        runner_state(self.model_runner).set_default(resolved)  # type: ignore[attr-defined]
        if not resolved:
            return "steering off (strength 0)"
        r = resolved[0]
        return f"steering layers {r.vector.layers} at strength {r.strength:g}, scope {r.scope!r}"

    def steering_detach(self) -> str:
        """Remove the default (a no-op when none is set)."""
        from .vllm_plugin import runner_state

        runner_state(self.model_runner).set_default([])  # type: ignore[attr-defined]
        return "steering off"
