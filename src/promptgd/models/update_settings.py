"""A meta-trained model's update settings: how the inner step must update it, saved beside its weights.

A model meta-trained at η = 1e-2 answers from one step of η = 1e-2; evaluated or used at the library default
(1e-3) its FT is measured at a step it was never trained for. So `promptgd train` writes `promptgd.json` into the
model directory (the inner step, the format separators, the LoRA variant, the objective and the model it started
from), and `promptgd eval`, `promptgd absorb` and `promptgd.absorb` read it: its settings sit between the library
defaults and anything the user sets (a preset or an override wins, and the command says which fields did).
A plain Hugging Face model has none and gets the library defaults.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from promptgd.errors import UserError

SETTINGS_FILE = "promptgd.json"
# The config sections an update depends on; they are what the settings contributes to a run's config.
SECTIONS = ("inner", "format", "lora")


class UpdateSettingsError(UserError, ValueError):
    """A promptgd.json that cannot be read; the message names the file."""


def write_update_settings(cfg, model_dir: Path) -> None:
    """`cfg`: the RunConfig the model was meta-trained with."""
    settings = {section: _plain(dataclasses.asdict(getattr(cfg, section))) for section in SECTIONS}
    settings["trained_with"] = {
        "objective": cfg.train.objective,
        "first_order": cfg.train.first_order,
        "start": cfg.model.spec,
        "task": cfg.task.name,
    }
    (model_dir / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")


def read_update_settings(model_dir: str | Path) -> dict | None:
    """The settings's config sections ({"inner": {...}, "format": {...}, "lora": {...}}), or None without one."""
    path = Path(model_dir) / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        settings = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UpdateSettingsError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(settings, dict) or not all(isinstance(settings.get(s), dict) for s in SECTIONS):
        raise UpdateSettingsError(f"{path}: expected the sections {', '.join(SECTIONS)}")
    return {section: settings[section] for section in SECTIONS}


def inner_config(settings: dict | None, overrides: list[str] = ()):
    """The InnerConfig of `settings` (library defaults without one) with dotted `overrides` such as inner.lr=0.01."""
    from promptgd.config import (
        load_config,  # config imports nothing of ours; imported here to keep this module's import light
    )

    return load_config(None, list(overrides), under={"inner": settings["inner"]} if settings else None).inner


def describe(settings: dict, used: dict, source: str) -> str:
    """One line for the user: the inner-step settings taken from the settings, and every field their settings replaced.
    `used`: section name -> the config section the command runs with, for the settings's sections."""
    taken, replaced = [], []
    for section, fields in settings.items():
        for key, trained in fields.items():
            actual = _plain(getattr(used[section], key))
            if actual != trained:
                replaced.append(f"{section}.{key}={actual!r} (trained with {trained!r})")
            elif section == "inner":
                taken.append(f"{section}.{key}={trained!r}")
    line = f"promptgd: the update settings in {source} sets {', '.join(taken) or 'nothing new'}"
    return line + (f"; your settings replace {', '.join(replaced)}" if replaced else "")


def _plain(value):
    return (
        [_plain(v) for v in value]
        if isinstance(value, (list, tuple))
        else ({k: _plain(v) for k, v in value.items()} if isinstance(value, dict) else value)
    )
