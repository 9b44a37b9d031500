"""A user's mistake gets one line naming the file, line or key and exit status 2; no traceback."""

import json
from pathlib import Path

import pytest

from conftest import TINY
from promptgd.cli import main


def one_line_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("promptgd:")]
    assert len(err) == 1 and "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize(
    "override, named",
    [
        ("train.batch_size=0", "train.batch_size=0: must be at least 1"),
        ("inner.lr=-1", "inner.lr=-1.0: must be a finite number >= 0"),
        ("train.lr=nan", "train.lr=nan: must be a finite number > 0"),
        ("eval.limit=-3", "eval.limit=-3: must be a finite number >= 0"),
        ("task.name=nosuch", "task.name='nosuch': unknown task"),
        ("model.spec=packaged:nosuch", "unknown packaged model 'packaged:nosuch'"),
    ],
)
def test_bad_values_are_named(tmp_path, capsys, override, named):
    assert named in one_line_error(capsys, ["eval", *TINY, override, "--out", str(tmp_path / "e")])


def test_a_self_referencing_preset_is_named(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    assert "`base:` chain comes back to itself" in one_line_error(
        capsys, ["eval", str(tmp_path / "a.yaml"), "--out", str(tmp_path / "e")]
    )


@pytest.mark.parametrize(
    "content, named",
    [
        ('{"context": "c", "query": "q", "response": " r"}\n{"context": "c"\n', ":2:"),
        ('{"context": "c", "query": "q"}\n', "response"),
        ('{"context": 3, "query": "q", "response": " r"}\n', "context"),
        ('{"context": " ", "query": "q", "response": " r"}\n', "field 'context' is empty"),
        ('{"context": "c", "query": "", "response": " r"}\n', "field 'query' is empty"),
    ],
)
def test_a_bad_triple_file_is_named_with_its_line(tmp_path, capsys, content, named):
    path = tmp_path / "mine.jsonl"
    path.write_text(content)
    line = one_line_error(capsys, ["eval", *TINY, f"task.name=jsonl:{path}", "--out", str(tmp_path / "e")])
    assert str(path) in line and named in line


@pytest.mark.integration
def test_eval_into_a_finished_evaluation_is_refused(tmp_path, capsys):
    out = tmp_path / "e"
    main(["eval", *TINY, "eval.modes=nc", "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    assert "already finished" in one_line_error(capsys, ["eval", *TINY, "eval.modes=nc", "--out", str(out)])
    assert json.loads((out / "summary.json").read_text()) == summary


def test_a_non_utf8_triple_file_is_named_with_its_line(tmp_path, capsys):
    path = tmp_path / "mine.jsonl"
    path.write_bytes(b'{"context": "c", "query": "q", "response": " r"}\n{"context": "\xff"}\n')
    line = one_line_error(capsys, ["eval", *TINY, f"task.name=jsonl:{path}", "--out", str(tmp_path / "e")])
    assert f"{path}:2: not UTF-8" in line


def test_a_context_longer_than_the_model_is_refused_before_any_work(tmp_path, capsys):
    path = tmp_path / "mine.jsonl"
    long = {"context": "word " * 5000, "query": "q", "response": " r"}
    path.write_text(json.dumps({"context": "c", "query": "q", "response": " r"}) + "\n" + json.dumps(long) + "\n")
    line = one_line_error(capsys, ["eval", *TINY, f"task.name=jsonl:{path}", "--out", str(tmp_path / "e")])
    assert "triple 1" in line and "the model has 1024" in line
    assert not (tmp_path / "e").exists()


def test_an_output_directory_that_cannot_be_written_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # a file where the output's parent directory should be: no one can create it
    line = one_line_error(capsys, ["eval", *TINY, "--out", str(blocked / "e")])
    assert str(blocked / "e") in line and "cannot write there" in line
    # An existing directory the process may not write (a read-only mount; os.access is what tells, even as root).
    existing = tmp_path / "existing"
    existing.mkdir()
    monkeypatch.setattr("promptgd.run_dir.os.access", lambda path, mode: Path(path) != existing)
    assert "cannot write there" in one_line_error(capsys, ["train", *TINY, "--out", str(existing)])


@pytest.mark.integration
def test_a_full_disk_is_one_line_and_the_run_resumes_from_its_last_checkpoint(tmp_path, capsys, monkeypatch):
    from safetensors import SafetensorError

    from promptgd.train import checkpoint

    real_save = checkpoint.save_file
    saves = []

    def fill_up(tensors, path):  # the second checkpoint finds the disk full, as safetensors reports it
        saves.append(path)
        if len(saves) == 2:
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        real_save(tensors, path)

    monkeypatch.setattr(checkpoint, "save_file", fill_up)
    out = tmp_path / "run"
    argv = ["train", *TINY, "train.n_tasks=8", "train.ckpt_every=1", "--out", str(out)]
    line = one_line_error(capsys, argv)
    assert "no space left on the device" in line and str(out / "checkpoints" / "step_00000002") in line
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest", "step_00000001"]  # no half-save
    monkeypatch.setattr(checkpoint, "save_file", real_save)
    main([*argv[:-2], "--resume", "--out", str(out)])
    assert (out / "model").is_dir()


def test_eval_asks_which_triples_instead_of_guessing_test(tmp_path, capsys):
    common = [c for c in TINY if not c.startswith("eval.split=")]
    line = one_line_error(capsys, ["eval", *common, "--out", str(tmp_path / "e")])
    assert "--split val" in line and "--split test" in line and not (tmp_path / "e").exists()
