"""SoftCoT-style soft thoughts on a frozen backbone (Xu et al. 2025, arXiv 2502.12134).

A frozen *assistant* (a smaller model, or a frozen copy of the backbone) reads the problem followed
by ``k`` placeholder tokens; its last-layer hidden states at those placeholders go through a trained
projection and replace the backbone's input embeddings at the backbone's own ``k`` placeholders.
Only the projection is trained; the backbone's and assistant's weights never change, so the
backbone behaves exactly as before on any input without placeholders.

    projection, losses = train_soft_thoughts(backbone, assistant, tok, prompts, targets, k=4)
    with soft_thoughts(backbone, assistant, projection, placeholder_id=tok.unk_token_id):
        backbone.generate(**with_placeholders(tok, prompts, projection.k))

Hooks go through :mod:`steering.hooks`: a pre-hook where the backbone's decoder receives the input
ids (to run the assistant on the prompt pass) and a forward hook on its input embeddings.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from . import backends
from .atomic import atomic_write
from .errors import ShapeMismatchError, UnknownOptionError, VectorFileError
from .hooks import Hook, StopForward, attached, output_tensor

FORMAT = "steering.softcot"
FORMAT_VERSION = 1


class SoftThoughts(nn.Module):
    """The trained part: one linear map from assistant states to backbone input embeddings."""

    def __init__(self, d_assistant: int, d_backbone: int, k: int, scale: float = 1.0) -> None:
        super().__init__()
        if k < 1:
            raise UnknownOptionError(f"k (the number of soft thoughts) must be >= 1, got {k}.")
        self.k = k
        self.proj = nn.Linear(d_assistant, d_backbone)
        nn.init.normal_(self.proj.weight, std=scale / d_assistant**0.5)
        nn.init.zeros_(self.proj.bias)

    def forward(self, states: Float[Tensor, "batch k d_assistant"]) -> Float[Tensor, "batch k d_backbone"]:
        return self.proj(states)


def placeholder_row(tokenizer: Any, prompt: str, k: int, pid: int, where: str = "before") -> list[int]:
    """The backbone's input ids for one prompt: ``k`` placeholders after its leading BOS, or at its end."""
    ids = [int(i) for i in tokenizer(prompt)["input_ids"]]
    if where == "after":
        return [*ids, *([pid] * k)]
    if where != "before":
        raise UnknownOptionError(f"where must be 'before' or 'after' the prompt, got {where!r}.")
    head = 1 if ids and ids[0] == getattr(tokenizer, "bos_token_id", None) else 0
    return [*ids[:head], *([pid] * k), *ids[head:]]


def with_placeholders(
    tokenizer: Any, prompts: Sequence[str], k: int, placeholder_id: int | None = None, where: str = "before"
) -> Any:
    """Left-padded encodings of the prompts with ``k`` placeholders ``"before"`` or ``"after"`` each."""
    pid = _placeholder(tokenizer, placeholder_id)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        rows = [placeholder_row(tokenizer, p, k, pid, where) for p in prompts]
        return tokenizer.pad({"input_ids": rows}, return_tensors="pt")
    finally:
        tokenizer.padding_side = side


def _placeholder(tokenizer: Any, placeholder_id: int | None) -> int:
    pid = placeholder_id if placeholder_id is not None else getattr(tokenizer, "unk_token_id", None)
    if not isinstance(pid, int) or pid == getattr(tokenizer, "pad_token_id", None):
        raise UnknownOptionError(
            f"Soft thoughts need a placeholder token id that is not the pad token (got {pid!r}); pass "
            "placeholder_id= a token the prompts never contain (the tokenizer's unk token is the default)."
        )
    return pid


def _positions(ids: Tensor, pid: int, k: int) -> Tensor | None:
    """``(B, k)`` placeholder positions per row; ``None`` if this input has none."""
    hits = ids == pid
    counts = hits.sum(1)
    if not bool(counts.any()):
        return None
    if not bool((counts == k).all()):
        raise ShapeMismatchError(
            f"Each row needs exactly {k} placeholder tokens (id {pid}); got {counts.tolist()}. Build inputs with "
            "with_placeholders(), and make sure prompts do not contain the placeholder token."
        )
    order = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
    return torch.where(hits, order, ids.shape[1]).sort(dim=1).values[:, :k]


def assistant_inputs(ids: Tensor, mask: Tensor, pid: int, k: int) -> tuple[Tensor, Tensor]:
    """What the assistant reads: each row's real tokens without placeholders, then ``k`` placeholders."""
    rows = []
    for r in range(ids.shape[0]):
        real = ids[r][mask[r].bool()]
        rows.append(torch.cat([real[real != pid], torch.full((k,), pid, dtype=ids.dtype, device=ids.device)]))
    width = max(len(r) for r in rows)
    out = torch.zeros((len(rows), width), dtype=ids.dtype, device=ids.device)
    out_mask = torch.zeros_like(out)
    for i, row in enumerate(rows):
        out[i, width - len(row) :] = row
        out_mask[i, width - len(row) :] = 1
    return out, out_mask


def assistant_states(
    assistant: nn.Module, input_ids: Tensor, attention_mask: Tensor, positions: Tensor
) -> Float[Tensor, "batch k d_assistant"]:
    """The assistant's last decoder layer output at ``positions`` (one pass, stopped there)."""
    backend = backends.backend_for(assistant)
    last = backend.layers(assistant)[-1]
    got: list[Tensor] = []

    def read(module: Any, args: Any, output: Any) -> None:
        h = output_tensor(output)
        got.append(h.gather(1, positions.to(h.device)[..., None].expand(-1, -1, h.shape[-1])))
        raise StopForward

    with attached([Hook(last, read)]), torch.no_grad():
        try:
            device = backend.device(assistant)
            backend.run(assistant, input_ids.to(device), attention_mask.to(device))
        except StopForward:
            pass
    return got[0].float()


@contextmanager
def soft_thoughts(
    backbone: nn.Module,
    assistant: nn.Module,
    projection: SoftThoughts,
    *,
    placeholder_id: int,
) -> Iterator[None]:
    """Inside the block, every prompt pass of ``backbone`` gets soft thoughts at its placeholders.

    The assistant runs once per prompt pass and reads each row's prompt followed by ``k``
    placeholders (wherever the backbone's own placeholders are); decode steps are untouched.
    """
    if assistant is backbone:
        raise UnknownOptionError("Pass a frozen copy of the backbone as the assistant (copy.deepcopy), not itself.")
    backend = backends.backend_for(backbone)
    if backend.NAME != "hf":
        raise UnknownOptionError("Soft thoughts are implemented for Hugging Face models only.")
    embed = backbone.get_input_embeddings()  # type: ignore[operator]
    pending: dict[str, Tensor] = {}
    previous: dict[str, Tensor] = {}  # the last prompt pass (reused when generating without a cache)

    def prepare(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        pending.clear()
        bound = backend.bind_inputs(module, args, kwargs)
        ids = bound.get("input_ids")
        if not isinstance(ids, Tensor) or (backend.past_length(bound) or 0) > 0:
            return
        where = _positions(ids, placeholder_id, projection.k)
        if where is None:
            return
        prev = previous.get("ids")
        # Generation without a KV cache re-runs the prompt each step (never reused across training steps).
        if prev is not None and not torch.is_grad_enabled() and prev.shape[0] == ids.shape[0]:
            if prev.shape[1] < ids.shape[1] and torch.equal(ids[:, : prev.shape[1]], prev):
                previous["ids"] = ids
                pending.update(thoughts=previous["thoughts"], where=where)
                return
        mask = bound.get("attention_mask")
        mask = mask if isinstance(mask, Tensor) and mask.ndim == 2 else torch.ones_like(ids)
        a_ids, a_mask = assistant_inputs(ids, mask, placeholder_id, projection.k)
        last_k = torch.arange(a_ids.shape[1] - projection.k, a_ids.shape[1], device=a_ids.device)
        states = assistant_states(assistant, a_ids, a_mask, last_k.expand(a_ids.shape[0], -1))
        pending["thoughts"] = projection(states.to(projection.proj.weight.device))
        pending["where"] = where
        previous.update(ids=ids, thoughts=pending["thoughts"])

    def inject(module: Any, args: Any, output: Tensor) -> Tensor | None:
        if "thoughts" not in pending:
            return None
        where, thoughts = pending.pop("where"), pending.pop("thoughts")
        index = where.to(output.device)[..., None].expand(-1, -1, output.shape[-1])
        return output.scatter(1, index, thoughts.to(output.dtype))

    owner = backend.inputs_module(backbone)
    with attached([Hook(owner, prepare, kind="pre", with_kwargs=True), Hook(embed, inject)]):
        yield


def train_soft_thoughts(
    backbone: nn.Module,
    assistant: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    targets: Sequence[str],
    *,
    k: int = 4,
    steps: int = 300,
    lr: float = 3e-3,
    batch_size: int = 32,
    seed: int = 0,
    placeholder_id: int | None = None,
    where: str = "before",
) -> tuple[SoftThoughts, list[float]]:
    """Train only the projection so that ``backbone(prompt + soft thoughts)`` writes ``target``.

    Loss: cross-entropy on the target tokens. Returns the projection and the loss per step.
    """
    if len(prompts) != len(targets) or not prompts:
        raise UnknownOptionError(f"Need as many targets as prompts (got {len(prompts)} and {len(targets)}).")
    pid = _placeholder(tokenizer, placeholder_id)
    d_a = backends.backend_for(assistant).info(assistant).hidden_size
    d_b = backends.backend_for(backbone).info(backbone).hidden_size
    torch.manual_seed(seed)
    projection = SoftThoughts(d_a, d_b, k).to(backends.backend_for(backbone).device(backbone))
    frozen = [(p, p.requires_grad) for m in (backbone, assistant) for p in m.parameters()]
    modes = [(m, m.training) for m in (backbone, assistant)]
    for p, _ in frozen:
        p.requires_grad_(False)
    backbone.eval()
    assistant.eval()
    optimizer = torch.optim.AdamW(projection.parameters(), lr=lr, weight_decay=0.0)
    encoded = [
        (placeholder_row(tokenizer, p, k, pid, where), tokenizer(t, add_special_tokens=False)["input_ids"])
        for p, t in zip(prompts, targets)
    ]
    rng = random.Random(seed)
    losses = []
    device = backends.backend_for(backbone).device(backbone)
    try:
        with soft_thoughts(backbone, assistant, projection, placeholder_id=pid):
            for _ in range(steps):
                batch = [encoded[rng.randrange(len(encoded))] for _ in range(batch_size)]
                width = max(len(a) + len(b) for a, b in batch)
                ids = torch.full((len(batch), width), tokenizer.pad_token_id or 0, dtype=torch.long)
                mask = torch.zeros_like(ids)
                labels = torch.full_like(ids, -100)
                for r, (a, b) in enumerate(batch):
                    row = a + b
                    ids[r, width - len(row) :] = torch.tensor(row)  # left padding, like generation
                    mask[r, width - len(row) :] = 1
                    labels[r, width - len(b) :] = torch.tensor(b)
                position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = backbone(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    position_ids=position_ids.to(device),
                    use_cache=False,
                ).logits
                loss = nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1).to(device)
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
        for m, training in modes:
            m.train(training)
    projection.eval()
    return projection, losses


def save_soft_thoughts(
    projection: SoftThoughts, path: str | os.PathLike[str], *, backbone: nn.Module, assistant: nn.Module, **extra: Any
) -> Path:
    """Write the projection as safetensors; its metadata names (and fingerprints) both models."""

    def describe(model: nn.Module) -> dict[str, Any]:
        backend = backends.backend_for(model)
        info = backend.info(model)
        return {"model": info.name, "fingerprint": backend.fingerprint(model), "hidden_size": info.hidden_size}

    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "k": projection.k,
        "backbone": describe(backbone),
        "assistant": describe(assistant),
        **extra,
    }
    tensors = {name: t.detach().cpu().contiguous() for name, t in projection.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"steering": json.dumps(meta)}))


def load_soft_thoughts(path: str | os.PathLike[str]) -> tuple[SoftThoughts, dict[str, Any]]:
    """The projection and its metadata (check ``metadata["backbone"]`` against your model)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        meta = json.loads(header.get("steering", "{}"))
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise VectorFileError(f"{path} is not a soft-thoughts file ({e}).") from e
    if meta.get("format") != FORMAT:
        raise VectorFileError(f"{path} has format {meta.get('format')!r}, not {FORMAT!r}.")
    weight = tensors["proj.weight"]  # (d_backbone, d_assistant)
    projection = SoftThoughts(weight.shape[1], weight.shape[0], int(meta["k"]))
    projection.load_state_dict(tensors)
    return projection.eval(), meta
