"""Codec choice for the ``bands`` arrays, as a small frozen spec that turns into Zarr v3 codecs.

Default: Blosc LZ4HC level 5 with byte shuffle. Measured on 12-band uint16 264x264 sample-seasons (smooth fields
plus sigma=25 DN noise) on this 2-core machine, single thread (``make bench`` prints the table again):

========================  =====  =============  ===============
codec                     ratio  compress MB/s  decompress MB/s
========================  =====  =============  ===============
blosc lz4hc 5 shuffle     1.76   ~65-80         ~3900-4200
blosc lz4 5 bitshuffle    1.66   ~1100          ~2700
blosc zstd3 bitshuffle    1.83   ~250-350       ~600-1600
blosc zstd5 shuffle       1.82   ~105-200       ~2000-2600
zstd 1 (no shuffle)       1.23   ~600-1000      ~450-1200
========================  =====  =============  ===============

The corpus is written once and read every epoch, and random single-sample reads from the page cache are bound
by decompression, so the fastest decoder with a good ratio wins: LZ4HC's longer matches decode ~1.5x faster than
fast LZ4 and take 6% less disk, for a ~16x slower write; zstd buys 4% less disk for 2-4x slower reads. Every chunk
also carries a CRC32C (Zarr's ``crc32c`` codec), checked by Zarr on every read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Compressor = Literal["blosc-lz4hc", "blosc-lz4", "blosc-zstd", "zstd", "none"]
COMPRESSORS: tuple[str, ...] = get_args(Compressor)
Shuffle = Literal["bitshuffle", "shuffle", "noshuffle"]


@dataclass(frozen=True)
class CodecSpec:
    compressor: Compressor = "blosc-lz4hc"
    level: int = 5
    shuffle: Shuffle = "shuffle"
    checksum: bool = True
    """Append Zarr's CRC32C codec to every chunk."""

    def __post_init__(self) -> None:
        if self.compressor not in COMPRESSORS:
            raise ValueError(f"compressor {self.compressor!r} is unknown; use {', '.join(COMPRESSORS)}")
        hi = 22 if self.compressor == "zstd" else 9
        if not 0 <= self.level <= hi:
            raise ValueError(f"level {self.level} is out of range for {self.compressor}; use 0..{hi}")
        if self.shuffle not in ("bitshuffle", "shuffle", "noshuffle"):
            raise ValueError(f"shuffle {self.shuffle!r} is unknown; use bitshuffle, shuffle or noshuffle")

    def zarr_compressors(self) -> list[object]:
        """The bytes-to-bytes codecs (``compressors=`` of ``zarr.create_array``)."""
        from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

        out: list[object] = []
        if self.compressor.startswith("blosc-"):
            out.append(BloscCodec(cname=self.compressor[6:], clevel=self.level, shuffle=self.shuffle))
        elif self.compressor == "zstd":
            out.append(ZstdCodec(level=self.level))
        if self.checksum:
            out.append(Crc32cCodec())
        return out

    def numcodecs_codec(self) -> object | None:
        """The same compressor as a numcodecs codec (to measure the raw codec speed); None for ``none``."""
        from numcodecs import Blosc, Zstd

        if self.compressor.startswith("blosc-"):
            shuffle = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
            return Blosc(cname=self.compressor[6:], clevel=self.level, shuffle=shuffle[self.shuffle])
        if self.compressor == "zstd":
            return Zstd(level=self.level)
        return None

    def describe(self) -> str:
        if self.compressor == "none":
            return "none"
        s = f"{self.compressor} level {self.level}"
        return s + (f" {self.shuffle}" if self.compressor.startswith("blosc-") else "")
