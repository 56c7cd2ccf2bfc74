"""``ssl4eo verify DIR``: exit 0 when the outputs are whole, 1 with the list of problems otherwise."""

from __future__ import annotations

from pathlib import Path

from export.verify import verify

MAX_LISTED = 200


def main(out: Path) -> int:
    rep = verify(Path(out))
    if rep.ok:
        print(f"verify: ok: {rep.samples} samples, {rep.shards_checked} shards, {rep.items_checked} items in {out}")
        return 0
    print(f"verify: {len(rep.problems)} problem(s) in {out}:")
    for p in rep.problems[:MAX_LISTED]:
        print(f"  {p}")
    if len(rep.problems) > MAX_LISTED:
        print(f"  ... and {len(rep.problems) - MAX_LISTED} more")
    return 1
