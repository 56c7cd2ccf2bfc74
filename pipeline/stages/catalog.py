"""``ssl4eo catalog``: write the STAC catalog of the outputs (``<out>/catalog``) from the finished store."""

from __future__ import annotations

from pathlib import Path

from export.catalog import write_catalog
from pipeline.config import Config


def main(cfg: Config, out: Path) -> int:
    s = write_catalog(out)
    print(f"catalog: {s.n_collections} collection(s), {s.n_items} item(s) -> {s.href}")
    return 0
