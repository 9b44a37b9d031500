"""`promptgd reproduce --scale paper`: every experiment plans with its cost on data shaped like the real data sets,
a size the data cannot meet is one line, and one experiment runs its paper-scale pipeline end to end with the
model and budgets shrunk (the same presets, partition, training, evaluation and table code)."""

import json
import random
from pathlib import Path

import pytest

from promptgd.cli import main
from promptgd.data import acquire

CONFIGS = Path(__file__).parent.parent / "configs"
RATES = Path(__file__).parent.parent / "results" / "benchmarks" / "gpu_rates.json"
EXPERIMENTS = ("figure2", "table1", "table2", "table3", "table4", "table5")
WORDS = "river stone harbour council bridge winter market signal garden railway tower island".split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def squad_file(rng: random.Random, paragraphs: int) -> dict:
    """The official SQuAD schema, five questions per paragraph as in SQuAD."""
    data = []
    for a in range(paragraphs // 10):
        paras = []
        for p in range(10):
            context = f"Paragraph {a}-{p}: " + sentence(rng, 20) + "."
            qas = [
                {
                    "id": f"{a}-{p}-{q}",
                    "question": f"What is {q} in {a}-{p}?",
                    "answers": [{"text": "stone", "answer_start": 0}],
                }
                for q in range(5)
            ]
            paras.append({"context": context, "qas": qas})
        data.append({"title": f"Article {a}", "paragraphs": paras})
    return {"version": "1.1", "data": data}


def wikitext_file(rng: random.Random, articles: int, paragraphs: int) -> str:
    """The tokenized release's layout: ` = Title = ` headings, one paragraph a line, each with "the" after 20 words."""
    lines = []
    for a in range(articles):
        lines += ["", f" = Article {a} = ", ""]
        for _ in range(paragraphs):
            lines.append(" " + sentence(rng, 20) + " the " + sentence(rng, 30) + " . ")
    return "\n".join(lines) + "\n"


@pytest.fixture
def paper_shaped_data(tmp_path, offline_data, monkeypatch):
    """$PROMPTGD_DATA with SQuAD and WikiText-2 files laid out and shaped like the real ones (WikiText-2: valid and
    test, no train split), small enough to process in seconds: 1,000 train and 120 dev SQuAD paragraphs, 800
    WikiText test paragraphs (more than the paper preset's 758 test triples)."""
    rng = random.Random(0)
    root = tmp_path / "data"
    (root / "squad-v1.1").mkdir(parents=True)
    (root / "wikitext-2").mkdir()
    blobs = {}
    for split, name in acquire.SQUAD_FILES.items():
        blobs[name] = json.dumps(squad_file(rng, 1000 if split == "train" else 120)).encode()
        (root / "squad-v1.1" / name).write_bytes(blobs[name])
    monkeypatch.setattr(acquire, "SQUAD_SHA256", {name: acquire.sha256_hex(b) for name, b in blobs.items()})
    (root / "wikitext-2" / "wiki.valid.tokens").write_text(wikitext_file(rng, 40, 40))
    (root / "wikitext-2" / "wiki.test.tokens").write_text(wikitext_file(rng, 40, 20))
    monkeypatch.setenv("PROMPTGD_DATA", str(root))
    for task in ("squad", "wikitext"):
        acquire.fetch(task)
    return root


def reproduce(tmp_path, *args: str) -> None:
    main(["reproduce", *args, "--work", str(tmp_path / "work"), "--configs", str(CONFIGS), "--rates", str(RATES)])


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_plans_at_paper_scale_with_its_cost(name, tmp_path, paper_shaped_data, capsys):
    reproduce(tmp_path, name, "--scale", "paper", "--plan")
    out = capsys.readouterr().out
    assert "data:" in out and "models:" in out and "evaluations:" in out
    assert "cost on one H100" in out and " total " in out and "EXTRAPOLATED" in out
    assert "Llama-3.2-1B: 2.5 GB" in out and "gated on the hub" in out
    assert "unpriced" not in out  # every kind of work the paper's experiments need has a rate
    if "wikitext" in out:
        assert "NO WikiText-103 train split" in out


def test_a_size_the_data_cannot_meet_is_one_line_naming_the_preset_and_key(tmp_path, paper_shaped_data, capsys):
    with pytest.raises(SystemExit) as exit_:
        reproduce(tmp_path, "table5", "--scale", "paper", "--plan", "task.n_test=5000")
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "paper/squad.yaml" in err or "paper/wikitext.yaml" in err
    assert "task.n_test=5000" in err and "available" in err and "Traceback" not in err


def test_a_plan_without_the_data_downloads_nothing_and_prices_the_papers_sizes(tmp_path, offline_data, capsys):
    # offline_data makes every network source fail at once: a plan that tried to acquire the data would fail.
    reproduce(tmp_path, "table5", "--scale", "paper", "--plan")
    out = capsys.readouterr().out
    assert "squad: not on this machine yet" in out and "promptgd data fetch squad" in out
    assert "81,431 tasks" in out  # the paper's 82,031 SQuAD triples less 500 warm-up and 100 validation
    assert not (tmp_path / "cache" / "processed").exists()


@pytest.mark.integration
def test_table5_runs_its_paper_scale_pipeline_end_to_end_on_a_tiny_model(tmp_path, paper_shaped_data):
    """The paper presets with only the model and the budgets shrunk: warm-up, LG meta-training on SQuAD and
    WikiText (with the preset's λ term on WikiText), evaluation and the table."""
    tiny = [
        "model.spec=tiny:llama",
        "model.device=cpu",
        "task.n_train=80",
        "task.n_test=6",
        "task.n_val=4",
        "warmup.n_tasks=4",
        "train.n_tasks=4",
        "train.batch_size=2",
        "train.val_every=0",
        "train.ckpt_every=0",
        "train.lm_seq_len=32",
        "eval.max_new_tokens=4",
    ]
    reproduce(tmp_path, "table5", "--scale", "paper", "--out", str(tmp_path / "results"), *tiny)
    markdown = (tmp_path / "results" / "table5_paper.md").read_text()
    assert "| squad |" in markdown and "| wikitext |" in markdown
    for task in ("squad", "wikitext"):
        summary = json.loads((tmp_path / "work" / task / "lg" / "eval" / "summary.json").read_text())
        assert set(summary["modes"]) == {"ft", "ft_irrelevant"} and summary["n"] == 6
        config = (tmp_path / "work" / task / "lg" / "config.yaml").read_text()
        assert "batch_size: 2" in config and "lm_corpus: 'wikitext:'" in config
