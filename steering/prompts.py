"""Prompts as plain text or chat messages, encoded the same way everywhere.

A prompt is a string (used as given: raw text, or text you templated yourself) or a list of chat
messages (``[{"role": "user", "content": "..."}]``), which go through the tokenizer's chat template
with the generation prompt, as ``apply_chat_template`` does. Beginning-of-sequence is never doubled:
templated text already holds the template's own BOS, so it is encoded without special tokens, and a
string that starts with the BOS token's text is too (DeepSeek-R1-Distill's template begins with
``{{bos_token}}``).

Examples:
    >>> check_prompt([{"role": "user", "content": "Hi"}], "prompt 0")
    ({'role': 'user', 'content': 'Hi'},)
    >>> check_prompt("Q: 2+2=?", "prompt 0")
    'Q: 2+2=?'
    >>> with_instruction([{"role": "user", "content": "2+2?"}], " Be brief.")
    ({'role': 'user', 'content': '2+2? Be brief.'},)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidArgumentError

Message = Mapping[str, str]
Prompt = str | Sequence[Message]


def is_messages(prompt: Any) -> bool:
    return isinstance(prompt, (list, tuple)) and all(isinstance(m, Mapping) for m in prompt)


def check_prompt(prompt: Any, where: str) -> str | tuple[dict[str, str], ...]:
    """A string, or chat messages as a tuple of ``{"role", "content"}`` dicts (refused otherwise)."""
    if isinstance(prompt, str):
        return prompt
    if is_messages(prompt) and prompt:
        out = []
        for i, m in enumerate(prompt):
            if not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise InvalidArgumentError(
                    f"{where}: message {i} needs string 'role' and 'content', got keys {sorted(m)}."
                )
            out.append({"role": m["role"], "content": m["content"]})
        return tuple(out)
    raise InvalidArgumentError(
        f"{where}: a prompt is a string or a non-empty list of chat messages "
        f'([{{"role": "user", "content": "..."}}]), got {type(prompt).__name__}: {prompt!r:.80}.'
    )


def with_instruction(prompt: Prompt, suffix: str) -> Prompt:
    """The prompt with ``suffix`` appended: to the text, or to the last user message of a chat."""
    checked = check_prompt(prompt, "with_instruction")
    if isinstance(checked, str):
        return checked + suffix
    users = [i for i, m in enumerate(checked) if m["role"] == "user"]
    if not users:
        raise InvalidArgumentError(
            f"with_instruction: the chat has no user message to add {suffix!r} to (roles: "
            f"{[m['role'] for m in checked]}); add a user turn, or pass the prompt as text."
        )
    last = users[-1]
    return tuple({**m, "content": m["content"] + suffix} if i == last else m for i, m in enumerate(checked))


def render(tokenizer: Any, prompt: Prompt) -> str:
    """The prompt's text as the model reads it (messages through the chat template, generation prompt added)."""
    if isinstance(prompt, str):
        return prompt
    if not getattr(tokenizer, "chat_template", None):
        raise InvalidArgumentError(
            f"Chat messages need a tokenizer with a chat template; {type(tokenizer).__name__} has none. "
            "Pass the prompt as text instead."
        )
    text = str(tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True))
    last = str(list(prompt)[-1].get("content", "")) if list(prompt)[-1].get("role") == "user" else ""
    if last.strip() and last.strip() not in text:
        raise InvalidArgumentError(
            f"The chat template of {type(tokenizer).__name__} dropped the last message ({last[:40]!r}): it has no "
            "slot for chat roles. Use a chat model's tokenizer, or pass the prompt as text."
        )
    return text


def _has_bos(tokenizer: Any, text: str) -> bool:
    bos = getattr(tokenizer, "bos_token", None)
    return isinstance(bos, str) and bool(bos) and text.startswith(bos)


def encode(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Token ids of a prompt, with exactly the special tokens the model expects at its start."""
    text = render(tokenizer, prompt)
    special = isinstance(prompt, str) and not _has_bos(tokenizer, text)
    return [int(i) for i in tokenizer(text, add_special_tokens=special)["input_ids"]]


def encode_completion(tokenizer: Any, text: str) -> list[int]:
    """Token ids of text that continues a prompt (no special tokens added)."""
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def batch(tokenizer: Any, prompts: Sequence[Prompt], pad: int | None = None) -> Any:
    """Left-padded ``input_ids`` / ``attention_mask`` tensors for ``prompts`` (each encoded by :func:`encode`)."""
    from .backends.inputs import left_pad, pad_id

    rows = [encode(tokenizer, p) for p in prompts]
    if any(not r for r in rows):
        raise InvalidArgumentError("A prompt encodes to no tokens.")
    ids, mask = left_pad(rows, pad_id(tokenizer) if pad is None else pad)
    return {"input_ids": ids, "attention_mask": mask}
