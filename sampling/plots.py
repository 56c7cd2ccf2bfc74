"""Look-before-you-download figures: a world map of the locations and a histogram of distances to the city.

Both are PNGs written next to locations.parquet. The map draws land from a small embedded 0.25 deg mask
(:mod:`sampling._landmask_lowres`), so it needs no download. matplotlib runs headless (Agg, no pyplot).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from sampling._landmask_lowres import land_lowres

MAP_NAME = "locations_map.png"
HIST_NAME = "locations_distance.png"
DENSITY_ABOVE = 100_000
"""Above this many locations the map shows a density raster instead of one dot per location."""


def write_plots(locations: pd.DataFrame, out_dir: str | os.PathLike[str], sigma_m: float | None = None,
                title: str = "") -> tuple[Path, Path]:
    """Write the map and the distance histogram of ``locations`` (columns lon, lat, dist_m) to ``out_dir``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lon = locations["lon"].to_numpy(np.float64)
    lat = locations["lat"].to_numpy(np.float64)
    n = len(lon)
    meta = {"Software": "ssl4eo-curate sampling"}

    fig = Figure(figsize=(12, 6.4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(land_lowres(), extent=(-180, 180, -90, 90), origin="upper", interpolation="nearest",
              cmap=ListedColormap(["#eaf2f8", "#d9d9d0"]), vmin=0, vmax=1)
    if n > DENSITY_ABOVE:
        h, _, _ = np.histogram2d(lat, lon, bins=(360, 720), range=((-90, 90), (-180, 180)))
        h = np.ma.masked_equal(h, 0)
        im = ax.imshow(np.ma.log10(h[::-1]), extent=(-180, 180, -90, 90), cmap="viridis", interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.7, label="log10 locations per 0.5 deg cell")
    elif n:
        ax.scatter(lon, lat, s=12 if n < 200 else (4 if n < 5000 else 0.6), c="#c0392b", linewidths=0)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("latitude (deg)")
    ax.set_title(title or f"{n:,} sampled locations")
    ax.grid(color="white", linewidth=0.4, alpha=0.6)
    map_path = out / MAP_NAME
    fig.savefig(map_path, metadata=meta, bbox_inches="tight")

    fig = Figure(figsize=(7, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    km = locations["dist_m"].to_numpy(np.float64) / 1000.0
    top = float(np.percentile(km, 99.5)) * 1.05 if n else 1.0
    if sigma_m:
        top = max(top, 4.0 * sigma_m / 1000.0)
    bins = np.linspace(0, top, int(np.clip(2 * np.sqrt(n), 10, 60)) + 1)
    if n:
        ax.hist(km, bins=bins, density=True, color="#5d8aa8", label=f"sampled ({n:,})")
    if sigma_m:
        s = sigma_m / 1000.0
        x = np.linspace(0, top, 300)
        ax.plot(x, x / s**2 * np.exp(-(x**2) / (2 * s**2)), color="#c0392b",
                label=f"Rayleigh, sigma {s:g} km (no rejections)")
    if n:
        ax.axvline(float(np.median(km)), color="k", linestyle="--", linewidth=1,
                   label=f"median {np.median(km):.1f} km")
    ax.set_xlabel("distance to the city (km)")
    ax.set_ylabel("density")
    if n or sigma_m:
        ax.legend(fontsize=8)
    ax.set_title("distance of each location to its city")
    hist_path = out / HIST_NAME
    fig.savefig(hist_path, metadata=meta, bbox_inches="tight")
    return map_path, hist_path
