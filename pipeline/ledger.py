"""The run ledger: each location's status and failure reason, so a rerun does only what is left.

``<out>/ledger.jsonl``, append-only, one JSON object a line, written by the driver (one writer)::

    {"location_id": 12, "status": "complete" | "failed", "reason": null | "<Reason>", "detail": "...",
     "attempt": 1, "time": "2026-11-21T08:00:00Z"}

The last line of a location wins. A partial last line (a killed writer) is ignored. A location whose status is
``complete`` is only trusted while its staging folder exists (see :mod:`pipeline.staging`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

LEDGER = "ledger.jsonl"


class Reason(StrEnum):
    """Why a location failed. Retried on a rerun: SOURCE_ERROR and WORKER_ERROR (the others are properties of the
    data)."""

    NO_CANDIDATE = "no_candidate"
    TOO_CLOUDY = "too_cloudy"
    NODATA = "nodata"
    SOURCE_ERROR = "source_error"
    NO_S1_MATCH = "no_s1_match"
    WORKER_ERROR = "worker_error"
    """The task did not finish on its worker (the worker died, or staging could not be written)."""


RETRYABLE = frozenset({Reason.SOURCE_ERROR, Reason.WORKER_ERROR})


@dataclass(frozen=True)
class Entry:
    location_id: int
    status: str
    reason: str | None = None
    detail: str = ""
    attempt: int = 1
    time: str = ""

    def to_line(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True) + "\n"


def read_ledger(out: Path) -> dict[int, Entry]:
    """Latest entry per location (missing ledger: empty)."""
    path = Path(out) / LEDGER
    latest: dict[int, Entry] = {}
    if not path.is_file():
        return latest
    with open(path) as f:
        for line in f:
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a killed run
            e = Entry(**d)
            latest[e.location_id] = e
    return latest


class LedgerWriter:
    """Appends entries and fsyncs each one (a crash loses at most the line being written)."""

    def __init__(self, out: Path) -> None:
        Path(out).mkdir(parents=True, exist_ok=True)
        path = Path(out) / LEDGER
        torn = path.is_file() and path.stat().st_size > 0 and _last_byte(path) != b"\n"
        self._f = open(path, "a")  # noqa: SIM115 - closed by close()/__exit__
        if torn:  # a killed writer's partial last line: start a new line, or the next entry is glued to it and lost
            self._f.write("\n")

    def write(self, entry: Entry) -> None:
        if not entry.time:
            now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            entry = Entry(**{**entry.__dict__, "time": now})
        self._f.write(entry.to_line())
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def summarize(entries: dict[int, Entry]) -> dict[str, int]:
    """Counts per status and failure reason, commonest first."""
    c = Counter(e.status if e.status == "complete" else f"failed:{e.reason}" for e in entries.values())
    return dict(c.most_common())
