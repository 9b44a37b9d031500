"""Write a randomly initialised model with a published model's shapes, for speed and memory benchmarks
where its weights cannot be downloaded (the GPU machines here have no internet).

    python benchmarks/shaped_model.py --shape llama-3.2-1b --tokenizer DIR --out /tmp/llama-3.2-1b-shaped
    python benchmarks/metastep.py --model /tmp/llama-3.2-1b-shaped --out results/benchmarks/bench_metastep_gpu

Time and memory depend only on shapes, not on the weights' values, so the numbers transfer to the real
model; accuracies do not. The tokenizer is borrowed (any local HF tokenizer directory) and its ids must
fit the vocabulary: SmolLM2's 49152 ids fit Llama's 128256 rows. Token counts therefore follow the
borrowed tokenizer, which the benchmark prints beside its timings.
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

# The hub's config.json of each model, copied: the fields that set compute and memory.
SHAPES = {
    "llama-3.2-1b": dict(
        vocab_size=128256,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        max_position_embeddings=131072,
        rope_theta=500000.0,
        tie_word_embeddings=True,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama-3.2-1b")
    parser.add_argument("--layers", type=int, help="fewer layers than the real model (a quick check of this script)")
    parser.add_argument("--tokenizer", required=True, help="local HF tokenizer directory to save beside the model")
    parser.add_argument("--out", required=True, help="directory for the save_pretrained checkpoint")
    args = parser.parse_args()

    shape = dict(SHAPES[args.shape])
    if args.layers is not None:
        shape["num_hidden_layers"] = args.layers
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    if len(tokenizer) > shape["vocab_size"]:
        raise SystemExit(
            f"--tokenizer {args.tokenizer} has {len(tokenizer)} ids; {args.shape} has {shape['vocab_size']} rows"
        )
    config = LlamaConfig(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: {args.shape}-shaped, {n_params / 1e9:.3f} B parameters, random weights")


if __name__ == "__main__":
    main()
