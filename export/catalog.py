"""Write ``<out>/catalog``: a self-contained static STAC catalog of the outputs, read back from the store.

Everything comes from ``dataset.zarr`` (it describes itself), plus city/country from ``locations.parquet``
when the sampler left one. Layout: ``catalog/catalog.json``, ``catalog/<product>/collection.json``,
``catalog/<product>/items/<product>-<location_id>.json``. Written beside, then swapped in.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import zarr
from pystac.layout import CustomLayoutStrategy

from export.layout import CATALOG, INDEX, STORE
from export.stac_items import SampleInfo, build_collection, build_item
from export.store import ATTR
from pipeline.errors import UserError

log = logging.getLogger(__name__)
LOCATIONS = "locations.parquet"


@dataclass(frozen=True)
class CatalogSummary:
    href: str
    n_collections: int
    n_items: int


def open_store(store_path: Path) -> zarr.Group:
    """The finished store's root group; a UserError when it is missing or unfinished."""
    if not (Path(store_path) / "zarr.json").is_file():
        raise UserError(f"{store_path} does not exist; run 'ssl4eo shard' first")
    root = zarr.open_group(zarr.storage.LocalStore(Path(store_path), read_only=True), mode="r")
    attrs = root.attrs.get(ATTR) or {}
    if attrs.get("status") != "complete":
        raise UserError(f"{store_path} is unfinished (status {attrs.get('status')!r}); rerun 'ssl4eo shard'")
    return root


def sample_infos(group: zarr.Group, extra: dict[int, dict[str, Any]] | None = None) -> list[SampleInfo]:
    """Every sample of a product group as :class:`SampleInfo` (reads the metadata arrays only)."""
    cols = {k: group[k][...] for k in ("location_id", "lon", "lat", "epsg", "transform", "datetime", "scene_id",
                                         "scene_href", "cloud_fraction", "nodata_fraction")}
    out = []
    for i in range(cols["location_id"].shape[0]):
        loc = int(cols["location_id"][i])
        out.append(SampleInfo(
            sample=i, location_id=loc, lon=float(cols["lon"][i]), lat=float(cols["lat"][i]),
            epsg=int(cols["epsg"][i]), transform=tuple(float(v) for v in cols["transform"][i]),
            datetimes_ms=tuple(int(v) for v in cols["datetime"][i]),
            scene_ids=tuple(str(v) for v in cols["scene_id"][i]),
            scene_hrefs=tuple(str(v) for v in cols["scene_href"][i]),
            cloud_fraction=tuple(float(v) for v in cols["cloud_fraction"][i]),
            nodata_fraction=tuple(float(v) for v in cols["nodata_fraction"][i]),
            extra=(extra or {}).get(loc, {}),
        ))
    return out


def location_extras(out: Path) -> dict[int, dict[str, Any]]:
    """City, country and distance to the city per location id from ``locations.parquet`` ({} if absent)."""
    path = Path(out) / LOCATIONS
    if not path.is_file():
        return {}
    import pandas as pd

    df = pd.read_parquet(path)
    keep = [c for c in ("city", "country", "dist_m") if c in df.columns]
    res: dict[int, dict[str, Any]] = {}
    for row in df[["location_id", *keep]].itertuples(index=False):
        d = row._asdict()
        loc = int(d.pop("location_id"))
        res[loc] = {k: (float(v) if isinstance(v, float | np.floating) else str(v))
                    for k, v in d.items() if v is not None and v == v}
    return res


def build_catalog(out: Path) -> pystac.Catalog:
    """The catalog of ``<out>`` in memory, with absolute hrefs (see :func:`write_catalog`)."""
    out = Path(out).resolve()
    root = open_store(out / STORE)
    rattrs = root.attrs[ATTR]
    extras = location_extras(out)
    cat = pystac.Catalog(
        id="ssl4eo-curate-outputs",
        title="SSL4EO-style pretraining corpus",
        description=f"{rattrs['n_samples']} locations x {rattrs['n_times']} seasons in products "
        f"{', '.join(rattrs['products'])}; sample i is the same location in every product group of the "
        f"Zarr store {STORE}.",
        extra_fields={"ssl4eo:config_hash": rattrs["config_hash"],
                      "ssl4eo:software_version": rattrs["software_version"]},
    )
    for product in rattrs["products"]:
        group = root[product]
        assert isinstance(group, zarr.Group)
        gattrs = group.attrs[ATTR]
        store_href = str(out / STORE)
        items = [build_item(product, gattrs, s, store_href) for s in sample_infos(group, extras)]
        col = build_collection(product, gattrs, items, store_href, str(out / INDEX))
        col.add_items(items)
        cat.add_child(col)
    return cat


def write_catalog(out: Path) -> CatalogSummary:
    """Write ``<out>/catalog`` (self-contained, relative hrefs) and return what it holds."""
    out = Path(out).resolve()
    cat = build_catalog(out)
    tmp = out / f".tmp-{CATALOG}-{uuid.uuid4().hex[:8]}"
    strategy = CustomLayoutStrategy(item_func=lambda item, parent: f"{parent}/items/{item.id}.json")
    cat.normalize_hrefs(str(tmp), strategy=strategy)
    cat.make_all_asset_hrefs_relative()
    n_items = 0
    for col in cat.get_children():
        for a in col.assets.values():
            a.href = os.path.relpath(_abs(a.href, col.get_self_href()), Path(col.get_self_href()).parent)
        for item in col.get_items():
            n_items += 1
            for a in item.assets.values():
                a.href = os.path.relpath(_abs(a.href, item.get_self_href()), Path(item.get_self_href()).parent)
    try:
        cat.save(pystac.CatalogType.SELF_CONTAINED)
        _swap(tmp, out / CATALOG)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n_cols = len(list(cat.get_children()))
    log.info("wrote %s: %d collections, %d items", out / CATALOG, n_cols, n_items)
    return CatalogSummary(str(out / CATALOG / "catalog.json"), n_cols, n_items)


def _abs(href: str, owner: str | None) -> str:
    if os.path.isabs(href) or owner is None:
        return href
    return os.path.normpath(os.path.join(os.path.dirname(owner), href))


def _swap(new: Path, final: Path) -> None:
    """Put ``new`` in place of ``final``; the old one is moved aside first, then removed."""
    old = final.with_name(f".old-{final.name}-{uuid.uuid4().hex[:8]}")
    if final.exists():
        os.rename(final, old)
    os.rename(new, final)
    shutil.rmtree(old, ignore_errors=True)
