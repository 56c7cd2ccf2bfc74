"""Per-band normalisation statistics: mergeable partials (one per shard) and the final summary. Pure, no I/O.

A partial holds, per band, the count, mean and M2 (Chan et al.'s parallel variance), min, max and a sparse
histogram over 65,536 bins. Integer data of 8 or 16 bits gets one bin per value, so its percentiles are exact;
wider or float data is binned by the top 16 bits of an order-preserving key of its float32 value (sign,
exponent and 7 mantissa bits, i.e. within 0.8% of the value). Nodata and non-finite pixels are left out.

Partials are merged in shard order, so the floats in the result do not depend on which task finished first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

NBINS = 1 << 16
PERCENTILES = (1, 2, 50, 98, 99)
"""Percentiles stored per band (2/98 is the usual SSL4EO clipping range)."""


@dataclass(frozen=True)
class BandPartial:
    count: int
    mean: float
    m2: float
    min: float
    max: float
    bins: np.ndarray
    """Sorted unique bin ids (uint16) that hold at least one value."""
    counts: np.ndarray
    """Number of values in each of ``bins`` (int64)."""


@dataclass(frozen=True)
class Partial:
    """Statistics of one product over some samples, one :class:`BandPartial` per band."""

    dtype: str
    bands: tuple[BandPartial, ...]


def to_bins(values: np.ndarray) -> np.ndarray:
    """Order-preserving 16-bit bin id of each value (see the module docstring)."""
    v = np.asarray(values)
    kind, size = v.dtype.kind, v.dtype.itemsize
    if kind == "u" and size <= 2:
        return v.astype(np.uint16, copy=False)
    if kind == "i" and size <= 2:
        return (v.astype(np.int32) + 32768).astype(np.uint16)
    if kind in "fiu":  # floats, and integers wider than 16 bits, go by their float32 value
        u = (np.ascontiguousarray(v, dtype=np.float32) + np.float32(0)).view(np.uint32)  # -0.0 -> +0.0
        key = np.where(u >> 31, ~u, u | np.uint32(0x80000000))
        return (key >> 16).astype(np.uint16)
    raise ValueError(f"dtype {v.dtype} has no statistics; use an integer or float dtype")


def bin_value(bins: np.ndarray, dtype: str) -> np.ndarray:
    """Representative value of each bin: exact for 8/16-bit integers, the bin's middle for floats."""
    b = np.asarray(bins).astype(np.uint32)
    dt = np.dtype(dtype)
    if dt.kind == "u" and dt.itemsize <= 2:
        return b.astype(np.float64)
    if dt.kind == "i" and dt.itemsize <= 2:
        return b.astype(np.float64) - 32768
    key = (b << 16) | np.uint32(0x8000)
    u = np.where(key >> 31, key & np.uint32(0x7FFFFFFF), ~key)
    return u.astype(np.uint32).view(np.float32).astype(np.float64)


def band_partial(values: np.ndarray, nodata: float | None) -> BandPartial:
    """Partial of one band from a flat array of its pixels (nodata and non-finite pixels dropped)."""
    v = np.asarray(values).ravel()
    if v.dtype.kind in "ui" and v.dtype.itemsize <= 2:
        return _small_int_partial(v, nodata)
    keep = np.ones(v.shape, bool)
    if v.dtype.kind == "f":
        keep &= np.isfinite(v)
    if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
        keep &= v != np.asarray(nodata).astype(v.dtype)
    v = v[keep] if not keep.all() else v
    if v.size == 0:
        return BandPartial(0, 0.0, 0.0, np.inf, -np.inf, np.zeros(0, np.uint16), np.zeros(0, np.int64))
    bins = to_bins(v)
    hist = np.bincount(bins, minlength=NBINS)
    nz = np.flatnonzero(hist)
    f = v.astype(np.float64)
    mean = float(f.mean())
    m2 = float(((f - mean) ** 2).sum())
    return BandPartial(int(v.size), mean, m2, float(f.min()), float(f.max()), nz.astype(np.uint16), hist[nz])


def _small_int_partial(v: np.ndarray, nodata: float | None) -> BandPartial:
    """8/16-bit integers: one bincount gives everything, exactly (no float copy of the pixels, no mask)."""
    return _from_hist(np.bincount(to_bins(v), minlength=NBINS), nodata, v.dtype)


def _from_hist(hist: np.ndarray, nodata: float | None, dtype: np.dtype) -> BandPartial:
    """Partial of 8/16-bit integer data from its 65,536-bin histogram (``hist`` is modified: nodata dropped)."""
    dt = np.dtype(dtype)
    if nodata is not None and not np.isnan(nodata):
        info = np.iinfo(dt)
        if info.min <= nodata <= info.max:
            hist[int(to_bins(np.array([nodata]).astype(dt))[0])] = 0
    nz = np.flatnonzero(hist)
    if nz.size == 0:
        return BandPartial(0, 0.0, 0.0, np.inf, -np.inf, np.zeros(0, np.uint16), np.zeros(0, np.int64))
    counts = hist[nz]
    vals = bin_value(nz, str(dt))
    n = int(counts.sum())
    mean = float((counts * vals).sum() / n)
    m2 = float((counts * (vals - mean) ** 2).sum())
    return BandPartial(n, mean, m2, float(vals[0]), float(vals[-1]), nz.astype(np.uint16), counts.astype(np.int64))


class Accumulator:
    """Statistics of one product built up sample by sample (``(time, band, y, x)`` arrays), as a shard task
    reads them: nothing but the histogram (8/16-bit integers) or one partial per band (others) is kept."""

    def __init__(self, dtype: str | np.dtype, n_bands: int, nodata: float | None, stride: int = 1) -> None:
        if stride < 1:
            raise ValueError(f"stride={stride} must be >= 1")
        self.dtype = np.dtype(dtype)
        self.nodata = nodata
        self.stride = stride
        self.small = self.dtype.kind in "ui" and self.dtype.itemsize <= 2
        self.hist = np.zeros((n_bands, NBINS), np.int64) if self.small else None
        self.parts: list[BandPartial | None] = [None] * n_bands

    def add(self, sample: np.ndarray) -> None:
        sub = sample[..., :: self.stride, :: self.stride]
        for b in range(sample.shape[1]):
            if self.hist is not None:
                # One sample at a time: its pixels are in cache and bincount's output stays small (a whole band
                # of a shard at once is ~3x slower). The histogram is all the statistics need.
                c = np.bincount(to_bins(sub[:, b].ravel()))
                self.hist[b, : c.size] += c
            else:
                bp = band_partial(sub[:, b], self.nodata)
                prev = self.parts[b]
                self.parts[b] = bp if prev is None else merge_band(prev, bp)

    def result(self) -> Partial:
        if self.hist is not None:
            return Partial(str(self.dtype), tuple(_from_hist(h, self.nodata, self.dtype) for h in self.hist))
        empty = band_partial(np.zeros(0, self.dtype), None)
        return Partial(str(self.dtype), tuple(p if p is not None else empty for p in self.parts))


def partial_of(block: np.ndarray, nodata: float | None, stride: int = 1) -> Partial:
    """Partial of a ``(sample, time, band, y, x)`` block; ``stride`` > 1 keeps every stride-th row and column."""
    if block.ndim != 5:
        raise ValueError(f"block has shape {block.shape}; expected (sample, time, band, y, x)")
    acc = Accumulator(block.dtype, block.shape[2], nodata, stride)
    for sample in block:
        acc.add(sample)
    return acc.result()


def merge_band(a: BandPartial, b: BandPartial) -> BandPartial:
    if b.count == 0:
        return a
    if a.count == 0:
        return b
    n = a.count + b.count
    delta = b.mean - a.mean
    mean = a.mean + delta * b.count / n
    m2 = a.m2 + b.m2 + delta * delta * a.count * b.count / n
    bins = np.union1d(a.bins, b.bins)
    counts = np.zeros(bins.size, np.int64)
    counts[np.searchsorted(bins, a.bins)] += a.counts
    counts[np.searchsorted(bins, b.bins)] += b.counts
    return BandPartial(n, mean, m2, min(a.min, b.min), max(a.max, b.max), bins.astype(np.uint16), counts)


def merge(partials: Sequence[Partial]) -> Partial:
    """Merge partials in the given order (pass them in shard order for reproducible floats)."""
    if not partials:
        raise ValueError("no partial statistics to merge; shard at least one sample first")
    first = partials[0]
    out = list(first.bands)
    for p in partials[1:]:
        if p.dtype != first.dtype or len(p.bands) != len(out):
            raise ValueError(f"cannot merge statistics of {p.dtype}x{len(p.bands)} into {first.dtype}x{len(out)}")
        out = [merge_band(x, y) for x, y in zip(out, p.bands, strict=True)]
    return Partial(first.dtype, tuple(out))


def percentile(bp: BandPartial, q: float, dtype: str) -> float:
    """The ``q``-th percentile (0-100, lower value at ties) from the histogram; NaN without data."""
    if bp.count == 0:
        return float("nan")
    rank = q / 100 * (bp.count - 1)
    i = int(np.searchsorted(np.cumsum(bp.counts), rank, side="right"))
    return float(bin_value(bp.bins[min(i, bp.bins.size - 1) : min(i, bp.bins.size - 1) + 1], dtype)[0])


def summary(p: Partial, band_names: Sequence[str]) -> dict[str, object]:
    """JSON-ready statistics: ``{"band": [...], "count": [...], "mean": [...], "std": [...], "p2": [...], ...}``."""
    if len(band_names) != len(p.bands):
        raise ValueError(f"{len(band_names)} band names for {len(p.bands)} bands of statistics")

    def num(x: float) -> float | None:
        return None if not np.isfinite(x) else float(x)

    out: dict[str, object] = {
        "band": list(band_names),
        "count": [b.count for b in p.bands],
        "mean": [num(b.mean) if b.count else None for b in p.bands],
        "std": [num(float(np.sqrt(b.m2 / b.count))) if b.count else None for b in p.bands],
        "min": [num(b.min) for b in p.bands],
        "max": [num(b.max) for b in p.bands],
    }
    for q in PERCENTILES:
        out[f"p{q:02d}"] = [num(percentile(b, q, p.dtype)) for b in p.bands]
    return out


def to_arrays(p: Partial) -> dict[str, np.ndarray]:
    """Flat arrays for an ``.npz`` file (see :func:`from_arrays`)."""
    bands = p.bands
    return {
        "dtype": np.array(p.dtype),
        "scalars": np.array([[b.count, b.mean, b.m2, b.min, b.max] for b in bands], np.float64).reshape(-1, 5),
        "count": np.array([b.count for b in bands], np.int64),
        "offsets": np.cumsum([0] + [b.bins.size for b in bands]).astype(np.int64),
        "bins": np.concatenate([b.bins for b in bands]) if bands else np.zeros(0, np.uint16),
        "counts": np.concatenate([b.counts for b in bands]) if bands else np.zeros(0, np.int64),
    }


def from_arrays(d: dict[str, np.ndarray]) -> Partial:
    off = d["offsets"]
    bands = []
    for i, (row, n) in enumerate(zip(d["scalars"], d["count"], strict=True)):
        sl = slice(int(off[i]), int(off[i + 1]))
        bands.append(
            BandPartial(int(n), float(row[1]), float(row[2]), float(row[3]), float(row[4]),
                        d["bins"][sl].astype(np.uint16), d["counts"][sl].astype(np.int64))
        )
    return Partial(str(d["dtype"]), tuple(bands))


def merge_all(items: Iterable[tuple[int, Partial]]) -> Partial:
    """Merge ``(shard index, partial)`` pairs in shard-index order, whatever order they arrive in."""
    return merge([p for _, p in sorted(items, key=lambda kv: kv[0])])
