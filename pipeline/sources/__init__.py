"""Catalog sources behind one Protocol. ``open_source`` picks the implementation from ``source.url``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pipeline.sources.base import AssetRef, SceneRef, SearchQuery, Source, scene_ref


@dataclass(frozen=True)
class SourceSpec:
    """A picklable description of a source; workers open it themselves (cached per process)."""

    url: str
    timeout_s: float = 30.0
    retries: int = 4
    sign: str = "none"

    @property
    def kind(self) -> str:
        u = self.url.lower().split("?")[0]
        if u.endswith(".parquet") or u.endswith(".geoparquet"):
            return "geoparquet"
        if u.endswith(".json") or u.endswith(".geojson") or u.endswith(".ndjson"):
            return "item-collection"
        if u.startswith(("http://", "https://")):
            return "stac-api"
        return "unknown"


@lru_cache(maxsize=8)
def open_source(spec: SourceSpec) -> Source:
    from pipeline.errors import SourceError

    kind = spec.kind
    if kind == "stac-api":
        from pipeline.sources.stac_api import StacApiSource

        return StacApiSource(spec.url, timeout_s=spec.timeout_s, retries=spec.retries, sign=spec.sign)
    if kind in ("geoparquet", "item-collection"):
        from pipeline.sources.index import IndexSource

        return IndexSource(spec.url, sign=spec.sign, timeout_s=spec.timeout_s, retries=spec.retries)
    raise SourceError(
        f"source.url {spec.url!r} is neither a STAC API (http/https), a .parquet stac-geoparquet file nor a "
        ".json ItemCollection; set source.url to one of those (or 'embedded')"
    )


__all__ = ["AssetRef", "SceneRef", "SearchQuery", "Source", "SourceSpec", "open_source", "scene_ref"]
