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
