"""Shared fixtures: tiny models built from configs (no downloads) and tiny run configs."""

import os

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from promptgd.config import RunConfig, load_config
from promptgd.data import acquire
from promptgd.data.triples import Triple
from promptgd.models.loading import load_model

# Where the tests run: CPU here and in CI; `PROMPTGD_TEST_DEVICE=cuda pytest` runs the same suite on a GPU, which
# is how device bugs (a tensor left on the CPU, RNG state not saved for CUDA) get caught.
DEVICE = os.environ.get("PROMPTGD_TEST_DEVICE", "cpu")
if DEVICE.startswith("cuda"):
    # Resuming must reproduce the uninterrupted run bit for bit; cuBLAS needs this to be deterministic.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)

# Small, fast settings every training test starts from; a test adds its own overrides on top.
TINY = [
    "model.spec=tiny:llama",
    f"model.device={DEVICE}",
    "task.name=character_descriptions",
    "task.n_train=40",
    "task.n_test=6",
    "task.n_val=8",
    "eval.split=test",  # what `promptgd eval` must be told (cli.py): these tests read the tasks' test triples
    "eval.max_new_tokens=6",
    "eval.batch_size=4",
    "train.batch_size=2",
    "train.val_every=0",
    "train.ckpt_every=0",
    "train.warmup_steps=2",
    "train.lm_corpus=builtin",
    "train.lm_seq_len=32",
]


def tiny_config(*overrides: str) -> RunConfig:
    return load_config(None, TINY + list(overrides))


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return load_model("tiny:llama", device=DEVICE)


@pytest.fixture
def triples():
    return [
        Triple(
            "The first person to walk on Mars was Evan Armstrong.",
            "History books record the first person to reach Mars as",
            " Evan Armstrong",
        ),
        Triple("The inventor of the glass kettle was Mia Chen.", "The glass kettle was invented by", " Mia Chen"),
        Triple("The painter of the Blue Harbour was Ola Berg.", "The Blue Harbour was painted by", " Ola Berg"),
    ]


def no_network(*args, **kwargs):
    raise RuntimeError("network disabled in tests")


@pytest.fixture
def offline_data(tmp_path, monkeypatch):
    """A private cache, no PROMPTGD_DATA, and network sources (hub, pip download) that fail at once."""
    monkeypatch.setenv("PROMPTGD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PROMPTGD_DATA", raising=False)
    monkeypatch.setattr(acquire, "_import_datasets", no_network)
    monkeypatch.setattr(acquire, "_pip_download", no_network)


def _rms_norm_in_input_dtype(self, x):
    return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))


@pytest.fixture
def float64_exact(monkeypatch):
    """HF Llama computes RMSNorm (and eager attention's softmax) in float32 even for a float64 model, which
    puts ~1e-7 relative noise on the loss and swamps central differences. Keep everything in float64:
    RMSNorm in the input dtype, attention through SDPA's math kernel (which also has a double backward)."""
    monkeypatch.setattr(LlamaRMSNorm, "forward", _rms_norm_in_input_dtype)
    with sdpa_kernel(SDPBackend.MATH):
        yield
