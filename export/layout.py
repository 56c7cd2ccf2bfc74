"""Pure layout arithmetic of the sharded store: sample order, shard bounds, alignment checks, stable keys.

No I/O here. The I/O modules (:mod:`export.store`, :mod:`export.writer`) call these before touching disk, so a
misaligned write is refused before any byte is written (the same idea as xarray's chunk-alignment check).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

STORE = "dataset.zarr"
"""The Zarr v3 store, beside the catalog, the parquet index and the shard state folder in the output folder."""
INDEX = "dataset.parquet"
STATE = "dataset.state"
"""Bookkeeping of the shard stage (one JSON marker + partial statistics per finished shard). Not data."""
CATALOG = "catalog"
LAYOUT_VERSION = 1

BANDS = "bands"
DIMS = ("sample", "time", "band", "y", "x")


@dataclass(frozen=True)
class ShardSpan:
    """Samples ``[start, stop)`` of shard ``index``."""

    index: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def n_shards(n_samples: int, shard_size: int) -> int:
    """How many shards hold ``n_samples`` (the last one may be short)."""
    _check_positive(shard_size)
    if n_samples < 0:
        raise ValueError(f"n_samples={n_samples} is negative; pass the number of samples (>= 0)")
    return -(-n_samples // shard_size)


def shard_span(index: int, n_samples: int, shard_size: int) -> ShardSpan:
    """Sample range of shard ``index``: whole ``shard_size`` blocks, the last one cut at ``n_samples``."""
    count = n_shards(n_samples, shard_size)
    if not 0 <= index < count:
        raise ValueError(f"shard {index} does not exist: {n_samples} samples make {count} shard(s) of {shard_size}")
    start = index * shard_size
    return ShardSpan(index, start, min(start + shard_size, n_samples))


def shard_spans(n_samples: int, shard_size: int) -> list[ShardSpan]:
    return [shard_span(i, n_samples, shard_size) for i in range(n_shards(n_samples, shard_size))]


def check_aligned(start: int, stop: int, n_samples: int, shard_size: int) -> ShardSpan:
    """The shard that ``[start, stop)`` covers exactly; ValueError for any other range.

    A write must cover one whole shard: a partial one would make Zarr read, patch and rewrite the shard file
    (slow, and two writers of one shard would lose each other's samples).
    """
    _check_positive(shard_size)
    if not 0 <= start < stop <= n_samples:
        raise ValueError(f"samples [{start}, {stop}) are outside the store's [0, {n_samples}); write inside it")
    if start % shard_size:
        raise ValueError(
            f"write of samples [{start}, {stop}) starts inside a shard of {shard_size}; "
            f"start at a multiple of {shard_size} (e.g. {start - start % shard_size})"
        )
    span = shard_span(start // shard_size, n_samples, shard_size)
    if stop != span.stop:
        raise ValueError(
            f"write of samples [{start}, {stop}) does not end at its shard's end {span.stop}; "
            f"write whole shards of {shard_size} samples (the last one ends at n_samples={n_samples})"
        )
    return span


def shard_of(sample: int, shard_size: int) -> int:
    _check_positive(shard_size)
    return sample // shard_size


def sample_order(location_ids: Iterable[int]) -> list[int]:
    """The deterministic sample order: location ids ascending, each once. Sample ``i`` is ``order[i]``."""
    ids = sorted(set(location_ids))
    if ids and ids[0] < 0:
        raise ValueError(f"location id {ids[0]} is negative; location ids are >= 0")
    return ids


def stable_hash(obj: object) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys, no whitespace); stable across runs and machines."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def shard_key(layout_key: str, span: ShardSpan, location_ids: Sequence[int], meta_digests: Sequence[str]) -> str:
    """What a finished shard was built from. A rerun keeps a shard only while this is unchanged."""
    if len(location_ids) != span.size or len(meta_digests) != span.size:
        raise ValueError(f"shard {span.index} holds {span.size} samples, got {len(location_ids)} location ids")
    return stable_hash([layout_key, span.index, span.start, span.stop, list(location_ids), list(meta_digests)])


def chunk_key(array_path: str, chunk_coords: Sequence[int]) -> str:
    """Store key of a chunk (or shard) with Zarr v3's default ``c/`` encoding and ``/`` separator."""
    return f"{array_path}/c/" + "/".join(str(int(c)) for c in chunk_coords)


def bands_shard_key(group: str, shard: int) -> str:
    """Key of the ``bands`` shard file of ``shard`` in ``group`` (all other dimensions are one shard)."""
    return chunk_key(f"{group}/{BANDS}", (shard, 0, 0, 0, 0))


def _check_positive(shard_size: int) -> None:
    if shard_size <= 0:
        raise ValueError(f"shard_size={shard_size} must be > 0; use e.g. 64")
