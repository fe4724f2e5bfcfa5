"""Training the projection of soft thoughts; the backbone and the assistant stay frozen."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..backends import backend_for
from ..backends.inputs import left_pad, pad_id, position_ids
from ..errors import InvalidArgumentError
from ..prompts import Prompt, encode_completion
from .apply import soft_thoughts
from .model import SoftThoughts, placeholder_id_for, placeholder_row


def train_soft_thoughts(
    backbone: nn.Module,
    assistant: nn.Module,
    tokenizer: Any,
    prompts: Sequence[Prompt],
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
        raise InvalidArgumentError(f"Need as many targets as prompts (got {len(prompts)} and {len(targets)}).")
    pid = placeholder_id_for(tokenizer, placeholder_id)
    d_a = backend_for(assistant).info(assistant).hidden_size
    back = backend_for(backbone)
    d_b = back.info(backbone).hidden_size
    device = back.device(backbone)
    torch.manual_seed(seed)
    projection = SoftThoughts(d_a, d_b, k).to(device)
    frozen = [(p, p.requires_grad) for m in (backbone, assistant) for p in m.parameters()]
    modes = [(m, m.training) for m in (backbone, assistant)]
    for p, _ in frozen:
        p.requires_grad_(False)
    backbone.eval()
    assistant.eval()
    optimizer = torch.optim.AdamW(projection.parameters(), lr=lr, weight_decay=0.0)
    encoded = [
        (placeholder_row(tokenizer, p, k, pid, where), encode_completion(tokenizer, t))
        for p, t in zip(prompts, targets)
    ]
    rng = random.Random(seed)
    losses = []
    try:
        with soft_thoughts(backbone, assistant, projection, placeholder_id=pid):
            for _ in range(steps):
                batch = [encoded[rng.randrange(len(encoded))] for _ in range(batch_size)]
                ids, mask = left_pad([a + b for a, b in batch], pad_id(tokenizer))  # left padding, like generation
                labels = torch.full_like(ids, -100)
                for r, (_, b) in enumerate(batch):
                    labels[r, ids.shape[1] - len(b) :] = torch.tensor(b)
                logits = backbone(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    position_ids=position_ids(mask).to(device),
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
