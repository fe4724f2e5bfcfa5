"""End-to-end in a minute on a CPU: pairs -> vector -> steered generation -> saved file.

Runs offline on a tiny random-weight Llama and a character tokenizer built here, so it shows the
mechanics (not a meaningful behaviour change; the bundled demo model is for that).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import steering


def char_tokenizer() -> PreTrainedTokenizerFast:
    chars = sorted(set("0123456789+-*=?.:,;!() abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n"))
    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>")


def main() -> None:
    torch.manual_seed(0)
    tok = char_tokenizer()
    tok.padding_side = "left"
    model = LlamaForCausalLM(
        LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                    num_attention_heads=4, num_key_value_heads=2, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    ).eval()

    # positive = the behaviour to steer towards (concise), negative = away from (verbose).
    pairs = [
        steering.Pair(f"{a}+{b}=?", positive=f" {a + b}.", negative=f" let me think: {a} plus {b} is {a + b}.")
        for a in range(1, 8) for b in range(1, 8)
    ]
    vec = steering.extract(model, tok, pairs, layers=[1, 2], method="mean_diff", position="last")
    print(f"extracted from {len(pairs)} pairs, layers {vec.layers}, norms",
          {la: round(d["norm"], 2) for la, d in vec.metadata["diagnostics"].items()})

    inputs = tok(["3+4=?", "12+7=?"], return_tensors="pt", padding=True)
    greedy = dict(max_new_tokens=12, do_sample=False, pad_token_id=0)
    base = model.generate(**inputs, **greedy)
    with steering.steer(model, vec, strength=4.0, scope=("prompt_last", "generated")):
        steered = model.generate(**inputs, **greedy)
    width = inputs["input_ids"].shape[1]
    for row in range(2):
        print(f"base   : {tok.decode(base[row, width:])!r}")
        print(f"steered: {tok.decode(steered[row, width:])!r}")

    with tempfile.TemporaryDirectory() as d:
        path = vec.save(Path(d) / "concise.safetensors")
        again = steering.SteeringVector.load(path)
        print(f"saved and reloaded {path.name}: {again.metadata['method']} at {again.metadata['position']}")


if __name__ == "__main__":
    main()
