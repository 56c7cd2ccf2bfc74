"""Scale and offset that turn a stored value into a physical one, per band of one acquisition. Pure.

``physical = stored * scale + offset``. What the catalog publishes (STAC ``raster:bands`` ``scale`` /
``offset`` of the band's asset) wins. Where it leaves either out, Sentinel-2 follows ESA's rule: reflectance
= (DN + offset DN) / 10000, where processing baseline 04.00 (in production from 2022-01-25) added
``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET`` = -1000 DN; so a corpus mixing acquisitions from before and after
(or reprocessed ones) holds DNs 1000 apart for the same reflectance unless each sample-season says which
applies. The baseline comes from ``s2:processing_baseline``; without it, from the acquisition date. Other
products with nothing published get NaN (unknown). SAR is stored in dB already: (1, 0).
"""

from __future__ import annotations

import datetime as dt
import math
import re

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
    # what an S2 item leaves out, ESA's rule fills (a lone scale of 1e-4 must not drop baseline 04.00's offset)
    rule = _s2_rule(scene) if p.name.startswith("s2_") else None
    for r in p.reads:
        asset = scene.asset(r.asset)
        for index in r.band_indexes:
            scale, offset = asset.radiometry(index)
            if rule is not None:
                scale, offset = (rule[0] if scale is None else scale), (rule[1] if offset is None else offset)
            elif scale is None and offset is None:
                scale, offset = math.nan, math.nan  # nothing published: unknown
            scales.append(1.0 if scale is None else scale)  # one half published: the other as STAC defaults it
            offsets.append(0.0 if offset is None else offset)
    return tuple(scales), tuple(offsets)


def _s2_rule(scene: SceneRef) -> tuple[float, float]:
    return S2_QUANTIFICATION, S2_OFFSET if s2_has_offset(scene) else 0.0


def s2_has_offset(scene: SceneRef) -> bool:
    """Whether a Sentinel-2 scene's DNs carry the -1000 offset of processing baseline >= 04.00."""
    baseline = _version(scene.processing_baseline)
    if baseline is not None:
        return baseline >= S2_OFFSET_BASELINE
    return scene.datetime >= S2_OFFSET_SINCE


_BASELINE = re.compile(r"N?(\d{2})\.?(\d{2})")


def _version(text: str) -> tuple[int, int] | None:
    """'05.10' -> (5, 10); 'N0400' (as in product ids) -> (4, 0); None for anything else (a software version in
    ``processing:version`` such as '1.0' is no baseline)."""
    m = _BASELINE.fullmatch(text.strip().upper())
    return (int(m[1]), int(m[2])) if m else None
