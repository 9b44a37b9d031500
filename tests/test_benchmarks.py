"""The benchmark scripts run end to end on a tiny model and keep their output shape: a readable table, then
one JSON object as the last line (scripts downstream parse it)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from promptgd import malloc
from promptgd.data.tasks import load_task
from promptgd.data.triples import write_jsonl

pytestmark = pytest.mark.integration  # each runs a benchmark script (or train and eval) end to end

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args: str) -> dict:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_metastep_benchmark_reports_ratios_and_memory(tmp_path):
    figures = run_script(
        "benchmarks/metastep.py",
        "--model",
        "tiny:llama",
        "--repeats",
        "1",
        "--batch-sizes",
        "1,2",
        "--out",
        str(tmp_path),
    )
    assert {"ratio_second_order", "ratio_first_order", "peak_mem_ratio_b2_b1", "batched_speedup"} <= figures.keys()
    assert figures["second_order_s"] > 0 and figures["batched_speedup"] > 0
    assert {i: set(peaks) for i, peaks in figures["peak_mem_mb"].items()} == {
        "explicit": {"1", "2"},
        "implicit": {"1", "2"},
    }
    assert json.loads((tmp_path / "metastep.json").read_text()) == figures


def test_eval_speed_benchmark_runs_on_a_single_triple(tmp_path):
    triples = tmp_path / "one.jsonl"
    write_jsonl(load_task("character_descriptions", 0, 1, seed=0).test, triples)
    figures = run_script(
        "benchmarks/eval_speed.py",
        "--model",
        "tiny:llama",
        "--task",
        f"jsonl:{triples}",
        "--n",
        "5",
        "--out",
        str(tmp_path / "out"),
    )
    assert figures["n"] == 1 and figures["ft_eval_ratio"] > 0 and figures["ft_eval_speedup"] > 0
    assert figures["predictions_differing"] == 0


def test_lora_inner_speed_benchmark_compares_both_updates(tmp_path):
    figures = run_script(
        "benchmarks/lora_inner_speed.py", "--model", "tiny:llama", "--batch-size", "2", "--out", str(tmp_path)
    )
    assert set(figures["seconds_per_task"]) == {"explicit", "implicit"} and figures["lora_inner_speedup"] > 0


def test_cost_curve_benchmark_plots_both_updates(tmp_path):
    figures = run_script(
        "benchmarks/cost_curve.py",
        "--model",
        "tiny:llama",
        "--lengths",
        "16,32",
        "--batches",
        "1,2",
        "--out",
        str(tmp_path),
    )
    assert {(p["path"], p["context_tokens"], p["tasks_per_pass"]) for p in figures["points"]} == {
        (path, length, b) for length in (16, 32) for path, b in (("explicit", 1), ("implicit", 1), ("implicit", 2))
    }
    assert (tmp_path / "cost_curve.png").stat().st_size > 0


def test_allocator_benchmark_compares_glibc_and_tcmalloc_on_identical_losses(tmp_path):
    if malloc.tcmalloc_library() is None:  # the script refuses with one line; CI installs tcmalloc (.ci/run)
        done = subprocess.run(
            [sys.executable, "benchmarks/allocator.py", "--out", str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 1 and "tcmalloc is not installed" in done.stderr
        return
    figures = run_script(
        "benchmarks/allocator.py",
        *("--model", "tiny:llama", "--outer-batch", "2", "--steps", "2", "--eval-n", "2", "--rounds", "1"),
        *("--out", str(tmp_path)),
    )
    assert figures["losses_identical"] and figures["tcmalloc_step_speedup"] > 0 and figures["peak_rss_ratio"] > 0
    assert [r["allocator"] for r in figures["runs"]["system"] + figures["runs"]["tcmalloc"]] == ["system", "tcmalloc"]
    assert json.loads((tmp_path / "allocator.json").read_text()) == figures


def test_gpu_rates_turns_a_calibrations_runs_into_a_rates_file(tmp_path):
    """benchmarks/gpu_calibrate.sh's last step, on runs made as it makes them (tiny model, CPU)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "device.txt").write_text("a test CPU\n")
    tiny = ["model.spec=tiny:llama", "model.device=cpu", "task.n_train=24", "task.n_test=4", "task.n_val=0"]
    tiny += ["train.val_every=0", "train.lm_corpus=builtin", "train.lm_seq_len=32", "eval.max_new_tokens=4"]
    cli = [sys.executable, "-m", "promptgd"]
    subprocess.run([*cli, "train", *tiny, "train.n_tasks=12", "train.batch_size=2", "inner.contexts=2",
                    "--out", str(runs / "train_full_k2__short")], cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    subprocess.run([*cli, "eval", *tiny, "--split", "test", "--modes", "nc,ft", "--out", str(runs / "eval_short")],
                   cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    measured = run_script(
        "benchmarks/gpu_rates.py", "--runs", str(runs), "--base", "results/benchmarks/gpu_rates.json",
        "--out", str(tmp_path / "gpu_rates.json"),
    )  # fmt: skip
    assert set(measured) == {"train/full_k2/short", "eval/nc/short", "eval/ft/short"}
    rates = json.loads((tmp_path / "gpu_rates.json").read_text())
    assert rates["device"] == "a test CPU" and rates["rates"]["train/full_k2/short"] == measured["train/full_k2/short"]
    assert "a test CPU" in measured["eval/ft/short"]["basis"] and measured["eval/ft/short"]["seconds"] > 0
    base = json.loads((ROOT / "results/benchmarks/gpu_rates.json").read_text())
    assert rates["rates"]["train/full/long"] == base["rates"]["train/full/long"]  # not measured here: kept


def test_stream_speed_reports_seconds_per_document_for_both_modes(tmp_path):
    figures = run_script(
        "benchmarks/stream_speed.py", "--model", "tiny:llama", "--n", "3", "--save-every", "2", "--out", str(tmp_path)
    )
    assert set(figures["seconds_per_doc"]) == {"sequential", "at_theta"} and figures["fwd_bwd_seconds"] > 0
    assert json.loads((tmp_path / "stream_speed.json").read_text()) == figures


def test_absorb_wall_time_is_the_median_of_fresh_processes(tmp_path):
    figures = run_script("benchmarks/absorb_wall.py", "--model", "tiny:llama", "--repeats", "2", "--out", str(tmp_path))
    assert len(figures["seconds"]) == 2 and figures["median_seconds"] > 0 and figures["tokens"] > 150
    assert json.loads((tmp_path / "absorb_wall.json").read_text()) == figures
