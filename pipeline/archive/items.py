"""STAC Items and Collections of the archive, built with pystac and its extensions (pure, no I/O).

Conventions follow the real catalogs: Planetary Computer collection ids and per-band asset keys, asset-level
``proj:shape``/``proj:transform`` (multi-resolution Sentinel-2), ``raster:bands`` with scale/offset and nodata,
``eo:bands`` with wavelengths, ``eo:cloud_cover``, platform, tile / orbit ids. Asset hrefs are relative to the
archive root; the server localises them to http://127.0.0.1:PORT/...
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pystac
import shapely
from pyproj import Transformer
from shapely.geometry import mapping

from pipeline.archive import truth
from pipeline.archive.plan import Scene
from pipeline.archive.render import grid_of
from pipeline.archive.sites import site_by_name
from pipeline.products import PRODUCTS, Product

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
EXT = {
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "sat": "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "sar": "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
}


def _scale_offset(product: str, band_name: str) -> tuple[float, float, str]:
    """(scale, offset, unit) turning stored DN into physical values."""
    if product in ("s2_l2a", "s2_l1c"):
        return 1e-4, -truth.S2_OFFSET_DN * 1e-4, "reflectance"
    if product.startswith("landsat") and product.endswith("_sr"):
        return truth.LANDSAT_SR_SCALE, truth.LANDSAT_SR_OFFSET, "reflectance"
    if product.startswith("landsat") and product.endswith("_toa"):
        if band_name.startswith(("B10", "B11", "B6")):
            return truth.LANDSAT_ST_SCALE, truth.LANDSAT_ST_OFFSET, "kelvin"
        return truth.LANDSAT_TOA_SCALE, truth.LANDSAT_TOA_OFFSET, "reflectance"
    if product == "enmap_l2a":
        return 1e-4, 0.0, "reflectance"
    return 1.0, 0.0, "amplitude"


def _eo_band(b: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"name": b.name}
    if b.common_name:
        d["common_name"] = b.common_name
    if b.center_nm:
        d["center_wavelength"] = round(b.center_nm / 1000.0, 5)
    if b.fwhm_nm:
        d["full_width_half_max"] = round(b.fwhm_nm / 1000.0, 5)
    return d


def footprint_lonlat(scene: Scene):  # -> shapely geometry
    """The scene's valid-data footprint in lon/lat (its item geometry)."""
    from pipeline.archive.render import footprint_local

    site = site_by_name(scene.site)
    poly = footprint_local(scene, scene.region)
    tr = Transformer.from_crs(truth.site_crs(site.lon, site.lat), "EPSG:4326", always_xy=True)

    def project(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))

    return shapely.transform(poly.segmentize(500.0), project)


def scene_item(scene: Scene) -> pystac.Item:
    p = PRODUCTS[scene.product]
    geom = footprint_lonlat(scene)
    item = pystac.Item(
        id=scene.item_id,
        geometry=mapping(geom),
        bbox=[round(v, 7) for v in geom.bounds],
        datetime=scene.datetime,
        properties={},
        collection=p.collection,
    )
    props = item.properties
    props["platform"] = scene.platform
    props["constellation"] = scene.platform.rsplit("-", 1)[0] if p.kind != "hyperspectral" else "enmap"
    props["proj:code"] = f"EPSG:{scene.epsg}"
    props["sat:relative_orbit"] = scene.relative_orbit
    props["sat:orbit_state"] = "descending" if p.kind != "sar" else ("ascending" if scene.seed % 2 else "descending")
    item.stac_extensions = [EXT["proj"], EXT["raster"], EXT["sat"]]
    if p.kind != "sar":
        props["eo:cloud_cover"] = scene.cloud_cover
        item.stac_extensions.append(EXT["eo"])
    if scene.product.startswith("s2"):
        props["instruments"] = ["msi"]
        props["s2:mgrs_tile"] = scene.tile_id
        props["s2:processing_baseline"] = "05.10"
        props["s2:product_type"] = "S2MSI2A" if scene.product == "s2_l2a" else "S2MSI1C"
    elif scene.product.startswith("landsat"):
        props["instruments"] = {"landsat-7": ["etm+"], "landsat-5": ["tm"], "landsat-4": ["tm"]}.get(
            scene.platform, ["oli", "tirs"])
        path, row = int(scene.item_id[10:13]), int(scene.item_id[13:16])
        props["landsat:wrs_path"], props["landsat:wrs_row"] = f"{path:03d}", f"{row:03d}"
        props["landsat:collection_category"] = "T1"
        props["landsat:cloud_cover_land"] = scene.cloud_cover
    elif p.kind == "sar":
        props["instruments"] = ["c-sar"]
        props["sar:instrument_mode"] = "IW"
        props["sar:polarizations"] = ["VV", "VH"]
        props["sar:product_type"] = "GRD"
        props["sar:frequency_band"] = "C"
        item.stac_extensions.append(EXT["sar"])
    else:
        props["instruments"] = ["hsi"]
        props["enmap:overallQuality"] = 0 if scene.cloud_cover < 20 else 1

    by_asset: dict[str, list[Any]] = {}
    for b in p.bands:
        by_asset.setdefault(b.asset, []).append(b)
    for key, bands in by_asset.items():
        g = grid_of(scene, bands[0].resolution_m)
        raster = []
        for b in bands:
            scale, offset, unit = _scale_offset(scene.product, b.name)
            raster.append({"nodata": p.nodata, "data_type": p.dtype, "spatial_resolution": b.resolution_m,
                           "scale": scale, "offset": offset, "unit": unit})
        extra: dict[str, Any] = {"proj:shape": [g.height, g.width], "proj:transform": list(g.transform),
                                 "raster:bands": raster}
        if p.kind != "sar":
            extra["eo:bands"] = [_eo_band(b) for b in bands]
        title = bands[0].name if len(bands) == 1 else f"{len(bands)} bands"
        item.add_asset(key, pystac.Asset(href=asset_path(scene, key), media_type=COG, roles=["data"],
                                         title=title, extra_fields=extra))
    if p.mask_asset:
        res = 20.0 if scene.product == "s2_l2a" else p.resolution_m
        g = grid_of(scene, res)
        dtype = "uint16" if scene.product.startswith("landsat") else "uint8"
        item.add_asset(p.mask_asset, pystac.Asset(
            href=asset_path(scene, p.mask_asset), media_type=COG, roles=["data", "cloud"] if p.kind else ["data"],
            title={"SCL": "Scene classification map", "qa_pixel": "Pixel quality assessment",
                   "quality_cloud": "Cloud mask"}[p.mask_asset],
            extra_fields={"proj:shape": [g.height, g.width], "proj:transform": list(g.transform),
                          "raster:bands": [{"data_type": dtype, "spatial_resolution": res,
                                            "nodata": 1 if dtype == "uint16" else 0}]},
        ))
    return item


def asset_path(scene: Scene, key: str) -> str:
    return f"cogs/{scene.collection}/{scene.item_id}/{key}.tif"


COLLECTION_TEXT = {
    "landsat-c2-l2": "Landsat 4-9 (TM, ETM+, OLI) Collection 2 Level-2 surface reflectance, per-band COGs",
    "landsat-c2-l1": "Landsat 4-9 (TM, ETM+, OLI-TIRS) Collection 2 Level-1 (TOA via per-band scale/offset)",
}


def collection_for(product: Product, items: list[pystac.Item]) -> pystac.Collection:
    bboxes = [i.bbox for i in items]
    spatial = [min(b[0] for b in bboxes), min(b[1] for b in bboxes), max(b[2] for b in bboxes),
               max(b[3] for b in bboxes)]
    times = sorted(i.datetime for i in items if i.datetime)
    col = pystac.Collection(
        id=product.collection,
        description=COLLECTION_TEXT.get(product.collection, product.description)
        + " (ssl4eo-curate embedded local archive)",
        extent=pystac.Extent(pystac.SpatialExtent([spatial]), pystac.TemporalExtent([[times[0], times[-1]]])),
        license=product.license,
        providers=[pystac.Provider(name=n, roles=[pystac.ProviderRole.PRODUCER if k == 0 else
                                                  pystac.ProviderRole.HOST]) for k, n in enumerate(product.providers)],
        summaries=pystac.Summaries({
            "platform": sorted({i.properties["platform"] for i in items}),
            "gsd": sorted({b.resolution_m for b in product.bands}),
            "eo:bands": [_eo_band(b) for b in product.bands] if product.kind != "sar" else [],
        }),
    )
    col.stac_extensions = [EXT["eo"], EXT["proj"], EXT["raster"]]
    col.extra_fields["item_assets"] = {k: {"type": COG, "roles": ["data"]}
                                       for k in dict.fromkeys([b.asset for b in product.bands])}
    return col
