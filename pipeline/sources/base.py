"""The source seam: every catalog (STAC API, stac-geoparquet, ItemCollection; Earth Engine later) answers the same
search with the same small, frozen scene references. Parsing of STAC items into :class:`SceneRef` is pure."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import pystac

from pipeline.errors import SourceError


@dataclass(frozen=True)
class SearchQuery:
    collection: str
    bbox: tuple[float, float, float, float]
    """lon/lat box the scene must intersect."""
    start: dt.datetime
    end: dt.datetime
    max_cloud: float | None = None
    """eo:cloud_cover upper bound in percent (None: no cloud filter, e.g. SAR)."""
    limit: int = 500
    platforms: tuple[str, ...] = ()
    """Only these platforms (e.g. landsat-5 within landsat-c2-l2); empty: any."""


@dataclass(frozen=True)
class AssetRef:
    key: str
    href: str
    nodata: float | None
    scales: tuple[float | None, ...] = ()
    """``raster:bands`` scale of each band of the asset (None: not published)."""
    offsets: tuple[float | None, ...] = ()
    """``raster:bands`` offset of each band of the asset (None: not published)."""

    def radiometry(self, index: int) -> tuple[float | None, float | None]:
        """(scale, offset) the catalog publishes for 1-based band ``index`` of the asset; None where it does not.
        A single ``raster:bands`` entry holds for every band of the asset."""
        k = 0 if len(self.scales) == 1 else index - 1
        return (self.scales[k] if k < len(self.scales) else None,
                self.offsets[k] if k < len(self.offsets) else None)


@dataclass(frozen=True)
class SceneRef:
    """What a worker needs of a catalog item: small, hashable, picklable."""

    id: str
    collection: str
    datetime: dt.datetime
    cloud_cover: float | None
    epsg: int | None
    assets: tuple[AssetRef, ...]
    self_href: str = ""
    platform: str = ""
    processing_baseline: str = ""
    """Sentinel-2 ``s2:processing_baseline`` (e.g. '05.10'), or the item's ``processing:version``; '' if none."""

    def asset(self, key: str) -> AssetRef:
        for a in self.assets:
            if a.key == key:
                return a
        raise SourceError(
            f"item {self.id!r} of {self.collection!r} has no asset {key!r} (assets: "
            f"{', '.join(a.key for a in self.assets)}); check the product's asset keys against this catalog"
        )


@runtime_checkable
class Source(Protocol):
    """A catalog that can be searched for scenes."""

    def search(self, query: SearchQuery) -> list[SceneRef]: ...


def http_retry(retries: int):  # type: ignore[no-untyped-def]
    """urllib3's retry policy for catalog requests: transient errors only (429/5xx, resets, timeouts), exponential
    backoff with jitter."""
    from urllib3.util.retry import Retry

    return Retry(total=retries, backoff_factor=0.5, backoff_jitter=0.3, status_forcelist=(429, 500, 502, 503, 504),
                 allowed_methods=None)


def _number(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def scene_ref(item: pystac.Item) -> SceneRef:
    """Parse a pystac Item into a :class:`SceneRef` (no I/O)."""
    if item.datetime is None:
        raise ValueError(f"item {item.id!r} has no datetime; only single-time items are supported")
    props = item.properties
    code = props.get("proj:code") or (f"EPSG:{props['proj:epsg']}" if props.get("proj:epsg") else None)
    epsg = int(str(code).split(":")[1]) if code and str(code).upper().startswith("EPSG:") else None
    assets = []
    for key, a in item.assets.items():
        # one entry per band; a lone entry on a multi-band asset is taken for all of them (as its nodata is)
        bands = [b if isinstance(b, dict) else {} for b in a.extra_fields.get("raster:bands") or [{}]]
        assets.append(AssetRef(key, a.get_absolute_href() or a.href, bands[0].get("nodata"),
                               tuple(_number(b.get("scale")) for b in bands),
                               tuple(_number(b.get("offset")) for b in bands)))
    self_link = item.get_single_link("self")
    dtime = item.datetime if item.datetime.tzinfo else item.datetime.replace(tzinfo=dt.UTC)
    cc = props.get("eo:cloud_cover")
    return SceneRef(
        id=item.id,
        collection=item.collection_id or "",
        datetime=dtime,
        cloud_cover=float(cc) if cc is not None else None,
        epsg=epsg,
        assets=tuple(assets),
        self_href=self_link.get_absolute_href() or "" if self_link else "",
        platform=str(props.get("platform", "")),
        processing_baseline=str(props.get("s2:processing_baseline") or props.get("processing:version") or ""),
    )
