"""Meta-training: losses fall, resuming equals not stopping, the teacher stays frozen, bad steps are skipped,
checkpoints are atomic, and the result is a plain Hugging Face checkpoint."""

import json
import math
import shutil

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from conftest import DEVICE, TINY, tiny_config
from promptgd.data.partition import load_partition
from promptgd.data.triples import Triple
from promptgd.models.loading import load_model
from promptgd.models.parameterization import full_rank
from promptgd.train import checkpoint
from promptgd.train.recipe import run_train
from promptgd.train.trainer import MetaTrainer


def copy_tasks(n: int, seed: int = 0) -> list[Triple]:
    g = torch.Generator().manual_seed(seed)
    words = ["".join(chr(97 + i) for i in torch.randint(26, (3,), generator=g).tolist()) for _ in range(n)]
    return [Triple(f"The code is {w}.", "The code:", f" {w}") for w in words]


def trainer_for(cfg, out, tasks=None, task_b=()):
    model, tokenizer = load_model(cfg.model.spec, cfg.model.dtype, cfg.model.device)
    return MetaTrainer(cfg, tokenizer, full_rank(model), tasks or copy_tasks(48), [], out, task_b), model


def rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.integration
@pytest.mark.parametrize("objective", ["lc", "lg"])
def test_outer_loss_falls_on_a_tiny_copy_task(tmp_path, objective):
    cfg = tiny_config(
        f"train.objective={objective}",
        "train.lr=3e-3",
        "inner.lr=0.3",
        "train.lm_weight=0.0",
        "train.lr_schedule=constant",
        "train.batch_size=4",
        "train.epochs=3",
    )
    trainer, _ = trainer_for(cfg, tmp_path)
    trainer.train(progress=False)
    losses = [r["outer"] for r in rows(tmp_path)]
    assert len(losses) == 36
    assert sum(losses[-6:]) / 6 < 0.7 * sum(losses[:6]) / 6


@pytest.mark.integration
def test_resume_equals_uninterrupted(tmp_path):
    cfg = tiny_config("train.objective=lc", "train.lr=1e-3", "train.ckpt_every=3", "train.lm_weight=0.5")
    straight, straight_model = trainer_for(cfg, tmp_path / "a")
    straight.train(progress=False)

    first, _ = trainer_for(cfg, tmp_path / "b")
    first.train(progress=False, stop_after=5)  # "crash" after step 5; the last checkpoint is at step 5
    with (tmp_path / "b" / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 6, "outer": 123.0}) + "\n")  # a row the crashed run logged after it
    resumed, resumed_model = trainer_for(cfg, tmp_path / "b")
    resumed.resume()
    assert resumed.step == 5
    assert resumed.seconds == first.seconds > 0  # the checkpoint carries the time spent reaching it
    for p in resumed_model.parameters():  # Adam's moments beside their parameter, its step counter on the CPU
        state = resumed.optimizer.state[p]
        assert state["exp_avg"].device == p.device and state["step"].device.type == "cpu"
    resumed.train(progress=False)
    assert resumed.seconds > first.seconds

    for (name, a), b in zip(straight_model.named_parameters(), resumed_model.parameters()):
        assert torch.equal(a, b), name
    assert [r["outer"] for r in rows(tmp_path / "a")] == [r["outer"] for r in rows(tmp_path / "b")]


@pytest.mark.integration
def test_a_resumed_run_reports_its_whole_training_time(tmp_path):
    cfg = tiny_config("train.ckpt_every=2", "train.n_tasks=6", "train.batch_size=1")
    part = load_partition(cfg)
    first, _ = trainer_for(cfg, tmp_path, part.meta)
    first.train(progress=False, stop_after=4)
    run_train(cfg, tmp_path, resume=True, progress=False, part=part)
    timing = json.loads((tmp_path / "train_seconds.json").read_text())
    assert timing["steps"] == 6 and timing["seconds"] > first.seconds


@pytest.mark.integration
def test_a_fresh_start_drops_rows_of_a_run_that_crashed_before_its_first_checkpoint(tmp_path):
    cfg = tiny_config("train.objective=lg")
    crashed, _ = trainer_for(cfg, tmp_path, copy_tasks(6))
    crashed.train(progress=False, stop_after=2)
    shutil.rmtree(tmp_path / "checkpoints")  # as if it died before writing one: nothing to resume from
    fresh, _ = trainer_for(cfg, tmp_path, copy_tasks(6))
    fresh.train(progress=False)
    assert [r["step"] for r in rows(tmp_path)] == [1, 2, 3]


def test_teacher_stays_frozen(tmp_path):
    cfg = tiny_config("train.objective=lc", "train.lr=1e-2")
    trainer, model = trainer_for(cfg, tmp_path)
    teacher_before = {k: v.clone() for k, v in trainer.objective.teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.train(progress=False, stop_after=3)
    assert all(torch.equal(teacher_before[k], v) for k, v in trainer.objective.teacher.state_dict().items())
    assert not all(torch.equal(student_before[k], v) for k, v in model.state_dict().items())
    assert all(not p.requires_grad and p.grad is None for p in trainer.objective.teacher.parameters())


def test_non_finite_step_is_skipped_and_counted(tmp_path, monkeypatch):
    cfg = tiny_config("train.objective=lg", "train.lr=1e-2")
    trainer, model = trainer_for(cfg, tmp_path)
    real_meta_loss = __import__("promptgd.train.loss_terms", fromlist=["meta_loss"]).meta_loss
    poisoned = {"calls": 0}  # > 0 while step 2 runs: its first pass's loss becomes NaN

    def sometimes_nan(*args, **kwargs):
        loss = real_meta_loss(*args, **kwargs)
        if poisoned["calls"]:
            poisoned["calls"] += 1
            return loss * float("nan") if poisoned["calls"] == 2 else loss
        return loss

    monkeypatch.setattr("promptgd.train.loss_terms.meta_loss", sometimes_nan)
    before = {k: v.clone() for k, v in model.named_parameters()}
    trainer.train_step()
    after_first = {k: v.clone() for k, v in model.named_parameters()}
    poisoned["calls"] = 1
    row = trainer.train_step()
    poisoned["calls"] = 0
    assert row["skipped"] == 1 and math.isnan(row["outer"])
    assert all(torch.equal(after_first[k], v) for k, v in model.named_parameters())  # no update on the bad step
    assert not all(torch.equal(before[k], after_first[k]) for k in before)
    assert trainer.train_step()["skipped"] == 1  # and training carries on


def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    checkpoint.save_checkpoint(root, 1, {"w": torch.ones(2)}, {"step": 1})

    def broken_save(tensors, path):
        open(path, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", broken_save)
    with pytest.raises(OSError):
        checkpoint.save_checkpoint(root, 2, {"w": torch.zeros(2)}, {"step": 2})
    tensors, meta = checkpoint.load_checkpoint(root)
    assert meta["step"] == 1 and torch.equal(tensors["w"], torch.ones(2))
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_00000001"]


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tmp_path, capsys):
    root = tmp_path / "checkpoints"
    checkpoint.save_checkpoint(root, 1, {"w": torch.ones(2)}, {"step": 1})
    checkpoint.save_checkpoint(root, 2, {"w": torch.zeros(2)}, {"step": 2})
    weights = root / "step_00000002" / "tensors.safetensors"
    weights.write_bytes(weights.read_bytes()[:20])  # truncated on disk after it was written
    tensors, meta = checkpoint.load_checkpoint(root)
    assert meta["step"] == 1 and torch.equal(tensors["w"], torch.ones(2))
    assert f"skipping checkpoint {root / 'step_00000002'}: it does not load" in capsys.readouterr().err
    (root / "step_00000001" / "state.json").write_text('{"step": ')
    with pytest.raises(FileNotFoundError, match="no checkpoint loads"):
        checkpoint.load_checkpoint(root)


@pytest.mark.integration
def test_a_run_whose_every_step_diverged_fails_and_saves_no_model(tmp_path, capsys):
    from promptgd.cli import main

    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        main(["train", *TINY, "train.n_tasks=4", "inner.lr=1e30", "--out", str(out)])
    assert stopped.value.code == 2
    assert "train: 2 of 2 steps were skipped for a non-finite loss or gradient" in capsys.readouterr().err
    assert not (out / "model").exists()


@pytest.mark.integration
def test_train_saves_a_plain_hf_checkpoint(tmp_path):
    cfg = tiny_config("train.objective=lg", "train.n_tasks=4", "warmup.n_tasks=4")
    path = run_train(cfg, tmp_path, progress=False)
    loaded = AutoModelForCausalLM.from_pretrained(path)
    ours, _ = load_model(str(path), device=DEVICE)
    ids = torch.tensor([[5, 6, 7]])
    assert torch.allclose(loaded(ids).logits, ours(ids.to(DEVICE)).logits.cpu(), atol=1e-5)  # SDPA there, eager here
    assert (tmp_path / "start_model" / "config.json").is_file()
    assert [r["step"] for r in rows(tmp_path)] == [1, 2]


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["batched", "sequential"])
def test_multi_context_meta_training_absorbs_k_contexts_per_update(tmp_path, mode):
    cfg = tiny_config(
        "train.objective=lg",
        "inner.contexts=3",
        f"inner.mode={mode}",
        "train.batch_size=2",
        "train.lr=3e-3",
        "inner.lr=0.3",
        "train.lm_weight=0.0",
        "train.lr_schedule=constant",
        "train.epochs=2",
    )
    trainer, _ = trainer_for(cfg, tmp_path, copy_tasks(24))
    first = trainer.order[:6]
    tasks = trainer.objective.tasks(trainer.tasks, first, [first[:3], first[3:]])
    assert len(tasks) == 2 and all(len(t.contexts) == 3 and t.queries.input_ids.shape[0] == 3 for t in tasks)
    trainer.train(progress=False)
    losses = [r["outer"] for r in rows(tmp_path)]
    assert len(losses) == 8 and sum(losses[-2:]) < sum(losses[:2])


@pytest.mark.parametrize("objective", ["lc", "lg"])
def test_prompt_term_is_logged_and_changes_the_update(tmp_path, objective):
    base = [f"train.objective={objective}", "train.lr=1e-2", "train.lm_weight=0.0"]
    plain, plain_model = trainer_for(tiny_config(*base), tmp_path / "a")
    kept, kept_model = trainer_for(tiny_config(*base, "train.prompt_weight=1.0"), tmp_path / "b")
    assert plain.train_step()["prompt"] == 0.0
    kept.train_step()  # LC's Prompt-mode KL is exactly 0 until the student has moved away from the teacher
    row = kept.train_step()
    assert row["prompt"] > 0 and row["loss"] == pytest.approx(row["outer"] + row["prompt"])
    plain.train_step()
    assert not torch.equal(plain_model.model.embed_tokens.weight, kept_model.model.embed_tokens.weight)


@pytest.mark.integration
def test_a_meta_trained_model_is_evaluated_and_used_with_the_step_it_was_trained_for(tmp_path, capsys, triples):
    from promptgd.api import absorb
    from promptgd.cli import main

    run_train(tiny_config("inner.lr=0.037", "train.n_tasks=4"), tmp_path / "run", progress=False)
    model_dir = tmp_path / "run" / "model"
    common = [
        f"model.device={DEVICE}",
        "eval.max_new_tokens=4",
        "--model",
        str(model_dir),
        "--task",
        "character_descriptions",
        "task.n_train=40",
        "task.n_test=3",
        "--split",
        "test",
        "--modes",
        "ft",
    ]
    main(["eval", *common, "--out", str(tmp_path / "no-preset")])
    assert "inner.lr=0.037" in capsys.readouterr().err  # says where the step came from
    recorded = yaml.safe_load((tmp_path / "no-preset" / "config.yaml").read_text())
    assert recorded["inner"]["lr"] == 0.037
    main(["eval", *common, "inner.lr=0.037", "--out", str(tmp_path / "explicit")])
    summaries = [json.loads((tmp_path / d / "summary.json").read_text())["modes"] for d in ("no-preset", "explicit")]
    assert summaries[0] == summaries[1]
    main(["eval", *common, "inner.lr=0.001", "--out", str(tmp_path / "replaced")])
    assert "your settings replace inner.lr=0.001 (trained with 0.037)" in capsys.readouterr().err
    model, tokenizer = load_model(str(model_dir), device=DEVICE)
    assert model.update_settings["inner"]["lr"] == 0.037
    from_recipe = absorb(model, tokenizer, [triples[0].context])
    from_config = absorb(model, tokenizer, [triples[0].context], tiny_config("inner.lr=0.037").inner)
    assert all(torch.equal(a, b) for a, b in zip(from_recipe.parameters(), from_config.parameters()))
    (tmp_path / "notes.txt").write_text(triples[0].context)
    main(
        [
            "absorb",
            "--model",
            str(model_dir),
            "--context",
            str(tmp_path / "notes.txt"),
            "--device",
            DEVICE,
            "--out",
            str(tmp_path / "updated"),
        ]
    )
    assert "inner.lr=0.037" in capsys.readouterr().err
    updated, _ = load_model(str(tmp_path / "updated"), device=DEVICE)
    assert updated.update_settings == model.update_settings
    assert all(torch.equal(a, b) for a, b in zip(updated.parameters(), from_recipe.parameters()))


@pytest.mark.integration
def test_tensorboard_and_wandb_get_the_rows_of_metrics_jsonl_and_a_resume_continues_them(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("WANDB_MODE", raising=False)  # the default must work offline, without an account
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = tiny_config("train.n_tasks=8", "train.log=tensorboard,wandb", "train.ckpt_every=1")
    out = tmp_path / "run"
    part = load_partition(cfg)
    model, tokenizer = load_model(cfg.model.spec, device=DEVICE)
    MetaTrainer(cfg, tokenizer, full_rank(model), part.meta, part.val, out).train(progress=False, stop_after=2)
    run_id = (out / "wandb_id").read_text()
    run_train(cfg, out, resume=True, progress=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("outer")] == [
        (r["step"], pytest.approx(r["outer"])) for r in rows
    ]
    assert (out / "wandb_id").read_text() == run_id  # one W&B run across the resume
    assert len(list((out / "wandb").glob(f"offline-run-*-{run_id.strip()}"))) >= 1
