"""Configs: presets load, overrides apply, unknown keys and wrong types raise naming the key."""

import re
from pathlib import Path

import pytest

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
