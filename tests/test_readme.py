"""The README documents every config key and both setup commands (docs that cannot drift from the model)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from pipeline.config.models import Config, ProductConfig

README = (Path(__file__).parents[1] / "README.md").read_text()


def leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += leaf_keys(ann, f"{prefix}{name}.")
        elif name == "products":
            keys += leaf_keys(ProductConfig, "products[].")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_every_config_key_documented() -> None:
    missing = [k for k in leaf_keys(Config) if f"`{k}`" not in README]
    assert not missing, f"README lacks config keys: {missing}"


def test_two_commands() -> None:
    assert "make demo" in README and "make test" in README
