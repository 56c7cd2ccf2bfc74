"""Write the archive: COGs, STAC collections + items (ndjson) and the land-cover maps. The one I/O module here.

The archive is built into a temporary folder and renamed into place when complete; ``ARCHIVE.json`` (written
last) carries a stamp of the builder's source, so a stale archive is rebuilt and a current one is reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine

from pipeline.archive import plan as plan_mod
from pipeline.archive.items import asset_path, collection_for, scene_item
from pipeline.archive.plan import SITE_MIXTURE, Scene, plan_archive, site_seed
from pipeline.archive.render import Grid, grid_of, render_band, render_mask, site_classes
from pipeline.archive.sites import SITES
from pipeline.archive.spectra import CLASSES
from pipeline.errors import ArchiveError
from pipeline.products import PRODUCTS

log = logging.getLogger(__name__)
MARKER = "ARCHIVE.json"
ITEMS = "stac/items.ndjson"
_SOURCES = ("sites.py", "spectra.py", "truth.py", "plan.py", "render.py", "items.py", "build.py")


@dataclass(frozen=True)
class BuildSummary:
    root: Path
    built: bool
    n_items: int
    n_files: int
    bytes: int
    seconds: float


def archive_stamp() -> str:
    """Hash of the builder's source files and the product table: any change rebuilds the archive."""
    h = hashlib.sha256(str(plan_mod.ARCHIVE_VERSION).encode())
    here = Path(__file__).parent
    for name in _SOURCES:
        h.update((here / name).read_bytes())
    h.update((here.parent / "products.py").read_bytes())
    return h.hexdigest()[:16]


def is_current(root: Path) -> bool:
    marker = Path(root) / MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("stamp") == archive_stamp()
    except (OSError, json.JSONDecodeError):
        return False


def require_current(root: Path, build: str = "'ssl4eo archive build' (or make archive)") -> None:
    """ArchiveError unless the archive at ``root`` is built and current; ``build`` is the command that builds it."""
    if not is_current(root):
        raise ArchiveError(f"the embedded archive at {str(root)!r} is missing or stale; run {build}")


def build_archive(root: Path, *, force: bool = False, workers: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> BuildSummary:
    """Build the archive at ``root`` unless a current one is there (or ``force``)."""
    root = Path(root)
    t0 = time.perf_counter()
    stamp = archive_stamp()  # of the code doing this build, even if the sources change meanwhile
    if is_current(root) and not force:
        return _summary(root, built=False, seconds=time.perf_counter() - t0)
    root.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(root, timeout_s=1800.0):
        if is_current(root) and not force:  # another process built it while we waited
            return _summary(root, built=False, seconds=time.perf_counter() - t0)
        _build_into_place(root, stamp, workers, progress)
    return _summary(root, built=True, seconds=time.perf_counter() - t0)


@contextlib.contextmanager
def _build_lock(root: Path, timeout_s: float) -> Iterator[None]:
    """One builder at a time per archive folder (other processes wait, with a deadline)."""
    lock = root.parent / f".{root.name}.lock"
    with open(lock, "w") as f:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ArchiveError(f"another process has been building {str(root)!r} for over {timeout_s:.0f} s;"
                                       f" stop it or remove {str(lock)!r}") from None
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build_into_place(root: Path, stamp: str, workers: int | None,
                      progress: Callable[[int, int], None] | None) -> None:
    tmp = root.parent / f".{root.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        items = _write_all(tmp, workers or min(2, os.cpu_count() or 1), progress)
        _write_catalog(tmp, items)
        _write_landcover(tmp)
        (tmp / MARKER).write_text(json.dumps({
            "version": plan_mod.ARCHIVE_VERSION, "stamp": stamp,
            "collections": sorted({i["collection"] for i in items}), "n_items": len(items),
        }, indent=1))
        old = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
        if root.exists():
            os.rename(root, old)
        os.rename(tmp, root)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _summary(root: Path, built: bool, seconds: float) -> BuildSummary:
    files = [p for p in root.rglob("*") if p.is_file()]
    n_items = json.loads((root / MARKER).read_text())["n_items"]
    return BuildSummary(root, built, n_items, len(files), sum(p.stat().st_size for p in files), seconds)


def _groups() -> list[list[Scene]]:
    """Scenes grouped by (product, site, CRS) so each worker reuses its grids and class maps."""
    groups: dict[tuple[str, str, int], list[Scene]] = {}
    for s in plan_archive():
        groups.setdefault((s.product, s.site, s.epsg), []).append(s)
    cost = {p: sum(len(b.band_names) for b in [PRODUCTS[p]]) for p in PRODUCTS}
    return sorted(groups.values(), key=lambda g: -len(g) * cost[g[0].product])


def _write_all(root: Path, workers: int, progress: Callable[[int, int], None] | None) -> list[dict]:
    groups = _groups()
    items: list[dict] = []
    total = sum(len(g) for g in groups)
    if workers <= 1:
        for g in groups:
            items += _write_group(str(root), g)
            if progress:
                progress(len(items), total)
    else:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            futs = [ex.submit(_write_group, str(root), g) for g in groups]
            for f in as_completed(futs):
                items += f.result()
                if progress:
                    progress(len(items), total)
    order = {s.item_id: k for k, s in enumerate(plan_archive())}
    return sorted(items, key=lambda d: order[d["id"]])


def _write_group(root: str, scenes: list[Scene]) -> list[dict]:
    out = []
    with rasterio.Env(GDAL_NUM_THREADS=1):
        for sc in scenes:
            out.append(_write_scene(Path(root), sc))
    return out


def _write_scene(root: Path, scene: Scene) -> dict:
    p = PRODUCTS[scene.product]
    by_asset: dict[str, list] = {}
    for b in p.bands:
        by_asset.setdefault(b.asset, []).append(b)
    for key, bands in by_asset.items():
        data = np.stack([render_band(scene, b) for b in bands])
        _write_cog(root / asset_path(scene, key), data, grid_of(scene, bands[0].resolution_m), p.nodata)
    if p.mask_asset:
        res = 20.0 if scene.product == "s2_l2a" else p.resolution_m
        m = render_mask(scene, res)
        _write_cog(root / asset_path(scene, p.mask_asset), m[None], grid_of(scene, res),
                   1 if m.dtype == np.uint16 else None, resampling="nearest")
    return scene_item(scene).to_dict(include_self_link=False)


def _write_cog(path: Path, data: np.ndarray, grid: Grid, nodata: float | None, resampling: str = "average") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "COG", "width": grid.width, "height": grid.height, "count": data.shape[0], "dtype": data.dtype.name,
        "crs": f"EPSG:{grid.epsg}", "transform": Affine(*grid.transform), "nodata": nodata, "compress": "ZSTD",
        "level": 9, "predictor": 2, "blocksize": 256, "overview_resampling": resampling, "overview_count": 2,
        "bigtiff": "NO",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def _write_catalog(root: Path, items: list[dict]) -> None:
    (root / "stac/collections").mkdir(parents=True)
    import pystac

    by_col: dict[str, list[pystac.Item]] = {}
    for d in items:
        by_col.setdefault(d["collection"], []).append(pystac.Item.from_dict(d))
    written: set[str] = set()
    for prod in PRODUCTS.values():
        if prod.collection in by_col and prod.collection not in written:
            written.add(prod.collection)
            col = collection_for(prod, by_col[prod.collection])
            (root / f"stac/collections/{prod.collection}.json").write_text(
                json.dumps(col.to_dict(include_self_link=False), indent=1))
    with open(root / ITEMS, "w") as f:
        for d in items:
            rel = item_path(d["collection"], d["id"])
            static = dict(d, assets={k: dict(a, href=f"../../../{a['href']}") for k, a in d["assets"].items()},
                          links=[])
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(json.dumps(static, indent=1))
            d = dict(d, links=[{"rel": "self", "href": rel, "type": "application/geo+json"}])
            f.write(json.dumps(d, separators=(",", ":")) + "\n")


def item_path(collection: str, item_id: str) -> str:
    """Archive-relative path of an item's static JSON (its provenance target: stays valid after serving)."""
    return f"stac/items/{collection}/{item_id}.json"


def _write_landcover(root: Path) -> None:
    """Per-site land-cover label map (WorldCover codes) at 10 m over the Sentinel-2 coverage."""
    (root / "landcover").mkdir()
    for site in SITES:
        sc = next(s for s in plan_archive() if s.site == site.name and s.product == "s2_l2a")
        g = grid_of(sc, 10.0)
        cls = site_classes(g, site.name)
        _write_cog(root / f"landcover/{site.name.replace(' ', '_')}.tif", cls[None], g, 0, resampling="mode")
    (root / "landcover/classes.json").write_text(json.dumps(
        {"classes": {str(k): v for k, v in CLASSES.items()}, "site_seed": {s.name: site_seed(s.name) for s in SITES},
         "mixture": {k: {str(c): w for c, w in v.items()} for k, v in SITE_MIXTURE.items()}}, indent=1))
