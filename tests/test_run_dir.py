"""What a command writes is never half-written, mixed with another command's, or written over silently."""

import json
import math
import os
import subprocess
import sys

import pytest

from conftest import TINY
from promptgd.cli import main
from promptgd.run_dir import RunDir, config_matches, is_complete, json_text, locked, staged, write_json
from promptgd.train.metrics_log import _logged_rows


def test_a_staged_directory_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), staged(target) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("killed while saving")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with staged(target) as tmp:
        (tmp / "weights").write_text("whole")
    assert is_complete(target) and (target / "weights").read_text() == "whole"
    with pytest.raises(FileExistsError, match="already finished"), staged(target):
        pass
    with staged(target, replace=True) as tmp:
        (tmp / "weights").write_text("new")
    assert (target / "weights").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_directory_promptgd_did_not_complete_is_never_touched(tmp_path):
    foreign = tmp_path / "model"
    foreign.mkdir()
    (foreign / "config.json").write_text("{}")  # what an interrupted save of an older version leaves
    with pytest.raises(FileExistsError, match="not completed by promptgd"), staged(foreign, replace=True):
        pass
    assert (foreign / "config.json").read_text() == "{}"


def test_orphans_of_a_killed_save_are_removed(tmp_path):
    orphan = tmp_path / ".staging-model-abc123"
    orphan.mkdir()
    with staged(tmp_path / "model"):
        pass
    assert not orphan.exists()


def test_a_second_command_on_a_held_directory_fails_at_once_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from promptgd.run_dir import locked\n"
         f"with locked(Path({str(out)!r})):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit) as stopped:
            main(["train", *TINY, "--out", str(out)])
        assert stopped.value.code == 2
        assert f"{out}: in use by another promptgd command (pid {holder.pid})" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    with locked(out):  # the kernel dropped the lock with the killed process
        pass


@pytest.mark.integration
def test_train_without_resume_refuses_a_directory_holding_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", *TINY, "train.n_tasks=4", "--out", str(out)])
    metrics = (out / "metrics.jsonl").read_text()
    with pytest.raises(SystemExit) as stopped:
        main(["train", *TINY, "train.n_tasks=4", "--out", str(out)])
    assert stopped.value.code == 2 and "holds a meta-training run; resume it (--resume)" in capsys.readouterr().err
    assert (out / "metrics.jsonl").read_text() == metrics and is_complete(RunDir(out).model)


def test_a_log_line_cut_short_by_a_kill_is_dropped_but_damage_elsewhere_is_named(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"st')
    assert _logged_rows(log) == ['{"step": 1}', '{"step": 2}']
    log.write_text('{"step": 1}\n{"st\n{"step": 3}\n')
    with pytest.raises(ValueError, match=f"{log}:2: not a JSON line"):
        _logged_rows(log)


def test_json_is_strict_and_written_atomically(tmp_path):
    assert json.loads(json_text({"nll": math.nan, "acc": [math.inf, 0.5]})) == {"nll": None, "acc": [None, 0.5]}
    path = tmp_path / "summary.json"
    write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1} and os.listdir(tmp_path) == ["summary.json"]


def test_config_match_can_leave_out_a_key(tmp_path):
    from promptgd.config import dump_yaml, load_config, with_overrides

    cfg = load_config(None, TINY)
    (tmp_path / "config.yaml").write_text(dump_yaml(cfg))
    assert config_matches(tmp_path / "config.yaml", cfg)
    other = with_overrides(cfg, ["eval.modes=nc"])
    assert not config_matches(tmp_path / "config.yaml", other)
    assert config_matches(tmp_path / "config.yaml", other, ("eval",), ignore=("eval.modes",))


@pytest.mark.integration
def test_train_resume_starts_a_run_without_checkpoint_and_keeps_a_finished_one(tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", *TINY, "train.n_tasks=4", "--resume", "--out", str(out)])  # nothing to resume: starts
    weights = (out / "model" / "model.safetensors").read_bytes()
    main(["train", *TINY, "train.n_tasks=4", "--resume", "--out", str(out)])  # finished: kept as it is
    assert (out / "model" / "model.safetensors").read_bytes() == weights
    assert capsys.readouterr().out.count(f"meta-trained model: {out / 'model'}") == 2


def test_a_save_that_runs_out_of_space_leaves_nothing_and_names_the_target(tmp_path):
    import errno

    from promptgd.errors import DiskFullError

    target = tmp_path / "model"
    with pytest.raises(DiskFullError, match=f"{target}: no space left on the device"):
        with staged(target):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []
