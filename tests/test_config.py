"""Configs: presets load, overrides apply, unknown keys, wrong types and values out of range raise naming the key;
every field is documented, and the speed-only ones are grouped last."""

import ast
import re
from dataclasses import fields, replace
from pathlib import Path

import pytest

from promptgd import config
from promptgd.config import ConfigError, RunConfig, dump_yaml, from_dict, load_config, to_dict, with_overrides
from promptgd.data import acquire

CONFIGS = Path(__file__).parent.parent / "configs"
PRESETS = sorted(CONFIGS.glob("**/*.yaml"))


def test_there_are_presets():
    assert PRESETS


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_preset_loads(preset):
    cfg = load_config(preset)
    assert isinstance(cfg, RunConfig)
    assert from_dict(to_dict(cfg)) == cfg  # round-trips through the YAML-able dict


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_hub_model_a_preset_names_is_pinned_to_a_commit(preset):
    spec = load_config(preset).model.spec
    if not spec.startswith(("packaged:", "tiny:")):
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", spec), f"{preset}: model.spec {spec} has no @<commit>"


def test_the_hub_data_sets_are_pinned_to_a_commit():
    assert re.fullmatch(r"[0-9a-f]{40}", acquire.SQUAD_HUB_REVISION)
    assert re.fullmatch(r"[0-9a-f]{40}", acquire.WIKITEXT_HUB_REVISION)


def test_defaults_match_the_method():
    cfg = load_config()
    assert cfg.inner.lr == 1e-3 and cfg.inner.steps == 1
    assert cfg.model.spec == "packaged:smollm2-135m"
    assert cfg.train.clip_norm > 0


def test_dotted_overrides_and_float_spelling():
    cfg = load_config(None, ["inner.lr=3e-4", "eval.modes=nc,ft", "train.first_order=true", "eval.limit=5"])
    assert cfg.inner.lr == 3e-4 and isinstance(cfg.inner.lr, float)
    assert cfg.eval.modes == ("nc", "ft")
    assert cfg.train.first_order is True and cfg.eval.limit == 5


@pytest.mark.parametrize(
    "override, key",
    [
        ("inner.lrr=1", "inner.lrr"),
        ("nosuch.x=1", "nosuch"),
        ("train.batch_size=two", "train.batch_size"),
        ("train.batch_size=1.5", "train.batch_size"),
        ("train.objective=xyz", "train.objective"),
        ("train.first_order=3", "train.first_order"),
        ("inner.lr=fast", "inner.lr"),
        ("pipeline.objectives=lc,xx", r"pipeline.objectives\[1\]"),
    ],
)
def test_bad_overrides_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.fsdp=true", "lora.variant=inner"], "train.fsdp=true needs lora.variant=none"),
        (["train.fsdp=true", "inner.implementation=explicit"], "inner.implementation=explicit"),
        (["transfer.mode=sequential", "lora.variant=outer"], "use it with lora.variant=none"),
    ],
)
def test_settings_that_cannot_run_together_are_refused_at_once(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_bad_yaml_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: 1e-4\n  batchsize: 4\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train\.batchsize"):
        load_config(path)


def test_preset_inherits_from_base(tmp_path):
    (tmp_path / "parent.yaml").write_text("train:\n  lr: 2e-5\n  batch_size: 8\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\ntrain:\n  batch_size: 2\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg.train.lr == 2e-5 and cfg.train.batch_size == 2


def test_config_is_frozen_and_dumpable():
    cfg = with_overrides(load_config(), ["task.n_test=7"])
    with pytest.raises(AttributeError):
        cfg.task.n_test = 3
    assert "n_test: 7" in dump_yaml(cfg)


def test_a_value_out_of_range_is_refused_however_the_config_is_made(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: -1\n")
    with pytest.raises(ConfigError, match=r"^.*bad\.yaml: train\.lr=-1\.0: must be a finite number > 0$"):
        load_config(path)
    cfg = load_config()
    with pytest.raises(ConfigError, match=r"^train\.lr=-1\.0: must be a finite number > 0$"):
        replace(cfg, train=replace(cfg.train, lr=-1.0))
    with pytest.raises(ConfigError, match="train.fsdp=true needs lora.variant=none"):
        replace(cfg, train=replace(cfg.train, fsdp=True), lora=replace(cfg.lora, variant="inner"))


def test_speed_only_keys_exist_and_come_last_in_their_sections():
    cfg = RunConfig()
    keys = [f"{s.name}.{f.name}" for s in fields(RunConfig) for f in fields(getattr(cfg, s.name))]
    assert set(config.SPEED_ONLY) <= set(keys) and len(set(config.SPEED_ONLY)) == len(config.SPEED_ONLY)
    for section in fields(RunConfig):
        names = [f.name for f in fields(getattr(cfg, section.name))]
        speed = [name for name in names if f"{section.name}.{name}" in config.SPEED_ONLY]
        assert names[len(names) - len(speed) :] == speed, f"{section.name}: speed-only fields are not grouped last"


def test_every_field_of_every_section_has_a_docstring():
    """Each field's only documentation is the string literal under it (config.py's module docstring)."""
    cfg = RunConfig()
    sections = {type(getattr(cfg, s.name)).__name__: type(getattr(cfg, s.name)) for s in fields(RunConfig)}
    tree = ast.parse(Path(config.__file__).read_text())
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef) and node.name in sections}
    assert classes.keys() == sections.keys()
    for name, node in classes.items():
        annotated = []
        for statement, after in zip(node.body, [*node.body[1:], None]):
            if isinstance(statement, ast.AnnAssign):
                annotated.append(statement.target.id)
                documented = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                assert documented and isinstance(after.value.value, str), f"{name}.{statement.target.id}: no docstring"
        assert annotated == [f.name for f in fields(sections[name])]
