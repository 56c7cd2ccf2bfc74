"""Scale and offset that turn a stored value into a physical one, per band of one acquisition. Pure.

``physical = stored * scale + offset``. What the catalog publishes (STAC ``raster:bands`` ``scale`` /
``offset`` of the band's asset) wins. Where it publishes neither, Sentinel-2 follows ESA's rule: reflectance
= (DN + offset DN) / 10000, where processing baseline 04.00 (in production from 2022-01-25) added
``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET`` = -1000 DN; so a corpus mixing acquisitions from before and after
(or reprocessed ones) holds DNs 1000 apart for the same reflectance unless each sample-season says which
applies. The baseline comes from ``s2:processing_baseline``; without it, from the acquisition date. Other
products with nothing published get NaN (unknown). SAR is stored in dB already: (1, 0).
"""

from __future__ import annotations

import datetime as dt
import math

from pipeline.fetch.request import ProductRequest
from pipeline.sources import SceneRef

S2_QUANTIFICATION = 1e-4
S2_OFFSET_BASELINE = (4, 0)
"""The first processing baseline with the -1000 DN offset."""
S2_OFFSET_SINCE = dt.datetime(2022, 1, 25, tzinfo=dt.UTC)
"""When baseline 04.00 went into production (used only when an item does not name its baseline)."""
S2_OFFSET = -1000 * S2_QUANTIFICATION


def band_radiometry(p: ProductRequest, scene: SceneRef) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(scales, offsets), one per output band of ``p``, for the acquisition ``scene``."""
    if p.is_sar:
        return (1.0,) * len(p.bands), (0.0,) * len(p.bands)
    scales: list[float] = []
    offsets: list[float] = []
    for r in p.reads:
        asset = scene.asset(r.asset)
        for index in r.band_indexes:
            scale, offset = asset.radiometry(index)
            if scale is None and offset is None:
                scale, offset = _fallback(p.name, scene)
            scales.append(1.0 if scale is None else scale)
            offsets.append(0.0 if offset is None else offset)
    return tuple(scales), tuple(offsets)


def _fallback(product: str, scene: SceneRef) -> tuple[float, float]:
    if product.startswith("s2_"):
        return S2_QUANTIFICATION, S2_OFFSET if s2_has_offset(scene) else 0.0
    return math.nan, math.nan


def s2_has_offset(scene: SceneRef) -> bool:
    """Whether a Sentinel-2 scene's DNs carry the -1000 offset of processing baseline >= 04.00."""
    baseline = _version(scene.processing_baseline)
    if baseline is not None:
        return baseline >= S2_OFFSET_BASELINE
    return scene.datetime >= S2_OFFSET_SINCE


def _version(text: str) -> tuple[int, int] | None:
    """'05.10' -> (5, 10); 'N0400' (as in product ids) -> (4, 0); None when it is not a baseline."""
    t = text.strip().upper().removeprefix("N")
    if "." in t:
        major, _, minor = t.partition(".")
    elif len(t) == 4:
        major, minor = t[:2], t[2:]
    else:
        return None
    return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else None
