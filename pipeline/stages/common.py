"""Helpers shared by the stage glue modules: resolving the source, building fetch parameters, reading locations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.config import Config
from pipeline.errors import UserError
from pipeline.fetch.request import FetchParams, LocationTask, ProductRequest, product_request
from pipeline.sources import SourceSpec, open_source

LOCATIONS = "locations.parquet"


@contextmanager
def resolved_source(cfg: Config) -> Iterator[SourceSpec]:
    """The run's source; for ``source.url: embedded`` the archive is served on loopback for the duration."""
    if cfg.source.url == "embedded":
        from pipeline.archive.serve import serve_archive

        require_archive(cfg)
        with serve_archive(cfg.archive.path, api=cfg.archive.api, http_port=cfg.archive.http_port) as ep:
            url = ep.stac_url if cfg.archive.api == "pgstac" and ep.stac_url else str(ep.geoparquet)
            spec = SourceSpec(url, cfg.source.timeout_s, cfg.source.retries, cfg.source.sign)
            open_source(spec)  # fail here, once, with a clear message
            yield spec
        return
    spec = SourceSpec(cfg.source.url, cfg.source.timeout_s, cfg.source.retries, cfg.source.sign)
    open_source(spec)
    yield spec


def require_archive(cfg: Config) -> None:
    """ArchiveError unless the embedded archive at ``archive.path`` is built and current, naming the command that
    builds it there (with ``--config`` when the path is not the default one)."""
    from pipeline.archive.build import require_current
    from pipeline.config.models import default_archive_path

    root = Path(cfg.archive.path)
    if root.resolve() != default_archive_path().resolve():
        require_current(root, "'ssl4eo archive build --config <this config>'")
    else:
        require_current(root)


def product_requests(cfg: Config) -> tuple[ProductRequest, ...]:
    """What is fetched of each configured product (and so what the export stage packs)."""
    return tuple(
        product_request(p.name, p.patch_px, tuple(p.bands) if p.bands else None, p.drop_water_vapour, p.collection)
        for p in cfg.products
    )


def fetch_params(cfg: Config, source: SourceSpec) -> FetchParams:
    prods = product_requests(cfg)
    q, s = cfg.quality, cfg.seasons
    return FetchParams(
        source=source, products=prods, reference_dates=tuple(s.reference_dates), half_width_days=s.half_width_days,
        years=tuple(s.years), season_seed=s.seed, max_scene_cloud=q.max_scene_cloud, max_patch_cloud=q.max_patch_cloud,
        max_patch_nodata=q.max_patch_nodata, s1_max_days=q.s1_max_days, max_candidates=q.max_candidates,
        timeout_s=cfg.source.timeout_s, retries=cfg.source.retries, max_items=cfg.source.max_items,
    )


def read_tasks(out: Path) -> list[LocationTask]:
    path = Path(out) / LOCATIONS
    if not path.is_file():
        raise UserError(f"{str(path)!r} not found; run 'ssl4eo sample --out {out}' first (or make sample)")
    import geopandas as gpd

    df = gpd.read_parquet(path)
    missing = {"location_id", "lon", "lat", "epsg"} - set(df.columns)
    if missing:
        raise UserError(f"{str(path)!r} lacks column(s) {sorted(missing)}; re-run 'ssl4eo sample'")
    return [LocationTask(int(r.location_id), float(r.lon), float(r.lat), int(r.epsg))
            for r in df[["location_id", "lon", "lat", "epsg"]].itertuples(index=False)]


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
