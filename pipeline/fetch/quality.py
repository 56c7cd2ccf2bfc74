"""Per-patch cloud and nodata fractions from each product's quality layer. Pure numpy."""

from __future__ import annotations

import numpy as np

SCL_CLOUDY = (3, 8, 9, 10)  # cloud shadow, cloud medium/high probability, thin cirrus
QA_CLOUD_BITS = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4)  # dilated cloud, cirrus, cloud, cloud shadow
QA_FILL_BIT = 1


def cloud_fraction(product: str, mask: np.ndarray | None, valid: np.ndarray) -> float:
    """Cloudy share of the valid pixels (0 when the product has no quality layer, e.g. SAR)."""
    if mask is None or not valid.any():
        return 0.0
    if product == "s2_l2a":
        cloudy = np.isin(mask, SCL_CLOUDY)
    elif product.startswith("landsat"):
        cloudy = (mask.astype(np.uint32) & QA_CLOUD_BITS) != 0
    elif product == "enmap_l2a":
        cloudy = mask == 1
    else:
        return 0.0
    return float(np.count_nonzero(cloudy & valid) / np.count_nonzero(valid))


def valid_pixels(data: np.ndarray, nodata: float | None) -> np.ndarray:
    """A pixel is valid when no band is nodata/NaN (data: band, y, x)."""
    bad = np.zeros(data.shape[1:], dtype=bool)
    if np.issubdtype(data.dtype, np.floating):
        bad |= np.isnan(data).any(axis=0)
    if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
        bad |= (data == nodata).any(axis=0)
    return ~bad
