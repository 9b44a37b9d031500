"""Golden losses: the training recipe (format warm-up, then meta-training) on a tiny model reproduces the logged
loss terms and gradient norms recorded when this test was written, step by step. A change anywhere on the path
(tokenisation, task order, inner step, objectives, the Prompt and LM terms, clipping, Adam, LoRA merging) shows up
here as a number that moved, which the behavioural tests (losses fall, gradients match finite differences) would
let through. If a change is meant to alter the numbers, regenerate them and say why in the commit."""

import json

import pytest

from promptgd.train.recipe import run_train

from conftest import DEVICE, tiny_config

COMMON = ["train.n_tasks=12", "train.lm_weight=0.1", "train.prompt_weight=0.5", "warmup.n_tasks=4", "inner.lr=0.3", "train.lr=3e-3"]
CASES = {
    "lc": ["train.objective=lc"],
    "lc_first_order": ["train.objective=lc", "train.first_order=true"],
    "lg": ["train.objective=lg"],
    "lc_lora_outer": ["train.objective=lc", "lora.variant=outer"],
}
# (outer, prompt, lm, grad_norm) per outer step, measured on the CPU in float32 (torch 2.13).
GOLDEN = {
    "lc": [
        (0.3650373, 0, 5.617131, 11.18908),
        (0.08115923, 0.04932187, 5.656937, 2.749099),
        (0.1225025, 0.04667573, 5.616114, 2.509653),
        (0.275151, 0.04648163, 5.551174, 5.035446),
        (0.1184612, 0.05115086, 5.447427, 2.332235),
        (0.1024893, 0.08176998, 5.57535, 1.428374),
    ],
    "lc_first_order": [
        (0.3650372, 0, 5.617131, 2.773167),
        (0.1960572, 0.02089727, 5.58778, 2.027987),
        (0.1478769, 0.01513349, 5.501241, 2.029506),
        (0.06333982, 0.019019, 5.557371, 1.451243),
        (0.1077608, 0.0235897, 5.499869, 1.172238),
        (0.1256022, 0.04070992, 5.575462, 1.459955),
    ],
    "lg": [
        (76.3091, 85.3391, 5.617131, 157.5908),
        (79.41613, 96.44438, 5.459932, 132.7575),
        (66.22332, 80.57822, 5.115355, 60.88976),
        (65.17028, 74.57293, 5.086842, 455.2703),
        (67.82595, 77.44039, 4.877137, 129.2271),
        (57.58302, 67.58052, 4.773452, 54.36664),
    ],
    "lc_lora_outer": [
        (0.3650373, 0, 5.617131, 0.6407101),
        (0.3651664, 1.331365e-05, 5.597849, 0.9124282),
        (0.2940191, 0.0001339308, 5.429922, 0.8716186),
        (0.2385327, 0.0004734737, 5.492474, 0.9771478),
        (0.246577, 0.0009058833, 5.608185, 0.9770732),
        (0.191754, 0.001305185, 5.575454, 0.689967),
    ],
}
# Other devices sum in other orders; over six Adam steps that moves the figures by far less than 0.1%.
REL = 1e-4 if DEVICE == "cpu" else 1e-3


@pytest.mark.parametrize("case", CASES)
def test_recipe_reproduces_golden_losses(tmp_path, case):
    run_train(tiny_config(*COMMON, *CASES[case]), tmp_path, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [tuple(row[k] for k in ("outer", "prompt", "lm", "grad_norm")) for row in rows]
    assert len(logged) == len(GOLDEN[case])
    for step, (got, expected) in enumerate(zip(logged, GOLDEN[case]), start=1):
        assert got == pytest.approx(expected, rel=REL, abs=1e-6), f"step {step}"
