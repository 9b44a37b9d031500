"""Exact figures of tiny trainings and evaluations, to compare two versions of the code (a refactor must leave them
bit-identical): every logged loss term and gradient norm, a SHA-256 of the saved weights, and every evaluation
record's answer, NLL and token accuracy, for ten training variants (LC, LG, first order, LoRA outer and inner,
explicit, 2 steps × 2 sequential contexts, learned step sizes frozen and not, joint transfer) and three evaluations.

    python experiments/refactor_dump.py OUT.json      # run once per version of the code, then compare the files
"""

import hashlib
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import tiny_config  # noqa: E402
from promptgd.evaluate.recipe import run_eval  # noqa: E402
from promptgd.train.recipe import run_train  # noqa: E402

COMMON = [
    "train.n_tasks=12",
    "train.lm_weight=0.1",
    "train.prompt_weight=0.5",
    "warmup.n_tasks=4",
    "inner.lr=0.3",
    "train.lr=3e-3",
]
CASES = {
    "lc": ["train.objective=lc"],
    "lc_first_order": ["train.objective=lc", "train.first_order=true"],
    "lg": ["train.objective=lg"],
    "lc_lora_outer": ["train.objective=lc", "lora.variant=outer"],
    "lg_lora_inner": ["train.objective=lg", "lora.variant=inner", "lora.alpha=8"],
    "lg_explicit": ["train.objective=lg", "inner.implementation=explicit"],
    "lg_steps2_seq_k2": ["train.objective=lg", "inner.steps=2", "inner.contexts=2", "inner.mode=sequential"],
    "lg_step_sizes": ["train.objective=lg", "inner.lr_scales=factored", "train.freeze_weights=true"],
    "lg_step_sizes_full": ["train.objective=lg", "inner.lr_scales=tensor"],
    "lg_joint": ["train.objective=lg", "transfer.mode=joint", "transfer.n_tasks=8"],
}
out = {}
for name, extra in CASES.items():
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        cfg = tiny_config(*COMMON, *extra)
        path = run_train(cfg, d / "run", progress=False)
        rows = [json.loads(line) for line in (d / "run" / "metrics.jsonl").read_text().splitlines()]
        keys = ("outer", "prompt", "lm", "task_b", "grad_norm")
        out[name] = {"metrics": [[r[k] for k in keys] for r in rows]}
        h = hashlib.sha256()
        for f in sorted(Path(path).rglob("*.safetensors")):
            h.update(f.read_bytes())
        out[name]["weights"] = h.hexdigest()
        for ev, over in {
            "ft1": [],
            "ft2_explicit": ["inner.steps=2"],
            "ft_expl": ["inner.implementation=explicit"],
        }.items():
            ecfg = tiny_config(*COMMON, *extra, f"model.spec={path}", "eval.modes=nc,prompt,ft,ft_irrelevant", *over)
            run_eval(ecfg, d / f"eval_{ev}")
            recs = [json.loads(line) for line in (d / f"eval_{ev}" / "predictions.jsonl").read_text().splitlines()]
            out[name][ev] = [[r["mode"], r["index"], r["prediction"], r["nll"], r["token_accuracy"]] for r in recs]
    print(name, out[name]["metrics"][-1], flush=True)
Path(sys.argv[1]).write_text(json.dumps(out))
