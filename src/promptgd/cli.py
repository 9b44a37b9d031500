"""`promptgd` command line: thin wrappers over the recipes. Every command that writes results takes --out."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from promptgd import distributed
from promptgd.config import ConfigError, RunConfig, load_config
from promptgd.errors import UserError
from promptgd.models.update_settings import SETTINGS_FILE, describe, inner_config, read_update_settings
from promptgd.run_dir import RunDir, is_complete, locked, staged


def _config(args: argparse.Namespace, under: dict | None = None) -> RunConfig:
    """Preset (optional), then the convenience flags, then dotted overrides (which win); `under` goes beneath them all."""
    flags = []
    if getattr(args, "model", None):
        flags.append(f"model.spec={args.model}")
    if getattr(args, "task", None):
        flags.append(f"task.name={args.task}")
    if getattr(args, "modes", None):
        flags.append(f"eval.modes={args.modes}")
    if getattr(args, "split", None):
        flags.append(f"eval.split={args.split}")
    if getattr(args, "limit", None) is not None:
        flags.append(f"eval.limit={args.limit}")
    return load_config(args.config, flags + args.overrides, under)


def _config_with_update_settings(args: argparse.Namespace) -> RunConfig:
    """`_config` with the update settings of the model it names (a meta-trained model directory) beneath the preset
    and the overrides, so the model is updated as it was trained unless the user says otherwise; says so in one line."""
    cfg = _config(args)
    settings = read_update_settings(cfg.model.spec)
    if settings is None:
        return cfg
    cfg = _config(args, under=settings)
    print(describe(settings, {section: getattr(cfg, section) for section in settings}, cfg.model.spec), file=sys.stderr)
    return cfg


def _split_config_and_overrides(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> None:
    """Dotted overrides may stand anywhere, before or after the flags; the first positional may be a preset
    path or already an override (contains '=')."""
    unknown = [e for e in extra if e.startswith("-") or "=" not in e]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.overrides = list(extra)
    if args.config is not None and "=" in args.config:
        args.overrides.insert(0, args.config)
        args.config = None


def cmd_eval(args: argparse.Namespace) -> None:
    from promptgd.evaluate.recipe import run_eval

    cfg = _config_with_update_settings(args)
    if args.split is None and not any(o.startswith("eval.split=") for o in args.overrides):
        # Test triples are for a reported number, once its settings are chosen: they are asked for by name.
        raise ConfigError("promptgd eval: say which triples, --split val (to choose settings) or --split test")
    with locked(Path(args.out)):
        run_eval(cfg, Path(args.out))


def cmd_train(args: argparse.Namespace) -> None:
    from promptgd.data.partition import load_partition
    from promptgd.train.recipe import run_train, trained_or_resumed

    out, cfg = Path(args.out), _config(args)
    with locked(out):
        if args.resume:  # from the last checkpoint; from the start if there is none yet; a finished run is kept
            path = trained_or_resumed(cfg, out, lambda: load_partition(cfg), lambda: None, stop_after=args.stop_after)
        else:
            RunDir(out).refuse_training_over()
            path = run_train(cfg, out, stop_after=args.stop_after)
    if path is None:
        print(f"stopped after {args.stop_after} steps with a checkpoint; `--resume` continues the run")
    else:
        print(f"meta-trained model: {path}")


def cmd_run(args: argparse.Namespace) -> None:
    from promptgd.train.pipeline import run_pipeline

    out = args.out or f"runs/{Path(args.config).stem if args.config else 'default'}"
    # The report names the command that made it; the data location is part of it when it came from the environment.
    data = [f"PROMPTGD_DATA={os.environ['PROMPTGD_DATA']}"] if "PROMPTGD_DATA" in os.environ else []
    flags = [f for name in ("model", "task") if getattr(args, name) for f in (f"--{name}", getattr(args, name))]
    command = " ".join(
        [*data, "promptgd run", *([args.config] if args.config else []), *flags, *args.overrides, "--out", out]
    )
    with locked(Path(out)):
        run_pipeline(_config(args), Path(out), command)


def cmd_data_fetch(args: argparse.Namespace) -> None:

    from promptgd.data.acquire import fetch

    print(json.dumps(fetch(args.task, args.path), indent=2))


def _model_and_param(spec: str, device: str):
    from promptgd.evaluate.recipe import parameterization_for
    from promptgd.models.loading import load_model

    model, tokenizer = load_model(spec, device=device)
    return model, tokenizer, parameterization_for(model)


def _read_texts(paths: list[str]) -> list[str]:
    """Each file's text; a missing, non-UTF-8 or empty one is the user's mistake, named in one line."""
    texts = []
    for name in paths:
        path = Path(name)
        try:
            text = path.read_bytes().decode("utf-8")
        except (FileNotFoundError, IsADirectoryError):
            raise UserError(f"{path}: no such file") from None
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: not UTF-8 text (byte {e.start})") from None
        if not text.strip():
            raise UserError(f"{path}: empty; there is nothing to absorb")
        texts.append(text)
    return texts


def _documents(args: argparse.Namespace) -> list[str]:
    """The texts to absorb, in order: each --context file, then --corpus (a directory's *.txt files by name, or a
    JSONL file with one {"text": ...} per line)."""
    texts = _read_texts(args.context or [])
    if args.corpus:
        corpus = Path(args.corpus)
        if corpus.is_dir():
            files = sorted(corpus.glob("*.txt"))
            if not files:
                raise UserError(f"{corpus}: holds no *.txt files")
            texts += _read_texts([str(f) for f in files])
        else:
            lines = _read_texts([args.corpus])[0].splitlines()
            for number, line in enumerate(lines, 1):
                if line.strip():
                    texts.append(_jsonl_text(line, f"{corpus}:{number}"))
    if not texts:
        raise UserError("promptgd absorb: give --context FILE (repeatable) or --corpus DIR|FILE.jsonl")
    return texts


def _jsonl_text(line: str, where: str) -> str:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: not valid JSON ({e.msg})") from None
    text = row.get("text") if isinstance(row, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise UserError(f'{where}: expected an object with a non-empty "text" field')
    return text


def cmd_absorb(args: argparse.Namespace) -> None:
    from promptgd.api import absorb

    texts, out = _documents(args), Path(args.out)
    if out.exists():  # before the update, which can take minutes: nothing already written is overwritten
        if is_complete(out):  # a stream's state outlives its finished model only if the command was cut in between
            shutil.rmtree(_stream_state(out), ignore_errors=True)
        raise UserError(f"{out}: exists; promptgd absorb writes the updated model to a new directory")
    delta_base = _delta_base(args.model) if args.delta else None  # a base it cannot use is refused before any work
    model, tokenizer, param = _model_and_param(args.model, args.device)
    given = [
        f"inner.{key}={value}"
        for key, value in (("lr", args.lr), ("steps", args.steps), ("mode", args.mode), ("guard", args.guard))
        if value is not None
    ]
    inner = inner_config(model.update_settings, given)
    if model.update_settings:
        print(describe({"inner": model.update_settings["inner"]}, {"inner": inner}, args.model), file=sys.stderr)
    with locked(out):
        if args.sequential:
            updated = _absorb_stream(args, model, tokenizer, param, texts, inner, out)
        else:
            updated = absorb(model, tokenizer, texts, inner, param=param)
        stored = _save_absorbed(updated, tokenizer, model.loaded_from, out, delta_base)
    shutil.rmtree(_stream_state(out), ignore_errors=True)
    print(f"absorbed {len(texts)} text(s) into {out}{stored}")


def _stream_state(out: Path) -> Path:
    return out.with_name(out.name + ".absorbing")


def _absorb_stream(args, model, tokenizer, param, texts: list[str], inner, out: Path):
    """One update per text, in order, resumable: every --save-every texts the state is saved beside OUT
    (OUT.absorbing/state.safetensors: the weights, with the count of texts absorbed and what was asked for in its
    metadata, one file written whole and renamed), and the same command run again continues from it."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import save_file

    from promptgd.api import absorb_each

    path, identity = _stream_state(out) / "state.safetensors", _stream_identity(args, texts, inner)
    state = None
    if path.is_file():
        try:
            with safe_open(str(path), framework="pt", device=str(next(model.parameters()).device)) as saved:
                recorded = saved.metadata() or {}
                if recorded.get("identity") != identity:
                    raise UserError(f"{path}: a stream of other texts or settings was saved here; delete it to restart")
                state = (int(recorded["done"]), {k: saved.get_tensor(k) for k in saved.keys()})  # noqa: SIM118
        except (SafetensorError, OSError, KeyError, ValueError) as e:
            raise UserError(f"{path}: not a readable absorb state ({type(e).__name__}); delete it to restart") from None
        print(f"promptgd absorb: continuing after {state[0]} of {len(texts)} texts ({path})", file=sys.stderr)

    def save(done: int, params) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        tensors = {k: v.contiguous() for k, v in params.items()}
        save_file(tensors, str(partial), metadata={"identity": identity, "done": str(done)})
        with partial.open("rb") as f:  # on disk before the rename, or a power cut could leave an empty state
            os.fsync(f.fileno())
        os.replace(partial, path)

    return absorb_each(
        model,
        tokenizer,
        texts,
        inner,
        param=param,
        state=state,
        save=save,
        every=args.save_every,
        at_theta=args.at_theta,
    )


def _stream_identity(args, texts: list[str], inner) -> str:
    import hashlib

    model = str(Path(args.model).resolve()) if Path(args.model).exists() else args.model  # one model, however named
    digest = hashlib.sha256(json.dumps([model, texts, repr(inner), args.at_theta]).encode()).hexdigest()
    return digest


def _delta_base(spec: str) -> tuple[str, Path]:
    """(spec as a delta records it, where its weights lie): a packaged name, else an absolute directory."""
    from promptgd.models.loading import weights_directory

    base = spec if spec.startswith("packaged:") else str(Path(spec).resolve())
    return base, weights_directory(base)


def _save_absorbed(updated, tokenizer, source: Path | None, out: Path, delta_base: tuple[str, Path] | None) -> str:
    """Save the updated model in `out` (with `delta_base`, the model it was updated from, as its difference from that
    model where that is smaller than a copy); return how it was stored, for the closing line."""
    from promptgd.models.delta_checkpoint import write_delta
    from promptgd.update.step_sizes import FILE as LR_SCALES_FILE

    # The updated model absorbs more text the same way, with the same learned step sizes.
    extra = {name: source / name for name in (SETTINGS_FILE, LR_SCALES_FILE) if source and (source / name).is_file()}
    if delta_base is not None:
        base, base_dir = delta_base
        written = write_delta(updated.state_dict(), base, base_dir, out, extra, max_rank=None, whole=True)
        if written is not None:
            megabytes = f"{written['bytes'] / 1e6:.1f} MB against {written['full_copy_bytes'] / 1e6:.1f} MB for a copy"
            return f", stored as its difference from {base} ({megabytes}; loading it needs {base})"
    with staged(out) as tmp:
        updated.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for name, path in extra.items():
            shutil.copyfile(path, tmp / name)
    return "" if delta_base is None else " as a full copy (its difference from the model takes as many bytes)"


def cmd_ask(args: argparse.Namespace) -> None:
    from promptgd.api import ask

    if (args.question is None) == (args.questions is None):
        raise UserError("promptgd ask: give one question, or --questions FILE (one per line), not both")
    questions = [args.question] if args.question is not None else _read_texts([args.questions])[0].splitlines()
    model, tokenizer, param = _model_and_param(args.model, args.device)
    if args.question is not None:
        print(ask(model, tokenizer, args.question, args.max_new_tokens, param))
        return
    for question in filter(str.strip, questions):  # one JSON object per line: question and answer
        answer = ask(model, tokenizer, question, args.max_new_tokens, param)
        print(json.dumps({"question": question, "answer": answer}, ensure_ascii=False))


def cmd_diagnose(args: argparse.Namespace) -> None:
    from promptgd.report.diagnostics import diagnostics_markdown

    markdown = diagnostics_markdown(Path(args.eval_dir) / "predictions.jsonl")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnostics.md").write_text(markdown)
    print(markdown)


def cmd_export(args: argparse.Namespace) -> None:
    from promptgd.report.export import export_run

    rows = export_run(Path(args.run_dir), Path(args.out), args.replace)
    print(f"exported rows {', '.join(rows)} of {args.run_dir} to {args.out}/")


def cmd_pack(args: argparse.Namespace) -> None:
    from promptgd.models.delta_checkpoint import pack

    model, out = Path(args.model), Path(args.out)
    if out.exists():
        raise UserError(f"{out}: exists; promptgd pack writes a new directory")
    if not (model / "model.safetensors").is_file():
        raise UserError(f"{model}: not a saved model directory (no model.safetensors)")
    base, base_dir = _delta_base(args.base)
    manifest = pack(model, base, base_dir, out, args.max_rank)
    print(
        f"packed {model} as {manifest['changed_tensors']} changed tensors (rank ≤ {manifest['max_rank']}) on {base}: "
        f"{manifest['bytes'] / 1e6:.1f} MB against {manifest['full_copy_bytes'] / 1e6:.1f} MB for a full copy; "
        f"put {out} in src/promptgd/absorbers/<name>/ to load it as packaged:<name>"
    )


def cmd_reproduce(args: argparse.Namespace) -> None:
    from promptgd.reproduce.cost import Rates
    from promptgd.reproduce.runner import Reproduction, plan, run_reproduction

    work = args.work or f"runs/reproduce/{args.scale}"
    rates = Rates(Path(args.rates)) if args.plan and args.scale == "paper" else None
    rep = Reproduction(Path(args.configs), Path(work), args.scale, tuple(args.overrides), rates=rates)
    if args.plan:
        print(plan(args.name, rep))
        return
    command = " ".join(
        ["promptgd reproduce", args.name, "--scale", args.scale, "--out", args.out]
        + (["--work", args.work] if args.work else [])
        + list(args.overrides)
    )
    with locked(rep.work):
        run_reproduction(args.name, rep, Path(args.out), command)


def cmd_tasks(args: argparse.Namespace) -> None:
    from promptgd.data.tasks import task_names

    print("\n".join(task_names()))


def _with_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "config",
        nargs="?",
        help="YAML preset (configs/*.yaml); dotted overrides such as "
        "inner.lr=3e-4 eval.limit=50 may follow anywhere on the line",
    )


def _eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a model in NC / Prompt / FT modes")
    _with_config(p)
    p.add_argument("--model", help="model spec (hub id, local dir, packaged:smollm2-135m, tiny:llama)")
    p.add_argument("--task", help="task name or jsonl:<path>")
    p.add_argument("--modes", help="comma-separated subset of nc,prompt,ft,ft_irrelevant")
    p.add_argument(
        "--split",
        choices=["test", "val", "meta", "warmup", "ood"],
        help="which triples, asked for by name (or eval.split=): val to choose settings, test for a reported number "
        "once they are chosen, ood for held-out description families of the people tasks; see data/partition.py",
    )
    p.add_argument("--limit", type=int, help="evaluate the first N triples of the split")
    p.add_argument("--out", required=True, help="directory for predictions.jsonl and summary.json")
    p.set_defaults(func=cmd_eval)


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="meta-train a model (LC or LG); saves an HF checkpoint at OUT/model")
    _with_config(p)
    p.add_argument("--model", help="model spec to start from")
    p.add_argument("--task", help="task name or jsonl:<path>")
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics.jsonl, model/)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint that loads (from the start if none yet); a finished run is kept",
    )
    p.add_argument(
        "--stop-after",
        type=int,
        help="stop after this many more outer steps, with a checkpoint (the schedule stays the whole run's): a "
        "setting compared on validation part-way continues with --resume",
    )
    p.set_defaults(func=cmd_train)


def _run_parser(sub) -> None:
    p = sub.add_parser("run", help="warm-up, base eval, meta-training per objective, eval, report")
    _with_config(p)
    p.add_argument("--model", help="model spec to start from")
    p.add_argument("--task", help="task name or jsonl:<path>")
    p.add_argument("--out", default=None, help="run directory (default runs/<preset name>)")
    p.set_defaults(func=cmd_run)


def _data_parser(sub) -> None:
    p = sub.add_parser("data", help="data sets")
    data = p.add_subparsers(dest="data_command", required=True)
    p = data.add_parser("fetch", help="acquire and preprocess a real-text task's data; prints its manifest")
    p.add_argument("task", choices=["squad", "wikitext"])
    p.add_argument("--path", help="a local copy of the raw data (file or directory)")
    p.set_defaults(func=cmd_data_fetch, config=None)


def _absorb_parser(sub) -> None:
    p = sub.add_parser("absorb", help="apply the inner update for some texts and save the updated model")
    p.add_argument("--model", required=True, help="a (meta-trained) model spec or run model directory")
    p.add_argument("--context", action="append", help="a UTF-8 text file to absorb (repeatable)")
    p.add_argument("--corpus", help='more texts: a directory of *.txt files (by name), or a JSONL of {"text": ...}')
    p.add_argument(
        "--sequential",
        action="store_true",
        help="one update per text, in order, each from the previous one's weights (a stream), resumable; "
        "without it, one update on the texts' mean loss",
    )
    p.add_argument("--save-every", type=int, default=50, help="--sequential: save the state every N texts")
    p.add_argument(
        "--delta",
        action="store_true",
        help="store OUT as its low-rank difference from --model where that is smaller than a copy (it then needs "
        "--model to load)",
    )
    p.add_argument(
        "--at-theta",
        action="store_true",
        help="--sequential: take every text's update at the model's own weights and apply them all together (their "
        "sum), instead of each from the previous one's",
    )
    p.add_argument("--guard", choices=["none", "stop", "halve"], help="inner.guard: hold a step that diverges")
    p.add_argument("--lr", type=float, help="inner learning rate η (default: the model's update settings, else 1e-3)")
    p.add_argument("--steps", type=int, help="SGD steps (default: the model's update settings, else 1)")
    p.add_argument(
        "--mode",
        choices=["batched", "sequential"],
        help="several texts: one step on their mean loss, or one after another (default: the update settings', else batched)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, help="directory for the updated model (HF checkpoint)")
    p.set_defaults(func=cmd_absorb, config=None)


def _ask_parser(sub) -> None:
    p = sub.add_parser("ask", help="answer a question (or a file of them) greedily from a model")
    p.add_argument("--model", required=True)
    p.add_argument("question", nargs="?")
    p.add_argument("--questions", help="a UTF-8 file of questions, one per line; answers print as JSON lines")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_ask, config=None)


def _report_parsers(sub) -> None:
    p = sub.add_parser(
        "diagnose", help="the paper's Tables 4 and 5 from an evaluation directory (needs nc, ft, ft_irrelevant)"
    )
    p.add_argument("eval_dir", help="a directory written by `promptgd eval` (holds predictions.jsonl)")
    p.add_argument("--out", required=True, help="directory for diagnostics.md")
    p.set_defaults(func=cmd_diagnose, config=None)
    p = sub.add_parser(
        "export",
        help="copy a `promptgd run` directory's rows, one `promptgd eval` directory as a row (summary, config, "
        "gzipped predictions), or one `promptgd train` directory's config and training logs, for committing",
    )
    p.add_argument("run_dir", help="a directory written by `promptgd run`, `promptgd eval` or `promptgd train`")
    p.add_argument(
        "--out",
        required=True,
        help="destination, e.g. results/studies/quickstart: one folder per row (base, lc, lg); for `eval` or "
        "`train`, the row",
    )
    p.add_argument("--replace", action="store_true", help="write over rows already exported to --out")
    p.set_defaults(func=cmd_export, config=None)
    p = sub.add_parser(
        "pack", help="write a meta-trained model as its low-rank difference from a base: a packaged absorber"
    )
    p.add_argument("model", help="a meta-trained model directory (e.g. RUN/model)")
    p.add_argument("--base", required=True, help="the model it was trained from: packaged:<name> or a directory")
    p.add_argument("--out", required=True, help="a new directory (then src/promptgd/absorbers/<name>/)")
    p.add_argument("--max-rank", type=int, default=64, help="refuse a tensor whose change needs a higher rank")
    p.set_defaults(func=cmd_pack, config=None)
    p = sub.add_parser("tasks", help="list task names")
    p.set_defaults(func=cmd_tasks, config=None)


def _reproduce_parser(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="one of the paper's results end to end: models, evaluations, results/paper/<name>_<scale>.md and .png",
    )
    p.add_argument("name", choices=["figure2", "table1", "table2", "table3", "table4", "table5"])
    p.add_argument(
        "--scale",
        choices=["small", "paper"],
        default="small",
        help="small: offline SmolLM2-135M presets (configs/), CPU hours; paper: configs/paper/ (Llama-3.2-1B, GPU)",
    )
    p.add_argument("--out", default="results/paper", help="directory for <name>_<scale>.md and .png")
    p.add_argument("--work", help="models and evaluations, reused across experiments (default runs/reproduce/<scale>)")
    p.add_argument("--configs", default="configs", help="the presets directory")
    p.add_argument(
        "--plan",
        action="store_true",
        help="only print which models would be trained or reused and which evaluations run or are cached; at "
        "--scale paper also the data found, downloads, disk and an estimate of GPU hours and memory",
    )
    p.add_argument(
        "--rates",
        default="results/benchmarks/gpu_rates.json",
        help="measured GPU rates per kind of work for --plan's estimate (benchmarks/gpu_calibrate.sh writes one)",
    )
    p.set_defaults(func=cmd_reproduce, config=None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="promptgd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_eval_parser, _train_parser, _run_parser, _data_parser, _absorb_parser, _ask_parser):
        add(sub)
    _report_parsers(sub)
    _reproduce_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    _split_config_and_overrides(parser, args, extra)
    distributed.init()  # under torchrun (distributed.py); a no-op in one process
    if not distributed.is_main():  # rank 0 reports; the others' output would repeat it
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    try:
        args.func(args)
    except ConfigError as e:
        print(f"promptgd: config error: {e}", file=sys.stderr)
        sys.exit(2)
    except UserError as e:  # errors.py: the message names the file, line or key
        print(f"promptgd: error: {e}", file=sys.stderr)
        sys.exit(2)
    except (FileExistsError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as e:
        print(f"promptgd: error: {e}", file=sys.stderr)  # the OS's message and ours both name the path
        sys.exit(2)


if __name__ == "__main__":
    main()
