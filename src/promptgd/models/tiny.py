"""Tiny randomly initialised Llama-architecture models with a byte-level tokenizer: no download, for tests."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

EOS = "<|endoftext|>"

# name -> (hidden size, layers, heads, kv heads, intermediate size). Small enough that a float64
# finite-difference check over every parameter direction we probe takes well under a second.
SIZES = {
    "llama": (64, 2, 4, 2, 128),
    "llama-1l": (32, 1, 2, 1, 64),
    "llama-4l": (128, 4, 4, 2, 256),
}


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """Every UTF-8 byte is one token (ids 0..255) and EOS is 256: any text round-trips exactly."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet, key=lambda c: bytes_order(c)))}
    vocab[EOS] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([EOS])
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS, pad_token=EOS)


def bytes_order(char: str) -> int:
    """The byte that GPT-2's byte-to-unicode table maps to `char`, so token id == byte value."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    if ord(char) in printable:
        return ord(char)
    others = [b for b in range(256) if b not in printable]
    return others[ord(char) - 256]


def tiny_model(
    name: str, dtype: torch.dtype = torch.float32, seed: int = 0
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    if name not in SIZES:
        raise ValueError(f"unknown tiny model 'tiny:{name}'; known: {', '.join('tiny:' + n for n in SIZES)}")
    hidden, layers, heads, kv_heads, intermediate = SIZES[name]
    tokenizer = byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=intermediate,
        max_position_embeddings=1024,
        tie_word_embeddings=True,  # like SmolLM2 and Llama-3.2-1B, so tests exercise tied weights
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation="eager",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.to(dtype), tokenizer
