"""Read a YAML config file into :class:`Config`, turning every problem into one line that names key and fix."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.config.models import Config
from pipeline.errors import ConfigError


def load_config(path: str | Path | None) -> Config:
    """The validated config of ``path``; the embedded default config when ``path`` is None."""
    if path is None:
        return Config()
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {str(p)!r} is a folder; pass a YAML file to --config (or omit it)")
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} not found; pass an existing YAML file to --config (or omit it)")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {str(p)!r} is not valid YAML{where}; fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of sections (source:, sampling:, ...)")
    return config_from_dict(data, origin=str(p))


def config_from_dict(data: dict[str, Any], origin: str = "<config>") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{origin}: {_first_error(e)}") from None


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = [str(x) for x in err["loc"]]
    dotted = ".".join(loc) or "<root>"
    if err["type"] == "extra_forbidden":
        parent = _model_at(Config, loc[:-1])
        hint = ""
        if parent is not None:
            near = difflib.get_close_matches(loc[-1], list(parent.model_fields), n=1, cutoff=0.5)
            valid = ", ".join(parent.model_fields)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (valid keys: {valid})"
        return f"unknown key {dotted!r}{hint}; remove or rename it"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        return f"missing key {dotted!r}; add it"
    return f"bad value for {dotted!r}: {msg} (got {err.get('input')!r})"


def _model_at(model: type[BaseModel], loc: list[str]) -> type[BaseModel] | None:
    """The pydantic model class at a location path (list indices skipped), or None."""
    cur: Any = model
    for part in loc:
        if part.isdigit():
            continue
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)) or part not in cur.model_fields:
            return None
        ann = cur.model_fields[part].annotation
        cur = _unwrap(ann)
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def _unwrap(ann: Any) -> Any:
    args = getattr(ann, "__args__", None)
    if args:
        for a in args:
            u = _unwrap(a)
            if isinstance(u, type) and issubclass(u, BaseModel):
                return u
    return ann


def config_to_yaml(cfg: Config) -> str:
    """The fully resolved config as YAML (what ``ssl4eo config show`` prints)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
