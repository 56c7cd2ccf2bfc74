"""Per-sample metadata as columns: the coordinate arrays of a group and the rows of the parquet index. Pure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from export.model import ExportSpec, LocationRecord, ProductLayout

TIME_UNITS = "milliseconds since 1970-01-01T00:00:00"
"""CF units of the ``datetime`` array (xarray decodes it to datetime64)."""


@dataclass(frozen=True)
class Column:
    dims: tuple[str, ...]
    data: np.ndarray
    attrs: dict[str, object]


def iso_to_ms(text: str) -> int:
    """Milliseconds since the Unix epoch of an ISO 8601 time; a naive time is taken as UTC."""
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return round(t.timestamp() * 1000)


def ms_to_iso(ms: int) -> str:
    """ISO 8601 UTC with a ``Z`` (milliseconds only when not zero), as STAC wants it."""
    t = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    return s + (f".{ms % 1000:03d}Z" if ms % 1000 else "Z")


def sample_columns(records: Sequence[LocationRecord], layout: ProductLayout, spec: ExportSpec) -> dict[str, Column]:
    """The per-sample and per-sample-time arrays of one product group, sample ``i`` = ``records[i]``."""
    n, t = len(records), spec.n_times
    name = layout.name

    def per_time(get, dtype) -> np.ndarray:  # type: ignore[no-untyped-def]
        return np.array([[get(s) for s in r.products[name].seasons] for r in records], dtype=dtype).reshape(n, t)

    def per_band(get) -> np.ndarray:  # type: ignore[no-untyped-def]
        out = np.full((n, t, len(layout.bands)), np.nan)
        for i, r in enumerate(records):
            for k, s in enumerate(r.products[name].seasons):
                if values := get(s):  # empty: staged before scale and offset were kept
                    out[i, k] = values
        return out

    return {
        "sample": Column(("sample",), np.arange(n, dtype=np.int64), {"long_name": "sample index"}),
        "location_id": Column(("sample",), np.array([r.location_id for r in records], np.int64),
                              {"long_name": "location id of the sampler (staging folder name)"}),
        "lon": Column(("sample",), np.array([r.lon for r in records], np.float64),
                      {"units": "degrees_east", "long_name": "longitude of the location centre"}),
        "lat": Column(("sample",), np.array([r.lat for r in records], np.float64),
                      {"units": "degrees_north", "long_name": "latitude of the location centre"}),
        "epsg": Column(("sample",), np.array([r.epsg for r in records], np.int32),
                       {"long_name": "EPSG code of the UTM zone of the patch grid"}),
        "transform": Column(("sample", "affine"),
                            np.array([r.products[name].transform for r in records], np.float64).reshape(n, 6),
                            {"long_name": "affine (a, b, c, d, e, f) of the patch in its EPSG (GDAL/affine order)"}),
        "datetime": Column(("sample", "time"), per_time(lambda s: iso_to_ms(s.datetime), np.int64),
                           {"units": TIME_UNITS, "calendar": "proleptic_gregorian",
                            "long_name": "acquisition time of the source scene (UTC)"}),
        "scene_id": Column(("sample", "time"), per_time(lambda s: s.scene_id, object).astype(str),
                           {"long_name": "STAC item id of the source scene"}),
        "scene_href": Column(("sample", "time"), per_time(lambda s: s.scene_href, object).astype(str),
                             {"long_name": "href of the source scene's STAC item ('' if unknown)"}),
        "cloud_fraction": Column(("sample", "time"), per_time(lambda s: s.cloud_fraction, np.float32),
                                 {"long_name": "cloudy fraction of the patch", "units": "1"}),
        "nodata_fraction": Column(("sample", "time"), per_time(lambda s: s.nodata_fraction, np.float32),
                                  {"long_name": "nodata fraction of the patch", "units": "1"}),
        "scale": Column(("sample", "time", "band"), per_band(lambda s: s.scale),
                        {"long_name": "physical value = bands * scale + offset (NaN: the source did not say)"}),
        "offset": Column(("sample", "time", "band"), per_band(lambda s: s.offset),
                         {"long_name": "physical value = bands * scale + offset (NaN: the source did not say)"}),
    }


def band_columns(layout: ProductLayout, spec: ExportSpec) -> dict[str, Column]:
    """Coordinates along ``band`` and ``time``. Wavelengths only when every band has one (optical, EnMAP)."""
    cols = {
        "band": Column(("band",), np.array(layout.bands, dtype=str), {"long_name": "band name"}),
        "time": Column(("time",), np.arange(spec.n_times, dtype=np.int8),
                       {"long_name": "season index (0-based, chronological within the location's year)"}),
        "season_reference": Column(("time",), np.array(spec.season_refs, dtype=str),
                                   {"long_name": "reference date (MM-DD) of the season window"}),
    }
    if layout.center_nm and all(c is not None for c in layout.center_nm):
        cols["center_wavelength"] = Column(("band",), np.array(layout.center_nm, np.float32),
                                           {"units": "nm", "long_name": "band centre wavelength"})
    if layout.fwhm_nm and all(c is not None for c in layout.fwhm_nm):
        cols["fwhm"] = Column(("band",), np.array(layout.fwhm_nm, np.float32),
                              {"units": "nm", "long_name": "band full width at half maximum"})
    return cols


COORDINATES = ("location_id", "lon", "lat", "epsg", "transform", "datetime", "scene_id", "scene_href",
               "cloud_fraction", "nodata_fraction", "scale", "offset", "season_reference", "center_wavelength",
               "fwhm")
"""Arrays named in the ``coordinates`` attribute of ``bands``, so xarray opens them as coordinates."""
