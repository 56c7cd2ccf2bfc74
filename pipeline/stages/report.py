"""``ssl4eo report DIR``: write ``DIR/report/index.html`` with PNG figures of the run."""

from __future__ import annotations

from pathlib import Path

from export.report import write_report


def main(out: Path) -> int:
    page = write_report(Path(out))
    print(f"report: {page}")
    return 0
