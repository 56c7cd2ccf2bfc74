"""Encode one whole ``bands`` shard straight from numpy, for the codec chains this project writes.

Zarr's own sharded write goes through its generic pipeline: per inner chunk a fill-value buffer, a merge copy,
an ``np.append`` copy for the CRC32C and a final concatenation, which costs 2-5x the compressor itself, and it
needs the whole shard in memory. For the chains we create (little-endian bytes, then Blosc or Zstd or nothing,
then optionally CRC32C; an index of little-endian uint64 (offset, length) pairs plus its CRC32C at the end of
the shard; chunks in Zarr's Morton order) :class:`ShardFormat` produces the same bytes chunk by chunk, so a
task can stream a shard to disk while it reads the next samples (``tests/export/test_shardcodec.py`` compares
the result with Zarr's byte for byte). Any other chain gives None, and the caller lets Zarr encode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from export.checksum import crc32c

EMPTY = np.uint64(2**64 - 1)


@dataclass(frozen=True)
class ShardFormat:
    chunk: tuple[int, ...]
    shard: tuple[int, ...]
    order: tuple[tuple[int, ...], ...]
    """Chunk coordinates inside the shard, in the order their bytes are laid out (Zarr's Morton order)."""
    compress: Callable[[np.ndarray], Any]
    crc: bool

    @property
    def per_shard(self) -> tuple[int, ...]:
        return tuple(s // c for s, c in zip(self.shard, self.chunk, strict=True))

    def chunks(self, n_samples: int) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...]]]:
        """(coords, slices into the shard) of every chunk that holds samples below ``n_samples``, in order."""
        for coords in self.order:
            lo = [k * c for k, c in zip(coords, self.chunk, strict=True)]
            if lo[0] < n_samples:  # chunks past the array's end are left out of the shard, as Zarr does
                yield coords, tuple(slice(a, a + c) for a, c in zip(lo, self.chunk, strict=True))

    def encode_chunk(self, piece: np.ndarray) -> list[bytes]:
        data = bytes(self.compress(np.ascontiguousarray(piece)))
        return [data, crc32c(data).to_bytes(4, "little")] if self.crc else [data]

    def new_index(self) -> np.ndarray:
        return np.full((*self.per_shard, 2), EMPTY, dtype="<u8")

    @staticmethod
    def index_part(index: np.ndarray) -> bytes:
        raw = index.tobytes()
        return raw + crc32c(raw).to_bytes(4, "little")

    def encode(self, block: np.ndarray) -> list[bytes]:
        """The whole shard of ``block`` (its first axis possibly short: the array's last shard) as parts."""
        if block.shape[1:] != self.shard[1:] or block.shape[0] > self.shard[0]:
            raise ValueError(f"block {block.shape} does not fit shard {self.shard}")
        index = self.new_index()
        parts: list[bytes] = []
        offset = 0
        for coords, sl in self.chunks(block.shape[0]):
            piece = self.encode_chunk(block[sl])
            size = sum(len(p) for p in piece)
            parts += piece
            index[coords] = (offset, size)
            offset += size
        parts.append(self.index_part(index))
        return parts


def shard_format(metadata: Any) -> ShardFormat | None:
    """The :class:`ShardFormat` of a sharded array's ``metadata``, or None when its codec chain is not one this
    module reproduces exactly."""
    codecs = list(getattr(metadata, "codecs", ()))
    if len(codecs) != 1 or _name(codecs[0]) != "ShardingCodec":
        return None
    sh = codecs[0]
    if getattr(sh.index_location, "value", sh.index_location) != "end":
        return None
    if [_name(c) for c in sh.index_codecs] != ["BytesCodec", "Crc32cCodec"] or not _little(sh.index_codecs[0]):
        return None
    inner = list(sh.codecs)
    if not inner or _name(inner[0]) != "BytesCodec" or not _little(inner[0]):
        return None
    rest = inner[1:]
    crc = bool(rest) and _name(rest[-1]) == "Crc32cCodec"
    if crc:
        rest = rest[:-1]
    compress = _compressor(rest, metadata.dtype.to_native_dtype().itemsize)
    if compress is None:
        return None
    chunk = tuple(sh.chunk_shape)
    shard = tuple(metadata.chunk_grid.chunk_shape)
    if any(s % c for s, c in zip(shard, chunk, strict=True)):
        return None
    from zarr.core.indexing import morton_order_iter

    per_shard = tuple(s // c for s, c in zip(shard, chunk, strict=True))
    return ShardFormat(chunk, shard, tuple(morton_order_iter(per_shard)), compress, crc)


def _compressor(rest: list[Any], itemsize: int) -> Callable[[np.ndarray], Any] | None:
    if not rest:
        return bytes
    if len(rest) != 1:
        return None
    c = rest[0]
    if _name(c) == "BloscCodec":
        from numcodecs import Blosc

        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[c.shuffle.value]
        return Blosc(cname=c.cname.value, clevel=c.clevel, shuffle=shuffle, blocksize=c.blocksize,
                     typesize=c.typesize or itemsize).encode
    if _name(c) == "ZstdCodec":
        from numcodecs import Zstd

        return Zstd(level=c.level, checksum=c.checksum).encode
    return None


def _name(c: Any) -> str:
    return type(c).__name__


def _little(bytes_codec: Any) -> bool:
    endian = getattr(bytes_codec, "endian", None)
    return endian is None or getattr(endian, "value", endian) == "little"
