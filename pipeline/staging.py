"""The staging store: the hand-off between the fetch stage (writer) and the shard stage (reader).

Layout under ``<out>/staging/``::

    <location_id>/              one folder per *complete* location, made visible by an atomic rename
        meta.json               location + per product/season provenance (see :class:`StagedLocation`)
        <product>.npy           array (season=4, band, y, x) in the product's output dtype
    .tmp-<location_id>-<uuid>/  being written; never read, removed by :func:`clean_partial`

A folder without the ``.tmp-`` prefix is complete by construction: it is only ever created by ``os.rename`` of a
fully written, fsynced temporary folder. Nothing half-written is ever taken as complete.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

STAGING_DIR = "staging"
META = "meta.json"
_TMP = ".tmp-"


@dataclass(frozen=True)
class SeasonPick:
    """Which acquisition was taken for one product and season, and how good the patch is."""

    season: int
    """0-based index into the configured reference dates."""
    datetime: str
    """ISO 8601 acquisition time (UTC)."""
    scene_id: str
    """STAC item id of the source scene."""
    scene_href: str
    """Self href of the source item (for ``derived_from`` provenance), or '' when the source has none."""
    collection: str
    cloud_fraction: float
    nodata_fraction: float
    scale: tuple[float, ...] = ()
    """Per band: physical value = stored * scale + offset (NaN: unknown; empty: staged before this was kept)."""
    offset: tuple[float, ...] = ()


@dataclass(frozen=True)
class StagedProduct:
    product: str
    bands: tuple[str, ...]
    dtype: str
    patch_px: int
    resolution_m: float
    transform: tuple[float, float, float, float, float, float]
    """Affine (a, b, c, d, e, f) of the patch in the location's UTM CRS (GDAL order as in ``affine.Affine``)."""
    seasons: tuple[SeasonPick, ...]


@dataclass(frozen=True)
class StagedLocation:
    location_id: int
    lon: float
    lat: float
    epsg: int
    products: dict[str, StagedProduct] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1)

    @staticmethod
    def from_json(text: str) -> StagedLocation:
        d = json.loads(text)
        prods = {}
        for name, p in d["products"].items():
            p["bands"] = tuple(p["bands"])
            p["transform"] = tuple(p["transform"])
            p["seasons"] = tuple(SeasonPick(**{**s, "scale": tuple(s.get("scale", ())),
                                               "offset": tuple(s.get("offset", ()))}) for s in p["seasons"])
            prods[name] = StagedProduct(**p)
        return StagedLocation(d["location_id"], d["lon"], d["lat"], d["epsg"], prods)


def location_dir(out: Path, location_id: int) -> Path:
    return Path(out) / STAGING_DIR / f"{location_id:07d}"


def write_location(out: Path, meta: StagedLocation, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write one complete location atomically; returns its folder. An existing complete folder is kept."""
    if set(arrays) != set(meta.products):
        raise ValueError(f"arrays {sorted(arrays)} do not match products {sorted(meta.products)}")
    final = location_dir(out, meta.location_id)
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{_TMP}{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for name, arr in arrays.items():
            p = meta.products[name]
            want = (len(p.seasons), len(p.bands), p.patch_px, p.patch_px)
            if arr.shape != want or arr.dtype != np.dtype(p.dtype):
                raise ValueError(f"{name}: array {arr.shape} {arr.dtype} != expected {want} {p.dtype}")
            _write_synced(tmp / f"{name}.npy", lambda f, a=arr: np.save(f, a, allow_pickle=False))
        _write_synced(tmp / META, lambda f: f.write(meta.to_json().encode()))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / META).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # the same location written by a twin task (Dask reran it)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _write_synced(path: Path, write) -> None:  # type: ignore[no-untyped-def]
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def iter_complete(out: Path) -> Iterator[Path]:
    """Complete location folders, in location-id order."""
    root = Path(out) / STAGING_DIR
    if not root.is_dir():
        return
    for p in sorted(root.iterdir()):
        if p.is_dir() and not p.name.startswith(_TMP) and (p / META).is_file():
            yield p


def complete_ids(out: Path) -> set[int]:
    return {int(p.name) for p in iter_complete(out)}


def read_meta(folder: Path) -> StagedLocation:
    return StagedLocation.from_json((folder / META).read_text())


def read_array(folder: Path, product: str, mmap: bool = True) -> np.ndarray:
    return np.load(folder / f"{product}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)


def clean_partial(out: Path) -> int:
    """Remove leftovers of interrupted writes; returns how many were removed."""
    root = Path(out) / STAGING_DIR
    n = 0
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(_TMP):
                shutil.rmtree(p, ignore_errors=True)
                n += 1
    return n
