"""Cross-task transfer: joint adds task B's fine-tuning loss to every outer step (and still resumes exactly);
sequential fine-tunes on task B after meta-training."""

import json

import pytest
import torch

from conftest import DEVICE, tiny_config
from promptgd.data.encoding import Encoder
from promptgd.data.supervised import SupervisedStream
from promptgd.data.triples import write_jsonl
from promptgd.lm import functional_forward, lm_loss
from promptgd.models.loading import load_model
from promptgd.train.recipe import run_train
from promptgd.train.transfer import task_b_triples
from test_train import copy_tasks, rows, trainer_for

pytestmark = pytest.mark.integration  # whole meta-trainings (and a resume) on a tiny model


def task_b_config(tmp_path, *overrides):
    """Task A: the copy task; task B: a JSONL task whose training file holds 'colour' triples."""
    b = tmp_path / "b.jsonl"
    write_jsonl(copy_tasks(4, seed=9), b)
    write_jsonl(
        [
            t.__class__(f"The colour is {t.response.strip()}.", "The colour:", t.response)
            for t in copy_tasks(32, seed=5)
        ],
        b.with_name("b.train.jsonl"),
    )
    return tiny_config(f"transfer.task_b=jsonl:{b}", "transfer.n_tasks=32", *overrides)


def task_b_loss(model, tokenizer, cfg) -> float:
    stream = SupervisedStream(Encoder(tokenizer, cfg.format), task_b_triples(cfg), batch_size=64, seed=0)
    with torch.no_grad():
        return lm_loss(functional_forward(model), dict(model.named_parameters()), stream.batch(0, DEVICE)).item()


def test_joint_logs_and_lowers_the_task_b_loss_and_resumes_exactly(tmp_path):
    cfg = task_b_config(tmp_path, "transfer.mode=joint", "transfer.weight=1.0", "train.lr=3e-3", "train.ckpt_every=2")
    trainer, model = trainer_for(cfg, tmp_path / "a", task_b=task_b_triples(cfg))
    before = task_b_loss(model, trainer.tokenizer, cfg)
    trainer.train(progress=False)
    logged = [r["task_b"] for r in rows(tmp_path / "a")]
    assert len(logged) == trainer.total_steps and all(v == v for v in logged)  # finite, never NaN
    assert task_b_loss(model, trainer.tokenizer, cfg) < before - 0.5

    first, _ = trainer_for(cfg, tmp_path / "b", task_b=task_b_triples(cfg))
    first.train(progress=False, stop_after=3)
    resumed, resumed_model = trainer_for(cfg, tmp_path / "b", task_b=task_b_triples(cfg))
    resumed.resume()
    resumed.train(progress=False)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), resumed_model.state_dict().values()))


def test_sequential_fine_tunes_on_task_b_after_meta_training(tmp_path):
    common = ("train.n_tasks=8", "train.batch_size=4", "transfer.lr=3e-3")
    plain = run_train(task_b_config(tmp_path, *common), tmp_path / "meta", progress=False)
    cfg = task_b_config(tmp_path, "transfer.mode=sequential", *common)
    sequential = run_train(cfg, tmp_path / "seq", progress=False)
    assert len(json.loads((tmp_path / "seq" / "task_b_losses.json").read_text())) == 8  # 32 triples × 2 formats / 8
    (meta_model, tokenizer), (seq_model, _) = (
        load_model(str(plain), device=DEVICE),
        load_model(str(sequential), device=DEVICE),
    )
    assert task_b_loss(seq_model, tokenizer, cfg) < task_b_loss(meta_model, tokenizer, cfg) - 0.5
