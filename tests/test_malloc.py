"""The allocator: a `promptgd` process re-executes itself once under tcmalloc when the machine has it."""

import json
import os
import subprocess
import sys

import pytest

from conftest import TINY
from promptgd import malloc


@pytest.fixture
def installed(monkeypatch):
    monkeypatch.setattr(malloc, "tcmalloc_library", lambda: "libtcmalloc_minimal.so.4")


def test_tcmalloc_is_preloaded_ahead_of_what_the_user_preloads(installed):
    env = malloc.preload_environment({"LD_PRELOAD": "libmine.so", "HOME": "/h"}, "linux")
    assert env["LD_PRELOAD"] == "libtcmalloc_minimal.so.4:libmine.so" and env["HOME"] == "/h"
    assert int(env["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"]) >= 1 << 40
    assert malloc.preload_environment({}, "linux")["LD_PRELOAD"] == "libtcmalloc_minimal.so.4"


@pytest.mark.parametrize(
    ("environ", "platform"),
    [
        ({"PROMPTGD_MALLOC": "system"}, "linux"),
        ({}, "darwin"),
        ({"LD_PRELOAD": "/usr/lib/libtcmalloc_minimal.so.4"}, "linux"),  # the re-executed process itself
        ({"LD_PRELOAD": "libjemalloc.so.2"}, "linux"),  # the user's own choice of allocator
    ],
)
def test_no_re_execution_when_switched_off_elsewhere_or_already_preloaded(installed, environ, platform):
    assert malloc.preload_environment(environ, platform) is None


def test_without_tcmalloc_the_command_runs_as_it_is(monkeypatch):
    monkeypatch.setattr(malloc, "tcmalloc_library", lambda: None)
    assert malloc.preload_environment({}, "linux") is None


def test_an_unknown_switch_value_is_one_line_naming_the_variable():
    environ = {**os.environ, "PROMPTGD_MALLOC": "jemalloc"}
    done = subprocess.run([sys.executable, "-m", "promptgd", "tasks"], env=environ, capture_output=True, text=True)
    assert done.returncode == 2
    assert (
        done.stderr
        == "promptgd: error: environment variable PROMPTGD_MALLOC='jemalloc': expected 'tcmalloc' or 'system'\n"
    )


@pytest.mark.integration
@pytest.mark.parametrize("switch", ["tcmalloc", "system"])
def test_a_training_run_records_the_allocator_it_ran_on(tmp_path, switch):
    """End to end through `python -m promptgd`: the re-executed process is the one that trains (CI installs
    tcmalloc; a machine without it runs on glibc's allocator either way)."""
    environ = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"} | {"PROMPTGD_MALLOC": switch}
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "promptgd",
        "train",
        *TINY,
        "train.n_tasks=2",
        "warmup.n_tasks=2",
        "--out",
        str(out),
    ]
    subprocess.run(command, env=environ, check=True, capture_output=True)
    expected = "tcmalloc" if switch == "tcmalloc" and malloc.tcmalloc_library() else "system"
    assert json.loads((out / "train_seconds.json").read_text())["allocator"] == expected


@pytest.mark.integration
def test_the_allocator_is_chosen_before_torch_loads_and_the_user_api_stays_importable():
    code = (
        "import sys, promptgd.malloc; assert 'torch' not in sys.modules, 'torch loaded before the re-execution'; "
        "from promptgd import absorb, ask, Triple, load_model; import promptgd.api; "
        "assert callable(absorb) and callable(ask) and callable(load_model) and isinstance(Triple, type); "
        "assert promptgd.absorb is absorb"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
