"""Small frozen task inputs of the fetch stage, derived once from the validated config."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.products import ENMAP_KEEP_BANDS, PRODUCTS
from pipeline.sources import SourceSpec


@dataclass(frozen=True)
class AssetRead:
    asset: str
    band_indexes: tuple[int, ...]
    band_names: tuple[str, ...]


@dataclass(frozen=True)
class ProductRequest:
    name: str
    collection: str
    kind: str
    bands: tuple[str, ...]
    reads: tuple[AssetRead, ...]
    """Band assets grouped (one read per asset), in output band order."""
    patch_px: int
    res: float
    dtype: str
    """Output dtype (SAR: float32 dB)."""
    nodata: float | None
    mask_asset: str | None
    platforms: tuple[str, ...] = ()

    @property
    def is_sar(self) -> bool:
        return self.kind == "sar"


@dataclass(frozen=True)
class FetchParams:
    """Everything a worker needs besides the location (one instance per run)."""

    source: SourceSpec
    products: tuple[ProductRequest, ...]
    reference_dates: tuple[str, ...]
    half_width_days: int
    years: tuple[int, ...]
    season_seed: int
    max_scene_cloud: float
    max_patch_cloud: float
    max_patch_nodata: float
    s1_max_days: float
    max_candidates: int
    timeout_s: float
    retries: int
    max_items: int = 500
    """Most items taken from one search (per location, product and window)."""


@dataclass(frozen=True)
class LocationTask:
    location_id: int
    lon: float
    lat: float
    epsg: int


def product_request(name: str, patch_px: int | None, bands: tuple[str, ...] | None,
                    drop_water_vapour: bool = False, collection: str | None = None) -> ProductRequest:
    """What a worker reads for product ``name``; ``collection`` replaces the registry's collection id (another
    catalog's name for the same data, with the same asset keys)."""
    p = PRODUCTS[name]
    chosen = bands or p.band_names
    if drop_water_vapour:
        keep = {f"b{i:03d}" for i in ENMAP_KEEP_BANDS}
        chosen = tuple(b for b in chosen if b in keep)
    reads: list[AssetRead] = []
    for b in (p.band(n) for n in chosen):
        if reads and reads[-1].asset == b.asset:
            last = reads[-1]
            reads[-1] = AssetRead(b.asset, (*last.band_indexes, b.index), (*last.band_names, b.name))
        else:
            reads.append(AssetRead(b.asset, (b.index,), (b.name,)))
    return ProductRequest(
        name=name, collection=collection or p.collection, kind=p.kind, bands=tuple(chosen), reads=tuple(reads),
        patch_px=patch_px or p.default_patch_px, res=p.resolution_m,
        dtype="float32" if p.kind == "sar" else p.dtype,
        nodata=None if p.kind == "sar" else p.nodata, mask_asset=p.mask_asset,
        platforms=p.platforms if _shared_collection(name) else (),
    )


def _shared_collection(name: str) -> bool:
    """Whether other products live in the same collection (then the search filters by platform)."""
    col = PRODUCTS[name].collection
    return sum(1 for p in PRODUCTS.values() if p.collection == col) > 1 and PRODUCTS[name].kind == "optical"
