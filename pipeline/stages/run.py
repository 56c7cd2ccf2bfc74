"""``ssl4eo run`` / ``make demo``: every stage in order, then one summary of what was made and where."""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.config import Config
from pipeline.stages.common import human_bytes


def main(cfg: Config, out: Path) -> int:
    from pipeline.stages import catalog, download, sample, shard

    t0 = time.perf_counter()
    out = Path(out)
    for stage in (sample, download, shard, catalog):
        code = stage.main(cfg, out)
        if code != 0:
            return code
    print(summary(out, time.perf_counter() - t0))
    return 0


def summary(out: Path, seconds: float) -> str:
    import geopandas as gpd

    from pipeline.ledger import read_ledger, summarize

    n_loc = len(gpd.read_parquet(out / "locations.parquet"))
    counts = summarize(read_ledger(out))
    complete = counts.get("complete", 0)
    size = sum(p.stat().st_size for p in (out / "dataset.zarr").rglob("*") if p.is_file())
    failed = ", ".join(f"{k.removeprefix('failed:')} {v}" for k, v in counts.items() if k != "complete") or "none"
    return (
        f"\nssl4eo run finished in {seconds:.0f} s\n"
        f"  locations sampled : {n_loc}\n"
        f"  complete          : {complete} (failed: {failed})\n"
        f"  patches           : {_patches(out)}\n"
        f"  dataset           : {out / 'dataset.zarr'} ({human_bytes(size)})\n"
        f"  catalog           : {out / 'catalog' / 'catalog.json'}\n"
        f"  locations         : {out / 'locations.parquet'}\n"
        f"  ledger            : {out / 'ledger.jsonl'}"
    )


def _patches(out: Path) -> str:
    """Patches in the shards: samples x seasons per product group."""
    import zarr

    try:
        root = zarr.open_group(str(out / "dataset.zarr"), mode="r")
    except Exception:  # no store: nothing was complete
        return "0"
    parts = []
    for name, grp in root.groups():
        shape = grp["bands"].shape
        parts.append(f"{name} {shape[0]}x{shape[1]}")
    return ", ".join(parts) or "0"
