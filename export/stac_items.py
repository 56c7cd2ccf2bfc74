"""Build the STAC objects of the outputs from plain values. Pure: no file is read or written here.

One collection per product, one item per (product, location), each item's ``data`` asset pointing into the
product's Zarr group with the sample index, and ``derived_from`` links to the source scene items.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pystac
from pystac.extensions.projection import ProjectionExtension

from export.columns import ms_to_iso
from export.geometry import bbox_of, footprint_lonlat, utm_bbox

ZARR_MEDIA_TYPE = "application/vnd+zarr"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
PROCESSOR = "ssl4eo-curate"


@dataclass(frozen=True)
class SampleInfo:
    """What an item says about one sample of one product (read from the store)."""

    sample: int
    location_id: int
    lon: float
    lat: float
    epsg: int
    transform: tuple[float, ...]
    datetimes_ms: tuple[int, ...]
    scene_ids: tuple[str, ...]
    scene_hrefs: tuple[str, ...]
    cloud_fraction: tuple[float, ...]
    nodata_fraction: tuple[float, ...]
    extra: dict[str, Any] = field(default_factory=dict)
    """More item properties (e.g. city and country from ``locations.parquet``), without the prefix."""


def item_id(product: str, location_id: int) -> str:
    return f"{product}-{location_id:07d}"


def build_item(product: str, group: Mapping[str, Any], s: SampleInfo, store_href: str) -> pystac.Item:
    """The item of sample ``s`` of ``product``; ``group`` is the group's ``ssl4eo`` attributes."""
    px = int(group["patch_px"])
    ring = footprint_lonlat(s.epsg, s.transform, px, px)
    times = [ms_to_iso(t) for t in s.datetimes_ms]
    props: dict[str, Any] = {
        "start_datetime": min(times, key=_ms_of),
        "end_datetime": max(times, key=_ms_of),
        "gsd": float(group["resolution_m"]),
        "ssl4eo:sample": s.sample,
        "ssl4eo:location_id": s.location_id,
        "ssl4eo:center": [s.lon, s.lat],
        "ssl4eo:datetimes": times,
        "ssl4eo:scene_ids": list(s.scene_ids),
        "ssl4eo:cloud_fraction": [round(float(v), 6) for v in s.cloud_fraction],
        "ssl4eo:nodata_fraction": [round(float(v), 6) for v in s.nodata_fraction],
    }
    props.update({f"ssl4eo:{k}": v for k, v in sorted(s.extra.items())})
    item = pystac.Item(
        id=item_id(product, s.location_id),
        geometry={"type": "Polygon", "coordinates": [[list(p) for p in ring]]},
        bbox=list(bbox_of(ring)),
        datetime=None,
        properties=props,
        collection=product,
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.code = f"EPSG:{s.epsg}"
    proj.shape = [px, px]
    proj.transform = [float(v) for v in s.transform]
    proj.bbox = [float(v) for v in utm_bbox(s.transform, px, px)]
    item.add_asset("data", pystac.Asset(
        href=store_href,
        media_type=ZARR_MEDIA_TYPE,
        roles=["data"],
        title=f"{product} sample {s.sample}: bands[{s.sample}] of group {product} (time, band, y, x)",
        extra_fields={"zarr:group": product, "zarr:array": "bands", "ssl4eo:sample": s.sample,
                      "bands": [{"name": b} for b in group["bands"]]},
    ))
    for sid, href in dict(zip(s.scene_ids, s.scene_hrefs, strict=True)).items():
        if href:
            item.add_link(pystac.Link("derived_from", href, media_type=pystac.MediaType.GEOJSON, title=sid))
    return item


def build_collection(product: str, group: Mapping[str, Any], items: Sequence[pystac.Item], store_href: str,
                     index_href: str) -> pystac.Collection:
    """The collection of ``product``: extents and summaries from ``items``, provenance from the group attributes."""
    if not items:
        raise ValueError(f"collection {product!r} has no items; shard at least one sample first")
    bboxes = [i.bbox for i in items if i.bbox]
    spatial = [min(b[0] for b in bboxes), min(b[1] for b in bboxes), max(b[2] for b in bboxes),
               max(b[3] for b in bboxes)]
    starts = [_parse(i.properties["start_datetime"]) for i in items]
    ends = [_parse(i.properties["end_datetime"]) for i in items]
    extent = pystac.Extent(pystac.SpatialExtent([spatial]), pystac.TemporalExtent([[min(starts), max(ends)]]))
    providers = [pystac.Provider(name, roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.LICENSOR]
                                 if k == 0 else [pystac.ProviderRole.HOST])
                 for k, name in enumerate(group.get("providers") or [])]
    providers.append(pystac.Provider(PROCESSOR, description="curated into the sharded SSL4EO-style corpus",
                                     roles=[pystac.ProviderRole.PROCESSOR]))
    clouds = [v for i in items for v in i.properties["ssl4eo:cloud_fraction"]]
    nodata = [v for i in items for v in i.properties["ssl4eo:nodata_fraction"]]
    license_ = group.get("license") or "other"
    col = pystac.Collection(
        id=product,
        title=f"{product} patches ({group.get('collection', '')})",
        description=(group.get("description") or product) + f". {len(items)} locations x {group['n_times']} "
        f"seasons, {len(group['bands'])} bands of {group['patch_px']} px at {group['resolution_m']} m.",
        extent=extent,
        license="other" if license_ == "proprietary" else license_,
        providers=providers,
        keywords=["self-supervised learning", "SSL4EO", "earth observation", product],
        summaries=pystac.Summaries({
            "gsd": [float(group["resolution_m"])],
            "proj:code": sorted({i.properties["proj:code"] for i in items}),
            "ssl4eo:cloud_fraction": {"minimum": min(clouds), "maximum": max(clouds)},
            "ssl4eo:nodata_fraction": {"minimum": min(nodata), "maximum": max(nodata)},
            "bands": [{"name": b} for b in group["bands"]],
        }),
        extra_fields={"ssl4eo:source_collection": group.get("collection", ""),
                      "ssl4eo:source_license": license_, "ssl4eo:n_samples": int(group["n_samples"]),
                      "ssl4eo:dtype": group["dtype"], "ssl4eo:nodata": group.get("nodata"),
                      "ssl4eo:stats": group.get("stats", {})},
    )
    col.stac_extensions.append(ProjectionExtension.get_schema_uri())
    col.item_assets = {"data": pystac.ItemAssetDefinition.create(
        title=f"{product} sample in the Zarr group", description="bands[sample] of the product group; the item's "
        "ssl4eo:sample is the index", media_type=ZARR_MEDIA_TYPE, roles=["data"],
        extra_fields={"zarr:group": product, "zarr:array": "bands", "bands": [{"name": b} for b in group["bands"]]})}
    col.add_asset("dataset", pystac.Asset(store_href, title=f"Zarr v3 group {product}", media_type=ZARR_MEDIA_TYPE,
                                         roles=["data"], extra_fields={"zarr:group": product}))
    col.add_asset("index", pystac.Asset(index_href, title="GeoParquet index, one row per product, sample and season",
                                       media_type=PARQUET_MEDIA_TYPE, roles=["metadata"]))
    return col


def _ms_of(iso: str) -> float:
    return _parse(iso).timestamp()


def _parse(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
