"""Plain records of the export: what a product group looks like, what one location brings, what fixes the bytes.

Pure. Built by :mod:`export.staging_io` from the staging store and by the stage glue from the config; small and
frozen, so they travel to Dask workers cheaply and tokenize stably.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from export.codecs import CodecSpec
from export.layout import LAYOUT_VERSION, stable_hash
from pipeline.staging import SeasonPick


@dataclass(frozen=True)
class ProductLayout:
    """One group of the store: fixed for every sample."""

    name: str
    bands: tuple[str, ...]
    dtype: str
    patch_px: int
    resolution_m: float
    nodata: float | None
    collection: str = ""
    kind: str = ""
    description: str = ""
    providers: tuple[str, ...] = ()
    license: str = "other"
    platforms: tuple[str, ...] = ()
    center_nm: tuple[float | None, ...] = ()
    fwhm_nm: tuple[float | None, ...] = ()

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (len(self.bands), self.patch_px, self.patch_px)


@dataclass(frozen=True)
class ExportSpec:
    """Everything that decides the bytes of the store, apart from the staged data itself."""

    products: tuple[ProductLayout, ...]
    shard_size: int = 64
    codec: CodecSpec = field(default_factory=CodecSpec)
    season_refs: tuple[str, ...] = ("03-20", "06-21", "09-22", "12-21")
    """Reference date (MM-DD) of each time step; their number is the ``time`` length."""
    stats_stride: int = 4
    """Statistics use every stride-th row and column of every sample-season (1: every pixel). 4 costs a
    sixteenth of 1; stride 2 moved mean/std by ~1e-5 and p02/p98 by <0.1% (relative) on 12-band reflectance."""

    def __post_init__(self) -> None:
        if not self.products:
            raise ValueError("no products to export; list at least one product")
        names = [p.name for p in self.products]
        if len(set(names)) != len(names):
            raise ValueError(f"products {names} repeat a name; list each product once")
        if self.shard_size <= 0:
            raise ValueError(f"shard_size={self.shard_size} must be > 0; use e.g. 64")
        if self.stats_stride < 1:
            raise ValueError(f"stats_stride={self.stats_stride} must be >= 1")

    @property
    def n_times(self) -> int:
        return len(self.season_refs)

    def layout_key(self) -> str:
        """Hash of the layout: a store built with another key is rebuilt, not patched."""
        return stable_hash({"version": LAYOUT_VERSION, "spec": asdict(self)})

    def product(self, name: str) -> ProductLayout:
        for p in self.products:
            if p.name == name:
                return p
        raise KeyError(f"no product {name!r} in this export; products: {', '.join(p.name for p in self.products)}")


@dataclass(frozen=True)
class ProductRecord:
    transform: tuple[float, float, float, float, float, float]
    seasons: tuple[SeasonPick, ...]
    """The staging contract's picks, in season order."""


@dataclass(frozen=True)
class LocationRecord:
    """One staged location as the export sees it."""

    location_id: int
    lon: float
    lat: float
    epsg: int
    folder: str
    digest: str
    """sha256 of the staged ``meta.json``: a changed staging folder invalidates the shard holding it."""
    products: dict[str, ProductRecord]


_REGISTRY = object()


def product_layout(
    name: str,
    bands: tuple[str, ...] | None = None,
    patch_px: int | None = None,
    *,
    dtype: str | None = None,
    nodata: float | object | None = _REGISTRY,
    collection: str | None = None,
) -> ProductLayout:
    """The layout of a registry product (``pipeline.products``).

    ``bands``, ``patch_px``, ``dtype``, ``nodata`` and ``collection`` override the registry where the fetch stage
    stages something else (a band subset, SAR in float32 dB without a nodata value, another catalog's id).
    """
    from pipeline.products import get_product

    p = get_product(name)
    names = tuple(bands) if bands else p.band_names
    chosen = [p.band(b) for b in names]
    nd = p.nodata if nodata is _REGISTRY else nodata
    return ProductLayout(
        name=p.name,
        bands=names,
        dtype=str(dtype or p.dtype),
        patch_px=int(patch_px or p.default_patch_px),
        resolution_m=float(p.resolution_m),
        nodata=float(nd) if nd is not None else None,  # type: ignore[arg-type]
        collection=collection or p.collection,
        kind=p.kind,
        description=p.description,
        providers=tuple(p.providers),
        license=p.license,
        platforms=tuple(p.platforms),
        center_nm=tuple(b.center_nm for b in chosen),
        fwhm_nm=tuple(b.fwhm_nm for b in chosen),
    )
