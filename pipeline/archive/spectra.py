"""Spectral library of the archive's land-cover classes: reflectance as a smooth function of wavelength.

One library serves every sensor (S2, Landsat and EnMAP sample it at their band centres), so co-registered
patches of different sensors show the same land cover. Classes use ESA WorldCover codes.
"""

from __future__ import annotations

import numpy as np

TREE, SHRUB, GRASS, CROP, BUILT, BARE, SNOW, WATER, WETLAND = 10, 20, 30, 40, 50, 60, 70, 80, 90
CLASSES: dict[int, str] = {
    TREE: "tree cover", SHRUB: "shrubland", GRASS: "grassland", CROP: "cropland", BUILT: "built-up",
    BARE: "bare / sparse vegetation", SNOW: "snow and ice", WATER: "permanent water", WETLAND: "herbaceous wetland",
}
VEGETATED = (TREE, SHRUB, GRASS, CROP, WETLAND)


def _sig(x: np.ndarray, x0: float, w: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x - x0) / w))


def _absorption(lam: np.ndarray) -> np.ndarray:
    """Atmospheric/leaf-water absorption dips near 940, 1130, 1400 and 1900 nm (multiplicative, 0..1)."""
    dips = [(940, 25, 0.25), (1130, 30, 0.3), (1400, 45, 0.85), (1900, 60, 0.9), (2500, 80, 0.3)]
    f = np.ones_like(lam)
    for c, w, depth in dips:
        f *= 1 - depth * np.exp(-0.5 * ((lam - c) / w) ** 2)
    return f


def vegetation(lam: np.ndarray, vigour: np.ndarray | float) -> np.ndarray:
    """Green vegetation: low visible with a green bump, red edge near 715 nm, NIR plateau scaled by vigour."""
    vis = 0.035 + 0.04 * np.exp(-0.5 * ((lam - 555) / 30) ** 2)
    nir = (0.15 + 0.30 * vigour) * _sig(lam, 715, 12)
    swir = -0.12 * _sig(lam, 1300, 60) + 0.06 * np.exp(-0.5 * ((lam - 1650) / 120) ** 2)
    red_dip = -0.015 * np.exp(-0.5 * ((lam - 670) / 20) ** 2) * vigour
    return np.clip(vis + nir + swir + red_dip, 0.01, 1)


def reflectance(cls: np.ndarray, lam: float, vigour: float, snow: bool) -> np.ndarray:
    """Surface reflectance (0..1) of an array of class codes at one wavelength (nm).

    ``vigour`` (0..1) is the phenology state of the acquisition; ``snow`` makes land (not water) snow-covered.
    """
    lam_a = np.array([lam], dtype=np.float64)
    a = _absorption(lam_a)[0]
    table = {
        TREE: vegetation(lam_a, 0.55 + 0.45 * vigour)[0] * 0.85,
        SHRUB: 0.5 * vegetation(lam_a, 0.3 + 0.3 * vigour)[0] + 0.5 * (0.12 + 0.1 * lam / 2500),
        GRASS: vegetation(lam_a, 0.2 + 0.7 * vigour)[0],
        CROP: vegetation(lam_a, 0.05 + 0.95 * vigour)[0] * (0.6 + 0.4 * vigour) + 0.1 * (1 - vigour) * lam / 2500,
        BUILT: 0.14 + 0.08 * lam / 2500 + 0.02 * np.sin(lam / 300),
        BARE: 0.12 + 0.22 * _sig(lam_a, 900, 250)[0],
        SNOW: 0.92 - 0.80 * _sig(lam_a, 1250, 120)[0],
        WATER: 0.06 * np.exp(-(lam - 450) / 180) if lam > 450 else 0.06,
        WETLAND: 0.5 * vegetation(lam_a, 0.4 + 0.4 * vigour)[0] + 0.02,
    }
    if snow:
        for c in (TREE, SHRUB, GRASS, CROP, BUILT, BARE, WETLAND):
            table[c] = 0.8 * table[SNOW] + 0.2 * table[c]
    lut = np.zeros(100, dtype=np.float64)
    for c, v in table.items():
        lut[c] = float(v) * a
    return lut[cls]


def cloud_reflectance(lam: float) -> float:
    """Thick cloud: bright and spectrally flat, dimming slowly into the SWIR."""
    return float(0.62 - 0.25 * _sig(np.array([lam]), 1500, 300)[0])


def sar_sigma0(cls: np.ndarray, pol: str, vigour: float) -> np.ndarray:
    """Backscatter sigma0 (linear power) of each class for 'vv' or 'vh'."""
    db_vv = {TREE: -7.5, SHRUB: -9.5, GRASS: -11.0, CROP: -12.5 + 4 * vigour, BUILT: -2.0, BARE: -14.0,
             SNOW: -16.0, WATER: -22.0, WETLAND: -10.0}
    lut = np.full(100, -15.0)
    for c, v in db_vv.items():
        lut[c] = v - (7.0 if pol == "vh" else 0.0) - (3.0 if pol == "vh" and c == BUILT else 0.0)
    return 10.0 ** (lut[cls] / 10.0)
