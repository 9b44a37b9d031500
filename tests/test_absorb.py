"""Absorb → save → load → ask round-trips, from Python and from the command line."""

import json

import pytest
import torch

import promptgd
from conftest import DEVICE
from promptgd.cli import main
from promptgd.config import InnerConfig
from promptgd.models.loading import load_model


def test_absorb_returns_an_updated_copy(tiny):
    model, tokenizer = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    updated = promptgd.absorb(model, tokenizer, ["The code is abc."], InnerConfig(lr=0.1))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not all(torch.equal(before[k], v) for k, v in updated.state_dict().items())
    assert updated.lm_head.weight is updated.model.embed_tokens.weight  # still tied


def test_long_texts_are_chunked_not_truncated(tiny):
    model, tokenizer = tiny
    text = "word " * 300
    a = promptgd.absorb(model, tokenizer, [text], InnerConfig(lr=0.1), max_tokens=64)
    b = promptgd.absorb(model, tokenizer, [text[:320]], InnerConfig(lr=0.1), max_tokens=64)
    assert not torch.equal(a.model.embed_tokens.weight, b.model.embed_tokens.weight)


@pytest.mark.integration
def test_cli_absorb_save_load_ask_round_trip(tmp_path, capsys):
    model, tokenizer = load_model("tiny:llama", device=DEVICE)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    (tmp_path / "notes.txt").write_text("The code is abc.")
    (tmp_path / "more.txt").write_text("The key is xyz.")
    main(
        [
            "absorb",
            "--model",
            str(tmp_path / "m"),
            "--context",
            str(tmp_path / "notes.txt"),
            "--context",
            str(tmp_path / "more.txt"),
            "--lr",
            "0.05",
            "--device",
            DEVICE,
            "--out",
            str(tmp_path / "updated"),
        ]
    )
    in_memory = promptgd.absorb(
        *load_model(str(tmp_path / "m"), device=DEVICE), ["The code is abc.", "The key is xyz."], InnerConfig(lr=0.05)
    )
    reloaded, tok = load_model(str(tmp_path / "updated"), device=DEVICE)
    for (name, a), b in zip(in_memory.named_parameters(), reloaded.parameters()):
        assert torch.equal(a, b), name
    capsys.readouterr()
    main(["ask", "--model", str(tmp_path / "updated"), "The code:", "--max-new-tokens", "5", "--device", DEVICE])
    assert capsys.readouterr().out.strip() == promptgd.ask(reloaded, tok, "The code:", 5)


def one_line_error(capsys, argv) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "content, named",
    [(b"", "empty"), (b"  \n", "empty"), (b"caf\xe9 au lait", "not UTF-8 text (byte 3)")],
)
def test_a_context_file_that_cannot_be_absorbed_is_one_line(tmp_path, capsys, content, named):
    (tmp_path / "notes.txt").write_bytes(content)
    argv = ["absorb", "--model", "tiny:llama", "--context", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "o")]
    line = one_line_error(capsys, [*argv, "--device", DEVICE])
    assert str(tmp_path / "notes.txt") in line and named in line and not (tmp_path / "o").exists()


def test_absorb_never_writes_over_a_directory_and_saves_whole(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("The code is abc.")
    argv = ["absorb", "--model", "tiny:llama", "--context", str(tmp_path / "notes.txt"), "--device", DEVICE]
    main([*argv, "--lr", "0.05", "--out", str(tmp_path / "m")])
    assert (tmp_path / "m" / ".promptgd-complete").is_file()  # staged: the model is there whole, or not at all
    before = (tmp_path / "m" / "model.safetensors").read_bytes()
    assert "exists" in one_line_error(capsys, [*argv, "--out", str(tmp_path / "m")])
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before


def test_ask_answers_a_file_of_questions_as_json_lines(tmp_path, capsys):
    model, tokenizer = load_model("tiny:llama", device=DEVICE)
    (tmp_path / "q.txt").write_text("The code:\n\nThe key:\n")
    main(
        [
            "ask",
            "--model",
            "tiny:llama",
            "--questions",
            str(tmp_path / "q.txt"),
            "--max-new-tokens",
            "4",
            "--device",
            DEVICE,
        ]
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["question"] for r in lines] == ["The code:", "The key:"]
    assert lines[0]["answer"] == promptgd.ask(model, tokenizer, "The code:", 4)


def test_a_sequential_stream_killed_half_way_continues_and_ends_as_if_never_stopped(tmp_path, monkeypatch):
    (tmp_path / "docs").mkdir()
    for d in range(5):
        (tmp_path / "docs" / f"{d}.txt").write_text(f"The code of door {d} is {d * 7 + 3}.")
    argv = ["absorb", "--model", "tiny:llama", "--corpus", str(tmp_path / "docs"), "--sequential", "--lr", "0.1"]
    argv += ["--save-every", "2", "--device", DEVICE]
    main([*argv, "--out", str(tmp_path / "whole")])

    from promptgd import api

    real, calls = api._updated, []

    def dies_at_the_fourth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # a kill after the state was saved at 2 texts
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "_updated", dies_at_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        main([*argv, "--out", str(tmp_path / "cut")])
    assert not (tmp_path / "cut").exists() and (tmp_path / "cut.absorbing" / "state.safetensors").is_file()
    monkeypatch.setattr(api, "_updated", real)
    main([*argv, "--out", str(tmp_path / "cut")])
    assert not (tmp_path / "cut.absorbing").exists()
    whole, _ = load_model(str(tmp_path / "whole"), device=DEVICE)
    cut, _ = load_model(str(tmp_path / "cut"), device=DEVICE)
    for (name, a), b in zip(whole.named_parameters(), cut.parameters()):
        assert torch.equal(a, b), name


def test_a_sequential_stream_is_one_update_per_text_in_order(tiny, tmp_path):
    model, tokenizer = tiny
    texts = ["The code is abc.", "The key is xyz."]
    streamed = promptgd.absorb_each(model, tokenizer, texts, InnerConfig(lr=0.1), progress=False)
    first = promptgd.absorb(model, tokenizer, texts[:1], InnerConfig(lr=0.1))
    second = promptgd.absorb(first, tokenizer, texts[1:], InnerConfig(lr=0.1))
    for (name, a), b in zip(streamed.named_parameters(), second.parameters()):
        assert torch.equal(a, b), name


def test_a_jsonl_corpus_line_without_text_is_named(tmp_path, capsys):
    (tmp_path / "c.jsonl").write_text('{"text": "The code is abc."}\n{"body": "x"}\n')
    argv = ["absorb", "--model", "tiny:llama", "--corpus", str(tmp_path / "c.jsonl"), "--out", str(tmp_path / "o")]
    assert f"{tmp_path / 'c.jsonl'}:2" in one_line_error(capsys, argv)


def test_absorb_delta_stores_the_update_as_a_low_rank_difference_that_loads_as_the_updated_model(tmp_path, capsys):
    model, tokenizer = load_model("tiny:llama", device=DEVICE)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    (tmp_path / "short.txt").write_text("The code is abc.")
    (tmp_path / "long.txt").write_text(" ".join(f"Door {i} opens with code {i * 7919 % 1000}." for i in range(12)))
    common = ["absorb", "--model", str(tmp_path / "m"), "--lr", "0.05", "--device", DEVICE]
    main([*common, "--context", str(tmp_path / "short.txt"), "--out", str(tmp_path / "copy")])
    main([*common, "--context", str(tmp_path / "short.txt"), "--delta", "--out", str(tmp_path / "delta")])
    said = capsys.readouterr().out
    assert "stored as its difference from" in said and not (tmp_path / "delta" / "model.safetensors").exists()
    manifest = json.loads((tmp_path / "delta" / "manifest.json").read_text())
    # One step changes a matrix by at most one rank per token (17 here); the tied embedding by that plus one row per
    # distinct token of the text.
    assert manifest["bytes"] < manifest["full_copy_bytes"] / 2 and manifest["max_rank"] <= 17 + 12
    copy, _ = load_model(str(tmp_path / "copy"), device=DEVICE)
    delta, _ = load_model(str(tmp_path / "delta"), device=DEVICE)
    for (name, a), b in zip(copy.named_parameters(), delta.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    # It absorbs more like any model, and that update is stored as its difference from it in turn.
    main(["absorb", "--model", str(tmp_path / "delta"), "--context", str(tmp_path / "long.txt"), "--delta",
          "--lr", "0.05", "--device", DEVICE, "--out", str(tmp_path / "again")])  # fmt: skip
    assert f"stored as its difference from {tmp_path / 'delta'}" in capsys.readouterr().out
    again, tokenizer = load_model(str(tmp_path / "again"), device=DEVICE)
    assert not torch.equal(again.model.norm.weight, delta.model.norm.weight)


def test_a_difference_that_takes_as_many_bytes_as_a_copy_is_not_written(tmp_path):
    from promptgd.models.delta_checkpoint import write_delta

    model, tokenizer = load_model("tiny:llama", device="cpu")
    model.save_pretrained(tmp_path / "m")
    changed = {name: p.detach() + 1e-2 * torch.randn_like(p) for name, p in model.state_dict().items()}  # full rank
    assert write_delta(changed, str(tmp_path / "m"), tmp_path / "m", tmp_path / "d", {}, 4096, whole=True) is None
    assert not (tmp_path / "d").exists()
