"""Encode one whole ``bands`` shard straight from numpy, for the codec chains this project writes.

Zarr's own sharded write goes through its generic pipeline: per inner chunk a fill-value buffer, a merge copy,
an ``np.append`` copy for the CRC32C and a final concatenation, which costs 2-5x the compressor itself. For
the chains we create (little-endian bytes, then Blosc or Zstd or nothing, then optionally CRC32C; index of
little-endian uint64 pairs plus CRC32C at the end of the shard, chunks in Zarr's Morton order) this module
produces the same bytes directly (``tests/export/test_shardcodec.py`` compares them with Zarr's output
byte for byte). Any other chain returns None and the caller lets Zarr encode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import google_crc32c
import numpy as np

EMPTY = np.uint64(2**64 - 1)

Encoder = Callable[[np.ndarray], Any]


def _codec_name(c: Any) -> str:
    return type(c).__name__


def fast_encoder(metadata: Any) -> Callable[[np.ndarray], list[bytes]] | None:
    """A function ``block -> parts`` (``b"".join(parts)`` is the shard) for ``metadata`` of a sharded array,
    or None when its codec chain is not one this module reproduces exactly."""
    codecs = list(getattr(metadata, "codecs", ()))
    if len(codecs) != 1 or _codec_name(codecs[0]) != "ShardingCodec":
        return None
    sh = codecs[0]
    if getattr(sh.index_location, "value", sh.index_location) != "end":
        return None
    idx = [_codec_name(c) for c in sh.index_codecs]
    if idx != ["BytesCodec", "Crc32cCodec"] or not _little(sh.index_codecs[0]):
        return None
    inner = list(sh.codecs)
    if not inner or _codec_name(inner[0]) != "BytesCodec" or not _little(inner[0]):
        return None
    rest = inner[1:]
    crc = bool(rest) and _codec_name(rest[-1]) == "Crc32cCodec"
    if crc:
        rest = rest[:-1]
    itemsize = metadata.dtype.to_native_dtype().itemsize
    if not rest:
        compress: Encoder = bytes
    elif len(rest) == 1 and _codec_name(rest[0]) == "BloscCodec":
        from numcodecs import Blosc

        b = rest[0]
        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[b.shuffle.value]
        codec = Blosc(cname=b.cname.value, clevel=b.clevel, shuffle=shuffle, blocksize=b.blocksize,
                      typesize=b.typesize or itemsize)
        compress = codec.encode
    elif len(rest) == 1 and _codec_name(rest[0]) == "ZstdCodec":
        from numcodecs import Zstd

        z = Zstd(level=rest[0].level, checksum=rest[0].checksum)
        compress = z.encode
    else:
        return None
    chunk = tuple(sh.chunk_shape)
    shard = tuple(metadata.chunk_grid.chunk_shape)
    if any(s % c for s, c in zip(shard, chunk, strict=True)):
        return None
    per_shard = tuple(s // c for s, c in zip(shard, chunk, strict=True))
    from zarr.core.indexing import morton_order_iter

    order = list(morton_order_iter(per_shard))

    def encode(block: np.ndarray) -> list[bytes]:
        """``block``: the shard's samples, C-contiguous, its first axis possibly short (the array's last shard)."""
        if block.shape[1:] != shard[1:] or block.shape[0] > shard[0]:
            raise ValueError(f"block {block.shape} does not fit shard {shard}")
        index = np.full((*per_shard, 2), EMPTY, dtype="<u8")
        parts: list[bytes] = []
        offset = 0
        for coords in order:
            lo = [k * c for k, c in zip(coords, chunk, strict=True)]
            if lo[0] >= block.shape[0]:
                continue  # outside the array: Zarr leaves it out of the shard
            piece = np.ascontiguousarray(block[tuple(slice(a, a + c) for a, c in zip(lo, chunk, strict=True))])
            data = bytes(compress(piece))
            parts.append(data)
            size = len(data)
            if crc:
                parts.append(int(google_crc32c.value(data)).to_bytes(4, "little"))
                size += 4
            index[coords] = (offset, size)
            offset += size
        raw_index = index.tobytes()
        parts.append(raw_index + int(google_crc32c.value(raw_index)).to_bytes(4, "little"))
        return parts

    return encode


def _little(bytes_codec: Any) -> bool:
    endian = getattr(bytes_codec, "endian", None)
    return endian is None or getattr(endian, "value", endian) == "little"
