"""The benchmark scripts run end to end on a tiny model and keep their output shape: a readable table, then
one JSON object as the last line (scripts downstream parse it)."""

import json
import subprocess
import sys
from pathlib import Path

from promptgd import malloc
from promptgd.data.tasks import load_task
from promptgd.data.triples import write_jsonl

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
