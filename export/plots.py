"""Figures of the run report, each a function of plain arrays that saves one PNG (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

DPI = 90
SEASON_COLOURS = ("#4daf4a", "#e41a1c", "#ff7f00", "#377eb8", "#984ea3", "#a65628")


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:  # type: ignore[no-untyped-def]
    fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return path


def world_map(path: Path, groups: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """Locations on a lon/lat plate carree, one colour per group (``{"packed": (lon, lat), "failed: x": ...}``)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 5.6))
    palette = ["#d73027", "#ff7f00", "#984ea3", "#377eb8", "#a65628", "#f781bf", "#000000"]
    others = 0
    for label, (lon, lat) in groups.items():
        if label.startswith("packed"):
            ax.scatter(lon, lat, s=16, alpha=0.9, label=f"{label} ({len(lon)})", color="#1a9850", linewidths=0,
                       zorder=3)
        elif label == "not attempted":
            ax.scatter(lon, lat, s=10, alpha=0.6, label=f"{label} ({len(lon)})", color="#999999", linewidths=0)
        else:
            ax.scatter(lon, lat, s=30, marker="x", label=f"{label} ({len(lon)})",
                       color=palette[others % len(palette)], linewidths=1.2)
            others += 1
    ax.set(xlim=(-180, 180), ylim=(-90, 90), xlabel="longitude", ylabel="latitude", aspect="equal",
           title="Locations: packed into the dataset vs failed (by reason)")
    ax.set_xticks(range(-180, 181, 30))
    ax.set_yticks(range(-90, 91, 30))
    ax.grid(True, lw=0.4, alpha=0.5)
    ax.axhline(0, color="k", lw=0.5)
    if groups:
        ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
    return _save(fig, path)


def acquisition_dates(path: Path, per_product: Mapping[str, np.ndarray], season_refs: Sequence[str]) -> Path:
    """Histogram of acquisition dates per season; ``per_product[name]`` is (sample, time) datetime64."""
    plt = _plt()
    n = max(len(per_product), 1)
    fig, axes = plt.subplots(n, 1, figsize=(11, 2.6 * n), squeeze=False)
    for ax, (name, dts) in zip(axes[:, 0], per_product.items(), strict=False):
        days = dts.astype("datetime64[D]").astype(np.int64)
        bins = np.arange(days.min(), days.max() + 8, 7) if days.size else 10
        for t in range(dts.shape[1]):
            ax.hist(days[:, t], bins=bins, alpha=0.75, color=SEASON_COLOURS[t % len(SEASON_COLOURS)],
                    label=f"season {t} (~{season_refs[t] if t < len(season_refs) else '?'})")
        ticks = ax.get_xticks()
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(np.datetime64(int(x), "D")) for x in ticks], rotation=20, fontsize=8)
        ax.set(title=f"{name}: acquisition dates per season (weekly bins)", ylabel="patches")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def quality_histograms(path: Path, cloud: Mapping[str, np.ndarray], nodata: Mapping[str, np.ndarray]) -> Path:
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.4))
    bins = np.linspace(0, 1, 41)
    for name, v in cloud.items():
        a.hist(np.ravel(v), bins=bins, alpha=0.6, label=name)
    for name, v in nodata.items():
        b.hist(np.ravel(v), bins=bins, alpha=0.6, label=name)
    a.set(title="cloud fraction per patch", xlabel="fraction", ylabel="patches", yscale="log")
    b.set(title="nodata fraction per patch", xlabel="fraction", yscale="log")
    for ax in (a, b):
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def band_stats(path: Path, product: str, stats: Mapping[str, Sequence[float | None]],
               wavelengths: Sequence[float] | None) -> Path:
    """Mean with +-1 std and the p02-p98 range per band (against wavelength when known)."""
    plt = _plt()

    def arr(key: str) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in stats.get(key, [])], dtype=float)

    names = list(stats.get("band", []))
    x = np.asarray(wavelengths, float) if wavelengths is not None else np.arange(len(names), dtype=float)
    fig, ax = plt.subplots(figsize=(11, 3.6))
    mean, std = arr("mean"), arr("std")
    ax.fill_between(x, arr("p02"), arr("p98"), alpha=0.2, label="p02-p98", step=None)
    ax.errorbar(x, mean, yerr=std, fmt="o-" if len(x) < 40 else "-", ms=3, capsize=2, label="mean +- std")
    ax.plot(x, arr("p50"), "k--", lw=0.8, label="median")
    if wavelengths is None:
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=90 if len(names) > 16 else 0, fontsize=8)
        ax.set_xlabel("band")
    else:
        ax.set_xlabel("centre wavelength (nm)")
    ax.set(title=f"{product}: normalisation statistics per band", ylabel="value")
    ax.legend(fontsize=8)
    return _save(fig, path)


def preview_grid(path: Path, product: str, title: str, images: Sequence[np.ndarray], labels: Sequence[str],
                 season_labels: Sequence[str]) -> Path:
    """Rows of samples, columns of seasons; each image is (time, y, x, 3) float in [0, 1]."""
    plt = _plt()
    rows = max(len(images), 1)
    cols = images[0].shape[0] if images else 1
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.1 * rows), squeeze=False)
    for r, img in enumerate(images):
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(img[c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(season_labels[c] if c < len(season_labels) else f"t{c}", fontsize=9)
            if c == 0:
                ax.set_ylabel(labels[r], fontsize=8)
    fig.suptitle(f"{product}: {title}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def stretch(bands: np.ndarray, lo: Sequence[float], hi: Sequence[float]) -> np.ndarray:
    """(time, 3, y, x) values to (time, y, x, 3) in [0, 1], each channel from ``lo`` to ``hi``."""
    lo_a = np.asarray(lo, float)[None, :, None, None]
    hi_a = np.asarray(hi, float)[None, :, None, None]
    scaled = (bands.astype(np.float64) - lo_a) / np.where(hi_a > lo_a, hi_a - lo_a, 1.0)
    return np.clip(np.nan_to_num(scaled), 0, 1).transpose(0, 2, 3, 1)
