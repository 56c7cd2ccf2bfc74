"""``ssl4eo report``: ``<out>/report/index.html`` with PNG figures of a run, readable without a server.

Sections: a world map of the locations (packed vs failed, by ledger reason), acquisition dates per season,
cloud and nodata histograms, per-band normalisation statistics, and RGB / false-colour previews of random
samples (fixed seed) with their seasons side by side. Parts whose inputs are missing are skipped with a note.
"""

from __future__ import annotations

import html
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from export import plots
from export.layout import STORE
from export.store import ATTR, chunk_blocks

log = logging.getLogger(__name__)
REPORT = "report"
N_PREVIEWS = 6
PREVIEW_SEED = 0


@dataclass(frozen=True)
class Composite:
    title: str
    bands: tuple[int, int, int]
    """Band indexes for red, green, blue; a SAR composite uses (vv, vh, vv) and shows vv-vh in blue."""
    sar_ratio: bool = False


def composites(band_names: Sequence[str], wavelengths: Sequence[float] | None) -> list[Composite]:
    """Which previews suit a product: true and false colour by wavelength, a VV/VH composite for SAR."""
    names = [b.lower() for b in band_names]
    if wavelengths is not None and len(wavelengths) >= 3:
        w = np.asarray(wavelengths, float)

        def near(nm: float) -> int:
            return int(np.argmin(np.abs(w - nm)))

        out = [Composite("true colour (red, green, blue)", (near(665), near(560), near(490)))]
        if w.max() > 800:
            out.append(Composite("false colour (NIR, red, green)", (near(842), near(665), near(560))))
        return out
    if "vv" in names and "vh" in names:
        vv, vh = names.index("vv"), names.index("vh")
        return [Composite("SAR (VV, VH, VV-VH)", (vv, vh, vv), sar_ratio=True)]
    k = len(names)
    return [Composite(f"bands {band_names[0]}, {band_names[min(1, k - 1)]}, {band_names[min(2, k - 1)]}",
                      (0, min(1, k - 1), min(2, k - 1)))]


def write_report(out: Path) -> Path:
    out = Path(out)
    dest = out / REPORT
    dest.mkdir(parents=True, exist_ok=True)
    sections: list[str] = []
    facts: dict[str, Any] = {}
    root = _open(out / STORE)
    rattrs = root.attrs.get(ATTR, {}) if root is not None else {}
    packed_ids = np.asarray(root[rattrs["products"][0]]["location_id"][...]) if root is not None else np.zeros(0)
    sections.append(_map_section(out, dest, packed_ids, root, rattrs))
    if root is None:
        sections.append("<p class=note>No finished dataset.zarr: run <code>ssl4eo shard</code> for the dataset "
                        "figures.</p>")
    else:
        facts.update({k: rattrs.get(k) for k in ("n_samples", "products", "config_hash", "software_version",
                                                 "created", "shard_size")})
        sections += _dataset_sections(dest, root, rattrs)
    page = _page(out, facts, sections)
    (dest / "index.html").write_text(page)
    log.info("wrote %s", dest / "index.html")
    return dest / "index.html"


def _open(store: Path) -> zarr.Group | None:
    if not (store / "zarr.json").is_file():
        return None
    root = zarr.open_group(zarr.storage.LocalStore(store, read_only=True), mode="r")
    return root if (root.attrs.get(ATTR) or {}).get("status") == "complete" else None


def _map_section(out: Path, dest: Path, packed: np.ndarray, root: zarr.Group | None, rattrs: dict) -> str:
    from pipeline.ledger import read_ledger

    groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    coords: dict[int, tuple[float, float]] = {}
    loc_file = out / "locations.parquet"
    if loc_file.is_file():
        import pandas as pd

        df = pd.read_parquet(loc_file, columns=["location_id", "lon", "lat"])
        coords = {int(i): (float(x), float(y)) for i, x, y in df.itertuples(index=False)}
    if root is not None:
        g = root[rattrs["products"][0]]
        for i, x, y in zip(packed, g["lon"][...], g["lat"][...], strict=True):
            coords.setdefault(int(i), (float(x), float(y)))
    packed_set = {int(i) for i in packed}
    ledger = read_ledger(out)
    buckets: dict[str, list[int]] = {"packed": sorted(packed_set)}
    for loc, e in sorted(ledger.items()):
        if loc in packed_set:
            continue
        label = f"failed: {e.reason}" if e.status == "failed" else f"not packed ({e.status})"
        buckets.setdefault(label, []).append(loc)
    known = set(ledger) | packed_set
    buckets["not attempted"] = sorted(set(coords) - known)
    for label, ids in buckets.items():
        pts = [coords[i] for i in ids if i in coords]
        if pts:
            groups[label] = (np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
    plots.world_map(dest / "map.png", groups)
    counts = ", ".join(f"{k}: {len(v)}" for k, v in buckets.items() if v)
    note = "" if loc_file.is_file() else " (no locations.parquet: failed locations without coordinates are not drawn)"
    return _fig("Locations", "map.png", f"{html.escape(counts)}{note}")


def _dataset_sections(dest: Path, root: zarr.Group, rattrs: dict) -> list[str]:
    products = list(rattrs["products"])
    dts, clouds, nodata = {}, {}, {}
    for p in products:
        g = root[p]
        dts[p] = np.asarray(g["datetime"][...], dtype="int64").astype("datetime64[ms]")
        clouds[p] = np.asarray(g["cloud_fraction"][...])
        nodata[p] = np.asarray(g["nodata_fraction"][...])
    refs = [str(s) for s in root[products[0]]["season_reference"][...]]
    out = []
    plots.acquisition_dates(dest / "dates.png", dts, refs)
    out.append(_fig("Acquisition dates per season", "dates.png", "One colour per season window."))
    plots.quality_histograms(dest / "quality.png", clouds, nodata)
    out.append(_fig("Cloud and nodata fractions", "quality.png", "Per patch, as measured by the fetch stage."))
    for p in products:
        out += _product_sections(dest, root[p], p, refs)
    return out


def _product_sections(dest: Path, g: zarr.Group, product: str, refs: list[str]) -> list[str]:
    ga = g.attrs[ATTR]
    stats = ga.get("stats", {})
    wl = [float(v) for v in g["center_wavelength"][...]] if "center_wavelength" in g else None
    out = []
    plots.band_stats(dest / f"stats_{product}.png", product, stats, wl)
    table = _stats_table(stats) + _radiometry_table(g)
    out.append(_fig(f"{product}: per-band statistics", f"stats_{product}.png", ga.get("stats_note", ""), table))
    bands = g["bands"]
    n = bands.shape[0]
    rng = np.random.default_rng(PREVIEW_SEED)
    picks = sorted(rng.choice(n, size=min(N_PREVIEWS, n), replace=False).tolist()) if n else []
    ids = g["location_id"][...]
    data = {i: np.asarray(bands[i]) for i in picks}
    labels = [f"sample {i}\nloc {int(ids[i]):07d}" for i in picks]
    for k, comp in enumerate(composites(list(ga["bands"]), wl)):
        imgs = [_composite(data[i], comp, stats) for i in picks]
        name = f"preview_{product}_{k}.png"
        plots.preview_grid(dest / name, product, comp.title, imgs, labels, [f"season {t} ({r})" for t, r in
                                                                           enumerate(refs)])
        out.append(_fig(f"{product}: {comp.title}", name, f"{len(picks)} random samples (seed {PREVIEW_SEED}), "
                        "seasons left to right, stretched from p02 to p98 of the band statistics."))
    return out


def _composite(arr: np.ndarray, comp: Composite, stats: dict[str, Any]) -> np.ndarray:
    sel = arr[:, list(comp.bands)].astype(np.float64)
    p02, p98 = stats.get("p02") or [], stats.get("p98") or []

    def bound(vals: list, b: int, fallback: float) -> float:
        return float(vals[b]) if b < len(vals) and vals[b] is not None else fallback

    lo = [bound(p02, b, float(np.nanpercentile(sel[:, c], 2))) for c, b in enumerate(comp.bands)]
    hi = [bound(p98, b, float(np.nanpercentile(sel[:, c], 98))) for c, b in enumerate(comp.bands)]
    if comp.sar_ratio:
        sel[:, 2] = sel[:, 0] - sel[:, 1]
        lo[2], hi[2] = float(np.nanpercentile(sel[:, 2], 2)), float(np.nanpercentile(sel[:, 2], 98))
    return plots.stretch(sel, lo, hi)


def _stats_table(stats: dict[str, Any]) -> str:
    names = stats.get("band", [])
    if not names or len(names) > 40:
        return ""
    keys = [k for k in ("mean", "std", "p02", "p50", "p98") if k in stats]
    head = "".join(f"<th>{k}</th>" for k in keys)
    rows = "".join(f"<tr><td>{html.escape(str(b))}</td>" + "".join(
        f"<td>{'' if stats[k][i] is None else f'{stats[k][i]:.4g}'}</td>" for k in keys) + "</tr>"
        for i, b in enumerate(names))
    return f"<table><tr><th>band</th>{head}</tr>{rows}</table>"


def _radiometry_table(g: zarr.Group) -> str:
    """How many sample-seasons share each scale/offset (a Sentinel-2 corpus spanning 2022 shows two regimes)."""
    if "scale" not in g or "offset" not in g or not g["scale"].size:
        return ""
    regimes: Counter[tuple[float, ...]] = Counter()
    n_unknown = 0
    for sc, of in zip(chunk_blocks(g["scale"]), chunk_blocks(g["offset"]), strict=True):  # a chunk at a time
        rows = np.concatenate([sc, of], axis=-1).reshape(-1, 2 * sc.shape[-1])
        unknown = np.isnan(rows).any(axis=1)
        n_unknown += int(unknown.sum())
        values, counts = np.unique(rows[~unknown], axis=0, return_counts=True)
        regimes.update(dict(zip(map(tuple, values.tolist()), counts.tolist(), strict=True)))
    nb = g["scale"].shape[-1]
    body = ""
    for r, c in regimes.most_common():
        varies = "" if len(set(r[:nb])) == 1 and len(set(r[nb:])) == 1 else " (varies by band; first band shown)"
        body += f"<tr><td>{r[0]:g}</td><td>{r[nb]:g}{varies}</td><td>{c}</td></tr>"
    if n_unknown:
        body += ("<tr><td colspan=2>unknown (not published, or staged by an older version)</td>"
                 f"<td>{n_unknown}</td></tr>")
    return ("<p>Physical value = stored * scale + offset, per sample-season:</p>"
            f"<table><tr><th>scale</th><th>offset</th><th>sample-seasons</th></tr>{body}</table>")


def _fig(title: str, src: str, caption: str, extra: str = "") -> str:
    return (f"<section><h2>{html.escape(title)}</h2><img src=\"{src}\" alt=\"{html.escape(title)}\">"
            f"<p class=caption>{html.escape(caption)}</p>{extra}</section>")


def _page(out: Path, facts: dict[str, Any], sections: list[str]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(json.dumps(v) if not isinstance(v, str) else v)}"
                   f"</td></tr>" for k, v in facts.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ssl4eo-curate run report</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; text-align: left; }}
.caption, .note {{ color: #555; font-size: 0.9em; }}
</style></head>
<body data-images-loaded="pending">
<h1>ssl4eo-curate run report</h1>
<p>Output folder: <code>{html.escape(str(out.resolve()))}</code></p>
<table>{rows}</table>
{''.join(sections)}
<script>
window.addEventListener("load", function () {{
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  document.body.setAttribute("data-images-loaded", ok + "/" + imgs.length);
}});
</script>
</body></html>
"""
