"""What ships with the package, so it works outside a checkout: the rule pack and the starter
config. An installed package carries them as package data (`monitor/pack`,
`monitor/starter/monitor.toml`); a source checkout (including an editable install) reads the
checkout's own `rules/` and `monitor.toml`, the copies people edit.

`monitor init DIR` writes a working starting point: a `monitor.toml` and a copy of the pack to
edit, never overwriting what is already there."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import ConfigError

_HERE = Path(__file__).resolve().parent
_CHECKOUT = _HERE.parent


def pack_path() -> Path:
    """The shipped rule pack (a folder of rule files)."""
    for candidate in (_HERE / "pack", _CHECKOUT / "rules"):
        if candidate.is_dir() and any(candidate.rglob("*.yaml")):
            return candidate
    raise ConfigError(f"the rule pack is missing from this installation ({_HERE / 'pack'})")


def starter_config_path() -> Path:
    """The shipped starter config."""
    for candidate in (_HERE / "starter" / "monitor.toml", _CHECKOUT / "monitor.toml"):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"the starter config is missing from this installation ({_HERE})")


@dataclass(frozen=True)
class InitResult:
    config: Path
    rules: Path
    written: list[Path]  # what was created (existing files are left alone)
    kept: list[Path]  # what already existed


def init_folder(folder: Path) -> InitResult:
    """Write `folder/monitor.toml` and `folder/rules/` (a copy of the pack) where they do not
    exist yet. The starter config's paths are relative to its folder, so it works there."""
    folder.mkdir(parents=True, exist_ok=True)
    config, rules = folder / "monitor.toml", folder / "rules"
    written, kept = [], []
    if config.exists():
        kept.append(config)
    else:
        shutil.copyfile(starter_config_path(), config)
        written.append(config)
    if rules.exists():
        kept.append(rules)
    else:
        shutil.copytree(pack_path(), rules, ignore=shutil.ignore_patterns("__pycache__"))
        written.append(rules)
    return InitResult(config, rules, written, kept)
