"""SoftCoT-style soft thoughts on a frozen backbone (Xu et al. 2025, arXiv 2502.12134).

A frozen *assistant* (a smaller model, or a frozen copy of the backbone) reads the problem followed
by ``k`` placeholder tokens; its last-layer hidden states at those placeholders go through a trained
projection and replace the backbone's input embeddings at the backbone's own ``k`` placeholders.
Only the projection is trained; the backbone's and assistant's weights never change, so the
backbone behaves exactly as before on any input without placeholders.

    projection, losses = train_soft_thoughts(backbone, assistant, tok, prompts, targets, k=4)
    with soft_thoughts(backbone, assistant, projection, placeholder_id=tok.unk_token_id):
        backbone.generate(**with_placeholders(tok, prompts, projection.k))

Modules: ``model.py`` (the projection, placeholders), ``apply.py`` (the hooks, through
:mod:`steering.hooks`), ``train.py``, ``io.py`` (files in the library's one header format).
"""

from .apply import assistant_states, soft_thoughts
from .io import FORMAT, FORMAT_VERSION, load_soft_thoughts, save_soft_thoughts
from .model import SoftThoughts, assistant_inputs, placeholder_row, with_placeholders
from .train import train_soft_thoughts

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SoftThoughts",
    "assistant_inputs",
    "assistant_states",
    "load_soft_thoughts",
    "placeholder_row",
    "save_soft_thoughts",
    "soft_thoughts",
    "train_soft_thoughts",
    "with_placeholders",
]
