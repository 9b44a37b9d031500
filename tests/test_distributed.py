"""Data parallelism over tasks with torchrun: 2 gloo processes on CPU give what 1 process gives."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY
from promptgd.cli import main

pytestmark = pytest.mark.integration  # whole commands end to end on a tiny model

# LC, second order, outer batch 4 (2 tasks per rank), LM term on, validation and a checkpoint every step, and a
# format warm-up (rank 0 warms up, the others load its weights).
SETTINGS = [*TINY, "model.device=cpu", "train.objective=lc", "train.batch_size=4", "train.n_tasks=12",
            "train.val_every=1", "train.val_size=4", "train.ckpt_every=1", "warmup.n_tasks=4"]  # fmt: skip
# Float32 sums in another order (per rank, then across ranks, and one thread per process instead of two): equal to
# this tolerance, not bit for bit. Logged losses get an absolute one too: LC's KL is ~1e-3, a difference of
# log-probabilities whose last float32 digits differ.
TOLERANCE = dict(rtol=1e-5, atol=1e-6)
LOGGED = dict(rel=1e-4, abs=1e-6)


def torchrun(*args: str, check: bool = True, pythonpath: str = "") -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (pythonpath, os.path.dirname(__file__)) if p)
    # A collective that hangs (one did in CI: a rank that reached the warm-up late, the test below) then fails within
    # 3 minutes with the rank and the collective named, instead of running into the subprocess timeout.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, "PROMPTGD_DIST_TIMEOUT_MIN": "3"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "promptgd"]
    return subprocess.run([*command, *args], env=env, check=check, capture_output=True, text=True, timeout=600)


def weights(run) -> dict[str, torch.Tensor]:
    return load_file(run / "model" / "model.safetensors")


def assert_same_weights(a, b) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], **TOLERANCE)


def logged(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# train.fsdp: FSDP2 shards weights, gradients and Adam state over the 2 processes, and the second-order meta-step
# runs through the sharded model; one process has nothing to shard and trains as without it.
@pytest.mark.parametrize("sharding", [[], ["train.fsdp=true"]], ids=["replicated", "fsdp"])
def test_two_processes_train_what_one_does_and_resume_under_either_world_size(tmp_path, sharding):
    settings = [*SETTINGS, *sharding]
    one, two = tmp_path / "one", tmp_path / "two"
    main(["train", *settings, "--out", str(one)])
    torchrun("train", *settings, "--out", str(two))
    assert_same_weights(one, two)
    assert {r["world"] for r in logged(one)} == {1} and {r["world"] for r in logged(two)} == {2}
    assert {r["sharded"] for r in logged(two)} == {bool(sharding)}
    for row_one, row_two in zip(logged(one), logged(two), strict=True):
        for key in ("outer", "lm", "grad_norm"):
            assert row_two[key] == pytest.approx(row_one[key], **LOGGED)
        assert row_two["val_ft"] == pytest.approx(row_one["val_ft"], **LOGGED)  # validation sharded, then gathered

    # A checkpoint written by 2 processes resumes in 1, and the reverse: interrupt each run after step 2.
    for run, resume in ((two, lambda out: main(["train", *settings, "--resume", "--out", str(out)])),
                        (one, lambda out: torchrun("train", *settings, "--resume", "--out", str(out)))):  # fmt: skip
        interrupted = tmp_path / f"{run.name}-interrupted"
        shutil.copytree(run, interrupted)
        shutil.rmtree(interrupted / "model")
        (interrupted / "checkpoints" / "latest").write_text("step_00000002\n")
        resume(interrupted)
        assert_same_weights(run, interrupted)


def test_two_processes_evaluate_what_one_does(tmp_path):
    modes = ["--modes", "nc,prompt,ft,ft_irrelevant"]
    main(["eval", *TINY, "model.device=cpu", *modes, "--out", str(tmp_path / "one")])
    torchrun("eval", *TINY, "model.device=cpu", *modes, "--out", str(tmp_path / "two"))
    one, two = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("one", "two"))
    assert two["n"] == one["n"] and two["modes"].keys() == one["modes"].keys()
    for mode, metrics in one["modes"].items():
        for key, value in metrics.items():
            assert two["modes"][mode][key] == pytest.approx(value, **LOGGED, nan_ok=True)
    predictions = [(tmp_path / d / "predictions.jsonl").read_text().splitlines() for d in ("one", "two")]
    assert [json.loads(r)["prediction"] for r in predictions[0]] == [
        json.loads(r)["prediction"] for r in predictions[1]
    ]


def test_a_rank_that_arrives_after_the_warm_up_was_saved_still_joins_it(tmp_path):
    # Rank 0 warms up alone and ends its save in a barrier. Rank 1 here reaches that point late, after rank 0 could
    # have saved the start model (up to 8 s: seconds for this tiny warm-up); had it decided by reading the file
    # itself, it would load the model, skip the barrier and leave rank 0 waiting (a hang seen once in CI).
    run = tmp_path / "run"
    (tmp_path / "sitecustomize.py").write_text(
        "import os, time\n"
        "from pathlib import Path\n"
        "if os.environ.get('RANK') == '1':\n"
        "    from promptgd.run_dir import COMPLETE\n"
        "    from promptgd.train import recipe\n"
        "    starting_model = recipe.starting_model\n"
        "    def late(cfg, part, out, progress=True):\n"
        "        deadline = time.monotonic() + 8\n"
        "        while not (Path(out) / 'start_model' / COMPLETE).exists() and time.monotonic() < deadline:\n"
        "            time.sleep(0.1)\n"
        "        return starting_model(cfg, part, out, progress)\n"
        "    recipe.starting_model = late\n"
    )
    torchrun("train", *SETTINGS, "--out", str(run), pythonpath=str(tmp_path))
    main(["train", *SETTINGS, "--out", str(tmp_path / "one")])
    assert_same_weights(tmp_path / "one", run)


def test_a_failing_rank_stops_the_job_with_its_error(tmp_path):
    # Rank 1 fails in its third outer step while rank 0 waits in the all-reduce: the job must end, not hang.
    (tmp_path / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('RANK') == '1':\n"
        "    from promptgd.train import trainer\n"
        "    step = trainer.MetaTrainer.train_step\n"
        "    def failing(self):\n"
        "        if self.step == 2:\n"
        "            raise RuntimeError('rank 1 broke on purpose')\n"
        "        return step(self)\n"
        "    trainer.MetaTrainer.train_step = failing\n"
    )
    done = torchrun("train", *SETTINGS, "--out", str(tmp_path / "run"), check=False, pythonpath=str(tmp_path))
    assert done.returncode != 0
    assert "rank 1 broke on purpose" in done.stderr
    assert not (tmp_path / "run" / "model").exists()
