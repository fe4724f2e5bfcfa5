"""Per-request steering in stock vLLM, as a vLLM general plugin (entry point ``vllm.general_plugins``).

Installing this package into vLLM's environment makes vLLM call :func:`register` in each of its
processes. It wraps two methods, each a no-op for requests that carry no steering:

- front end, ``InputProcessor.process_inputs``: a request's ``extra_args["steering"]``
  (:mod:`steering.interop.vllm_requests`) is checked before the request is admitted: an unknown name,
  a path or URL, a strength over the operator's limit is refused with a 400 naming the problem, and
  the server keeps serving the others. The entries it resolved are stamped on the request, and a
  steered request's prefix-cache key (``cache_salt``) gets its steering, so KV computed under one
  steering never serves a request under another (unsteered requests keep sharing the cache).
- workers, ``GPUModelRunner._model_forward`` (the CPU runner inherits it): before each forward pass,
  which flattened token belongs to which request, at which absolute position, is read from the
  runner (``input_batch.req_ids``, ``query_start_loc``, the ``positions`` it passes), each request's
  scopes are evaluated on its own positions and tokens (prompt length, generated count, markers), and
  the decoder-layer hooks (registered once through :mod:`steering.hooks`) add each request's vectors
  to its own tokens only. Every tensor-parallel rank does the same on its replica of the residual
  stream, so nothing depends on the rank.

Where the vector lands: a vLLM decoder layer returns ``(hidden_states, residual)`` and the residual
stream after block ``L`` is their sum, so adding to ``hidden_states`` adds to the stream after block
``L``: our layer ``L``, where ``steer`` adds it in transformers (tested token for token).
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any

import torch

from ..errors import SteeringError
from ..hooks import Attachment, Hook, output_tensor, replace_output
from ..scopes import All, Chunk, Scope
from .vllm_requests import CHECKED, KEY, Limits, Resolved, Resolver, bind_scope, parse, salt

_WRAPPED = "__steering_wrapped__"
STARTUP_REGISTRY = os.environ.get("STEERING_REGISTRY")  # the operator's, read once per process


def register() -> None:
    """Wrap vLLM's front end and model runner (idempotent; vLLM may call it more than once per process)."""
    from vllm.v1.engine.input_processor import InputProcessor
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    if not getattr(InputProcessor.process_inputs, _WRAPPED, False):
        InputProcessor.process_inputs = _front_end(InputProcessor.process_inputs)  # type: ignore[method-assign]
    if not getattr(GPUModelRunner._model_forward, _WRAPPED, False):
        GPUModelRunner._model_forward = _forward(GPUModelRunner._model_forward)  # type: ignore[method-assign]


@functools.cache
def _resolver() -> Resolver:
    return Resolver(STARTUP_REGISTRY, Limits.from_env())


@functools.cache
def _loader() -> Resolver:
    """The workers' loader of vectors the front end already admitted: its limits were checked there."""
    return Resolver(STARTUP_REGISTRY, Limits(max_vectors=1 << 30, max_entries=1 << 30))


def _front_end(original: Any) -> Any:
    @functools.wraps(original)
    def process_inputs(self: Any, request_id: str, prompt: Any, params: Any, *args: Any, **kwargs: Any) -> Any:
        from vllm import SamplingParams
        from vllm.exceptions import VLLMValidationError

        entries = None
        if isinstance(params, SamplingParams):
            try:
                entries = parse(params.extra_args, _resolver().limits)
                resolved = _resolver().resolve_all(entries or [])
                for r in resolved:
                    _check_scope(r.scope, self)
            except SteeringError as e:
                raise VLLMValidationError(str(e), parameter="extra_args.steering") from None
        request = original(self, request_id, prompt, params, *args, **kwargs)
        if entries is not None:
            sp = request.sampling_params
            sp.extra_args = {**(sp.extra_args or {}), CHECKED: [r.as_json() for r in resolved]}
            request.cache_salt = salt(resolved, len(request.prompt_token_ids or ()), request.cache_salt)
        return request

    setattr(process_inputs, _WRAPPED, True)
    return process_inputs


def _check_scope(scope: Any, processor: Any) -> None:
    """Refuse a scope whose markers cannot be encoded (the workers encode them with the model's tokenizer)."""
    try:
        bind_scope(scope, None)
    except SteeringError:
        try:
            tokenizer = processor.tokenizer
        except Exception:  # no tokenizer here (skip_tokenizer_init): the workers check
            return
        bind_scope(scope, tokenizer)


def _forward(original: Any) -> Any:
    @functools.wraps(original)
    def _model_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = runner_state(self)
        plan = state.plan(self, kwargs.get("input_ids"))
        if not plan:
            return original(self, *args, **kwargs)
        state.current = plan
        try:
            return original(self, *args, **kwargs)
        finally:
            state.current = None

    setattr(_model_forward, _WRAPPED, True)
    return _model_forward


def runner_state(runner: Any) -> RunnerSteering:
    """The steering state of a vLLM model runner (made on first use)."""
    state = runner.__dict__.get("_steering")
    if state is None:
        state = runner.__dict__.setdefault("_steering", RunnerSteering())
    return state


Plan = dict[int, list[tuple[torch.Tensor, torch.Tensor]]]  # layer -> [(token rows, rows' additions)]


class RunnerSteering:
    """One model runner's steering: the engine-wide default, each request's resolved entries, the hooks."""

    def __init__(self) -> None:
        self.default: list[Resolved] = []
        self.current: Plan | None = None  # the plan of the forward pass in progress
        self._requests: dict[str, tuple[Any, list[tuple[Resolved, Scope]]]] = {}
        self._attachment: Attachment | None = None
        self._scaled: dict[tuple[str, float, int, torch.dtype], torch.Tensor] = {}
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    # -- per request ---------------------------------------------------------------------------
    def _bind(self, runner: Any, resolved: list[Resolved]) -> list[tuple[Resolved, Scope]]:
        out = []
        for r in resolved:
            try:
                scope = bind_scope(r.scope, None)
            except SteeringError:  # markers given as strings: encode them with the model's tokenizer
                if self._tokenizer is None:
                    from transformers import AutoTokenizer

                    self._tokenizer = AutoTokenizer.from_pretrained(runner.model_config.tokenizer)
                scope = bind_scope(r.scope, self._tokenizer)
            out.append((r, scope))
        return out

    def entries(self, runner: Any, req_id: str) -> list[tuple[Resolved, Scope]]:
        state = runner.requests[req_id]
        params = state.sampling_params
        cached = self._requests.get(req_id)
        if cached is not None and cached[0] is params:
            return cached[1]
        extra = getattr(params, "extra_args", None) or {}
        if KEY in extra and CHECKED not in extra:
            raise RuntimeError(
                "steering: a request carries extra_args['steering'] but vLLM's front end did not check it: the "
                "steering plugin is not loaded there. Install this package into vLLM's environment (its entry point "
                "registers the plugin) and do not leave 'steering' out of VLLM_PLUGINS."
            )
        if CHECKED in extra:
            resolver = _loader()
            resolved = [
                Resolved(e["vector"], resolver.vector(e["vector"])[0], e["strength"], e["scope"], e["digest"])
                for e in extra[CHECKED]
            ]
            bound = self._bind(runner, resolved)
        else:
            bound = self._bind(runner, self.default)
        if len(self._requests) > 4 * max(len(runner.requests), 64):  # forget requests that left
            self._requests = {k: v for k, v in self._requests.items() if k in runner.requests}
        self._requests[req_id] = (params, bound)
        return bound

    def set_default(self, resolved: list[Resolved]) -> None:
        self.default = resolved
        self._requests.clear()  # requests without their own steering follow the new default

    # -- per forward pass ----------------------------------------------------------------------
    def plan(self, runner: Any, input_ids: torch.Tensor | None) -> Plan | None:
        """Which token rows get which addition at which layer, for the batch this forward pass holds."""
        batch = runner.input_batch
        n_reqs = batch.num_reqs
        starts = runner.query_start_loc.np[: n_reqs + 1].tolist()
        groups: dict[tuple[int, str, float], list[torch.Tensor]] = {}  # (rank, vector, strength) -> rows
        vectors: dict[str, Resolved] = {}
        for i, req_id in enumerate(batch.req_ids[:n_reqs]):
            bound = self.entries(runner, req_id)
            if not bound:
                continue
            start, stop = starts[i], starts[i + 1]
            if stop <= start:
                continue
            rows = torch.arange(start, stop)
            chunk = None
            needs_tokens = any(scope.needs_tokens for _, scope in bound)
            for rank, (r, scope) in enumerate(bound):
                if isinstance(scope, All):
                    mask: Any = True
                else:
                    if chunk is None:
                        past = int(batch.num_computed_tokens_cpu[i])
                        chunk = self._chunk(runner, req_id, past, input_ids, start, stop, needs_tokens)
                    mask = scope.mask(chunk)
                if mask is False:
                    continue
                picked = rows if mask is True else rows[mask.reshape(-1).cpu()]
                if len(picked):
                    groups.setdefault((rank, r.name, r.strength), []).append(picked)
                    vectors[r.name] = r
        if not groups:
            return None
        self._attach(runner)
        plan: Plan = {}
        for rank in sorted({k[0] for k in groups}):
            per_layer: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
            for (k, name, s), parts in groups.items():
                if k != rank:
                    continue
                rows = torch.cat(parts)
                vec = vectors[name].vector
                for layer in vec.layers:
                    sv = self._scaled_direction(name, vec, s, layer)
                    r_list, v_list = per_layer.setdefault(layer, ([], []))
                    r_list.append(rows)
                    v_list.append(sv.expand(len(rows), -1))
            for layer, (r_list, v_list) in per_layer.items():
                plan.setdefault(layer, []).append((torch.cat(r_list).to(self._device), torch.cat(v_list)))
        return plan

    def _chunk(
        self, runner: Any, req_id: str, past: int, input_ids: torch.Tensor | None, start: int, stop: int, tokens: bool
    ) -> Chunk:
        state = runner.requests[req_id]
        n_prompt = int(state.num_prompt_tokens)
        history = None
        if tokens:
            if input_ids is None or state.prompt_token_ids is None:
                raise RuntimeError("steering: a token-triggered scope needs token ids; this request has embeddings.")
            before = (list(state.prompt_token_ids) + list(state.output_token_ids))[:past]
            history = torch.tensor([before + input_ids[start:stop].tolist()])
        return Chunk(
            past=past,
            length=stop - start,
            batch=1,
            prompt_len=n_prompt,
            prompt_last=torch.tensor([n_prompt - 1]),
            history=history,
            device=torch.device("cpu"),
        )

    def _scaled_direction(self, name: str, vec: Any, s: float, layer: int) -> torch.Tensor:
        dtype = self._dtype
        key = (name, s, layer, dtype)
        sv = self._scaled.get(key)
        if sv is None:  # as steer does it: strength times the direction in the stream's dtype
            self._fits(vec, fingerprint=None, strict=False)  # the width: a vector for another model is refused
            sv = s * vec.directions[layer].to(device=self._device, dtype=dtype)
            if not bool(torch.isfinite(sv).all()):
                raise RuntimeError(f"steering: strength {s:g} times {name!r} at layer {layer} overflows {dtype}.")
            self._scaled[key] = sv
        return sv

    # -- hooks ---------------------------------------------------------------------------------
    def _attach(self, runner: Any) -> None:
        if self._attachment is not None:
            return
        with self._lock:
            if self._attachment is not None:
                return
            from ..apply import check_compatible
            from ..backends import backend_for

            model = runner.get_model()
            backend = backend_for(model)
            layers = backend.layers(model, None)
            param = next(model.parameters())
            self._device, self._dtype = param.device, param.dtype
            self._fits = functools.partial(check_compatible, info=backend.info(model, None), basis=backend.basis(model))
            self._attachment = Attachment([Hook(m, self._writer(i), prepend=True) for i, m in enumerate(layers)])

    def _writer(self, layer: int) -> Any:
        def hook(module: Any, args: Any, output: Any) -> Any:
            plan = self.current
            steps = plan.get(layer) if plan else None
            if not steps:
                return None
            h = output_tensor(output)
            for rows, values in steps:
                h = h.index_add(0, rows, values)
            return replace_output(output, h)

        return hook

    def detach(self) -> None:
        if self._attachment is not None:
            self._attachment.remove()
            self._attachment = None


def default_entries(vector: str, strength: str = "", scope: str = "") -> list[Resolved]:
    """The engine-wide default that ``steering_attach`` sets (strings: dev-mode RPC arguments are strings)."""
    import json

    from ..errors import InvalidArgumentError

    try:
        s = float(strength) if strength else None
    except ValueError:
        raise InvalidArgumentError(f"strength must be a number as a string, e.g. '2.2'; got {strength!r}.") from None
    scope_json = None
    if scope:
        try:
            scope_json = json.loads(scope)
        except json.JSONDecodeError:
            scope_json = scope  # a bare name: "prompt", "generated", ...
    entry = {
        "vector": vector,
        **({} if s is None else {"strength": s}),
        **({} if scope_json is None else {"scope": scope_json}),
    }
    return _resolver().resolve_all(parse({KEY: [entry]}, _resolver().limits) or [])
