"""``ssl4eo verify``: check a finished output folder and list every problem found.

Checks: the store is finished; every group has the declared shape and dtype and the same sample index; each
``bands`` shard file matches its stored CRC32C and decodes (every chunk carries its own CRC32C, checked by
Zarr); no sample-season is all nodata, nor holds NaN unless NaN is its nodata and its nodata fraction says so;
every catalog item has its sample and every sample its item, and the catalog validates against the STAC schemas;
the parquet index has one row per product, sample and season. A file that cannot be read is a finding too.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from export.checksum import file_crc32c
from export.layout import BANDS, CATALOG, INDEX, STATE, STORE, bands_shard_key, n_shards, shard_spans
from export.stac_check import validate_catalog
from export.store import ATTR, chunk_blocks
from export.writer import TMP

SCHEMA_ITEMS = 100
"""Items per collection validated against the STAC schemas (each one is checked against the store anyway)."""
META_ARRAYS = {"location_id": 1, "lon": 1, "lat": 1, "epsg": 1, "transform": 2, "datetime": 2, "scene_id": 2,
               "scene_href": 2, "cloud_fraction": 2, "nodata_fraction": 2, "scale": 3, "offset": 3}
KEPT = ("location_id", "nodata_fraction")
"""Metadata arrays the later checks use; the others are only decoded (EnMAP's scale is GBs for a big corpus)."""

@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    samples: int = 0
    shards_checked: int = 0
    items_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(out: Path, workers: int | None = None) -> VerifyReport:
    """Check ``out`` (the output folder of a run); never raises for a bad dataset, it reports."""
    out = Path(out)
    rep = VerifyReport()
    store_path = out / STORE
    if not (store_path / "zarr.json").is_file():
        rep.problems.append(f"{store_path}: missing; run 'ssl4eo shard'")
        return rep
    root = zarr.open_group(zarr.storage.LocalStore(store_path, read_only=True), mode="r")
    rattrs: dict[str, Any] = root.attrs.get(ATTR) or {}
    if rattrs.get("status") != "complete":
        rep.problems.append(f"{store_path}: unfinished (status {rattrs.get('status')!r}); rerun 'ssl4eo shard'")
        return rep
    n = int(rattrs["n_samples"])
    rep.samples = n
    ids: np.ndarray | None = None
    for product in rattrs["products"]:
        if product not in root:
            rep.problems.append(f"{product}: group missing from {store_path}")
            continue
        group = root[product]
        assert isinstance(group, zarr.Group)
        meta = _check_group(rep, product, group, n, int(rattrs["n_times"]))
        loc = meta.get("location_id") if meta is not None else None
        if loc is not None and ids is not None and not np.array_equal(loc, ids):
            rep.problems.append(f"{product}: location_id differs from {rattrs['products'][0]}'s; the sample index "
                                "must be shared: rerun 'ssl4eo shard'")
        ids = loc if ids is None else ids
        if meta is not None and loc is not None:  # else what its shards are checked against is missing (listed)
            frac = meta.get("nodata_fraction")
            frac = frac if frac is not None and frac.shape == (n, int(rattrs["n_times"])) else None
            _check_shards(rep, store_path, product, group, n, workers, loc, frac)
    _check_leftovers(rep, store_path)
    if ids is not None:
        _check_catalog(rep, out, rattrs["products"], ids)
        _check_index(rep, out, rattrs["products"], ids, int(rattrs["n_times"]))
    return rep


def _check_group(rep: VerifyReport, product: str, g: zarr.Group, n: int, t: int) -> dict[str, np.ndarray] | None:
    """Shapes, dtypes and decodability of the group's arrays; the metadata arrays that decode, by name (None when
    the bands themselves are missing)."""
    ga = g.attrs.get(ATTR) or {}
    try:
        bands = g[BANDS]
        names = g["band"][...]
    except KeyError as e:
        rep.problems.append(f"{product}: array {e} missing; rerun 'ssl4eo shard'")
        return None
    assert isinstance(bands, zarr.Array)
    px = int(ga.get("patch_px", -1))
    want = (n, t, len(ga.get("bands", [])), px, px)
    if bands.shape != want or len(names) != want[2]:
        rep.problems.append(f"{product}: bands shape {bands.shape} with {len(names)} band names; expected {want}")
    if str(bands.dtype) != str(np.dtype(ga.get("dtype", "?"))):
        rep.problems.append(f"{product}: bands dtype {bands.dtype} != declared {ga.get('dtype')}")
    meta: dict[str, np.ndarray] = {}
    for name, ndim in META_ARRAYS.items():
        if name not in g:
            rep.problems.append(f"{product}: metadata array {name} missing; rerun 'ssl4eo shard'")
            continue
        a = g[name]
        assert isinstance(a, zarr.Array)
        if a.shape[0] != n or a.ndim != ndim or (ndim >= 2 and name != "transform" and a.shape[1] != t) or (
                ndim == 3 and a.shape[2] != want[2]):
            rep.problems.append(f"{product}: {name} has shape {a.shape}; expected {n} samples"
                                + (f" x {t} seasons" if ndim >= 2 and name != "transform" else "")
                                + (f" x {want[2]} bands" if ndim == 3 else ""))
        try:  # every chunk carries a CRC32C, checked on read; only the arrays kept are held whole
            if name in KEPT:
                meta[name] = np.asarray(a[...])
            else:
                for _ in chunk_blocks(a):
                    pass
        except Exception as e:
            rep.problems.append(f"{product}: metadata array {name} does not decode ({type(e).__name__}: "
                                f"{str(e)[:80]}); rerun 'ssl4eo shard'")
    crc = g.get("shard_crc32c")
    if crc is None or crc.shape != (n_shards(n, int(ga.get("shard_size", 1))),):
        rep.problems.append(f"{product}: shard_crc32c missing or of the wrong length; rerun 'ssl4eo shard'")
    return meta


def _check_shards(rep: VerifyReport, store: Path, product: str, g: zarr.Group, n: int, workers: int | None,
                  ids: np.ndarray, frac: np.ndarray | None) -> None:
    ga = g.attrs[ATTR]
    size = int(ga["shard_size"])
    crcs = np.asarray(g["shard_crc32c"][...]) if "shard_crc32c" in g else None
    bands = g[BANDS]
    assert isinstance(bands, zarr.Array)
    nodata = ga.get("nodata")

    def one(span: Any) -> list[str]:
        out: list[str] = []
        key = bands_shard_key(product, span.index)
        path = store / key
        where = f"{product} shard {span.index} (samples {span.start}-{span.stop - 1})"
        if not path.is_file():
            return [f"{where}: file {key} missing"]
        if crcs is not None and span.index < crcs.size:
            found = file_crc32c(path)
            if found != int(crcs[span.index]):
                out.append(f"{where}: file {key} CRC32C {found:08x} != stored {int(crcs[span.index]):08x}; "
                           f"delete {STATE}/{span.index:06d}.json and rerun 'ssl4eo shard' to rewrite it")
        try:
            block = bands[span.start : span.stop]
        except Exception:  # locate the broken chunks one by one
            block = None
            for i in range(span.start, span.stop):
                for t in range(bands.shape[1]):
                    try:
                        bands[i, t]
                    except Exception as e:
                        out.append(f"{product} sample {i} (location {int(ids[i]):07d}) season {t}: chunk does "
                                   f"not decode ({type(e).__name__}: {str(e)[:80]})")
        if block is not None:
            out += _check_values(product, block, span.start, nodata, ids, frac)
        return out

    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        for probs in pool.map(one, shard_spans(n, size)):
            rep.problems += probs
            rep.shards_checked += 1


def _check_values(product: str, block: np.ndarray, start: int, nodata: Any, ids: np.ndarray,
                  nodata_fraction: np.ndarray | None = None) -> list[str]:
    """All-nodata sample-seasons, and NaN where there should be none: anywhere when the product has another
    nodata value; where the patch was recorded free of nodata when NaN is its nodata (SAR, whose partial nodata
    the quality thresholds may allow)."""
    flat = block.reshape(block.shape[0], block.shape[1], -1)
    out = []
    if block.dtype.kind == "f":
        nan = np.isnan(flat)
        every, some = nan.all(axis=2), nan.any(axis=2)
        for i, t in zip(*np.nonzero(some), strict=True):
            where = f"{product} sample {start + i} (location {int(ids[start + i]):07d}) season {t}"
            if every[i, t]:
                out.append(f"{where}: all pixels are NaN")
            elif nodata is not None:
                out.append(f"{where}: holds NaN")
            elif nodata_fraction is None or nodata_fraction[start + i, t] == 0:
                out.append(f"{where}: holds NaN, but its nodata_fraction is 0")
    if nodata is not None:
        for i, t in zip(*np.nonzero((flat == np.asarray(nodata).astype(block.dtype)).all(axis=2)), strict=True):
            out.append(f"{product} sample {start + i} (location {int(ids[start + i]):07d}) season {t}: "
                       f"all pixels are nodata ({nodata})")
    return out


def _check_leftovers(rep: VerifyReport, store: Path) -> None:
    for dirpath, _dirs, files in os.walk(store):
        for f in files:
            if f.startswith(TMP) or f.endswith(".partial"):
                rep.problems.append(f"{os.path.join(dirpath, f)}: leftover of a killed write; rerun 'ssl4eo shard'")


def _check_catalog(rep: VerifyReport, out: Path, products: list[str], ids: np.ndarray) -> None:
    import pystac

    path = out / CATALOG / "catalog.json"
    if not path.is_file():
        rep.problems.append(f"{path}: missing; run 'ssl4eo catalog'")
        return
    try:
        cat = pystac.Catalog.from_file(str(path))
        cols = {c.id: c for c in cat.get_children()}
    except Exception as e:  # unreadable JSON, a broken child link: a finding, not a crash
        rep.problems.append(f"{path}: cannot be read ({type(e).__name__}: {str(e)[:120]}); rerun 'ssl4eo catalog'")
        return
    store = (out / STORE).resolve()
    for product in products:
        if product not in cols:
            rep.problems.append(f"catalog: collection {product} missing; rerun 'ssl4eo catalog'")
            continue
        seen: dict[int, str] = {}
        for link in cols[product].get_links(pystac.RelType.ITEM):
            try:
                item = pystac.Item.from_file(link.get_absolute_href() or "")
            except Exception as e:  # a missing or broken item file is a finding
                rep.problems.append(f"catalog: {product} item link {link.href} does not resolve ({type(e).__name__})")
                continue
            rep.items_checked += 1
            s = item.properties.get("ssl4eo:sample")
            asset = item.assets.get("data")
            if not isinstance(s, int) or not 0 <= s < ids.size:
                rep.problems.append(f"catalog item {item.id}: ssl4eo:sample {s!r} is not a sample of the store")
                continue
            if item.properties.get("ssl4eo:location_id") != int(ids[s]):
                rep.problems.append(f"catalog item {item.id}: location {item.properties.get('ssl4eo:location_id')}"
                                    f" != store sample {s}'s location {int(ids[s])}")
            if asset is None or Path(asset.get_absolute_href() or "").resolve() != store:
                rep.problems.append(f"catalog item {item.id}: data asset does not point at {store}")
            if s in seen:
                rep.problems.append(f"catalog items {seen[s]} and {item.id} both claim {product} sample {s}")
            seen[s] = item.id
        for s in sorted(set(range(ids.size)) - set(seen)):
            rep.problems.append(f"catalog: no {product} item for sample {s} (location {int(ids[s]):07d}); "
                                "rerun 'ssl4eo catalog'")
    try:
        schema = validate_catalog(path, limit=SCHEMA_ITEMS)
    except Exception as e:  # an item file that does not parse was reported above
        schema = [f"not checked ({type(e).__name__}: {str(e)[:120]})"]
    rep.problems += [f"catalog schema: {p}" for p in schema]


def _check_index(rep: VerifyReport, out: Path, products: list[str], ids: np.ndarray, t: int) -> None:
    import pandas as pd

    path = out / INDEX
    if not path.is_file():
        rep.problems.append(f"{path}: missing; rerun 'ssl4eo shard'")
        return
    try:
        df = pd.read_parquet(path, columns=["product", "sample", "time", "location_id"])
    except Exception as e:  # not parquet, cut short, columns missing
        rep.problems.append(f"{path}: cannot be read ({type(e).__name__}: {str(e)[:120]}); rerun 'ssl4eo shard'")
        return
    want = len(products) * ids.size * t
    if len(df) != want or df.duplicated(["product", "sample", "time"]).any():
        rep.problems.append(f"{path}: {len(df)} rows; expected one per product, sample and season ({want})")
    elif not np.array_equal(df["location_id"].to_numpy(), np.tile(np.repeat(ids, t), len(products))):
        rep.problems.append(f"{path}: location ids do not follow the store's sample order; rerun 'ssl4eo shard'")
