"""Tiny, seeded, offline fixtures: a locally trained tokenizer and random-weight models from configs."""

from __future__ import annotations

import functools
import warnings

import pytest
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from steering.hooks import count_hooks

# Scripts run in other environments (llama-cpp-python lives in .venv-llama), not test modules.
collect_ignore = ["llama_worker.py", "vllm_worker.py"]

SPECIALS = ["<pad>", "<bos>", "<eos>", "<think>", "</think>"]
CORPUS = [
    "Question: what is 12 + 7? Let me think step by step. First, 12 + 7 = 19. So the answer is 19.",
    "Q: 3 * 4 = ? Answer: 12. We multiply three by four and get twelve.",
    "Let us restate the problem. We add the numbers, then we subtract. 45 - 13 = 32.",
    "Therefore the result is 8. In short: 5 + 3 = 8.\nStep 1: add.\nStep 2: check.",
    "Wait, alternatively we could compute it directly: 9 * 9 = 81. The answer is 81.",
] * 20


@functools.cache
def _tokenizer_object() -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos)]
    )
    return tok


def make_tokenizer(pad: bool = True, padding_side: str = "left") -> PreTrainedTokenizerFast:
    kwargs = {"pad_token": "<pad>"} if pad else {}
    tok = PreTrainedTokenizerFast(tokenizer_object=_tokenizer_object(), bos_token="<bos>", eos_token="<eos>", **kwargs)
    tok.padding_side = padding_side
    return tok


@pytest.fixture
def tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer()


def _common(tok: PreTrainedTokenizerFast) -> dict:
    return dict(
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        initializer_range=0.2,
    )


def _decoder_kwargs(**extra) -> dict:
    return dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        **extra,
    )


CONFIGS = {
    "gpt2": lambda c: transformers.GPT2Config(n_embd=32, n_layer=3, n_head=4, n_positions=256, **c),
    "llama": lambda c: transformers.LlamaConfig(**_decoder_kwargs(), **c),
    "qwen2": lambda c: transformers.Qwen2Config(**_decoder_kwargs(), **c),
    "qwen3": lambda c: transformers.Qwen3Config(**_decoder_kwargs(head_dim=8), **c),
    "mistral": lambda c: transformers.MistralConfig(**_decoder_kwargs(), **c),
    "gemma2": lambda c: transformers.Gemma2Config(**_decoder_kwargs(head_dim=8), **c),
    "gemma3": lambda c: transformers.Gemma3TextConfig(**_decoder_kwargs(head_dim=8), **c),
    "gpt_neox": lambda c: transformers.GPTNeoXConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=256,
        **c,
    ),
    "phi3": lambda c: transformers.Phi3Config(**_decoder_kwargs(), **c),
}
ARCHS = list(CONFIGS)

_MODELS: list[tuple[torch.nn.Module, int]] = []


def make_model(arch: str = "llama", tok: PreTrainedTokenizerFast | None = None, seed: int = 0) -> torch.nn.Module:
    tok = tok or make_tokenizer()
    config = CONFIGS[arch](_common(tok))
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_config(config)
    model.eval()
    # transformers installs its output-recording hooks lazily on the first call that asks for
    # hidden states; do that now so the hook-hygiene baseline is stable.
    with torch.no_grad():
        model(torch.tensor([[tok.bos_token_id, 5, 6]]), output_hidden_states=True)
    _MODELS.append((model, count_hooks(model)))
    return model


def track_hooks(module: torch.nn.Module) -> None:
    """Hold ``module`` (e.g. a wrapper built around a test model) to its current hook count."""
    _MODELS[:] = [(m, n) for m, n in _MODELS if m is not module]
    _MODELS.append((module, count_hooks(module)))


@pytest.fixture(autouse=True)
def no_leftover_hooks():
    """Every model built during a test must end it with exactly the hooks it was built with."""
    _MODELS.clear()
    yield
    leaked = {type(m).__name__: count_hooks(m) - n for m, n in _MODELS if count_hooks(m) != n}
    _MODELS.clear()
    assert not leaked, f"hooks left attached: {leaked}"
