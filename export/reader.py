"""A fast random-access reader of one sample from the sharded ``bands`` arrays, for training loops.

Standalone on purpose (numpy, numcodecs, google-crc32c and the store's own ``zarr.json``; no curation code), so a
training job can use it as is. It reads what Zarr wrote, without Zarr's per-read machinery: the shard index of
each shard file is read once and cached, then a sample is one ``pread`` per season chunk, a CRC32C check and a
decode. ``tests/export/test_reader.py`` checks it returns exactly what ``zarr`` returns. It reads the chains this
project writes (sharding_indexed, index at the end, little-endian bytes, then Blosc or Zstd or nothing, then
optionally CRC32C) and says so plainly for any other.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import google_crc32c
import numpy as np

_EMPTY = 2**64 - 1


class ShardedSampleReader:
    """``reader[i]`` -> (time, band, y, x) of sample ``i``; ``reader.read(i, seasons)`` for some seasons only."""

    def __init__(self, store: str | os.PathLike[str], group: str, array: str = "bands") -> None:
        self.path = Path(store) / group / array
        meta = json.loads((self.path / "zarr.json").read_text())
        self.shape = tuple(meta["shape"])
        self.dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        self.shard = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        sep = meta.get("chunk_key_encoding", {}).get("configuration", {}).get("separator", "/")
        self._sep = sep
        codecs = meta["codecs"]
        if len(codecs) != 1 or codecs[0]["name"] != "sharding_indexed":
            raise ValueError(f"{self.path}: not a sharded array this reader knows; open it with zarr instead")
        conf = codecs[0]["configuration"]
        if conf.get("index_location", "end") != "end":
            raise ValueError(f"{self.path}: shard index at the start is not supported; open it with zarr instead")
        self.chunk = tuple(conf["chunk_shape"])
        if self.chunk[0] != 1 or self.chunk[2:] != self.shape[2:] or self.chunk[1] not in (1, self.shape[1]):
            raise ValueError(f"{self.path}: chunks {self.chunk} are not one sample(-season) each")
        self.per_shard = tuple(s // c for s, c in zip(self.shard, self.chunk, strict=True))
        self._decode, self._crc = _inner_chain(conf["codecs"], self.path)
        self._index_crc = [c["name"] for c in conf.get("index_codecs", [])] == ["bytes", "crc32c"]
        self._indexes: dict[int, tuple[int, np.ndarray]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: int) -> np.ndarray:
        return self.read(i)

    def read(self, i: int, seasons: Sequence[int] | None = None) -> np.ndarray:
        if not 0 <= i < self.shape[0]:
            raise IndexError(f"sample {i} out of range 0..{self.shape[0] - 1}")
        seasons = range(self.shape[1]) if seasons is None else seasons
        s, j = divmod(i, self.shard[0])
        fd, index = self._shard(s)
        out = np.empty((len(seasons), *self.shape[2:]), dtype=self.dtype)
        for k, t in enumerate(seasons):
            entry = index[j, t // self.chunk[1]] if self.chunk[1] == 1 else index[j, 0]
            off, size = int(entry.reshape(-1)[0]), int(entry.reshape(-1)[1])
            if off == _EMPTY:
                out[k] = 0  # never written: the fill value
                continue
            buf = os.pread(fd, size, off)
            if self._crc:
                buf, crc = buf[:-4], int.from_bytes(buf[-4:], "little")
                if google_crc32c.value(buf) != crc:
                    raise OSError(f"{self.path}: chunk of sample {i} season {t} fails its CRC32C (corrupt shard)")
            chunk = np.frombuffer(self._decode(buf), dtype=self.dtype)
            out[k] = chunk.reshape(self.chunk[1:])[t % self.chunk[1]] if self.chunk[1] > 1 else chunk.reshape(
                self.shape[2:])
        return out

    def _shard(self, s: int) -> tuple[int, np.ndarray]:
        got = self._indexes.get(s)
        if got is not None:
            return got
        with self._lock:
            got = self._indexes.get(s)
            if got is None:
                key = self._sep.join(["c", str(s)] + ["0"] * (len(self.shape) - 1))
                fd = os.open(self.path / key, os.O_RDONLY)
                n = int(np.prod(self.per_shard)) * 16
                size = os.fstat(fd).st_size
                tail = os.pread(fd, n + (4 if self._index_crc else 0), size - n - (4 if self._index_crc else 0))
                if self._index_crc and google_crc32c.value(tail[:n]) != int.from_bytes(tail[n:], "little"):
                    raise OSError(f"{self.path / key}: shard index fails its CRC32C (corrupt shard)")
                got = (fd, np.frombuffer(tail[:n], dtype="<u8").reshape(*self.per_shard, 2)[:, :, 0, 0, 0])
                self._indexes[s] = got
        return got

    def close(self) -> None:
        for fd, _ in self._indexes.values():
            os.close(fd)
        self._indexes.clear()


def _inner_chain(codecs: list[dict], path: Path) -> tuple[Callable[[bytes], bytes], bool]:
    names = [c["name"] for c in codecs]
    crc = bool(names) and names[-1] == "crc32c"
    names = names[:-1] if crc else names
    if not names or names[0] != "bytes" or codecs[0].get("configuration", {}).get("endian", "little") != "little":
        raise ValueError(f"{path}: codec chain {names} is not one this reader knows; open it with zarr instead")
    if names[1:] == []:
        return (lambda b: b), crc
    if names[1:] == ["blosc"]:
        from numcodecs import blosc

        return blosc.decompress, crc
    if names[1:] == ["zstd"]:
        from numcodecs import Zstd

        return Zstd().decode, crc
    raise ValueError(f"{path}: codec chain {names} is not one this reader knows; open it with zarr instead")
